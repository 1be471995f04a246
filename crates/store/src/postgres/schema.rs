//! The PostgreSQL schema and its migrations, applied when the store opens.
//!
//! The same logical schema as SQLite's, in PostgreSQL's types: times are `BIGINT`
//! milliseconds given by the callers, bodies `BYTEA`. Replicas starting together take a
//! transaction-scoped advisory lock first, so that one migrates and the others then find the
//! schema current. The lock is keyed by the schema in use, so that stores in different
//! schemas of one database do not wait for each other.

use sqlx::{Connection as _, PgConnection, Postgres, Transaction};

use crate::{SCHEMA_VERSION, StoreError};

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: bodies are kept once, raw; notifications point into them by span; one delivery per
    // notification and target.
    "CREATE TABLE bodies (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at BIGINT NOT NULL,
        body BYTEA NOT NULL,
        rejected TEXT
    );
    CREATE INDEX bodies_received_at ON bodies (received_at);

    CREATE TABLE notifications (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        body_id BIGINT NOT NULL REFERENCES bodies (id) ON DELETE CASCADE,
        span_start BIGINT NOT NULL,
        span_len BIGINT NOT NULL,
        identity TEXT NOT NULL,
        type_name TEXT NOT NULL
    );
    CREATE INDEX notifications_body ON notifications (body_id);

    CREATE TABLE dedup (
        identity TEXT PRIMARY KEY,
        seen_at BIGINT NOT NULL
    );
    CREATE INDEX dedup_seen_at ON dedup (seen_at);

    CREATE TABLE deliveries (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        notification_id BIGINT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'retrying', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        lease_owner TEXT,
        lease_until BIGINT,
        last_error TEXT,
        created_at BIGINT NOT NULL,
        queued_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE INDEX deliveries_due ON deliveries (target, next_attempt_at, id)
        WHERE state IN ('pending', 'retrying');
    CREATE INDEX deliveries_state ON deliveries (state, updated_at);
    CREATE INDEX deliveries_updated ON deliveries (updated_at);
    CREATE INDEX deliveries_notification ON deliveries (notification_id);
    CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;",
    // 2: two indexes that every insert and finish updated and no query needed: listing
    // everything by time sorts, and leases are looked up by id.
    "DROP INDEX deliveries_updated;
    DROP INDEX deliveries_leased;",
];

/// Brings the schema up to [`SCHEMA_VERSION`], in one transaction.
pub(super) async fn migrate(conn: &mut PgConnection) -> Result<(), StoreError> {
    let mut tx = conn.begin().await.map_err(open_error)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sqreen-webhook-store ' || COALESCE(current_schema(), '')))")
        .execute(&mut *tx)
        .await
        .map_err(open_error)?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(open_error)?;
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(open_error)?;
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(open_error)?;
        log::info!("store schema migrated to version {}", index + 1);
    }
    if found < SCHEMA_VERSION {
        set_version(&mut tx).await.map_err(open_error)?;
    }
    tx.commit().await.map_err(open_error)
}

async fn set_version(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM schema_version")
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
        .bind(SCHEMA_VERSION)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn open_error(error: sqlx::Error) -> StoreError {
    StoreError::Open(format!("cannot migrate the schema: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_reach_the_schema_version() {
        assert_eq!(i64::try_from(MIGRATIONS.len()).unwrap(), SCHEMA_VERSION);
    }
}
