//! The SQLite schema and its migrations, applied when the store opens.
//!
//! Each entry of [`MIGRATIONS`] takes the schema from the version before it to its own
//! (entry 0 makes version 1). The version lives in a `schema_version` table, as on
//! PostgreSQL, so that both databases read the same way.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::{SCHEMA_VERSION, StoreError};

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: bodies are kept once, raw; notifications point into them by span; one delivery per
    // notification and target. Ids are AUTOINCREMENT so that a pruned id is never handed
    // out again: people quote them to `server retry`.
    "CREATE TABLE bodies (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at INTEGER NOT NULL,
        body BLOB NOT NULL,
        rejected TEXT
    );
    CREATE INDEX bodies_received_at ON bodies (received_at);

    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        body_id INTEGER NOT NULL REFERENCES bodies (id) ON DELETE CASCADE,
        span_start INTEGER NOT NULL,
        span_len INTEGER NOT NULL,
        identity TEXT NOT NULL,
        type_name TEXT NOT NULL
    );
    CREATE INDEX notifications_body ON notifications (body_id);

    CREATE TABLE dedup (
        identity TEXT PRIMARY KEY,
        seen_at INTEGER NOT NULL
    );
    CREATE INDEX dedup_seen_at ON dedup (seen_at);

    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'retrying', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER,
        lease_owner TEXT,
        lease_until INTEGER,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        queued_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX deliveries_due ON deliveries (target, next_attempt_at, id)
        WHERE state IN ('pending', 'retrying');
    CREATE INDEX deliveries_state ON deliveries (state, updated_at);
    CREATE INDEX deliveries_updated ON deliveries (updated_at);
    CREATE INDEX deliveries_notification ON deliveries (notification_id);
    CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;",
    // 2: fewer b-trees written per accepted notification. De-duplication entries are found by
    // identity only, so the identity is their key (no rowid beside it). Listing everything by
    // time sorts instead of keeping an index that every insert and finish updated, and leases,
    // held only by waiting deliveries, are found through the due index.
    "CREATE TABLE dedup_keyed (
        identity TEXT PRIMARY KEY,
        seen_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO dedup_keyed (identity, seen_at) SELECT identity, seen_at FROM dedup;
    DROP TABLE dedup;
    ALTER TABLE dedup_keyed RENAME TO dedup;
    CREATE INDEX dedup_seen_at ON dedup (seen_at);
    DROP INDEX deliveries_updated;
    DROP INDEX deliveries_leased;",
];

/// Brings the schema up to [`SCHEMA_VERSION`], in one transaction so that a crash midway
/// leaves the previous version intact.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_error)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(open_error)?;
    let found: i64 = tx
        .query_row("SELECT MAX(version) FROM schema_version", [], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .optional()
        .map_err(open_error)?
        .flatten()
        .unwrap_or(0);
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
        tx.execute_batch(sql).map_err(open_error)?;
        log::info!("store schema migrated to version {}", index + 1);
    }
    if found < SCHEMA_VERSION {
        tx.execute("DELETE FROM schema_version", [])
            .map_err(open_error)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [SCHEMA_VERSION],
        )
        .map_err(open_error)?;
    }
    tx.commit().map_err(open_error)
}

fn open_error(error: rusqlite::Error) -> StoreError {
    StoreError::Open(format!("cannot migrate the schema: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_reach_the_schema_version() {
        assert_eq!(i64::try_from(MIGRATIONS.len()).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_database_of_the_first_version_keeps_its_entries_when_migrated() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (1);
             INSERT INTO dedup (identity, seen_at) VALUES ('evt-1', 42);",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let seen: i64 = conn
            .query_row(
                "SELECT seen_at FROM dedup WHERE identity = 'evt-1'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(seen, 42);
        let dedup: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'dedup'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(dedup.contains("WITHOUT ROWID"), "{dedup}");
    }
}
