//! Robust statistics shared by the per-meter and per-licence analyses.
//!
//! Meter data has outliers by nature (a kettle, a reboot, an outage hour), so the analyses
//! describe levels by medians and quantiles and spreads by the median absolute deviation.
//! Every function ignores non-finite values and returns `None` when nothing is left.

/// Scales a median absolute deviation to a standard deviation for normal data.
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// The finite values of `values`, sorted.
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `q`-quantile (0 to 1) of already sorted finite values, interpolating linearly.
fn quantile_of_sorted(v: &[f64], q: f64) -> Option<f64> {
    let last = v.len().checked_sub(1)?;
    let position = q.clamp(0.0, 1.0) * last as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(last);
    let fraction = position - below as f64;
    Some(v[below] + fraction * (v[above] - v[below]))
}

/// The `q`-quantile (0 to 1) of `values`, interpolating linearly between order statistics.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    quantile_of_sorted(&sorted(values), q)
}

/// The median of `values`.
pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// The arithmetic mean of `values`.
pub fn mean(values: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64)
}

/// The sample standard deviation of `values` (at least two needed).
pub fn std_dev(values: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.len() < 2 {
        return None;
    }
    let m = finite.iter().sum::<f64>() / finite.len() as f64;
    let ss = finite.iter().map(|x| (x - m).powi(2)).sum::<f64>();
    Some((ss / (finite.len() - 1) as f64).sqrt())
}

/// A robust standard deviation: [`MAD_TO_SIGMA`] times the median absolute deviation.
pub fn mad_sigma(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let deviations: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    median(&deviations).map(|mad| MAD_TO_SIGMA * mad)
}

/// Pearson correlation of two equally long series, over the pairs where both are finite.
/// `None` when fewer than three pairs remain or either side is constant.
pub fn correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (*x, *y))
        .collect();
    if pairs.len() < 3 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Spearman's rank correlation of `a` and `b` (pairs with a non-finite value left out; ties
/// take their mean rank): how consistently one rises with the other, which one wild day
/// cannot fake or hide.
pub fn rank_correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let (x, y): (Vec<f64>, Vec<f64>) = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (*x, *y))
        .unzip();
    correlation(&ranks(&x), &ranks(&y))
}

/// Ranks from 1, ties at their mean rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Least squares `y ≈ X·β` with a ridge of `ridge` times each column's mean square (columns are
/// scaled first, so that energies of very different sizes are solved alike); `None` when there
/// are fewer rows than columns or the system is singular.
pub fn least_squares(rows: &[Vec<f64>], y: &[f64], ridge: f64) -> Option<Vec<f64>> {
    let k = rows.first()?.len();
    if k == 0 || rows.len() <= k || rows.len() != y.len() {
        return None;
    }
    let scale: Vec<f64> = (0..k)
        .map(|j| {
            let ms = rows.iter().map(|r| r[j] * r[j]).sum::<f64>() / rows.len() as f64;
            if ms > 0.0 {
                ms.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    // Normal equations on the scaled columns, augmented with X'y.
    let mut a = vec![vec![0.0; k + 1]; k];
    for (r, yi) in rows.iter().zip(y) {
        for i in 0..k {
            let xi = r[i] / scale[i];
            for j in 0..k {
                a[i][j] += xi * r[j] / scale[j];
            }
            a[i][k] += xi * yi;
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += ridge * rows.len() as f64;
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..k {
        let pivot = (col..k).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..k).map(|i| a[i][k] / a[i][i] / scale[i]).collect())
}

/// Rounds to `digits` decimals, for compact evidence.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_and_ignore_non_finite_values() {
        let v = [3.0, 1.0, f64::NAN, 2.0, 4.0];
        assert_eq!(median(&v), Some(2.5));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn mad_sigma_matches_the_standard_deviation_of_normal_data_and_ignores_outliers() {
        let mut v: Vec<f64> = (0..1001)
            .map(|i| {
                let p = (i as f64 + 0.5) / 1001.0;
                statrs::function::erf::erf_inv(2.0 * p - 1.0) * std::f64::consts::SQRT_2
            })
            .collect();
        v.push(1e9);
        let s = mad_sigma(&v).expect("sigma");
        assert!((s - 1.0).abs() < 0.02, "{s}");
    }

    #[test]
    fn correlation_of_a_series_with_itself_is_one_and_constants_have_none() {
        let a = [1.0, 2.0, 4.0, 3.0];
        assert!((correlation(&a, &a).expect("r") - 1.0).abs() < 1e-12);
        assert_eq!(correlation(&a, &[1.0; 4]), None);
        // y = 2 x1 - 3 x2 on columns of very different sizes.
        let rows: Vec<Vec<f64>> = (0..20)
            .map(|i| vec![f64::from(i) * 1e5, f64::from((i * 7) % 5)])
            .collect();
        let y: Vec<f64> = rows.iter().map(|r| 2.0 * r[0] - 3.0 * r[1]).collect();
        let beta = least_squares(&rows, &y, 0.0).expect("solvable");
        assert!(
            (beta[0] - 2.0).abs() < 1e-9 && (beta[1] + 3.0).abs() < 1e-6,
            "{beta:?}"
        );
        assert_eq!(least_squares(&rows[..2], &y[..2], 0.0), None);
        // One wild value moves Pearson's correlation, not the ranks'.
        let b = [1.0, 2.0, 3.0, -1e6];
        let c = [1.0, 2.0, 3.0, 4.0];
        assert!(correlation(&b, &c).expect("r") < 0.0);
        assert!((rank_correlation(&[1.0, 2.0, 3.0, 1e6], &c).expect("r") - 1.0).abs() < 1e-12);
        assert!(
            (rank_correlation(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]).expect("r") - 0.866).abs() < 1e-3
        );
    }
}
