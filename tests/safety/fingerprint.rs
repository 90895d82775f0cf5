//! Two databases compared without trusting either: the schema as the catalogs describe it, and
//! every table's rows as a count and a digest.
//!
//! Daily reading partitions (`readings_pYYYYMMDD`) exist only where readings were stored, so
//! the schema leaves them out; their rows count under `readings`.

use std::collections::BTreeMap;

use tokio_postgres::Client;

/// Tables ingest creates on demand, one per day.
const PARTITION: &str = "'^readings_p[0-9]{8}$'";

/// What makes up the schema, one line per object, sorted: columns, constraints, indexes,
/// functions (body digest, SECURITY DEFINER and settings), triggers, owners and privileges of
/// tables, sequences and functions. The privileges are the least-privilege roles of migration
/// 5: a restore that lost them would leave the services without access, or with too much.
/// Privileges are compared as they take effect: no ACL at all means the owner's defaults, which
/// is what pg_dump restores for an ACL written out explicitly but equal to them.
pub(crate) async fn schema(client: &Client) -> Vec<String> {
    let queries = [
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' null='
                || is_nullable || ' default=' || coalesce(column_default, '') || ' identity='
                || is_identity
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name !~ PARTITION",
        "SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
                || pg_get_constraintdef(oid)
         FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text !~ PARTITION",
        "SELECT 'index ' || indexdef FROM pg_indexes
         WHERE schemaname = 'public' AND tablename !~ PARTITION",
        "SELECT 'function ' || p.oid::regprocedure::text || ' definer=' || p.prosecdef
                || ' config=' || coalesce(array_to_string(p.proconfig, ','), '')
                || ' body=' || md5(p.prosrc) || ' owner=' || p.proowner::regrole::text
                || ' acl=' || coalesce(p.proacl, acldefault('f', p.proowner))::text
         FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace",
        "SELECT 'trigger ' || pg_get_triggerdef(oid) || ' enabled=' || tgenabled::text
         FROM pg_trigger
         WHERE NOT tgisinternal AND tgrelid::regclass::text !~ PARTITION",
        "SELECT 'relation ' || relname || ' kind=' || relkind::text || ' owner='
                || relowner::regrole::text || ' acl='
                || coalesce(relacl, acldefault(CASE relkind WHEN 'S' THEN 's' ELSE 'r' END::\"char\", relowner))::text
         FROM pg_class
         WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'S', 'v')
           AND relname !~ PARTITION",
    ];
    let mut lines = Vec::new();
    for query in queries {
        let sql = query.replace("PARTITION", PARTITION);
        for row in client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        {
            lines.push(row.get::<_, String>(0));
        }
    }
    lines.sort();
    lines
}

/// Asserts two schema descriptions are equal, naming the lines that differ.
pub(crate) fn assert_same_schema(actual: &[String], expected: &[String], what: &str) {
    let missing: Vec<&String> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let extra: Vec<&String> = actual.iter().filter(|l| !expected.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: the schema differs\n  missing: {missing:#?}\n  unexpected: {extra:#?}"
    );
}

/// The columns of every table (partitions counted through their parent), by table.
pub(crate) async fn columns(client: &Client) -> BTreeMap<String, Vec<String>> {
    let rows = client
        .query(
            &format!(
                "SELECT c.relname, a.attname
                 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
                   AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
                   AND c.relname !~ {PARTITION}
                 ORDER BY c.relname, a.attnum"
            ),
            &[],
        )
        .await
        .expect("the catalog lists the tables");
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        tables.entry(row.get(0)).or_default().push(row.get(1));
    }
    tables
}

/// Every table's row count and a digest of its rows (over `columns`, so that a table compared
/// across an upgrade that adds columns is compared on the ones it had), by table.
pub(crate) async fn rows(
    client: &Client,
    columns: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, (i64, String)> {
    // Text forms must not depend on the session or the server: times in UTC, rows sorted
    // bytewise whatever the database's collation.
    client
        .batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 1")
        .await
        .expect("session settings");
    let mut out = BTreeMap::new();
    for (table, cols) in columns {
        let row = cols
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r COLLATE \"C\"), ''))
             FROM (SELECT ROW({row})::text AS r FROM \"{table}\") s"
        );
        let result = client
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        out.insert(table.clone(), (result.get(0), result.get(1)));
    }
    out
}
