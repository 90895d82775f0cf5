//! A fresh PostgreSQL database per test, dropped when the test ends.

use tokio_postgres::{Client, NoTls};

use gridwatch::config::Secret;

/// The server tests use: `GRIDWATCH_TEST_PG` (a URL without database name) or the local one.
pub fn server_url() -> String {
    std::env::var("GRIDWATCH_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestDb {
    pub name: String,
    pub url: String,
    /// The server's URL, without a database name.
    server: String,
}

impl TestDb {
    /// Creates an empty database.
    pub async fn new() -> TestDb {
        TestDb::new_on(&server_url()).await
    }

    /// Creates an empty database on the server at `server` (a URL without database name).
    pub async fn new_on(server: &str) -> TestDb {
        let name = super::unique_name("gwt");
        let (admin, connection) = tokio_postgres::connect(&format!("{server}/postgres"), NoTls)
            .await
            .expect("PostgreSQL is reachable (see README: the test command starts it)");
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("test database can be created");
        TestDb {
            url: format!("{server}/{name}"),
            name,
            server: server.to_owned(),
        }
    }

    /// A database named `name` on the shared server that something else creates (a restore, a
    /// `gridwatch migrate`), dropped like every test database.
    pub fn named(name: String) -> TestDb {
        TestDb {
            url: format!("{}/{name}", server_url()),
            name,
            server: server_url(),
        }
    }

    /// Creates a database and applies every migration.
    pub async fn migrated() -> TestDb {
        TestDb::migrated_on(&server_url()).await
    }

    /// Creates a database on the server at `server` and applies every migration.
    pub async fn migrated_on(server: &str) -> TestDb {
        let db = TestDb::new_on(server).await;
        let mut client = db.client().await;
        gridwatch::db::migrate::run(&mut client)
            .await
            .expect("migrations apply");
        db
    }

    pub fn secret(&self) -> Secret {
        Secret::new(self.url.clone())
    }

    pub async fn client(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("test database is reachable");
        tokio::spawn(connection);
        client
    }

    /// Runs a query returning one bigint.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("GRIDWATCH_TEST_KEEP_DB").is_some() {
            eprintln!("keeping test database {}", self.name);
            return;
        }
        let name = self.name.clone();
        let server = self.server.clone();
        // Drop runs outside any runtime guarantee: use a thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((admin, connection)) =
                    tokio_postgres::connect(&format!("{server}/postgres"), NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
