//! Licensed farms buying energy on the market platform (CONTRACT §3).
//!
//! A farm buys each delivery block (default an hour) a little ahead of time, for what its plan
//! says it will draw plus a small margin, in transactions of at most the regulation's cap: a
//! 2 MW farm makes two purchases an hour. A farm in a quota-overrun scenario buys less than it
//! plans to draw; one in a purchase-over-cap scenario also tries a single transaction above the
//! cap (refused by gridwatch, then retried within the cap).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gridwatch_core::ids::{LicenceId, PurchaseId};
use serde::{Deserialize, Serialize};

use crate::calendar::Clock;
use crate::config::MiningConfig;
use crate::loads::MiningFarm;

/// An energy purchase, exactly as CONTRACT §3 names its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purchase {
    /// Its identifier, unique in the run (`P-KZ-MIN-001-000001`).
    pub id: PurchaseId,
    /// The licence that buys.
    pub licence: LicenceId,
    /// Energy bought, Wh.
    pub energy_wh: i64,
    /// Start of delivery.
    pub delivery_start: DateTime<Utc>,
    /// End of delivery (energy is spread evenly over the interval).
    pub delivery_end: DateTime<Utc>,
    /// Price, KZT: energy times the region's tariff.
    pub price_kzt: f64,
}

/// A farm that buys less than it plans to draw, from a block on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Underbuying {
    pub from_block: u64,
    pub until_block: u64,
    /// Planned draw is bought divided by `1 + excess`.
    pub excess: f64,
}

/// An attempt to buy more than the cap in one transaction.
#[derive(Debug, Clone)]
pub(crate) struct OverCapAttempt {
    /// The interval whose end it is submitted at.
    pub at_index: u64,
    pub energy_wh: i64,
    pub injection: usize,
}

/// A farm's purchasing.
#[derive(Debug)]
pub(crate) struct PurchaseBook {
    licence: LicenceId,
    tariff_kzt_per_kwh: f64,
    next_block: u64,
    sequence: u64,
    bought_wh: BTreeMap<u64, i64>,
    pub underbuying: Option<Underbuying>,
    pub over_cap_attempts: Vec<OverCapAttempt>,
}

/// Blocks of purchase history kept for quota accounting.
const BLOCKS_KEPT: u64 = 4;

impl PurchaseBook {
    pub(crate) fn new(licence: LicenceId, tariff_kzt_per_kwh: f64) -> PurchaseBook {
        PurchaseBook {
            licence,
            tariff_kzt_per_kwh,
            next_block: 0,
            sequence: 0,
            bought_wh: BTreeMap::new(),
            underbuying: None,
            over_cap_attempts: Vec::new(),
        }
    }

    /// Energy bought for delivery block `block`, Wh.
    pub(crate) fn bought_wh(&self, block: u64) -> i64 {
        self.bought_wh.get(&block).copied().unwrap_or(0)
    }

    fn purchase(
        &mut self,
        energy_wh: i64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<Purchase> {
        self.sequence += 1;
        let id = format!("P-{}-{:06}", self.licence, self.sequence);
        let price = (energy_wh as f64 / 1_000.0 * self.tariff_kzt_per_kwh * 100.0).round() / 100.0;
        Some(Purchase {
            id: PurchaseId::parse(&id).ok()?,
            licence: self.licence.clone(),
            energy_wh,
            delivery_start: start,
            delivery_end: end,
            price_kzt: price,
        })
    }

    /// The purchases the farm submits at the end of interval `index`, and the over-cap attempts
    /// among them (with their injection).
    pub(crate) fn due(
        &mut self,
        farm: &mut MiningFarm,
        clock: &Clock,
        config: &MiningConfig,
        index: u64,
    ) -> (Vec<Purchase>, Vec<(usize, Purchase)>) {
        let now = clock.interval_end(index);
        let step = i64::from(clock.step_minutes());
        let block_intervals =
            u64::from(config.purchase_block_minutes) / u64::from(clock.step_minutes());
        let lead = chrono::Duration::minutes(i64::from(config.purchase_lead_minutes));
        let mut purchases = Vec::new();
        let mut attempts = Vec::new();
        for attempt in self
            .over_cap_attempts
            .iter()
            .filter(|a| a.at_index == index)
            .cloned()
            .collect::<Vec<_>>()
        {
            let block = self.next_block;
            let start = clock.interval_start((block * block_intervals) as i64);
            let end = start + chrono::Duration::minutes(step * block_intervals as i64);
            if let Some(purchase) = self.purchase(attempt.energy_wh, start, end) {
                attempts.push((attempt.injection, purchase));
            }
        }
        loop {
            let block = self.next_block;
            let first = block * block_intervals;
            if first >= clock.intervals() {
                break;
            }
            let start = clock.interval_start(first as i64);
            if start - lead > now {
                break;
            }
            let planned_wh: f64 = (first..first + block_intervals)
                .map(|j| farm.planned_w(&clock.context(j)) * clock.step_hours())
                .sum();
            let factor = match self.underbuying {
                Some(u) if (u.from_block..u.until_block).contains(&block) => 1.0 / (1.0 + u.excess),
                _ => 1.0 + config.purchase_margin,
            };
            let mut remaining = (planned_wh * factor).ceil().max(0.0) as i64;
            self.bought_wh.insert(block, remaining);
            let end = start + chrono::Duration::minutes(step * block_intervals as i64);
            while remaining > 0 {
                let energy = remaining.min(config.purchase_cap_wh);
                remaining -= energy;
                if let Some(purchase) = self.purchase(energy, start, end) {
                    purchases.push(purchase);
                }
            }
            self.next_block += 1;
        }
        let oldest_kept = (index / block_intervals.max(1)).saturating_sub(BLOCKS_KEPT);
        self.bought_wh = self.bought_wh.split_off(&oldest_kept);
        (purchases, attempts)
    }
}
