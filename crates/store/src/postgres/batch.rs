//! Group commit on PostgreSQL: concurrent `accept` and `reject` calls share a transaction.
//!
//! Calls queue their writes on a channel; one task takes every write waiting there, writes
//! them all with a handful of statements in one transaction, and commits once before
//! answering them all. Should PostgreSQL still abort the transaction for a deadlock or a
//! serialization failure between replicas, the batch is simply run again: nothing was
//! answered yet.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};

use super::database;
use crate::owned::{Body, Notification};
use crate::{Accepted, Millis, StoreError};

/// Most writes in one transaction.
const MAX_BATCH: usize = 256;

/// Writes waiting for the committer; callers wait when it is full.
pub(super) const QUEUE: usize = 4096;

/// Times a batch is run again after a deadlock or a serialization failure.
const RETRIES: usize = 5;

/// A write waiting for the committer.
#[derive(Debug)]
pub(super) enum Write {
    Accept {
        body: Body,
        reply: oneshot::Sender<Result<Accepted, StoreError>>,
    },
    Reject {
        received_at: Millis,
        body: Vec<u8>,
        reason: String,
        reply: oneshot::Sender<Result<i64, StoreError>>,
    },
}

enum Written {
    Accepted(Accepted),
    Rejected(i64),
}

impl Write {
    /// Tells the caller. One that went away (a cancelled request) needs no answer.
    fn answer(self, result: Result<Written, StoreError>) {
        // Results come back in the order of the writes, one each, so the kinds always match.
        let mismatch = || StoreError::Database("the group commit mixed up two results".into());
        match self {
            Write::Accept { reply, .. } => {
                let _ = reply.send(result.and_then(|w| match w {
                    Written::Accepted(accepted) => Ok(accepted),
                    Written::Rejected(_) => Err(mismatch()),
                }));
            }
            Write::Reject { reply, .. } => {
                let _ = reply.send(result.and_then(|w| match w {
                    Written::Rejected(id) => Ok(id),
                    Written::Accepted(_) => Err(mismatch()),
                }));
            }
        }
    }
}

/// Commits batches until every sender is gone.
pub(super) async fn run(pool: PgPool, dedup_window: Millis, mut writes: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while writes.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = commit(&pool, dedup_window, &batch).await;
        for (write, result) in batch.drain(..).zip(results) {
            write.answer(result);
        }
    }
    // The store is gone: end the sessions cleanly rather than drop their sockets.
    pool.close().await;
}

/// Runs `batch` in one transaction, again while PostgreSQL asks for it, and returns one
/// result per write. If PostgreSQL refuses the batch for another reason, each write is run
/// alone, so that one bad write costs only its own caller. A connection failure is every
/// write's: it is answered at once, not tried write by write.
async fn commit(
    pool: &PgPool,
    dedup_window: Millis,
    batch: &[Write],
) -> Vec<Result<Written, StoreError>> {
    match with_retries(pool, dedup_window, batch).await {
        Ok(written) => written.into_iter().map(Ok).collect(),
        Err(error) if batch.len() == 1 || error.as_database_error().is_none() => {
            log::error!(
                "store group commit of {} writes failed: {error}",
                batch.len()
            );
            let message = error.to_string();
            batch
                .iter()
                .map(|_| Err(StoreError::Database(message.clone().into())))
                .collect()
        }
        Err(error) => {
            log::warn!(
                "store group commit of {} writes failed, committing them one by one: {error}",
                batch.len()
            );
            let mut results = Vec::with_capacity(batch.len());
            for write in batch {
                let alone = with_retries(pool, dedup_window, std::slice::from_ref(write)).await;
                results.push(
                    alone
                        .map_err(database)
                        .and_then(|mut w| w.pop().ok_or(StoreError::Closed)),
                );
            }
            results
        }
    }
}

async fn with_retries(
    pool: &PgPool,
    dedup_window: Millis,
    batch: &[Write],
) -> Result<Vec<Written>, sqlx::Error> {
    let mut tries = 0;
    loop {
        match try_commit(pool, dedup_window, batch).await {
            Err(error) if tries < RETRIES && is_conflict(&error) => {
                tries += 1;
                log::debug!(
                    "store group commit of {} writes conflicted, running it again: {error}",
                    batch.len()
                );
            }
            result => return result,
        }
    }
}

/// A deadlock or serialization failure: the same transaction may well succeed run again.
fn is_conflict(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// Writes the whole batch with a fixed number of statements, whatever its size: a round
/// trip per row would make the commit, not the disk, the bottleneck.
async fn try_commit(
    pool: &PgPool,
    dedup_window: Millis,
    batch: &[Write],
) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = pool.begin().await?;

    let body_ids = reserve(&mut tx, "bodies", batch.len()).await?;
    let mut received = Vec::with_capacity(batch.len());
    let mut bytes: Vec<&[u8]> = Vec::with_capacity(batch.len());
    let mut rejected = Vec::with_capacity(batch.len());
    for write in batch {
        let (at, body, reason) = match write {
            Write::Accept { body, .. } => (body.received_at, &body.bytes[..], None),
            Write::Reject {
                received_at,
                body,
                reason,
                ..
            } => (*received_at, body.as_slice(), Some(reason.as_str())),
        };
        received.push(at);
        bytes.push(body);
        rejected.push(reason);
    }
    sqlx::query(
        "INSERT INTO bodies (id, received_at, body, rejected) OVERRIDING SYSTEM VALUE
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[])",
    )
    .bind(&body_ids)
    .bind(&received)
    .bind(&bytes)
    .bind(&rejected)
    .execute(&mut *tx)
    .await?;

    let notifications: Vec<(usize, &Body, &Notification)> = batch
        .iter()
        .enumerate()
        .filter_map(|(index, write)| match write {
            Write::Accept { body, .. } => Some((index, body)),
            Write::Reject { .. } => None,
        })
        .flat_map(|(index, body)| body.notifications.iter().map(move |n| (index, body, n)))
        .collect();
    let notification_ids = reserve(&mut tx, "notifications", notifications.len()).await?;
    sqlx::query(
        "INSERT INTO notifications (id, body_id, span_start, span_len, identity, type_name) OVERRIDING SYSTEM VALUE
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[])",
    )
    .bind(&notification_ids)
    .bind(notifications.iter().map(|(index, ..)| body_ids[*index]).collect::<Vec<i64>>())
    .bind(notifications.iter().map(|(_, _, n)| n.span_start).collect::<Vec<i64>>())
    .bind(notifications.iter().map(|(_, _, n)| n.span_len).collect::<Vec<i64>>())
    .bind(notifications.iter().map(|(_, _, n)| n.identity.as_str()).collect::<Vec<&str>>())
    .bind(notifications.iter().map(|(_, _, n)| n.type_name.as_str()).collect::<Vec<&str>>())
    .execute(&mut *tx)
    .await?;

    let fresh = first_seen(&mut tx, dedup_window, &notifications).await?;

    let mut written: Vec<Written> = batch
        .iter()
        .zip(&body_ids)
        .map(|(write, id)| match write {
            Write::Accept { .. } => Written::Accepted(Accepted {
                body_id: *id,
                ..Accepted::default()
            }),
            Write::Reject { .. } => Written::Rejected(*id),
        })
        .collect();
    let (mut delivery_notifications, mut delivery_targets, mut delivery_times) =
        (Vec::new(), Vec::new(), Vec::new());
    for ((index, body, n), (notification_id, is_fresh)) in notifications
        .iter()
        .zip(notification_ids.iter().zip(&fresh))
    {
        let Written::Accepted(accepted) = &mut written[*index] else {
            continue;
        };
        if !is_fresh {
            accepted.duplicates += 1;
            continue;
        }
        accepted.fresh += 1;
        accepted.deliveries += n.targets.len();
        for target in &n.targets {
            delivery_notifications.push(*notification_id);
            delivery_targets.push(target.as_str());
            delivery_times.push(body.received_at);
        }
    }
    sqlx::query(
        "INSERT INTO deliveries (notification_id, target, state, attempts, next_attempt_at,
                                 created_at, queued_at, updated_at)
         SELECT n, t, 'pending', 0, at, at, at, at FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS d(n, t, at)",
    )
    .bind(&delivery_notifications)
    .bind(&delivery_targets)
    .bind(&delivery_times)
    .execute(&mut *tx)
    .await?;

    tx.commit().await?;
    Ok(written)
}

/// Takes `count` ids from `table`'s sequence, so that rows inserted together can refer to
/// each other without relying on the order of `RETURNING`.
async fn reserve(
    conn: &mut PgConnection,
    table: &str,
    count: usize,
) -> Result<Vec<i64>, sqlx::Error> {
    if count == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)",
    )
    .bind(table)
    .bind(i64::try_from(count).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await
}

/// Records the batch's identities and tells, for each notification, whether it is fresh: the
/// first of its identity in the batch, and new or last accepted before the window.
///
/// The upsert returns a row only when the identity is new or its last acceptance fell out of
/// the window; a duplicate keeps its first time, so re-sends cannot stretch the window. The
/// identities go in sorted, so that replicas lock the rows in one order and wait for each
/// other instead of deadlocking; a replica racing on an identity waits for the row's lock,
/// then sees it as a duplicate.
async fn first_seen(
    conn: &mut PgConnection,
    dedup_window: Millis,
    notifications: &[(usize, &Body, &Notification)],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut first: HashMap<&str, (usize, Millis)> = HashMap::new();
    for (position, (_, body, n)) in notifications.iter().enumerate() {
        first
            .entry(n.identity.as_str())
            .or_insert((position, body.received_at));
    }
    let mut identities: Vec<(&str, Millis)> = first
        .iter()
        .map(|(identity, (_, at))| (*identity, *at))
        .collect();
    identities.sort_unstable();
    let recorded: Vec<String> = sqlx::query_scalar(
        "INSERT INTO dedup (identity, seen_at)
         SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT (identity) DO UPDATE SET seen_at = EXCLUDED.seen_at
             WHERE dedup.seen_at <= EXCLUDED.seen_at - $3
         RETURNING identity",
    )
    .bind(
        identities
            .iter()
            .map(|(identity, _)| *identity)
            .collect::<Vec<&str>>(),
    )
    .bind(
        identities
            .iter()
            .map(|(_, at)| *at)
            .collect::<Vec<Millis>>(),
    )
    .bind(dedup_window)
    .fetch_all(conn)
    .await?;
    let mut fresh = vec![false; notifications.len()];
    for identity in &recorded {
        if let Some((position, _)) = first.get(identity.as_str()) {
            fresh[*position] = true;
        }
    }
    Ok(fresh)
}
