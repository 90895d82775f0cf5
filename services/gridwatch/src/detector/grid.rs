//! The registry as the detector sees it: the indexed tree, the integer keys the database uses,
//! and, for every region this detector evaluates, its meters, balanced nodes and tariff.

use std::collections::HashMap;

use anyhow::Context;
use tokio_postgres::Client;

use gridwatch_core::registry::MeterClass;
use gridwatch_detect::topology::{BalanceTerms, Topology};

/// A region this detector evaluates.
#[derive(Debug, Clone)]
pub struct RegionInfo {
    /// Its id.
    pub id: String,
    /// Its integer key.
    pub key: i32,
    /// KZT per kWh.
    pub tariff_kzt_per_kwh: f64,
    /// Its time zone: where its days begin.
    pub zone: chrono_tz::Tz,
    /// Its meters (topology indices).
    pub meters: Vec<usize>,
    /// Their database keys, in the same order.
    pub meter_keys: Vec<i32>,
    /// Its nodes with an input meter, parents first, with their balance terms.
    pub balanced: Vec<(usize, BalanceTerms)>,
    /// Their database keys, in the same order.
    pub balanced_keys: Vec<i32>,
    /// Its root nodes (where its energy enters).
    pub roots: Vec<usize>,
}

/// A licence and the farm meters that meter it.
#[derive(Debug, Clone)]
pub struct LicenceInfo {
    /// Its id.
    pub id: String,
    /// Machines registered.
    pub registered_machines: u32,
    /// Rated power per machine, W.
    pub machine_rated_w: u32,
    /// Its meters (topology indices).
    pub meters: Vec<usize>,
    /// The region of its meters (the first one's).
    pub region: Option<String>,
}

/// One consistent snapshot of the registry.
#[derive(Debug, Clone)]
pub struct Grid {
    /// `registry_state.version` it was read at.
    pub version: i64,
    /// The indexed tree.
    pub topology: Topology,
    /// Database key of each meter (by topology index).
    pub meter_keys: Vec<i32>,
    /// Database key of each node (by topology index).
    pub node_keys: Vec<i32>,
    /// Regions evaluated here.
    pub regions: Vec<RegionInfo>,
    /// Licences, by id.
    pub licences: HashMap<String, LicenceInfo>,
}

impl Grid {
    /// Reads the registry; `shard` limits the regions (empty: all).
    pub async fn load(client: &mut Client, shard: &[String]) -> anyhow::Result<Grid> {
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
        let document = crate::registry::store::load_document(&tx)
            .await
            .context("Failed to read the registry")?;
        let meter_key_rows = tx.query("SELECT id, meter_key FROM meters", &[]).await?;
        let node_key_rows = tx.query("SELECT id, node_key FROM nodes", &[]).await?;
        let region_rows = tx
            .query(
                "SELECT id, region_key, tariff_kzt_per_kwh, timezone FROM regions",
                &[],
            )
            .await?;
        tx.commit().await?;

        let topology = Topology::from_registry(&document);
        let meter_key: HashMap<String, i32> = meter_key_rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1)))
            .collect();
        let node_key: HashMap<String, i32> = node_key_rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1)))
            .collect();
        let meter_keys: Vec<i32> = topology
            .meters
            .iter()
            .map(|m| meter_key.get(m.id.as_str()).copied().unwrap_or(-1))
            .collect();
        let node_keys: Vec<i32> = topology
            .nodes
            .iter()
            .map(|n| node_key.get(n.id.as_str()).copied().unwrap_or(-1))
            .collect();
        let mut regions = Vec::new();
        for row in &region_rows {
            let id: String = row.get(0);
            if !shard.is_empty() && !shard.contains(&id) {
                continue;
            }
            let meters: Vec<usize> = (0..topology.meters.len())
                .filter(|&m| topology.nodes[topology.meters[m].node].region.as_str() == id)
                .collect();
            let balanced: Vec<(usize, BalanceTerms)> = topology
                .balanced_nodes(&id)
                .into_iter()
                .filter_map(|n| topology.balance_terms(n).map(|t| (n, t)))
                .collect();
            regions.push(RegionInfo {
                roots: topology.roots(&id),
                key: row.get(1),
                tariff_kzt_per_kwh: row.get(2),
                zone: row
                    .get::<_, Option<&str>>(3)
                    .and_then(|z| z.parse().ok())
                    .unwrap_or(chrono_tz::UTC),
                meter_keys: meters.iter().map(|&m| meter_keys[m]).collect(),
                meters,
                balanced_keys: balanced.iter().map(|(n, _)| node_keys[*n]).collect(),
                balanced,
                id,
            });
        }
        let mut licences: HashMap<String, LicenceInfo> = document
            .licences
            .iter()
            .map(|l| {
                (
                    l.id.to_string(),
                    LicenceInfo {
                        id: l.id.to_string(),
                        registered_machines: l.registered_machines,
                        machine_rated_w: l.machine_rated_w,
                        meters: Vec::new(),
                        region: None,
                    },
                )
            })
            .collect();
        for (i, m) in topology.meters.iter().enumerate() {
            if let Some(licence) = m
                .licence
                .as_ref()
                .and_then(|l| licences.get_mut(l.as_str()))
            {
                licence.meters.push(i);
                if licence.region.is_none() {
                    licence.region = Some(topology.nodes[m.node].region.to_string());
                }
            }
        }
        Ok(Grid {
            version,
            topology,
            meter_keys,
            node_keys,
            regions,
            licences,
        })
    }

    /// Whether a meter is a licensed farm's.
    pub fn is_licensed_mining(&self, meter: usize) -> bool {
        let m = &self.topology.meters[meter];
        m.class == MeterClass::Mining && m.licence.is_some()
    }
}
