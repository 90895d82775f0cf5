//! Independent random streams.
//!
//! Every random number comes from a stream named by (run seed, entity, purpose): a meter's load
//! noise, its measurement error and its network losses are three streams, and no stream is
//! shared by two entities. A scenario that changes what one meter reports therefore leaves every
//! other meter's numbers untouched, which is what lets a test compare a run with its clean twin
//! (the same configuration without the scenario) meter by meter.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The generator behind every stream: ChaCha8 is fast, portable and reproducible across
/// platforms and versions of `rand`, which a seed-for-seed deterministic simulator needs.
pub(crate) type Stream = ChaCha8Rng;

/// What a stream is used for; part of its name so that two purposes never share numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Purpose {
    /// The shape of the grid: how many consumers hang where, which nodes have lights.
    Grid = 1,
    /// A consumer's fixed traits (annual energy, heating, habits), drawn once.
    LoadTraits = 2,
    /// A consumer's interval-to-interval behaviour.
    Load = 3,
    /// A meter's class error, clock skew and per-reading error.
    Measurement = 4,
    /// A meter's register value when the run starts.
    InitialRegister = 5,
    /// A meter's delivery: losses, delays, duplicates, outages.
    Network = 6,
    /// A gateway's outages.
    Gateway = 7,
    /// A node's technical-loss noise and parameters.
    Losses = 8,
    /// A node's street lighting.
    Lighting = 9,
    /// The weather.
    Weather = 10,
    /// A mining farm's hourly operating plan (what it buys energy for).
    FarmPlan = 11,
    /// A scenario's own choices (which meters, attack parameters).
    Scenario = 12,
    /// Illegal rigs added to a connection by a scenario.
    Rigs = 13,
    /// A diversion's own variability.
    Diversion = 14,
    /// A tampering device's daily parameters.
    Tamper = 15,
    /// A meter's reading schedule: its profile's cadence and its head-end's time stamps.
    Schedule = 16,
}

/// SplitMix64's finaliser: a cheap, well-mixed hash of one 64-bit word.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream named by (seed, entity key, purpose).
pub(crate) fn stream(seed: u64, key: u64, purpose: Purpose) -> Stream {
    let mut bytes = [0u8; 32];
    let mut state = mix64(seed ^ mix64(purpose as u64 ^ mix64(key)));
    for chunk in bytes.chunks_mut(8) {
        state = mix64(state);
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    Stream::from_seed(bytes)
}

/// FNV-1a of a text, to key streams by names (a scenario's parameters) rather than positions.
pub(crate) fn text_key(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A standard normal draw.
pub(crate) fn normal(rng: &mut Stream) -> f64 {
    StandardNormal.sample(rng)
}

/// A uniform draw in `[range[0], range[1])` (or exactly `range[0]` when the range is empty).
pub(crate) fn uniform(rng: &mut Stream, range: [f64; 2]) -> f64 {
    let u: f64 = rng.gen();
    range[0] + u * (range[1] - range[0])
}

/// True with probability `p`.
pub(crate) fn chance(rng: &mut Stream, p: f64) -> bool {
    rng.gen::<f64>() < p
}

/// A log-normal draw with the given median and log-space standard deviation.
pub(crate) fn log_normal(rng: &mut Stream, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// A multiplicative noise with mean 1 whose logarithm is a stationary AR(1) process: the
/// "sticky" randomness of real loads (a busy quarter-hour is followed by another more often
/// than not), unlike independent draws that average out within an hour.
#[derive(Debug, Clone)]
pub(crate) struct LogNormalAr1 {
    sigma: f64,
    rho: f64,
    innovation_scale: f64,
    state: f64,
}

impl LogNormalAr1 {
    /// `sigma`: standard deviation of the log factor; `rho`: correlation from one draw to the
    /// next. The process starts in its stationary distribution.
    pub(crate) fn new(rng: &mut Stream, sigma: f64, rho: f64) -> LogNormalAr1 {
        let rho = rho.clamp(0.0, 0.999_999);
        LogNormalAr1 {
            sigma,
            rho,
            innovation_scale: (1.0 - rho * rho).sqrt(),
            state: normal(rng),
        }
    }

    /// Advances one step and returns the factor (mean 1).
    pub(crate) fn next(&mut self, rng: &mut Stream) -> f64 {
        self.state = self.rho * self.state + self.innovation_scale * normal(rng);
        (self.sigma * self.state - 0.5 * self.sigma * self.sigma).exp()
    }
}

/// Scales a correlation given per 15 minutes to another step length, so that a process keeps
/// the same memory in hours whatever the interval.
pub(crate) fn correlation_per_step(rho_per_15_min: f64, step_minutes: f64) -> f64 {
    rho_per_15_min
        .clamp(0.0, 0.999_999)
        .powf(step_minutes / 15.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_key_and_purpose_and_repeat_by_name() {
        let draw = |key, purpose| stream(7, key, purpose).gen::<u64>();
        assert_eq!(draw(1, Purpose::Load), draw(1, Purpose::Load));
        assert_ne!(draw(1, Purpose::Load), draw(2, Purpose::Load));
        assert_ne!(draw(1, Purpose::Load), draw(1, Purpose::Network));
    }

    #[test]
    fn log_normal_ar1_has_mean_one() {
        let mut rng = stream(1, 1, Purpose::Load);
        let mut noise = LogNormalAr1::new(&mut rng, 0.4, 0.6);
        let n = 200_000;
        let mean: f64 = (0..n).map(|_| noise.next(&mut rng)).sum::<f64>() / f64::from(n);
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
    }
}
