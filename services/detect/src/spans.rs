//! Condition spans on a regular series: from rolling blocks that pass a test to the period a
//! condition held, with its edges placed where the data says it started and stopped.
//!
//! A rolling test on blocks of `block` steps decides robustly (hourly mismatches net out inside
//! a block), but a flagged block also contains steps from before the onset. The edges are then
//! moved to where the cumulative sum of the per-step margin `z` (positive while the condition
//! holds) turns: the start to its minimum, the end to its maximum. That is the maximum-likelihood
//! changepoint for a shift in mean, and it depends only on data near the edge, so the start of
//! an ongoing condition stays put as a trailing period slides forward.

/// A half-open range of step indices `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First step of the condition.
    pub start: usize,
    /// One past its last step.
    pub end: usize,
}

/// The steps covered by flagged blocks, merged where separated by at most `max_gap` steps.
/// `flagged[t]` says whether the block of `block` steps ending at step `t` (inclusive) passed.
pub fn spans_of_blocks(flagged: &[bool], block: usize, max_gap: usize) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for (t, _) in flagged.iter().enumerate().filter(|(_, f)| **f) {
        let span = Span {
            start: (t + 1).saturating_sub(block.max(1)),
            end: t + 1,
        };
        match spans.last_mut() {
            Some(last) if span.start <= last.end + max_gap => last.end = last.end.max(span.end),
            _ => spans.push(span),
        }
    }
    spans
}

/// Sorts `spans` and merges those overlapping or separated by at most `max_gap` steps.
pub fn merge(mut spans: Vec<Span>, max_gap: usize) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut merged: Vec<Span> = Vec::new();
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end + max_gap => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// Moves the edges of `span` by up to `slack` steps inward to where the cumulative sum of `z`
/// is lowest (start) and highest (end). With `keep_end`, the end stays (a condition still
/// holding at the end of the data must not flicker with the last step's noise).
pub fn refine(z: &[f64], span: Span, slack: usize, keep_end: bool) -> Span {
    let end = span.end.min(z.len());
    let start = span.start.min(end);
    // prefix[i] = sum of z[start..start + i].
    let mut prefix = Vec::with_capacity(end - start + 1);
    let mut acc = 0.0;
    prefix.push(0.0);
    for v in &z[start..end] {
        acc += if v.is_finite() { *v } else { 0.0 };
        prefix.push(acc);
    }
    let last = end - start;
    let best_start = (0..=slack.min(last))
        .min_by(|a, b| prefix[*a].total_cmp(&prefix[*b]))
        .unwrap_or(0);
    let best_end = if keep_end {
        last
    } else {
        (last.saturating_sub(slack).max(best_start + 1).min(last)..=last)
            .max_by(|a, b| prefix[*a].total_cmp(&prefix[*b]))
            .unwrap_or(last)
    };
    Span {
        start: start + best_start,
        end: start + best_end.max(best_start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_merge_across_short_gaps_only() {
        let mut flagged = vec![false; 40];
        flagged[5] = true;
        flagged[6] = true;
        flagged[12] = true;
        flagged[30] = true;
        let spans = spans_of_blocks(&flagged, 4, 3);
        assert_eq!(
            spans,
            vec![Span { start: 2, end: 13 }, Span { start: 27, end: 31 }]
        );
    }

    #[test]
    fn edges_move_to_the_change_in_mean() {
        let z: Vec<f64> = (0..50)
            .map(|i| if (10..30).contains(&i) { 1.0 } else { -1.0 })
            .collect();
        let s = refine(&z, Span { start: 4, end: 36 }, 8, false);
        assert_eq!(s, Span { start: 10, end: 30 });
        let s = refine(&z, Span { start: 4, end: 36 }, 8, true);
        assert_eq!(s, Span { start: 10, end: 36 });
    }
}
