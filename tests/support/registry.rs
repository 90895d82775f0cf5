//! Registry rows for tests that need meters before the registry API exists in them.

use super::TestDb;

/// Registers region `r1`, node `N1` and `count` household meters `M-000000`... on it.
pub async fn seed_meters(db: &TestDb, count: usize) -> Vec<String> {
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO regions (id, name, tariff_kzt_per_kwh) VALUES ('r1', 'Test region', 10.3);
             INSERT INTO nodes (id, region_key, kind)
               SELECT 'N1', region_key, 'feeder' FROM regions WHERE id = 'r1';",
        )
        .await
        .expect("seed region and node");
    let ids: Vec<String> = (0..count).map(|i| format!("M-{i:06}")).collect();
    add_meters(db, &ids).await;
    ids
}

/// Adds household meters with these ids on node `N1`.
pub async fn add_meters(db: &TestDb, ids: &[String]) {
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO meters (id, node_key, role, class, accuracy_pct)
             SELECT id, (SELECT node_key FROM nodes WHERE id = 'N1'), 'consumer', 'household', 1.0
             FROM unnest($1::text[]) AS id",
            &[&ids],
        )
        .await
        .expect("seed meters");
}
