//! Synthetic but realistic loads for the analyses' unit tests (test builds only).
//!
//! Every generator returns the mean power of each 15-minute window in watts, starting at a UTC
//! midnight, for a place whose local time is UTC+5. The shapes are written from first
//! principles (daily habits, thermostats, ovens, compressors, rigs), deliberately not copied
//! from any simulator, so that the detectors are tested on load models they were not tuned on.

use chrono::{DateTime, Duration, Utc};

use gridwatch_core::registry::MeterClass;
use gridwatch_core::{MeterId, NodeId, RegionId};

use crate::profile::MeterProfile;
use crate::window::WindowSpec;

/// Windows per day at 15 minutes.
pub const PER_DAY: usize = 96;
/// Local time offset from UTC, hours.
const UTC_OFFSET_H: f64 = 5.0;

/// A small deterministic generator (SplitMix64): tests must not depend on a crate's stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A stream from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [a, b).
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.uniform()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-12);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
}

/// 2025-01-06T00:00:00Z, a Monday in a Kazakh winter.
pub fn winter_start() -> DateTime<Utc> {
    "2025-01-06T00:00:00Z".parse().expect("time")
}

/// Local hour (fractional, mid-window) and weekday (0 = Monday) of window `i`.
fn local(start: DateTime<Utc>, i: usize) -> (f64, u32) {
    use chrono::Datelike;
    let t = start + Duration::seconds(900 * i as i64 + 450);
    let utc_h = (t.timestamp().rem_euclid(86_400)) as f64 / 3600.0;
    let local_h = (utc_h + UTC_OFFSET_H).rem_euclid(24.0);
    let local_t = t + Duration::minutes((UTC_OFFSET_H * 60.0) as i64);
    (local_h, local_t.weekday().num_days_from_monday())
}

/// A winter climate: outdoor temperature per window, °C, and its half-day smoothing (what a
/// building's heat loss follows).
#[derive(Debug, Clone)]
pub struct Weather {
    /// Outdoor temperature per window.
    #[allow(dead_code)]
    pub outdoor_c: Vec<f64>,
    /// Exponentially smoothed (12 h) temperature per window.
    pub smoothed_c: Vec<f64>,
}

/// Temperature with a seasonal mean, a daily cycle (`diurnal_half_c`), and weather: a daily
/// anomaly of standard deviation `anomaly_sigma_c` with day-to-day correlation `rho`.
pub fn weather(
    rng: &mut Rng,
    days: usize,
    mean_c: f64,
    diurnal_half_c: f64,
    anomaly_sigma_c: f64,
    rho: f64,
) -> Weather {
    let mut anomalies = Vec::with_capacity(days + 2);
    let mut a = rng.normal();
    for _ in 0..days + 2 {
        anomalies.push(a * anomaly_sigma_c);
        a = rho * a + (1.0 - rho * rho).sqrt() * rng.normal();
    }
    let start = winter_start();
    let mut outdoor_c = Vec::with_capacity(days * PER_DAY);
    let mut fast = 0.0;
    for i in 0..days * PER_DAY {
        let (h, _) = local(start, i);
        let d = i as f64 / PER_DAY as f64;
        let k = d.floor() as usize;
        let w = d - d.floor();
        let anomaly = (1.0 - w) * anomalies[k] + w * anomalies[k + 1];
        fast = 0.9 * fast + 0.3 * rng.normal();
        let diurnal = diurnal_half_c * (std::f64::consts::TAU * (h - 15.0) / 24.0).cos();
        outdoor_c.push(mean_c + anomaly + diurnal + fast);
    }
    let alpha = 1.0 - (-0.25f64 / 12.0).exp();
    let mut level = outdoor_c.first().copied().unwrap_or(0.0);
    let smoothed_c = outdoor_c
        .iter()
        .map(|t| {
            level += alpha * (t - level);
            level
        })
        .collect();
    Weather {
        outdoor_c,
        smoothed_c,
    }
}

/// A correlated log-normal factor (mean 1): appliances and thermostats wander, not jump.
struct Wander {
    sigma: f64,
    rho: f64,
    state: f64,
}

impl Wander {
    fn new(sigma: f64, rho: f64, rng: &mut Rng) -> Wander {
        Wander {
            sigma,
            rho,
            state: rng.normal(),
        }
    }
    fn next(&mut self, rng: &mut Rng) -> f64 {
        self.state = self.rho * self.state + (1.0 - self.rho * self.rho).sqrt() * rng.normal();
        (self.sigma * self.state - 0.5 * self.sigma * self.sigma).exp()
    }
}

/// A home's relative daily shape (mean about 1): low at night, a morning peak on working days,
/// a longer late morning at weekends, and the evening peak.
fn home_shape(h: f64, weekday: u32) -> f64 {
    let bump = |centre: f64, width: f64| (-((h - centre) / width).powi(2)).exp();
    let weekend = weekday >= 5;
    let morning = if weekend {
        0.9 * bump(10.0, 2.0)
    } else {
        1.0 * bump(7.5, 1.0)
    };
    let midday = if weekend { 0.6 } else { 0.3 } * bump(13.5, 2.5);
    0.35 + morning + midday + 1.6 * bump(20.0, 1.8)
}

/// A household of mean power about `mean_w` without heating: standby, daily habits, a day's
/// mood, wandering use and appliance bursts (kettle, oven, washing machine).
pub fn household(rng: &mut Rng, days: usize, mean_w: f64) -> Vec<f64> {
    let start = winter_start();
    let standby = rng.range(25.0, 60.0).min(0.4 * mean_w);
    let habit_shift = rng.normal() * 0.5;
    let smooth_w = 0.75 * (mean_w - standby) / 0.95;
    let burst_rate = 0.25 * (mean_w - standby) / 300.0; // bursts of ~300 Wh per hour of shape 1
    let mut wander = Wander::new(0.4, 0.6, rng);
    let mut day_level = 0.0;
    let mut day_factor = 1.0;
    (0..days * PER_DAY)
        .map(|i| {
            if i % PER_DAY == 0 {
                day_level = 0.5 * day_level + 0.87 * rng.normal();
                day_factor = (0.15 * day_level).exp();
            }
            let (h, wd) = local(start, i);
            let shape = home_shape((h - habit_shift).rem_euclid(24.0), wd);
            let mut p = standby + smooth_w * shape * day_factor * wander.next(rng);
            if rng.chance((burst_rate * shape * day_factor * 0.25).min(0.9)) {
                p += rng.range(100.0, 600.0) * 4.0; // a burst's Wh over a 15-minute window
            }
            p
        })
        .collect()
}

/// Direct electric heating: heat loss `w_per_k` below `balance_c` of the smoothed temperature,
/// reduced to `setback` at night (23:00-06:00), a thermostat that wanders by `thermostat_sigma`,
/// and capped at the installed `cap_w`.
pub fn heating(
    rng: &mut Rng,
    weather: &Weather,
    w_per_k: f64,
    balance_c: f64,
    setback: f64,
    thermostat_sigma: f64,
    cap_w: f64,
) -> Vec<f64> {
    let start = winter_start();
    let mut thermostat = Wander::new(thermostat_sigma, 0.7, rng);
    weather
        .smoothed_c
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (h, _) = local(start, i);
            let night = !(6.0..23.0).contains(&h);
            let demand = w_per_k * (balance_c - t).max(0.0) * if night { setback } else { 1.0 };
            (demand * thermostat.next(rng)).min(cap_w)
        })
        .collect()
}

/// Storage heaters: the day's heat need charged mostly at night (23:00-07:00).
pub fn storage_heating(weather: &Weather, w_per_k: f64, balance_c: f64, cap_w: f64) -> Vec<f64> {
    let start = winter_start();
    weather
        .smoothed_c
        .chunks(PER_DAY)
        .enumerate()
        .flat_map(|(d, day)| {
            let mean_t = day.iter().sum::<f64>() / day.len() as f64;
            let daily_wh = w_per_k * (balance_c - mean_t).max(0.0) * 24.0;
            (0..day.len()).map(move |j| {
                let (h, _) = local(start, d * PER_DAY + j);
                let charging = !(7.0..23.0).contains(&h);
                let p = if charging {
                    0.8 * daily_wh / 8.0
                } else {
                    0.2 * daily_wh / 16.0
                };
                p.min(cap_w)
            })
        })
        .collect()
}

/// A bakery: ovens from 02:00 to 09:00 (`oven_w`), the shop open 07:00-19:00 except Sundays,
/// and refrigerated counters all the time.
pub fn bakery(rng: &mut Rng, days: usize, oven_w: f64) -> Vec<f64> {
    let start = winter_start();
    let mut wander = Wander::new(0.15, 0.6, rng);
    (0..days * PER_DAY)
        .map(|i| {
            let (h, wd) = local(start, i);
            let baking = (2.0..9.0).contains(&h) && wd != 6;
            let open = (7.0..19.0).contains(&h) && wd != 6;
            let p = 0.12 * oven_w
                + if baking { oven_w } else { 0.0 }
                + if open { 0.25 * oven_w } else { 0.0 };
            p * wander.next(rng)
        })
        .collect()
}

/// Refrigeration (a cold store or a grocery's cabinets) of compressor power `rated_w`: the duty
/// cycle rises with door openings during opening hours and defrost heaters run every 6 hours;
/// `shop_w` is the grocery's lighting and tills (0 for a pure cold store).
pub fn refrigeration(rng: &mut Rng, days: usize, rated_w: f64, shop_w: f64) -> Vec<f64> {
    let start = winter_start();
    let mut duty = Wander::new(0.2, 0.5, rng);
    (0..days * PER_DAY)
        .map(|i| {
            let (h, wd) = local(start, i);
            let open = (8.0..22.0).contains(&h) && wd != 6;
            let base_duty: f64 = if open { 0.65 } else { 0.45 };
            let defrost = i % 24 == 0;
            let compressor = if defrost {
                0.3 * rated_w
            } else {
                rated_w * (base_duty * duty.next(rng)).min(1.0)
            };
            compressor + if open { shop_w } else { 0.05 * shop_w }
        })
        .collect()
}

/// `rigs` mining machines of `rig_w` each, running from window `from` to `until`: 1 % draw
/// noise, a 1 % chance per window that one reboots, and the listed outages (window ranges)
/// during which all are off.
pub fn rigs(
    rng: &mut Rng,
    len: usize,
    rigs: u32,
    rig_w: f64,
    from: usize,
    until: usize,
    outages: &[(usize, usize)],
) -> Vec<f64> {
    (0..len)
        .map(|i| {
            let noise = 1.0 + 0.01 * rng.normal();
            let reboot = rng.chance(0.01);
            let off = outages.iter().any(|(a, b)| (*a..*b).contains(&i));
            if i < from || i >= until || off || rigs == 0 {
                return 0.0;
            }
            let running = f64::from(rigs) - if reboot { 1.0 } else { 0.0 };
            running * rig_w * noise
        })
        .collect()
}

/// Element-wise sum of load series.
pub fn sum(parts: &[&[f64]]) -> Vec<f64> {
    let len = parts.iter().map(|p| p.len()).max().unwrap_or(0);
    (0..len)
        .map(|i| parts.iter().map(|p| p.get(i).copied().unwrap_or(0.0)).sum())
        .collect()
}

/// A profile of 15-minute windows from powers in W, starting at [`winter_start`].
pub fn profile(id: &str, class: MeterClass, region: &str, power_w: &[f64]) -> MeterProfile {
    MeterProfile {
        meter: MeterId::parse(id).expect("id"),
        class,
        node: NodeId::parse("T-0001").expect("id"),
        region: RegionId::parse(region).expect("id"),
        licence: None,
        accuracy_pct: 1.0,
        spec: WindowSpec::default(),
        start: winter_start(),
        energy_wh: power_w.iter().map(|p| Some(p * 0.25)).collect(),
        backwards: vec![false; power_w.len()],
    }
}

/// A licensed farm's hourly plan, W: `machines` of `rated_w`, the share online wandering
/// between 96 and 100 %, and the evening peak (17:00-21:00 local) curtailed to 70 % on
/// about one day in five.
pub fn farm_plan(rng: &mut Rng, hours: usize, machines: u32, rated_w: f64) -> Vec<f64> {
    let mut online: f64 = 0.99;
    let mut curtailed = false;
    (0..hours)
        .map(|h| {
            if h % 24 == 0 {
                curtailed = rng.chance(0.2);
            }
            online = (online + 0.004 * rng.normal()).clamp(0.96, 1.0);
            let local_h = (h as f64 + UTC_OFFSET_H).rem_euclid(24.0);
            let keep = if curtailed && (17.0..21.0).contains(&local_h) {
                0.7
            } else {
                1.0
            };
            f64::from(machines) * rated_w * online * keep
        })
        .collect()
}

/// What a farm draws in each hour, Wh: its plan with 0.4 % noise, and unplanned outages
/// (hour ranges) during which only 2 % of the plan remains.
pub fn farm_draw(rng: &mut Rng, plan_w: &[f64], outages: &[(usize, usize)]) -> Vec<f64> {
    plan_w
        .iter()
        .enumerate()
        .map(|(h, p)| {
            let out = outages.iter().any(|(a, b)| (*a..*b).contains(&h));
            p * if out {
                0.02
            } else {
                1.0 + 0.004 * rng.normal()
            }
        })
        .collect()
}

/// Energy bought for each hour, Wh: whenever what is booked falls short of the plan times
/// `share` (1 + margin, or less for a farm that under-buys), the farm buys: with
/// `whole_blocks`, whole blocks of `block_wh` (lumpy hour by hour, matching over a few hours),
/// else exactly the shortfall in transactions of at most `block_wh`; each purchase is
/// delivered evenly over the next `delivery_hours`.
pub fn purchases(
    plan_w: &[f64],
    share: &[f64],
    block_wh: f64,
    whole_blocks: bool,
    delivery_hours: usize,
) -> Vec<f64> {
    let n = plan_w.len();
    let mut bought = vec![0.0; n + delivery_hours];
    let mut needed = 0.0;
    let mut booked = 0.0;
    for h in 0..n {
        // Book ahead for the coming delivery interval.
        // Beyond the series the farm goes on as in its last hour.
        let need_to: f64 = needed
            + (h..h + delivery_hours)
                .map(|k| plan_w[k.min(n - 1)] * share[k.min(n - 1)])
                .sum::<f64>();
        while booked < need_to - 1e-6 {
            let energy = if whole_blocks {
                block_wh
            } else {
                block_wh.min(need_to - booked)
            };
            for b in &mut bought[h..h + delivery_hours] {
                *b += energy / delivery_hours as f64;
            }
            booked += energy;
        }
        needed += plan_w[h] * share[h];
    }
    bought.truncate(n);
    bought
}
