//! Daily partitions of `readings`, created ahead of time and on demand.
//!
//! Live data finds its partition made by the hourly task (today and the next
//! [`DAYS_AHEAD`] days); replayed or late data makes its own before its batch is written.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio_postgres::Client;

/// Days of partitions kept ready ahead of the wall clock.
pub const DAYS_AHEAD: i64 = 7;

/// The UTC days whose partitions are known to exist, shared by the writers of one process.
#[derive(Default)]
pub struct PartitionCache {
    known: Mutex<HashSet<NaiveDate>>,
}

impl PartitionCache {
    /// Creates the partitions of `days` that this process has not seen yet.
    pub async fn ensure(
        &self,
        client: &Client,
        days: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<(), tokio_postgres::Error> {
        let missing: Vec<NaiveDate> = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            let mut missing: Vec<NaiveDate> =
                days.into_iter().filter(|d| !known.contains(d)).collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        for day in missing {
            let from = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            client
                .execute(
                    "SELECT gridwatch_ensure_reading_partitions($1, $1)",
                    &[&from],
                )
                .await?;
            self.known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(day);
        }
        Ok(())
    }

    /// Forgets what it knew (after an error that may mean a partition was dropped).
    pub fn forget(&self) {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Creates the partitions from yesterday to [`DAYS_AHEAD`] days after `now`.
    pub async fn ensure_ahead(
        &self,
        client: &Client,
        now: DateTime<Utc>,
    ) -> Result<(), tokio_postgres::Error> {
        let today = now.date_naive();
        let days = (-1..=DAYS_AHEAD).map(|d| today + Duration::days(d));
        self.ensure(client, days).await
    }
}
