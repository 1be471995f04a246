//! The store's operations as SQL on one SQLite connection.
//!
//! Every function runs inside the writer's group-commit transaction (or a savepoint of it),
//! so none of them begins or commits anything. Statements are cached on the connection:
//! the writer runs the same few thousands of times.

use std::collections::HashSet;

use rusqlite::{Connection, params};

use crate::owned::{Body, element_text, outcome_columns, sql_limit};
use crate::{Accepted, Claim, DeliveryRecord, DeliveryState, Finished, ListQuery, Millis, Requeue};

pub(super) fn accept(
    conn: &Connection,
    body: &Body,
    dedup_cutoff: Millis,
) -> rusqlite::Result<Accepted> {
    // No RETURNING here: SQLite builds a temporary table for each statement that has one,
    // which cost more than the insert itself.
    let body_id = insert_body(conn, body.received_at, &body.bytes, None)?;
    let mut insert_notification = conn.prepare_cached(
        "INSERT INTO notifications (body_id, span_start, span_len, identity, type_name)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    // The upsert changes a row only when the identity is new or its last acceptance fell out
    // of the window; a duplicate keeps its first time, so re-sends cannot stretch the window.
    let mut first_seen = conn.prepare_cached(
        "INSERT INTO dedup (identity, seen_at) VALUES (?1, ?2)
         ON CONFLICT (identity) DO UPDATE SET seen_at = excluded.seen_at WHERE dedup.seen_at <= ?3",
    )?;
    let mut insert_delivery = conn.prepare_cached(
        "INSERT INTO deliveries (notification_id, target, state, attempts, next_attempt_at,
                                 created_at, queued_at, updated_at)
         VALUES (?1, ?2, 'pending', 0, ?3, ?3, ?3, ?3)",
    )?;
    let mut accepted = Accepted {
        body_id,
        ..Accepted::default()
    };
    // An identity twice in one body is a duplicate whatever the window, even an empty one.
    let mut in_this_body = HashSet::new();
    for n in &body.notifications {
        insert_notification.execute(params![
            body_id,
            n.span_start,
            n.span_len,
            n.identity,
            n.type_name
        ])?;
        let notification_id = conn.last_insert_rowid();
        let fresh = in_this_body.insert(n.identity.as_str())
            && first_seen.execute(params![n.identity, body.received_at, dedup_cutoff])? == 1;
        if !fresh {
            accepted.duplicates += 1;
            continue;
        }
        accepted.fresh += 1;
        for target in &n.targets {
            insert_delivery.execute(params![notification_id, target, body.received_at])?;
            accepted.deliveries += 1;
        }
    }
    Ok(accepted)
}

pub(super) fn reject(
    conn: &Connection,
    received_at: Millis,
    body: &[u8],
    reason: &str,
) -> rusqlite::Result<i64> {
    insert_body(conn, received_at, body, Some(reason))
}

/// Inserts a body and returns its id. The bytes are written straight into the row's pages
/// through a blob handle: bound as a parameter, a body is copied twice more on its way in
/// (the binding, then the record), which for a batch of a thousand events is 1.6 MB.
fn insert_body(
    conn: &Connection,
    received_at: Millis,
    bytes: &[u8],
    rejected: Option<&str>,
) -> rusqlite::Result<i64> {
    let len = i64::try_from(bytes.len())
        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(1, i64::MAX))?;
    conn.prepare_cached(
        "INSERT INTO bodies (received_at, body, rejected) VALUES (?1, zeroblob(?2), ?3)",
    )?
    .execute(params![received_at, len, rejected])?;
    let id = conn.last_insert_rowid();
    if !bytes.is_empty() {
        conn.blob_open("main", "bodies", "body", id, false)?
            .write_all_at(bytes, 0)?;
    }
    Ok(id)
}

pub(super) fn claim(
    conn: &Connection,
    owner: &str,
    now: Millis,
    lease_until: Millis,
    wants: &[(String, usize)],
) -> rusqlite::Result<Vec<Claim>> {
    let mut due = conn.prepare_cached(
        "SELECT d.id, d.attempts, d.queued_at, n.identity, n.body_id, n.span_start, n.span_len
         FROM deliveries d
         JOIN notifications n ON n.id = d.notification_id
         WHERE d.target = ?1 AND d.state IN ('pending', 'retrying') AND d.next_attempt_at <= ?2
           AND (d.lease_until IS NULL OR d.lease_until <= ?2)
         ORDER BY d.next_attempt_at, d.id
         LIMIT ?3",
    )?;
    let mut lease = conn
        .prepare_cached("UPDATE deliveries SET lease_owner = ?2, lease_until = ?3, attempts = attempts + 1 WHERE id = ?1")?;
    let mut elements = Elements::new(conn);
    let mut claims = Vec::new();
    for (target, limit) in wants {
        if *limit == 0 {
            continue;
        }
        let rows = due.query_map(params![target, now, sql_limit(*limit)], |row| {
            let claim = Claim {
                id: row.get(0)?,
                target: target.clone(),
                attempt: row.get::<_, u32>(1)?.saturating_add(1),
                created_at: row.get(2)?,
                identity: row.get(3)?,
                element: String::new(),
            };
            let span: Span = (row.get(4)?, row.get(5)?, row.get(6)?);
            Ok((claim, span))
        })?;
        // Collected before leasing: SQLite leaves undefined what a statement still stepping
        // sees of rows changed under it.
        let due_now = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        for (mut claim, span) in due_now {
            lease.execute(params![claim.id, owner, lease_until])?;
            claim.element = elements.read(span)?;
            claims.push(claim);
        }
    }
    Ok(claims)
}

/// Where an element lies: its body's id, its first byte and its length.
type Span = (i64, i64, i64);

/// Reads elements out of their bodies through one blob handle, moved from body to body.
/// Selecting `substr(body, …)` would load the whole body for every element: a thousand
/// times 800 KB for a full Sqreen batch.
struct Elements<'c> {
    conn: &'c Connection,
    open: Option<(i64, rusqlite::blob::Blob<'c>)>,
}

impl<'c> Elements<'c> {
    fn new(conn: &'c Connection) -> Elements<'c> {
        Elements { conn, open: None }
    }

    fn read(&mut self, (body_id, start, len): Span) -> rusqlite::Result<String> {
        let blob = match &mut self.open {
            Some((open_id, blob)) if *open_id == body_id => blob,
            Some((open_id, blob)) => {
                blob.reopen(body_id)?;
                *open_id = body_id;
                blob
            }
            None => {
                let blob = self
                    .conn
                    .blob_open("main", "bodies", "body", body_id, true)?;
                &mut self.open.insert((body_id, blob)).1
            }
        };
        let out_of_range = || rusqlite::Error::IntegralValueOutOfRange(5, start);
        let start = usize::try_from(start).map_err(|_| out_of_range())?;
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        let mut bytes = vec![0; len];
        blob.read_at_exact(&mut bytes, start)?;
        Ok(element_text(bytes))
    }
}

/// Returns the ids whose lease `owner` no longer held.
pub(super) fn finish(
    conn: &Connection,
    owner: &str,
    now: Millis,
    done: &[Finished],
) -> rusqlite::Result<Vec<i64>> {
    let mut record = conn.prepare_cached(
        "UPDATE deliveries
         SET state = ?3, next_attempt_at = ?4,
             last_error = COALESCE(?5, last_error), lease_owner = NULL, lease_until = NULL,
             updated_at = ?6
         WHERE id = ?1 AND lease_owner = ?2 AND state IN ('pending', 'retrying')",
    )?;
    let mut lost = Vec::new();
    for finished in done {
        let (state, next, error) = outcome_columns(&finished.outcome);
        if record.execute(params![
            finished.id,
            owner,
            state.as_str(),
            next,
            error,
            now
        ])? == 0
        {
            lost.push(finished.id);
        }
    }
    Ok(lost)
}

pub(super) fn release(conn: &Connection, owner: &str, ids: &[i64]) -> rusqlite::Result<()> {
    let mut release = conn.prepare_cached(
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, attempts = MAX(attempts - 1, 0)
         WHERE id = ?1 AND lease_owner = ?2",
    )?;
    for id in ids {
        release.execute(params![id, owner])?;
    }
    Ok(())
}

/// Ends every lease: only for a server that holds the lock file, so no other server can be
/// working on them.
pub(super) fn release_all(conn: &Connection) -> rusqlite::Result<usize> {
    // Only waiting deliveries hold leases: finishing one ends its lease.
    conn.execute(
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
         WHERE state IN ('pending', 'retrying') AND lease_owner IS NOT NULL",
        [],
    )
}

pub(super) fn next_due(
    conn: &Connection,
    targets: &[String],
    now: Millis,
) -> rusqlite::Result<Option<Millis>> {
    let mut earliest = conn.prepare_cached(
        "SELECT MIN(CASE WHEN lease_until > ?2 THEN MAX(lease_until, next_attempt_at) ELSE next_attempt_at END)
         FROM deliveries
         WHERE target = ?1 AND state IN ('pending', 'retrying')",
    )?;
    let mut due: Option<Millis> = None;
    for target in targets {
        let at: Option<Millis> = earliest.query_row(params![target, now], |row| row.get(0))?;
        due = match (due, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(due)
}

pub(super) fn list(conn: &Connection, query: &ListQuery) -> rusqlite::Result<Vec<DeliveryRecord>> {
    const COLUMNS: &str =
        "SELECT d.id, d.target, d.state, d.attempts, n.identity, n.type_name, d.created_at,
                d.updated_at, d.next_attempt_at, d.last_error, d.lease_owner
         FROM deliveries d JOIN notifications n ON n.id = d.notification_id";
    let limit = sql_limit(query.limit);
    let map = |row: &rusqlite::Row<'_>| {
        let state: String = row.get(2)?;
        Ok(DeliveryRecord {
            id: row.get(0)?,
            target: row.get(1)?,
            state: DeliveryState::parse(&state).ok_or_else(|| unknown_state(2, state))?,
            attempts: row.get(3)?,
            identity: row.get(4)?,
            type_name: row.get(5)?,
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
            next_attempt_at: row.get(8)?,
            last_error: row.get(9)?,
            lease_owner: row.get(10)?,
        })
    };
    match query.state {
        Some(state) => conn
            .prepare_cached(&format!(
                "{COLUMNS} WHERE d.state = ?1 ORDER BY d.updated_at DESC, d.id DESC LIMIT ?2"
            ))?
            .query_map(params![state.as_str(), limit], map)?
            .collect(),
        None => conn
            .prepare_cached(&format!(
                "{COLUMNS} ORDER BY d.updated_at DESC, d.id DESC LIMIT ?1"
            ))?
            .query_map(params![limit], map)?
            .collect(),
    }
}

fn unknown_state(column: usize, state: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("unknown delivery state {state:?}").into(),
    )
}

pub(super) fn requeue(conn: &Connection, which: &Requeue, now: Millis) -> rusqlite::Result<u64> {
    const SET: &str = "UPDATE deliveries
         SET state = 'pending', attempts = 0, next_attempt_at = ?1, queued_at = ?1, updated_at = ?1,
             lease_owner = NULL, lease_until = NULL";
    let changed = match which {
        Requeue::Ids(ids) => {
            let mut one = conn.prepare_cached(&format!(
                "{SET} WHERE id = ?2 AND (lease_until IS NULL OR lease_until <= ?1)"
            ))?;
            let mut changed = 0;
            for id in ids {
                changed += one.execute(params![now, id])?;
            }
            changed
        }
        Requeue::AllDead => conn
            .prepare_cached(&format!("{SET} WHERE state = 'dead'"))?
            .execute(params![now])?,
    };
    Ok(changed as u64)
}

pub(super) fn prune(conn: &Connection, before: Millis, limit: usize) -> rusqlite::Result<u64> {
    let limit = sql_limit(limit);
    let deliveries = conn
        .prepare_cached(
            "DELETE FROM deliveries WHERE id IN (
                SELECT id FROM deliveries WHERE state = 'delivered' AND updated_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?;
    let dedup = conn
        .prepare_cached(
            "DELETE FROM dedup WHERE identity IN (
                SELECT identity FROM dedup WHERE seen_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])?;
    // Notifications go with their body (ON DELETE CASCADE).
    let bodies = conn
        .prepare_cached(
            "DELETE FROM bodies WHERE id IN (
                SELECT id FROM bodies WHERE received_at < ?1 AND NOT EXISTS (
                    SELECT 1 FROM notifications n JOIN deliveries d ON d.notification_id = n.id
                    WHERE n.body_id = bodies.id)
                LIMIT ?2)",
        )?
        .execute(params![before, limit])?;
    Ok((deliveries + dedup + bodies) as u64)
}

pub(super) fn counts(conn: &Connection) -> rusqlite::Result<Vec<(DeliveryState, u64)>> {
    let mut counts: Vec<(DeliveryState, u64)> =
        DeliveryState::ALL.iter().map(|s| (*s, 0)).collect();
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM deliveries GROUP BY state")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
    })?;
    for row in rows {
        let (state, count) = row?;
        let state = DeliveryState::parse(&state).ok_or_else(|| unknown_state(0, state))?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
            slot.1 = count;
        }
    }
    Ok(counts)
}
