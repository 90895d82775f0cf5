//! docs/runbook.md, "Backup and restore", run as written with PostgreSQL's own programs: a dump
//! of a small database (registry, a day of readings, anomalies with a history), restored into a
//! new database on the same server, and onto a new server that has none of the old one's roles.
//! The restored database has every row, the same schema and grants, an intact history with the
//! same head, and keeps working.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::str::FromStr;

use gridwatch::anomalies::transition::Status;
use tokio::process::Command;
use tokio_postgres::{Client, NoTls};

use crate::commands::{applied_count, assert_succeeded, gridwatch, output, pg, succeed};
use crate::fingerprint::{assert_same_schema, columns, rows, schema};
use crate::seed::{move_to, seed};
use crate::support::db::server_url;
use crate::support::pgserver::{bin_dir, PgServer};
use crate::support::{unique_name, TempDir, TestDb};

/// Where a database lives, as the PostgreSQL programs are told it (`-h -p -U`).
struct Target {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
}

impl Target {
    /// The test server, from its URL.
    fn test_server() -> Target {
        let config = tokio_postgres::Config::from_str(&server_url()).expect("a PostgreSQL URL");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        Target {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            user: config.get_user().unwrap_or("postgres").to_owned(),
            password: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        }
    }

    fn new_server(server: &PgServer) -> Target {
        Target {
            host: "127.0.0.1".to_owned(),
            port: server.port,
            user: "postgres".to_owned(),
            password: None,
        }
    }

    fn url(&self, database: &str) -> String {
        match &self.password {
            Some(p) => format!(
                "postgres://{}:{p}@{}:{}/{database}",
                self.user, self.host, self.port
            ),
            None => format!(
                "postgres://{}@{}:{}/{database}",
                self.user, self.host, self.port
            ),
        }
    }

    /// A PostgreSQL program with `-h -p -U` (and the password, if any, in its environment).
    fn program(&self, bin: &Path, name: &str) -> Command {
        let mut command = pg(bin, name);
        command
            .arg("-h")
            .arg(&self.host)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(&self.user);
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        command
    }

    async fn client(&self, database: &str) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url(database), NoTls)
            .await
            .expect("the restored database is reachable");
        tokio::spawn(connection);
        client
    }
}

/// A database as it was when it was dumped.
struct Backup {
    /// The database dumped (dropped with the backup).
    _db: TestDb,
    anomalies: Vec<String>,
    dump: PathBuf,
    roles: PathBuf,
    /// The head hash `gridwatch audit verify` printed before the dump.
    head: String,
    schema: Vec<String>,
    rows: BTreeMap<String, (i64, String)>,
    /// The table owner, for `createdb -O`.
    owner: String,
    last_history_seq: i64,
}

/// `gridwatch audit verify` on `url`: asserts it passes; returns what it printed.
async fn audit_verify(url: &str, extra: &[&str]) -> String {
    let args: Vec<&str> = ["audit", "verify"].iter().chain(extra).copied().collect();
    let stdout = succeed(gridwatch(url, &args)).await;
    assert!(
        stdout.contains("The anomaly history is intact."),
        "{stdout}"
    );
    stdout
}

/// Seeds a database and backs it up as the runbook says: `pg_dump -Fc` and the roles.
async fn backed_up(bin: &Path, dir: &TempDir) -> Backup {
    let db = TestDb::migrated().await;
    let anomalies = seed(&db).await;
    let verified = audit_verify(&db.url, &[]).await;
    let head = verified
        .lines()
        .find_map(|l| l.trim().strip_prefix("Head hash: "))
        .expect("a head hash")
        .to_owned();

    let dump = dir.path().join("gridwatch-20251001T0000Z.dump");
    let mut pg_dump = pg(bin, "pg_dump");
    pg_dump.args(["-Fc", "-d", &db.url, "-f"]).arg(&dump);
    succeed(pg_dump).await;
    let roles = dir.path().join("gridwatch-roles-20251001T0000Z.sql");
    let mut pg_dumpall = pg(bin, "pg_dumpall");
    pg_dumpall
        .args([
            "--roles-only",
            "-d",
            &format!("{}/postgres", server_url()),
            "-f",
        ])
        .arg(&roles);
    succeed(pg_dumpall).await;

    let client = db.client().await;
    let owner: String = client
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'anomalies'",
            &[],
        )
        .await
        .expect("owner")
        .get(0);
    let last_history_seq: i64 = client
        .query_one("SELECT max(seq) FROM anomaly_history", &[])
        .await
        .expect("history")
        .get(0);
    let schema = schema(&client).await;
    let rows = rows(&client, &columns(&client).await).await;
    Backup {
        _db: db,
        anomalies,
        dump,
        roles,
        head,
        schema,
        rows,
        owner,
        last_history_seq,
    }
}

/// createdb and pg_restore, as the runbook says.
async fn restore(bin: &Path, backup: &Backup, target: &Target, database: &str) -> Output {
    let mut createdb = target.program(bin, "createdb");
    createdb.args(["-O", &backup.owner, database]);
    succeed(createdb).await;
    let mut pg_restore = target.program(bin, "pg_restore");
    pg_restore
        .args(["-d", database, "-j", "4", "--exit-on-error"])
        .arg(&backup.dump);
    output(pg_restore).await
}

/// What must hold of a restored database: every row, the same schema, grants and owners, an
/// intact history with the same head, and it keeps working (migrate has nothing to do, the next
/// history entry continues the chain and its numbering).
async fn assert_restored(backup: &Backup, target: &Target, database: &str) {
    let url = target.url(database);
    let mut client = target.client(database).await;
    assert_eq!(
        rows(&client, &columns(&client).await).await,
        backup.rows,
        "every table's rows"
    );
    assert_same_schema(
        &schema(&client).await,
        &backup.schema,
        "restored versus dumped",
    );

    let verified = audit_verify(&url, &[]).await;
    assert!(
        verified.contains(&format!("Head hash: {}", backup.head)),
        "{verified}"
    );
    let verified = audit_verify(&url, &["--expect-head", &backup.head]).await;
    assert!(verified.contains("nothing up to it changed"), "{verified}");

    let stdout = succeed(gridwatch(&url, &["migrate"])).await;
    assert_eq!(applied_count(&stdout), 0, "{stdout}");

    let seq = move_to(
        &mut client,
        &backup.anomalies[1],
        Status::Investigating,
        "after the restore",
    )
    .await;
    assert!(seq > backup.last_history_seq, "seq {seq} is new");
    audit_verify(&url, &["--expect-head", &backup.head]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_new_database_with_every_row_and_an_intact_history() {
    let bin = bin_dir().await;
    let dir = TempDir::new("gw-backup");
    let backup = backed_up(&bin, &dir).await;
    let target = Target::test_server();
    // Created by createdb below; dropped at the end like every test database.
    let name = unique_name("gwt_restored");
    let restored = TestDb::named(name);
    let out = restore(&bin, &backup, &target, &restored.name).await;
    assert_succeeded(&out, "pg_restore");
    assert_restored(&backup, &target, &restored.name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_onto_a_new_server_once_its_roles_are_restored() {
    let bin = bin_dir().await;
    let dir = TempDir::new("gw-backup");
    let backup = backed_up(&bin, &dir).await;
    let server = PgServer::start(&bin).await;
    let target = Target::new_server(&server);

    // The dump alone is not enough: the grants name roles the new server does not have.
    let out = restore(&bin, &backup, &target, "gridwatch_without_roles").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("role \"gridwatch_"),
        "pg_restore without the roles: {}\n{stderr}",
        out.status
    );

    let mut psql = target.program(&bin, "psql");
    psql.args(["-d", "postgres", "-f"]).arg(&backup.roles);
    let out = output(psql).await;
    assert_succeeded(&out, "psql -f roles");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| l.contains("ERROR")) {
        assert!(
            line.contains("already exists"),
            "restoring the roles: {stderr}"
        );
    }

    let out = restore(&bin, &backup, &target, "gridwatch_restored").await;
    assert_succeeded(&out, "pg_restore");
    assert_restored(&backup, &target, "gridwatch_restored").await;
}
