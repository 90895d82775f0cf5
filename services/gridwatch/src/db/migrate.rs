//! Versioned, idempotent migrations from `migrations/`, embedded in the binary.
//!
//! A session-level advisory lock serialises concurrent runs (two services starting at once);
//! each migration commits with its row in `schema_migrations`, so a crash leaves the schema at a
//! known version. An applied migration whose text changed is refused rather than ignored.

use anyhow::{bail, Context};
use tokio_postgres::Client;

/// One migration file.
pub struct Migration {
    /// Its version: the file's numeric prefix.
    pub version: i32,
    /// Its name: the rest of the file name.
    pub name: &'static str,
    /// The SQL it runs.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "registry_readings_rejections",
        sql: include_str!("../../../../migrations/0001_registry_readings_rejections.sql"),
    },
    Migration {
        version: 2,
        name: "anomalies_history",
        sql: include_str!("../../../../migrations/0002_anomalies_history.sql"),
    },
    Migration {
        version: 3,
        name: "ledger_api",
        sql: include_str!("../../../../migrations/0003_ledger_api.sql"),
    },
    Migration {
        version: 4,
        name: "detector",
        sql: include_str!("../../../../migrations/0004_detector.sql"),
    },
    Migration {
        version: 5,
        name: "roles",
        sql: include_str!("../../../../migrations/0005_roles.sql"),
    },
    Migration {
        version: 6,
        name: "detector_model_refit",
        sql: include_str!("../../../../migrations/0006_detector_model_refit.sql"),
    },
    Migration {
        version: 7,
        name: "detector_analysed_until",
        sql: include_str!("../../../../migrations/0007_detector_analysed_until.sql"),
    },
    Migration {
        version: 8,
        name: "withdrawn_status",
        sql: include_str!("../../../../migrations/0008_withdrawn_status.sql"),
    },
    Migration {
        version: 9,
        name: "source_progress",
        sql: include_str!("../../../../migrations/0009_source_progress.sql"),
    },
    Migration {
        version: 10,
        name: "source_first_heard",
        sql: include_str!("../../../../migrations/0010_source_first_heard.sql"),
    },
    Migration {
        version: 11,
        name: "region_timezone",
        sql: include_str!("../../../../migrations/0011_region_timezone.sql"),
    },
    Migration {
        version: 12,
        name: "topology_moves",
        sql: include_str!("../../../../migrations/0012_topology_moves.sql"),
    },
];

/// Arbitrary constant naming gridwatch's migration lock.
const MIGRATION_LOCK: i64 = 7_423_000;

/// FNV-1a of the SQL text: detects an edited migration, not an attacker.
fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Applies the pending migrations; returns how many it applied.
pub async fn run(client: &mut Client) -> anyhow::Result<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("Failed to take the migration lock")?;
    let result = apply_pending(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let applied = result?;
    unlock.context("Failed to release the migration lock")?;
    Ok(applied)
}

async fn apply_pending(client: &mut Client) -> anyhow::Result<usize> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .context("Failed to create schema_migrations")?;
    let rows = client
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await
        .context("Failed to read schema_migrations")?;
    let applied: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    if let Some(newest) = applied.iter().map(|(v, _)| *v).max() {
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if newest > known {
            bail!("The database is at schema version {newest}, newer than this binary knows ({known}): upgrade gridwatch");
        }
    }
    let mut count = 0;
    for migration in MIGRATIONS {
        let sum = checksum(migration.sql);
        if let Some((_, existing)) = applied.iter().find(|(v, _)| *v == migration.version) {
            if *existing != sum {
                bail!(
                    "Migration {} ({}) was changed after it was applied: restore its original text",
                    migration.version,
                    migration.name
                );
            }
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(migration.sql).await.with_context(|| {
            format!(
                "Failed to apply migration {} ({})",
                migration.version, migration.name
            )
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&migration.version, &migration.name, &sum],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "Applied a migration."
        );
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
    }

    #[test]
    fn checksum_tells_texts_apart() {
        assert_ne!(checksum("a"), checksum("b"));
        assert_eq!(checksum("a"), checksum("a"));
    }
}
