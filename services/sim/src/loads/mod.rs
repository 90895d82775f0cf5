//! What consumers draw, interval by interval.
//!
//! Each consumer's load is a model with its own random streams (see `rng`): a household around
//! the household load shape, a commercial premise around the office, commerce or bakery shape,
//! an industrial plant working shifts, a licensed mining farm running its machines. A consumer
//! may also carry illegal rigs injected by a scenario. The power returned is the true average
//! power of the interval.

mod commercial;
mod household;
mod industrial;
mod mining;
mod profile_data;
pub(crate) mod profiles;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub(crate) use commercial::{Commercial, CommercialKind};
pub(crate) use household::Household;
pub(crate) use industrial::Industrial;
pub use industrial::ShiftPattern;
pub(crate) use mining::{MiningFarm, Unregistered};

use crate::calendar::{Clock, StepContext};
use crate::rng::{self, Stream};

/// One interval of a consumer's load.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LoadSample {
    /// True average power, W.
    pub power_w: f64,
    /// The part of it that a scenario injected (illegal rigs, unregistered machines), W.
    pub injected_w: f64,
}

/// A consumer's kind of load.
#[derive(Debug)]
pub(crate) enum LoadModel {
    Household(Household),
    Commercial(Commercial),
    Industrial(Industrial),
    /// Boxed: a farm carries its plan and is much larger than the other models.
    Mining(Box<MiningFarm>),
}

impl LoadModel {
    fn sample(&mut self, context: &StepContext) -> LoadSample {
        match self {
            LoadModel::Household(h) => LoadSample {
                power_w: h.power_w(context),
                injected_w: 0.0,
            },
            LoadModel::Commercial(c) => LoadSample {
                power_w: c.power_w(context),
                injected_w: 0.0,
            },
            LoadModel::Industrial(i) => LoadSample {
                power_w: i.power_w(context),
                injected_w: 0.0,
            },
            LoadModel::Mining(m) => m.sample(context),
        }
    }

    /// Expected mean power, W (for sizing the grid and planning scenarios).
    pub(crate) fn nominal_mean_w(&self) -> f64 {
        match self {
            LoadModel::Household(h) => h.nominal_mean_w(),
            LoadModel::Commercial(c) => c.nominal_mean_w(),
            LoadModel::Industrial(i) => i.nominal_mean_w(),
            LoadModel::Mining(m) => m.nominal_mean_w(),
        }
    }

    /// What kind of consumer this is, for people and tests.
    pub(crate) fn kind(&self) -> ConsumerKind {
        match self {
            LoadModel::Household(h) => h.kind(),
            LoadModel::Commercial(c) => match c.kind() {
                CommercialKind::Office => ConsumerKind::Office,
                CommercialKind::Shop => ConsumerKind::Shop,
                CommercialKind::Grocery => ConsumerKind::Grocery,
                CommercialKind::Bakery => ConsumerKind::Bakery,
            },
            LoadModel::Industrial(i) => ConsumerKind::Industrial {
                shifts: i.pattern(),
            },
            LoadModel::Mining(_) => ConsumerKind::LicensedMiningFarm,
        }
    }
}

/// What kind of consumer a meter serves: lets a test or a demo tell a heated home (a legitimate
/// look-alike of mining) from a plain one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ConsumerKind {
    /// A household.
    Household {
        /// Heated by electricity (direct or storage heaters).
        electric_heating: bool,
        /// Heated by night-charged storage heaters.
        storage_heating: bool,
        /// Genuinely high but varying use.
        high_use: bool,
        /// Air conditioning in summer.
        air_conditioning: bool,
    },
    /// An office, open on weekdays.
    Office,
    /// A shop.
    Shop,
    /// A grocery with round-the-clock refrigeration.
    Grocery,
    /// A bakery, busy at night and early morning.
    Bakery,
    /// An industrial plant.
    Industrial {
        /// Its shift pattern.
        shifts: ShiftPattern,
    },
    /// A licensed mining farm.
    LicensedMiningFarm,
}

/// Illegal mining rigs plugged into a connection: 24/7 at a load factor near 1.
#[derive(Debug)]
pub(crate) struct Rigs {
    pub rigs: u32,
    pub rig_w: f64,
    pub from_index: u64,
    pub until_index: u64,
    rng: Stream,
}

/// Chance per interval that one rig reboots (firmware, overheating) and draws nothing for it.
const RIG_REBOOT_CHANCE: f64 = 0.01;
/// Relative spread of a rig's draw from interval to interval.
const RIG_DRAW_SIGMA: f64 = 0.01;

impl Rigs {
    pub(crate) fn new(
        rigs: u32,
        rig_w: f64,
        from_index: u64,
        until_index: u64,
        rng: Stream,
    ) -> Rigs {
        Rigs {
            rigs,
            rig_w,
            from_index,
            until_index,
            rng,
        }
    }

    fn power_w(&mut self, index: u64) -> f64 {
        let draw = 1.0 + RIG_DRAW_SIGMA * rng::normal(&mut self.rng);
        let rebooting = rng::chance(&mut self.rng, RIG_REBOOT_CHANCE);
        if index < self.from_index || index >= self.until_index || self.rigs == 0 {
            return 0.0;
        }
        let running = f64::from(self.rigs) - if rebooting { 1.0 } else { 0.0 };
        running * self.rig_w * draw
    }
}

/// A consumer's load, able to look ahead: a tampering device that reports a day's mean or a
/// reversed day needs the day's true values before the day has been reported (the literature's
/// synthetic attacks are defined on whole days).
#[derive(Debug)]
pub(crate) struct ConsumerLoad {
    pub model: LoadModel,
    pub rigs: Option<Rigs>,
    ahead: VecDeque<LoadSample>,
    next_index: u64,
}

impl ConsumerLoad {
    pub(crate) fn new(model: LoadModel) -> ConsumerLoad {
        ConsumerLoad {
            model,
            rigs: None,
            ahead: VecDeque::new(),
            next_index: 0,
        }
    }

    fn produce(&mut self, clock: &Clock) -> LoadSample {
        let context = clock.context(self.next_index);
        self.produce_with(&context)
    }

    fn produce_with(&mut self, context: &StepContext) -> LoadSample {
        let mut sample = self.model.sample(context);
        if let Some(rigs) = &mut self.rigs {
            let rig_w = rigs.power_w(context.index);
            sample.power_w += rig_w;
            sample.injected_w += rig_w;
        }
        self.next_index += 1;
        sample
    }

    /// The sample of interval `context.index`; intervals must be asked in order.
    pub(crate) fn sample(&mut self, context: &StepContext) -> LoadSample {
        if let Some(sample) = self.ahead.pop_front() {
            return sample;
        }
        debug_assert_eq!(self.next_index, context.index);
        self.produce_with(context)
    }

    /// The samples of intervals `from..to` (`from` is the next interval to be sampled), computed
    /// ahead and kept for [`ConsumerLoad::sample`].
    pub(crate) fn look_ahead(&mut self, clock: &Clock, from: u64, to: u64) -> Vec<LoadSample> {
        let wanted = to.saturating_sub(from) as usize;
        while self.ahead.len() < wanted {
            let sample = self.produce(clock);
            self.ahead.push_back(sample);
        }
        self.ahead.iter().take(wanted).copied().collect()
    }
}
