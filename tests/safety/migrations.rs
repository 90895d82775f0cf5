//! Migrations: a second run changes nothing, runs started at once apply each version once, and
//! an upgrade from the previous schema version keeps every row.

use gridwatch::anomalies::transition::Status;
use gridwatch::audit;
use gridwatch::db::migrate::{self, MIGRATIONS};
use tokio_postgres::Client;

use crate::commands::{applied_count, gridwatch, output, succeed};
use crate::fingerprint::{assert_same_schema, columns, rows, schema};
use crate::seed::{move_to, seed};
use crate::support::{unique_name, TestDb};

/// The schema every path must end at: a fresh database migrated once.
async fn reference_schema() -> Vec<String> {
    let reference = TestDb::migrated().await;
    schema(&reference.client().await).await
}

/// The versions recorded in `schema_migrations`, in order.
async fn recorded_versions(client: &Client) -> Vec<i32> {
    client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("schema_migrations")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn every_version() -> Vec<i32> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

#[tokio::test]
async fn migrating_a_migrated_database_again_changes_nothing() {
    let db = TestDb::migrated().await;
    seed(&db).await;
    let mut client = db.client().await;
    let schema_before = schema(&client).await;
    let tables = columns(&client).await;
    let rows_before = rows(&client, &tables).await;

    assert_eq!(migrate::run(&mut client).await.expect("migrate again"), 0);
    let stdout = succeed(gridwatch(&db.url, &["migrate"])).await;
    assert_eq!(applied_count(&stdout), 0, "{stdout}");

    assert_same_schema(&schema(&client).await, &schema_before, "after a second run");
    // schema_migrations is among the tables: its rows (and their applied_at) did not move.
    assert_eq!(rows(&client, &tables).await, rows_before);
    assert_eq!(recorded_versions(&client).await, every_version());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_started_at_once_on_separate_connections_apply_each_version_once() {
    let db = TestDb::new().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(db.client().await);
    }
    let runs = clients.into_iter().map(|mut client| {
        tokio::spawn(async move {
            migrate::run(&mut client)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    });
    let applied: Vec<usize> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .map(|joined| {
            joined
                .expect("task joins")
                .expect("every concurrent run succeeds")
        })
        .collect();
    // The advisory lock serialises the runs: one applies everything, the others find it done.
    assert_eq!(
        applied.iter().sum::<usize>(),
        MIGRATIONS.len(),
        "{applied:?}"
    );
    let client = db.client().await;
    assert_eq!(recorded_versions(&client).await, every_version());
    assert_same_schema(
        &schema(&client).await,
        &reference_schema().await,
        "after concurrent runs",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_commands_started_at_once_create_and_migrate_a_new_database_once() {
    // The database does not exist yet: every process tries to create it (CONTRACT section 8),
    // as services started together on a new server do.
    let name = unique_name("gwt");
    let db = TestDb::named(name);
    let outputs =
        futures_util::future::join_all((0..3).map(|_| output(gridwatch(&db.url, &["migrate"]))))
            .await;
    let mut applied = 0;
    for out in &outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "gridwatch migrate failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        applied += applied_count(&stdout);
    }
    assert_eq!(applied, MIGRATIONS.len());
    let client = db.client().await;
    assert_eq!(recorded_versions(&client).await, every_version());
    assert_same_schema(
        &schema(&client).await,
        &reference_schema().await,
        "after concurrent commands",
    );
}

/// The runner's checksum of a migration's text (FNV-1a, hex), written out again here on
/// purpose: databases in the field recorded these values, so the runner must keep computing
/// them the same way or it would refuse every deployed database as "changed after it was
/// applied". This test fails first if it does not.
fn recorded_checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Brings an empty database to the schema before the last migration, recording each version
/// the way the runner does (it has no "up to version" mode).
async fn migrate_to_previous_version(client: &mut Client) -> i32 {
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .expect("schema_migrations");
    let previous = &MIGRATIONS[..MIGRATIONS.len() - 1];
    for migration in previous {
        let tx = client.transaction().await.expect("transaction");
        tx.batch_execute(migration.sql)
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e:?}", migration.version));
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[
                &migration.version,
                &migration.name,
                &recorded_checksum(migration.sql),
            ],
        )
        .await
        .expect("record the version");
        tx.commit().await.expect("commit");
    }
    previous.last().expect("at least two migrations").version
}

#[tokio::test]
async fn upgrading_from_the_previous_schema_version_keeps_every_row() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let previous = migrate_to_previous_version(&mut client).await;
    let anomalies = seed(&db).await;

    let mut tables = columns(&client).await;
    // It gains the new version's row; compared below.
    tables.remove("schema_migrations");
    let before = rows(&client, &tables).await;
    let empty: Vec<&String> = before
        .iter()
        .filter(|(_, (count, _))| *count == 0)
        .map(|(table, _)| table)
        .collect();
    assert!(
        empty.is_empty(),
        "the seed must cover every table of version {previous} (add rows to tests/safety/seed.rs): {empty:?}"
    );
    let history_head = audit::verify(&mut client, None)
        .await
        .expect("verify")
        .head
        .expect("a history")
        .1;

    assert_eq!(
        migrate::run(&mut client).await.expect("upgrade"),
        MIGRATIONS.len() - previous as usize
    );

    assert_eq!(
        rows(&client, &tables).await,
        before,
        "rows after the upgrade"
    );
    assert_eq!(recorded_versions(&client).await, every_version());
    assert_same_schema(
        &schema(&client).await,
        &reference_schema().await,
        "upgraded versus fresh",
    );
    // The history still verifies, from the head recorded before the upgrade, and keeps growing.
    let report = audit::verify(
        &mut client,
        Some(audit::parse_hash(&history_head).expect("hex")),
    )
    .await
    .expect("verify");
    assert!(report.is_intact(), "{report}");
    move_to(
        &mut client,
        &anomalies[1],
        Status::Investigating,
        "after the upgrade",
    )
    .await;
    let report = audit::verify(&mut client, None).await.expect("verify");
    assert!(report.is_intact() && report.entries == 5, "{report}");
}
