//! Licensed mining farms: machines x rated power, near-flat, with outages and curtailment.
//!
//! A farm runs an hourly plan (how many of its machines are online, whether the grid operator
//! asked it to cut the evening peak on a cold day). It buys energy for that plan ahead of time;
//! what it actually draws also carries what no plan knows: noise and unplanned outages.

use crate::calendar::StepContext;
use crate::config::MiningConfig;
use crate::rng::{self, correlation_per_step, LogNormalAr1, Stream};

/// Hourly wander of the share of machines online (standard deviation), and how fast it returns
/// to the farm's usual share (per hour): machines fail and come back from repair over days.
const ONLINE_SHARE_WALK_SIGMA: f64 = 0.003;
const ONLINE_SHARE_REVERSION_PER_HOUR: f64 = 0.02;
/// Interval-to-interval noise of a farm's draw: log-sigma and 15-minute correlation.
const NOISE_SIGMA: f64 = 0.004;
const NOISE_CORRELATION_15MIN: f64 = 0.8;
/// Share of the planned load left during an outage (control systems, lighting).
const OUTAGE_RESIDUAL_SHARE: f64 = 0.02;

/// What a scenario changes about a farm.
#[derive(Debug, Clone, Default)]
pub(crate) struct FarmChanges {
    /// More licensed machines commissioned from an interval on (mining-share): (from, machines
    /// in total).
    pub expansion: Option<(u64, u32)>,
    /// Unregistered machines run in `from..until` (capacity-exceeded).
    pub unregistered: Option<Unregistered>,
}

/// Machines a farm runs beyond its licence.
#[derive(Debug, Clone)]
pub(crate) struct Unregistered {
    pub from_index: u64,
    pub until_index: u64,
    pub machines: u32,
    /// Whether the farm buys energy for them too (then only the capacity check can see them).
    pub bought: bool,
}

#[derive(Debug, Clone, Copy)]
struct HourPlan {
    online_share: f64,
    /// Share kept in the evening-peak window if the day is curtailed.
    curtailment_keep: Option<f64>,
}

/// The farm's hourly plan, from its own stream: purchases and consumption read the same plan.
#[derive(Debug)]
struct Planner {
    rng: Stream,
    hours: Vec<HourPlan>,
    online_share: f64,
    usual_online_share: f64,
    online_range: [f64; 2],
    day: Option<i64>,
    today_keep: Option<f64>,
    curtailment_below_c: f64,
    curtailment_chance: f64,
    keep_range: [f64; 2],
}

impl Planner {
    fn plan(&mut self, hour: u64, context: &StepContext) -> HourPlan {
        while self.hours.len() as u64 <= hour {
            if self.day != Some(context.local_day) {
                self.day = Some(context.local_day);
                let curtailed = rng::chance(&mut self.rng, self.curtailment_chance);
                let keep = rng::uniform(&mut self.rng, self.keep_range);
                self.today_keep = (curtailed
                    && context.day_mean_temperature_c < self.curtailment_below_c)
                    .then_some(keep);
            }
            self.online_share = (self.online_share
                + ONLINE_SHARE_REVERSION_PER_HOUR * (self.usual_online_share - self.online_share)
                + ONLINE_SHARE_WALK_SIGMA * rng::normal(&mut self.rng))
            .clamp(self.online_range[0], self.online_range[1]);
            self.hours.push(HourPlan {
                online_share: self.online_share,
                curtailment_keep: self.today_keep,
            });
        }
        self.hours[hour as usize]
    }
}

/// One licensed farm.
#[derive(Debug)]
pub(crate) struct MiningFarm {
    registered_machines: u32,
    installed_machines: u32,
    rated_w: f64,
    draw_share: f64,
    overhead_share: f64,
    cooling_share_per_k: f64,
    curtailment_hours: [f64; 2],
    steps_per_hour: u64,
    mean_online_share: f64,
    planner: Planner,
    rng: Stream,
    noise: LogNormalAr1,
    outage_chance_per_step: f64,
    outage_hours: [f64; 2],
    out_until: u64,
    pub changes: FarmChanges,
}

impl MiningFarm {
    pub(crate) fn new(
        config: &MiningConfig,
        step_minutes: f64,
        traits: &mut Stream,
        rng: Stream,
        mut plan_rng: Stream,
    ) -> MiningFarm {
        let registered_machines = rng::uniform(traits, config.registered_machines)
            .round()
            .max(1.0) as u32;
        let online_share = rng::uniform(&mut plan_rng, config.online_share);
        let mut rng = rng;
        let noise = LogNormalAr1::new(
            &mut rng,
            NOISE_SIGMA,
            correlation_per_step(NOISE_CORRELATION_15MIN, step_minutes),
        );
        let steps_per_day = 24.0 * 60.0 / step_minutes;
        MiningFarm {
            registered_machines,
            installed_machines: registered_machines,
            rated_w: config.machine_rated_w,
            draw_share: config.draw_share_of_rating,
            overhead_share: config.overhead_share,
            cooling_share_per_k: config.cooling_share_per_k,
            curtailment_hours: config.curtailment_local_hours,
            steps_per_hour: (60.0 / step_minutes).round().max(1.0) as u64,
            mean_online_share: 0.5 * (config.online_share[0] + config.online_share[1]),
            planner: Planner {
                rng: plan_rng,
                hours: Vec::new(),
                online_share,
                usual_online_share: online_share,
                online_range: config.online_share,
                day: None,
                today_keep: None,
                curtailment_below_c: config.curtailment_below_c,
                curtailment_chance: config.curtailment_chance,
                keep_range: config.curtailment_keep_share,
            },
            rng,
            noise,
            outage_chance_per_step: config.outage_chance_per_day / steps_per_day,
            outage_hours: config.outage_hours,
            out_until: 0,
            changes: FarmChanges::default(),
        }
    }

    /// Machines registered under the licence.
    pub(crate) fn registered_machines(&self) -> u32 {
        self.registered_machines
    }

    /// Changes the licence's registered machines (a scenario that licenses an expansion).
    pub(crate) fn set_registered_machines(&mut self, machines: u32) {
        self.registered_machines = machines;
    }

    /// Rated power of a machine, W.
    pub(crate) fn rated_w(&self) -> f64 {
        self.rated_w
    }

    /// Expected draw of one machine while the farm runs normally, W (with overhead).
    pub(crate) fn nominal_machine_w(&self) -> f64 {
        self.rated_w * self.draw_share * self.mean_online_share * (1.0 + self.overhead_share)
    }

    /// Machines the farm runs before any expansion.
    pub(crate) fn installed_machines(&self) -> u32 {
        self.installed_machines
    }

    pub(crate) fn nominal_mean_w(&self) -> f64 {
        f64::from(self.installed_machines) * self.nominal_machine_w()
    }

    /// Licensed machines running at interval `index`.
    fn licensed_machines(&self, index: u64) -> u32 {
        match self.changes.expansion {
            Some((from, machines)) if index >= from => machines,
            _ => self.installed_machines,
        }
    }

    fn unregistered_machines(&self, index: u64) -> u32 {
        match &self.changes.unregistered {
            Some(u) if (u.from_index..u.until_index).contains(&index) => u.machines,
            _ => 0,
        }
    }

    /// Draw per running machine and facility factor under the plan, without noise.
    fn planned_factors(&mut self, context: &StepContext) -> (f64, f64) {
        let plan = self
            .planner
            .plan(context.index / self.steps_per_hour, context);
        let hour = context.local_mid_hour.rem_euclid(24.0);
        let in_peak = (self.curtailment_hours[0]..self.curtailment_hours[1]).contains(&hour);
        let keep = if in_peak {
            plan.curtailment_keep.unwrap_or(1.0)
        } else {
            1.0
        };
        let per_machine = self.rated_w * self.draw_share * plan.online_share * keep;
        let facility =
            1.0 + self.overhead_share + self.cooling_share_per_k * context.temperature_c.max(0.0);
        (per_machine, facility)
    }

    /// The power the farm plans to draw in interval `context.index`, W: what it buys for.
    /// Unregistered machines count only if the farm buys for them.
    pub(crate) fn planned_w(&mut self, context: &StepContext) -> f64 {
        let (per_machine, facility) = self.planned_factors(context);
        let bought_unregistered = match &self.changes.unregistered {
            Some(u) if u.bought => self.unregistered_machines(context.index),
            _ => 0,
        };
        let machines = self.licensed_machines(context.index) + bought_unregistered;
        f64::from(machines) * per_machine * facility
    }

    /// True draw of interval `context.index`.
    pub(crate) fn sample(&mut self, context: &StepContext) -> super::LoadSample {
        let (per_machine, facility) = self.planned_factors(context);
        let noise = self.noise.next(&mut self.rng);
        let trips = rng::chance(&mut self.rng, self.outage_chance_per_step);
        let outage_hours = rng::uniform(&mut self.rng, self.outage_hours);
        if trips && context.index >= self.out_until {
            self.out_until = context.index + (outage_hours / context.hours).ceil() as u64;
        }
        let licensed = f64::from(self.licensed_machines(context.index)) * per_machine * facility;
        if context.index < self.out_until {
            return super::LoadSample {
                power_w: licensed * OUTAGE_RESIDUAL_SHARE,
                injected_w: 0.0,
            };
        }
        let unregistered =
            f64::from(self.unregistered_machines(context.index)) * per_machine * facility * noise;
        super::LoadSample {
            power_w: licensed * noise + unregistered,
            injected_w: unregistered,
        }
    }
}
