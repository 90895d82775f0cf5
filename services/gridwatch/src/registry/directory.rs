//! The meter directory: meter id -> integer key and region, for ingest's hot path.
//!
//! Loaded whole from the database, swapped atomically, and reloaded when `registry_state.version`
//! moves: checked every second by a background task (one indexed single-row read), and on demand
//! when a batch names a meter the cache does not know, so a meter registered a moment before its
//! first reading is never rejected as unknown.
//!
//! It also decides who may upload a meter's readings ([`MeterDirectory::accepts_from`]): the
//! broker's ACL lets every client publish an array under its own name on the gateways topic,
//! meters included, so the check that a data concentrator speaks only for its own meters is
//! made here.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::config::Secret;
use crate::metrics::IngestMetrics;
use crate::shutdown::Shutdown;

/// What ingest needs to know of a meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterEntry {
    /// The meter's integer key, as stored in `readings`.
    pub meter_key: i32,
    /// The region of the meter's node (the detector's work queue is per region).
    pub region_key: i32,
}

/// One consistent snapshot of the registry's meters.
#[derive(Debug, Default)]
pub struct MeterDirectory {
    /// `registry_state.version` this snapshot was read at.
    pub version: i64,
    meters: HashMap<Box<str>, MeterEntry>,
    /// Meter id -> the gateway registered as uploading its readings, for meters that have one.
    gateways: HashMap<Box<str>, Box<str>>,
}

impl MeterDirectory {
    /// Looks a meter up by its id.
    pub fn get(&self, meter_id: &str) -> Option<MeterEntry> {
        self.meters.get(meter_id).copied()
    }

    /// Whether a reading of `meter_id` that arrived on the topic of `source` (the meter or
    /// gateway id the topic names) may be stored; otherwise it is a `topic_mismatch`.
    ///
    /// A meter may always report itself. Another source is a data concentrator: it may upload
    /// any meter's readings, except a meter registered with another gateway, and except when the
    /// source is itself a registered meter (the ACL lets a meter's credentials publish an
    /// array under the meter's own name, which must not let it speak for its neighbours).
    pub fn accepts_from(&self, meter_id: &str, source: &str) -> bool {
        if meter_id == source {
            return true;
        }
        if self.meters.contains_key(source) {
            return false;
        }
        self.gateways
            .get(meter_id)
            .is_none_or(|gateway| &**gateway == source)
    }

    /// How many meters it holds.
    pub fn len(&self) -> usize {
        self.meters.len()
    }

    /// Whether it holds no meter.
    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }

    /// Reads the registry's meters and version in one snapshot.
    pub async fn load(client: &mut Client) -> Result<MeterDirectory, tokio_postgres::Error> {
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let version: i64 = tx
            .query_one("SELECT version FROM registry_state", &[])
            .await?
            .get(0);
        let rows = tx
            .query(
                "SELECT m.id, m.meter_key, n.region_key, m.gateway
                 FROM meters m JOIN nodes n USING (node_key)",
                &[],
            )
            .await?;
        tx.commit().await?;
        let gateways = rows
            .iter()
            .filter_map(|row| {
                let gateway: Option<&str> = row.get(3);
                gateway.map(|g| (Box::from(row.get::<_, &str>(0)), Box::from(g)))
            })
            .collect();
        let meters = rows
            .iter()
            .map(|row| {
                let id: &str = row.get(0);
                (
                    Box::from(id),
                    MeterEntry {
                        meter_key: row.get(1),
                        region_key: row.get(2),
                    },
                )
            })
            .collect();
        Ok(MeterDirectory {
            version,
            meters,
            gateways,
        })
    }
}

/// The current directory, shared by every task of a process.
pub struct SharedDirectory {
    current: RwLock<Arc<MeterDirectory>>,
    /// Serialises reloads so that a burst of unknown meters triggers one, not one per writer.
    reloading: Mutex<()>,
}

impl SharedDirectory {
    /// Wraps a first snapshot.
    pub fn new(initial: MeterDirectory) -> SharedDirectory {
        SharedDirectory {
            current: RwLock::new(Arc::new(initial)),
            reloading: Mutex::new(()),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<MeterDirectory> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads if the database's registry version differs from the snapshot's; returns the
    /// snapshot to use.
    pub async fn refresh_if_stale(
        &self,
        client: &mut Client,
        metrics: &IngestMetrics,
    ) -> Result<Arc<MeterDirectory>, tokio_postgres::Error> {
        let _guard = self.reloading.lock().await;
        let version: i64 = client
            .query_one("SELECT version FROM registry_state", &[])
            .await?
            .get(0);
        let current = self.snapshot();
        if current.version == version {
            return Ok(current);
        }
        let fresh = Arc::new(MeterDirectory::load(client).await?);
        metrics.registry_meters.set(fresh.len() as i64);
        metrics.registry_reloads.inc();
        tracing::info!(
            version = fresh.version,
            meters = fresh.len(),
            "Reloaded the registry."
        );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// Keeps the directory fresh until shutdown, checking the registry version every `poll`.
    pub async fn keep_fresh(
        self: Arc<Self>,
        database_url: Secret,
        metrics: Arc<crate::metrics::Metrics>,
        poll: Duration,
        mut shutdown: Shutdown,
    ) {
        loop {
            let mut client = match crate::db::connect(&database_url).await {
                Ok(client) => client,
                Err(error) => {
                    metrics
                        .ingest
                        .db_errors
                        .with_label_values(&["registry"])
                        .inc();
                    tracing::warn!(error = %crate::db::describe(&error), "Failed to connect to refresh the registry; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => continue,
                        _ = shutdown.wait() => return,
                    }
                }
            };
            loop {
                if let Err(error) = self.refresh_if_stale(&mut client, &metrics.ingest).await {
                    metrics
                        .ingest
                        .db_errors
                        .with_label_values(&["registry"])
                        .inc();
                    tracing::warn!(error = %crate::db::describe(&error), "Failed to refresh the registry; reconnecting.");
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.wait() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> MeterDirectory {
        let entry = MeterEntry {
            meter_key: 1,
            region_key: 1,
        };
        MeterDirectory {
            version: 1,
            meters: [
                ("M-1".into(), entry),
                ("M-2".into(), entry),
                ("M-3".into(), entry),
            ]
            .into_iter()
            .collect(),
            gateways: [("M-2".into(), "GW-2".into())].into_iter().collect(),
        }
    }

    #[test]
    fn a_gateway_speaks_for_its_meters_and_a_meter_only_for_itself() {
        let d = directory();
        assert!(d.accepts_from("M-1", "M-1"), "a meter reports itself");
        assert!(d.accepts_from("M-2", "M-2"), "even when it has a gateway");
        assert!(d.accepts_from("M-1", "GW-1"), "no gateway registered: any");
        assert!(d.accepts_from("M-2", "GW-2"), "its registered gateway");
        assert!(!d.accepts_from("M-2", "GW-1"), "another gateway");
        assert!(!d.accepts_from("M-1", "M-3"), "a meter posing as a gateway");
        assert!(!d.accepts_from("M-2", "M-3"));
    }
}
