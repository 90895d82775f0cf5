//! PostgreSQL: connections, the database's creation, migrations and partitions.

pub mod copy;
pub mod migrate;
pub mod partitions;

use std::str::FromStr;

use anyhow::Context;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::config::Secret;

/// Opens one connection and drives it on a background task.
///
/// The task ends when the connection closes; the client then fails every call with a closed
/// error, which callers treat as "reconnect".
pub async fn connect(url: &Secret) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "A database connection ended.");
        }
    });
    Ok(client)
}

/// Connects, creating the database first if it does not exist yet (CONTRACT section 8).
pub async fn connect_creating(url: &Secret) -> anyhow::Result<Client> {
    match connect(url).await {
        Ok(client) => Ok(client),
        Err(error) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            create_database(url).await?;
            connect(url)
                .await
                .context("Failed to connect to the database just created")
        }
        Err(error) => Err(anyhow::Error::new(error).context(
            "Failed to connect to PostgreSQL (check GRIDWATCH_DATABASE_URL and that the server runs)",
        )),
    }
}

/// Creates the database named in `url`, connecting to the server's `postgres` database.
async fn create_database(url: &Secret) -> anyhow::Result<()> {
    let config = tokio_postgres::Config::from_str(url.expose())
        .context("GRIDWATCH_DATABASE_URL is not a valid PostgreSQL URL")?;
    let name = config
        .get_dbname()
        .context("GRIDWATCH_DATABASE_URL names no database")?
        .to_owned();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(NoTls)
        .await
        .context("Failed to connect to the server's postgres database to create ours")?;
    tokio::spawn(connection);
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match client.batch_execute(&statement).await {
        Ok(()) => {
            tracing::info!(database = %name, "Created the database.");
            Ok(())
        }
        // Another process created it between our two attempts: that is what we wanted. When
        // both CREATE DATABASE statements run at the same moment (services starting together on
        // a new server), PostgreSQL's name check passes for both and the loser meets the
        // catalog's unique index instead: unique_violation, not duplicate_database.
        Err(error)
            if error.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || error.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(error) => {
            Err(anyhow::Error::new(error)
                .context(format!("Failed to create the database {name:?}")))
        }
    }
}

/// Opens a connection and migrates the schema, as every service does at start.
pub async fn prepare(url: &Secret, migrate: bool) -> anyhow::Result<Client> {
    let mut client = connect_creating(url).await?;
    if migrate {
        migrate::run(&mut client).await?;
    }
    Ok(client)
}

/// True when an error means the connection is gone (and a new one should be opened).
pub fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        // No SQLSTATE: an I/O or protocol failure of the connection itself.
        None => true,
    }
}

/// A database error as one line for logs: the server's message and SQLSTATE when there is one
/// (tokio-postgres's own Display says only "db error").
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// Drops the database `name` on the server of `url` (connecting to its `postgres` database,
/// closing other sessions) and returns the URL that names it; the services create it again.
/// For the demo's and the benchmarks' own databases, never a production one.
pub async fn drop_database(url: &Secret, name: &str) -> anyhow::Result<Secret> {
    let admin = Secret::new(with_database(url.expose(), "postgres")?);
    connect(&admin)
        .await
        .context("Failed to connect to PostgreSQL")?
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .with_context(|| format!("Failed to drop the database {name:?}"))?;
    Ok(Secret::new(with_database(url.expose(), name)?))
}

/// Replaces the database name of a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").context("database URL has no scheme")? + 3;
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/gridwatch", "b").expect("url"),
            "postgres://u@h:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@h/x?sslmode=disable", "b").expect("url"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h", "b").expect("url"),
            "postgres://h/b"
        );
    }
}
