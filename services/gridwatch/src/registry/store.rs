//! The stored registry: read back as a [`RegistryDocument`], and upserted from one, all or
//! nothing, with a `registry_changes` row for every entry created or changed.
//!
//! One code path serves `PUT /api/v1/registry` and `gridwatch registry import`. It is sized for
//! national registries: the stored registry is read in four queries, the document is compared
//! with it in memory, and only what changed is written, one set-based statement per table
//! (`unnest` of arrays), so a 100,000-meter import takes seconds. Ingest and the detector notice
//! through `registry_state.version`, which the tables' triggers bump.

use std::collections::HashMap;

use serde::Serialize;
use tokio_postgres::{Client, GenericClient};

use gridwatch_core::registry::{
    validate, Licence, Meter, MeterClass, MeterRole, Node, Region, RegistryDocument, RegistryError,
};
use gridwatch_core::{GatewayId, LicenceId, MeterId, NodeId, RegionId};

/// Serialises imports: each validates against the registry as the previous one left it.
const IMPORT_LOCK: i64 = 7_423_003;

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The document is invalid; every error names its entry. Nothing was written.
    #[error("the registry document is invalid ({} error(s))", .0.len())]
    Invalid(Vec<RegistryError>),
    /// The database failed; nothing was written.
    #[error("database error: {}", crate::db::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    /// The stored registry holds something this version cannot read.
    #[error("the stored registry is inconsistent: {0}")]
    Corrupt(String),
}

/// Entries per kind of entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Regions.
    pub regions: u64,
    /// Nodes.
    pub nodes: u64,
    /// Meters.
    pub meters: u64,
    /// Licences.
    pub licences: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Entries that did not exist.
    pub created: Counts,
    /// Entries that existed with other values.
    pub updated: Counts,
    /// Entries already stored exactly so (nothing written for them).
    pub unchanged: u64,
    /// `registry_state.version` after the import.
    pub version: i64,
}

fn corrupt(what: &str, id: &str, error: impl std::fmt::Display) -> ImportError {
    ImportError::Corrupt(format!("{what} {id:?}: {error}"))
}

/// Reads the whole stored registry.
pub async fn load_document(client: &impl GenericClient) -> Result<RegistryDocument, ImportError> {
    let mut document = RegistryDocument::default();
    for row in client
        .query(
            "SELECT id, name, tariff_kzt_per_kwh, timezone FROM regions ORDER BY region_key",
            &[],
        )
        .await?
    {
        let id: &str = row.get(0);
        document.regions.push(Region {
            id: RegionId::parse(id).map_err(|e| corrupt("region", id, e))?,
            name: row.get(1),
            tariff_kzt_per_kwh: row.get(2),
            timezone: row.get(3),
        });
    }
    for row in client
        .query(
            "SELECT id, holder, pool, registered_machines, machine_rated_w
             FROM licences ORDER BY licence_key",
            &[],
        )
        .await?
    {
        let id: &str = row.get(0);
        let machines: i32 = row.get(3);
        let rated: i32 = row.get(4);
        document.licences.push(Licence {
            id: LicenceId::parse(id).map_err(|e| corrupt("licence", id, e))?,
            holder: row.get(1),
            pool: row.get(2),
            registered_machines: u32::try_from(machines).map_err(|e| corrupt("licence", id, e))?,
            machine_rated_w: u32::try_from(rated).map_err(|e| corrupt("licence", id, e))?,
        });
    }
    for row in client
        .query(
            "SELECT n.id, p.id, r.id, n.kind, m.id
             FROM nodes n
             JOIN regions r ON r.region_key = n.region_key
             LEFT JOIN nodes p ON p.node_key = n.parent_key
             LEFT JOIN meters m ON m.meter_key = n.input_meter_key
             ORDER BY n.node_key",
            &[],
        )
        .await?
    {
        let id: &str = row.get(0);
        let parent: Option<&str> = row.get(1);
        let region: &str = row.get(2);
        let input: Option<&str> = row.get(4);
        document.nodes.push(Node {
            id: NodeId::parse(id).map_err(|e| corrupt("node", id, e))?,
            parent: parent
                .map(NodeId::parse)
                .transpose()
                .map_err(|e| corrupt("node", id, e))?,
            region: RegionId::parse(region).map_err(|e| corrupt("node", id, e))?,
            kind: row.get(3),
            input_meter: input
                .map(MeterId::parse)
                .transpose()
                .map_err(|e| corrupt("node", id, e))?,
        });
    }
    for row in client
        .query(
            "SELECT m.id, n.id, m.role, m.class, m.accuracy_pct, l.id, m.gateway
             FROM meters m
             JOIN nodes n ON n.node_key = m.node_key
             LEFT JOIN licences l ON l.licence_key = m.licence_key
             ORDER BY m.meter_key",
            &[],
        )
        .await?
    {
        let id: &str = row.get(0);
        let node: &str = row.get(1);
        let role: &str = row.get(2);
        let class: &str = row.get(3);
        let licence: Option<&str> = row.get(5);
        let gateway: Option<&str> = row.get(6);
        document.meters.push(Meter {
            id: MeterId::parse(id).map_err(|e| corrupt("meter", id, e))?,
            node: NodeId::parse(node).map_err(|e| corrupt("meter", id, e))?,
            role: MeterRole::parse(role).ok_or_else(|| corrupt("meter", id, "unknown role"))?,
            class: MeterClass::parse(class).ok_or_else(|| corrupt("meter", id, "unknown class"))?,
            accuracy_pct: row.get(4),
            licence: licence
                .map(LicenceId::parse)
                .transpose()
                .map_err(|e| corrupt("meter", id, e))?,
            gateway: gateway
                .map(GatewayId::parse)
                .transpose()
                .map_err(|e| corrupt("meter", id, e))?,
        });
    }
    Ok(document)
}

/// One entry of the document that differs from the stored registry.
struct Change<'a, T> {
    entry: &'a T,
    before: Option<&'a T>,
}

/// The document's entries that are new or differ from `stored`; counts the others.
fn changes<'a, T: PartialEq>(
    document: &'a [T],
    stored: &'a [T],
    id: impl Fn(&T) -> &str,
    unchanged: &mut u64,
) -> Vec<Change<'a, T>> {
    let stored: HashMap<&str, &T> = stored.iter().map(|s| (id(s), s)).collect();
    let mut out = Vec::new();
    for entry in document {
        match stored.get(id(entry)) {
            Some(before) if *before == entry => *unchanged += 1,
            before => out.push(Change {
                entry,
                before: before.copied(),
            }),
        }
    }
    out
}

/// How many of `list` are creations (`created`) or updates.
fn count<T>(list: &[Change<'_, T>], created: bool) -> u64 {
    list.iter()
        .filter(|c| c.before.is_none() == created)
        .count() as u64
}

/// The `registry_changes` rows of a list of changes.
struct History {
    entity: Vec<&'static str>,
    entity_id: Vec<String>,
    action: Vec<&'static str>,
    before: Vec<Option<serde_json::Value>>,
    after: Vec<serde_json::Value>,
}

impl History {
    fn add<T: Serialize>(
        &mut self,
        entity: &'static str,
        id: &str,
        change: &Change<'_, T>,
    ) -> Result<(), ImportError> {
        let json = |v: &T| serde_json::to_value(v).map_err(|e| corrupt(entity, id, e));
        self.entity.push(entity);
        self.entity_id.push(id.to_owned());
        self.action.push(if change.before.is_some() {
            "updated"
        } else {
            "created"
        });
        self.before.push(change.before.map(json).transpose()?);
        self.after.push(json(change.entry)?);
        Ok(())
    }
}

/// Validates `document` against the stored registry and upserts it, all or nothing, as
/// `actor` (a token's name, or `cli`).
pub async fn import_document(
    client: &mut Client,
    document: &RegistryDocument,
    actor: &str,
) -> Result<ImportSummary, ImportError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&IMPORT_LOCK])
        .await?;
    let stored = load_document(&tx).await?;
    validate(document, &stored).map_err(ImportError::Invalid)?;

    let mut summary = ImportSummary::default();
    let mut unchanged = 0;
    let regions = changes(
        &document.regions,
        &stored.regions,
        |r| r.id.as_str(),
        &mut unchanged,
    );
    let licences = changes(
        &document.licences,
        &stored.licences,
        |l| l.id.as_str(),
        &mut unchanged,
    );
    let nodes = changes(
        &document.nodes,
        &stored.nodes,
        |n| n.id.as_str(),
        &mut unchanged,
    );
    let meters = changes(
        &document.meters,
        &stored.meters,
        |m| m.id.as_str(),
        &mut unchanged,
    );
    summary.unchanged = unchanged;
    let mut history = History {
        entity: Vec::new(),
        entity_id: Vec::new(),
        action: Vec::new(),
        before: Vec::new(),
        after: Vec::new(),
    };
    summary.created = Counts {
        regions: count(&regions, true),
        nodes: count(&nodes, true),
        meters: count(&meters, true),
        licences: count(&licences, true),
    };
    summary.updated = Counts {
        regions: count(&regions, false),
        nodes: count(&nodes, false),
        meters: count(&meters, false),
        licences: count(&licences, false),
    };

    // Order follows the foreign keys: regions and licences, then nodes (their parents and input
    // meters set once every node and meter exists), then meters.
    if !regions.is_empty() {
        let ids: Vec<&str> = regions.iter().map(|c| c.entry.id.as_str()).collect();
        let names: Vec<&str> = regions.iter().map(|c| c.entry.name.as_str()).collect();
        let tariffs: Vec<f64> = regions.iter().map(|c| c.entry.tariff_kzt_per_kwh).collect();
        let zones: Vec<Option<&str>> = regions
            .iter()
            .map(|c| c.entry.timezone.as_deref())
            .collect();
        tx.execute(
            "INSERT INTO regions (id, name, tariff_kzt_per_kwh, timezone)
             SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[])
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
                 tariff_kzt_per_kwh = EXCLUDED.tariff_kzt_per_kwh,
                 timezone = EXCLUDED.timezone, updated_at = now()",
            &[&ids, &names, &tariffs, &zones],
        )
        .await?;
        for c in &regions {
            history.add("region", c.entry.id.as_str(), c)?;
        }
    }
    if !licences.is_empty() {
        let ids: Vec<&str> = licences.iter().map(|c| c.entry.id.as_str()).collect();
        let holders: Vec<&str> = licences.iter().map(|c| c.entry.holder.as_str()).collect();
        let pools: Vec<Option<&str>> = licences.iter().map(|c| c.entry.pool.as_deref()).collect();
        let machines: Vec<i32> = licences
            .iter()
            .map(|c| i32::try_from(c.entry.registered_machines).unwrap_or(i32::MAX))
            .collect();
        let rated: Vec<i32> = licences
            .iter()
            .map(|c| i32::try_from(c.entry.machine_rated_w).unwrap_or(i32::MAX))
            .collect();
        tx.execute(
            "INSERT INTO licences (id, holder, pool, registered_machines, machine_rated_w)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[])
             ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, pool = EXCLUDED.pool,
                 registered_machines = EXCLUDED.registered_machines,
                 machine_rated_w = EXCLUDED.machine_rated_w, updated_at = now()",
            &[&ids, &holders, &pools, &machines, &rated],
        )
        .await?;
        for c in &licences {
            history.add("licence", c.entry.id.as_str(), c)?;
        }
    }
    let node_ids: Vec<&str> = nodes.iter().map(|c| c.entry.id.as_str()).collect();
    if !nodes.is_empty() {
        let regions_of: Vec<&str> = nodes.iter().map(|c| c.entry.region.as_str()).collect();
        let kinds: Vec<&str> = nodes.iter().map(|c| c.entry.kind.as_str()).collect();
        let written = tx
            .execute(
                "INSERT INTO nodes (id, region_key, kind)
                 SELECT u.id, r.region_key, u.kind
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, region, kind)
                 JOIN regions r ON r.id = u.region
                 ON CONFLICT (id) DO UPDATE SET region_key = EXCLUDED.region_key,
                     kind = EXCLUDED.kind, updated_at = now()",
                &[&node_ids, &regions_of, &kinds],
            )
            .await?;
        if written != nodes.len() as u64 {
            return Err(ImportError::Corrupt(
                "a node's region vanished during the import".into(),
            ));
        }
        for c in &nodes {
            history.add("node", c.entry.id.as_str(), c)?;
        }
    }
    if !meters.is_empty() {
        let ids: Vec<&str> = meters.iter().map(|c| c.entry.id.as_str()).collect();
        let on: Vec<&str> = meters.iter().map(|c| c.entry.node.as_str()).collect();
        let roles: Vec<&str> = meters.iter().map(|c| c.entry.role.as_str()).collect();
        let classes: Vec<&str> = meters.iter().map(|c| c.entry.class.as_str()).collect();
        let accuracy: Vec<f64> = meters.iter().map(|c| c.entry.accuracy_pct).collect();
        let licence_of: Vec<Option<&str>> = meters
            .iter()
            .map(|c| c.entry.licence.as_ref().map(LicenceId::as_str))
            .collect();
        let gateways: Vec<Option<&str>> = meters
            .iter()
            .map(|c| c.entry.gateway.as_ref().map(GatewayId::as_str))
            .collect();
        let written = tx
            .execute(
                "INSERT INTO meters (id, node_key, role, class, accuracy_pct, licence_key, gateway)
                 SELECT u.id, n.node_key, u.role, u.class, u.accuracy, l.licence_key, u.gateway
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                             $6::text[], $7::text[])
                      AS u(id, node, role, class, accuracy, licence, gateway)
                 JOIN nodes n ON n.id = u.node
                 LEFT JOIN licences l ON l.id = u.licence
                 ON CONFLICT (id) DO UPDATE SET node_key = EXCLUDED.node_key,
                     role = EXCLUDED.role, class = EXCLUDED.class,
                     accuracy_pct = EXCLUDED.accuracy_pct, licence_key = EXCLUDED.licence_key,
                     gateway = EXCLUDED.gateway, updated_at = now()",
                &[
                    &ids,
                    &on,
                    &roles,
                    &classes,
                    &accuracy,
                    &licence_of,
                    &gateways,
                ],
            )
            .await?;
        if written != meters.len() as u64 {
            return Err(ImportError::Corrupt(
                "a meter's node vanished during the import".into(),
            ));
        }
        for c in &meters {
            history.add("meter", c.entry.id.as_str(), c)?;
        }
    }
    if !nodes.is_empty() {
        let parents: Vec<Option<&str>> = nodes
            .iter()
            .map(|c| c.entry.parent.as_ref().map(NodeId::as_str))
            .collect();
        let inputs: Vec<Option<&str>> = nodes
            .iter()
            .map(|c| c.entry.input_meter.as_ref().map(MeterId::as_str))
            .collect();
        tx.execute(
            "UPDATE nodes n
             SET parent_key = (SELECT p.node_key FROM nodes p WHERE p.id = u.parent),
                 input_meter_key = (SELECT m.meter_key FROM meters m WHERE m.id = u.input)
             FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, parent, input)
             WHERE n.id = u.id",
            &[&node_ids, &parents, &inputs],
        )
        .await?;
    }
    if !history.entity.is_empty() {
        tx.execute(
            "INSERT INTO registry_changes (changed_by, entity, entity_id, action, before, after)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[])",
            &[
                &actor,
                &history.entity,
                &history.entity_id,
                &history.action,
                &history.before,
                &history.after,
            ],
        )
        .await?;
    }
    summary.version = tx
        .query_one("SELECT version FROM registry_state", &[])
        .await?
        .get(0);
    tx.commit().await?;
    Ok(summary)
}
