//! The shared store, on PostgreSQL: several server replicas work from one queue.
//!
//! A claim leases due deliveries with `FOR UPDATE SKIP LOCKED`, so replicas claiming at the
//! same moment each get different rows instead of waiting on each other, and a delivery
//! whose lease is live is never handed out twice. A replica that dies leaves leases that
//! simply expire. Accepts and rejects from concurrent requests are committed together (see
//! the `batch` module); the other operations are short statements of their own.

mod batch;
mod schema;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions as _, Connection as _};
use sqlx::{Row as _, query, query_scalar};
use tokio::sync::{mpsc, oneshot};

use crate::owned::{Body, element_text, millis, outcome_columns, sql_limit, storable};
use crate::*;
use batch::Write;

/// How long a call waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Statements slower than this are logged as warnings.
const SLOW_STATEMENT: Duration = Duration::from_secs(1);

/// The shared store.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    writes: mpsc::Sender<Write>,
}

impl PgStore {
    /// Connects to the database at `url`, creating or migrating the schema. Settings such
    /// as the schema go in the URL (`?options[search_path]=relay`).
    pub async fn open(url: &str, options: StoreOptions) -> Result<PgStore, StoreError> {
        let shown = redact_url(url);
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("invalid PostgreSQL URL {shown}: {e}")))?
            // Every statement at debug level would drown the relay's own logs.
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Warn, SLOW_STATEMENT);
        // One connection first, made once: a wrong URL or a database that is down fails the
        // start at once, with its reason, instead of after the pool's retries.
        let mut conn = connect
            .connect()
            .await
            .map_err(|e| StoreError::Open(format!("cannot connect to {shown}: {e}")))?;
        schema::migrate(&mut conn).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(connect);
        if let Err(error) = conn.close().await {
            log::debug!("closing the migration connection failed: {error}");
        }
        let (writes, queue) = mpsc::channel(batch::QUEUE);
        tokio::spawn(batch::run(
            pool.clone(),
            millis(options.dedup_window),
            queue,
        ));
        Ok(PgStore { pool, writes })
    }

    async fn write<T>(
        &self,
        write: Write,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.writes
            .send(write)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

pub(super) fn database(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolClosed => StoreError::Closed,
        error => StoreError::Database(Box::new(error)),
    }
}

const CLAIM: &str = "
    WITH due AS (
        SELECT id FROM deliveries
        WHERE target = $1 AND state IN ('pending', 'retrying') AND next_attempt_at <= $2
          AND (lease_until IS NULL OR lease_until <= $2)
        ORDER BY next_attempt_at, id
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    ), leased AS (
        UPDATE deliveries d SET lease_owner = $4, lease_until = $5, attempts = d.attempts + 1
        FROM due WHERE d.id = due.id
        RETURNING d.id, d.attempts, d.queued_at, d.next_attempt_at, d.notification_id
    )
    SELECT l.id, l.attempts, l.queued_at, n.identity,
           substring(b.body FROM (n.span_start + 1)::integer FOR n.span_len::integer) AS element
    FROM leased l
    JOIN notifications n ON n.id = l.notification_id
    JOIN bodies b ON b.id = n.body_id
    ORDER BY l.next_attempt_at, l.id";

const FINISH: &str = "
    UPDATE deliveries d
    SET state = f.state, next_attempt_at = f.next_attempt_at,
        last_error = COALESCE(f.error, d.last_error), lease_owner = NULL, lease_until = NULL,
        updated_at = $2
    FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[]) AS f(id, state, next_attempt_at, error)
    WHERE d.id = f.id AND d.lease_owner = $1 AND d.state IN ('pending', 'retrying')
    RETURNING d.id";

const LIST: &str = "
    SELECT d.id, d.target, d.state, d.attempts, n.identity, n.type_name, d.created_at, d.updated_at,
           d.next_attempt_at, d.last_error, d.lease_owner
    FROM deliveries d JOIN notifications n ON n.id = d.notification_id
    WHERE $1::text IS NULL OR d.state = $1
    ORDER BY d.updated_at DESC, d.id DESC
    LIMIT $2";

const REQUEUE: &str = "
    UPDATE deliveries
    SET state = 'pending', attempts = 0, next_attempt_at = $1, queued_at = $1, updated_at = $1,
        lease_owner = NULL, lease_until = NULL";

fn state_of(text: &str) -> Result<DeliveryState, StoreError> {
    DeliveryState::parse(text)
        .ok_or_else(|| StoreError::Database(format!("unknown delivery state {text:?}").into()))
}

fn record(row: &PgRow) -> Result<DeliveryRecord, StoreError> {
    let attempts: i32 = row.try_get("attempts").map_err(database)?;
    Ok(DeliveryRecord {
        id: row.try_get("id").map_err(database)?,
        target: row.try_get("target").map_err(database)?,
        state: state_of(row.try_get("state").map_err(database)?)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        identity: row.try_get("identity").map_err(database)?,
        type_name: row.try_get("type_name").map_err(database)?,
        created_at: row.try_get("created_at").map_err(database)?,
        updated_at: row.try_get("updated_at").map_err(database)?,
        next_attempt_at: row.try_get("next_attempt_at").map_err(database)?,
        last_error: row.try_get("last_error").map_err(database)?,
        lease_owner: row.try_get("lease_owner").map_err(database)?,
    })
}

#[async_trait]
impl Store for PgStore {
    async fn accept(&self, body: NewBody<'_>) -> Result<Accepted, StoreError> {
        let body = Body::check(&body)?;
        let (reply, answer) = oneshot::channel();
        self.write(Write::Accept { body, reply }, answer).await
    }

    async fn reject(
        &self,
        received_at: Millis,
        body: &[u8],
        reason: &str,
    ) -> Result<i64, StoreError> {
        let (reply, answer) = oneshot::channel();
        let write = Write::Reject {
            received_at,
            body: body.to_vec(),
            reason: storable(reason),
            reply,
        };
        self.write(write, answer).await
    }

    async fn claim(
        &self,
        owner: &str,
        now: Millis,
        lease: Duration,
        wants: &[(&str, usize)],
    ) -> Result<Vec<Claim>, StoreError> {
        let until = now.saturating_add(millis(lease));
        let mut claims = Vec::new();
        // One transaction for all the targets: one commit, not one per target.
        let mut tx = self.pool.begin().await.map_err(database)?;
        for (target, limit) in wants {
            if *limit == 0 {
                continue;
            }
            let rows = query(CLAIM)
                .bind(*target)
                .bind(now)
                .bind(sql_limit(*limit))
                .bind(owner)
                .bind(until)
                .fetch_all(&mut *tx)
                .await
                .map_err(database)?;
            for row in rows {
                let attempts: i32 = row.try_get("attempts").map_err(database)?;
                claims.push(Claim {
                    id: row.try_get("id").map_err(database)?,
                    target: (*target).to_owned(),
                    attempt: u32::try_from(attempts).unwrap_or(0),
                    created_at: row.try_get("queued_at").map_err(database)?,
                    identity: row.try_get("identity").map_err(database)?,
                    element: element_text(row.try_get("element").map_err(database)?),
                });
            }
        }
        tx.commit().await.map_err(database)?;
        Ok(claims)
    }

    async fn finish(
        &self,
        owner: &str,
        now: Millis,
        done: Vec<Finished>,
    ) -> Result<Vec<i64>, StoreError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(done.len());
        let mut states = Vec::with_capacity(done.len());
        let mut due = Vec::with_capacity(done.len());
        let mut errors = Vec::with_capacity(done.len());
        for finished in &done {
            let (state, next, error) = outcome_columns(&finished.outcome);
            ids.push(finished.id);
            states.push(state.as_str());
            due.push(next);
            errors.push(error);
        }
        let recorded: Vec<i64> = query_scalar(FINISH)
            .bind(owner)
            .bind(now)
            .bind(&ids)
            .bind(&states)
            .bind(&due)
            .bind(&errors)
            .fetch_all(&self.pool)
            .await
            .map_err(database)?;
        Ok(ids
            .into_iter()
            .filter(|id| !recorded.contains(id))
            .collect())
    }

    async fn release(&self, owner: &str, ids: &[i64]) -> Result<(), StoreError> {
        query("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, attempts = GREATEST(attempts - 1, 0) WHERE id = ANY($1) AND lease_owner = $2")
            .bind(ids)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn next_due(&self, targets: &[&str], now: Millis) -> Result<Option<Millis>, StoreError> {
        query_scalar(
            "SELECT MIN(CASE WHEN lease_until > $2 THEN GREATEST(lease_until, next_attempt_at)
                             ELSE next_attempt_at END)
             FROM deliveries
             WHERE target = ANY($1) AND state IN ('pending', 'retrying')",
        )
        .bind(targets)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(database)
    }

    async fn list(&self, query_: ListQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = query(LIST)
            .bind(query_.state.map(DeliveryState::as_str))
            .bind(sql_limit(query_.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(database)?;
        rows.iter().map(record).collect()
    }

    async fn requeue(&self, which: Requeue, now: Millis) -> Result<u64, StoreError> {
        let done =
            match which {
                Requeue::Ids(ids) => query(sqlx::AssertSqlSafe(format!(
                    "{REQUEUE} WHERE id = ANY($2) AND (lease_until IS NULL OR lease_until <= $1)"
                )))
                .bind(now)
                .bind(ids)
                .execute(&self.pool)
                .await,
                Requeue::AllDead => {
                    query(sqlx::AssertSqlSafe(format!(
                        "{REQUEUE} WHERE state = 'dead'"
                    )))
                    .bind(now)
                    .execute(&self.pool)
                    .await
                }
            };
        Ok(done.map_err(database)?.rows_affected())
    }

    async fn prune(&self, before: Millis, limit: usize) -> Result<u64, StoreError> {
        let limit = sql_limit(limit);
        let mut tx = self.pool.begin().await.map_err(database)?;
        let mut deleted = 0;
        for sql in [
            "DELETE FROM deliveries WHERE id IN (
                SELECT id FROM deliveries WHERE state = 'delivered' AND updated_at < $1 LIMIT $2)",
            "DELETE FROM dedup WHERE identity IN (
                SELECT identity FROM dedup WHERE seen_at < $1 LIMIT $2)",
            // Notifications go with their body (ON DELETE CASCADE).
            "DELETE FROM bodies WHERE id IN (
                SELECT id FROM bodies WHERE received_at < $1 AND NOT EXISTS (
                    SELECT 1 FROM notifications n JOIN deliveries d ON d.notification_id = n.id
                    WHERE n.body_id = bodies.id)
                LIMIT $2)",
        ] {
            deleted += query(sql)
                .bind(before)
                .bind(limit)
                .execute(&mut *tx)
                .await
                .map_err(database)?
                .rows_affected();
        }
        tx.commit().await.map_err(database)?;
        Ok(deleted)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
                .fetch_all(&self.pool)
                .await
                .map_err(database)?;
        let mut counts: Vec<(DeliveryState, u64)> =
            DeliveryState::ALL.iter().map(|s| (*s, 0)).collect();
        for (state, count) in rows {
            let state = state_of(&state)?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = u64::try_from(count).unwrap_or(0);
            }
        }
        Ok(counts)
    }
}
