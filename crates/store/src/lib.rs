//! Durable storage for the relay: the bodies Sqreen sent, the notifications in them, and one
//! delivery per notification and target, with its state, attempts and lease.
//!
//! The [`Store`] trait is what the server and the delivery engine use; [`open`] picks an
//! implementation from a URL:
//! - `sqlite://path/to/file.db`: embedded, the default, for one server process;
//! - `postgres://user@host/db`: shared by several server replicas.
//!
//! # Guarantees every implementation gives
//!
//! - [`Store::accept`] returns only once the body, its notifications and their deliveries
//!   are committed. Concurrent calls are committed together (group commit), so durability
//!   costs one commit per batch of requests, not one per request.
//! - A notification whose identity was accepted within the de-duplication window is counted
//!   as a duplicate and gets no deliveries.
//! - A delivery is handed to one claimer at a time: [`Store::claim`] leases it to an owner
//!   until the lease expires. Only the owner of the lease can [`Store::finish`] it, and only
//!   while nobody else has claimed the delivery since; a crashed owner's leases expire and the
//!   deliveries are claimed again.
//! - Times are given by the caller, in milliseconds since the Unix epoch, so that tests can
//!   control the clock. Implementations never read the clock for decisions.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

mod owned;
pub mod postgres;
pub mod sqlite;

/// The version of the schema this code creates and understands. Both implementations keep
/// the same logical schema at the same version.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A request body to accept: what Sqreen sent, and what the server made of it.
#[derive(Debug, Clone)]
pub struct NewBody<'a> {
    pub received_at: Millis,
    /// The raw bytes, kept as received. Shared rather than borrowed, so that the store keeps
    /// the request's own buffer instead of copying a body of up to megabytes.
    pub body: Bytes,
    pub notifications: Vec<NewNotification<'a>>,
}

/// One notification of a body, and the targets that want it.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    /// The core's identity, for de-duplication.
    pub identity: &'a str,
    pub type_name: &'a str,
    /// Where the element lies in the body: the store keeps the body once, not each element.
    pub span: Range<usize>,
    /// Names of the targets to deliver it to. May be empty (no target wanted it).
    pub targets: Vec<&'a str>,
}

/// What [`Store::accept`] committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted {
    pub body_id: i64,
    /// Notifications seen for the first time within the window.
    pub fresh: usize,
    /// Notifications already accepted within the window: no deliveries were made for them.
    pub duplicates: usize,
    /// Deliveries created.
    pub deliveries: usize,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not attempted yet.
    Pending,
    /// Attempted, failed, and due again at `next_attempt_at`.
    Retrying,
    /// The target accepted it.
    Delivered,
    /// No further attempt will be made unless a person requeues it.
    Dead,
}

impl DeliveryState {
    /// Every state, in the order of a delivery's life.
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Retrying,
        DeliveryState::Delivered,
        DeliveryState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery leased to a claimer, with what it needs to make the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: i64,
    pub target: String,
    /// The number of this attempt, starting at 1.
    pub attempt: u32,
    /// When the delivery was created, or last requeued by a person: retries stop after a
    /// maximum age, and a requeued delivery gets a whole new schedule.
    pub created_at: Millis,
    pub identity: String,
    /// The notification's element, as it was in the body.
    pub element: String,
}

/// How an attempt ended, as decided by the delivery engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; due again at `at`.
    Retry {
        at: Millis,
        error: String,
    },
    /// Failed for good.
    Dead {
        error: String,
    },
}

/// The outcome of one claimed delivery's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub id: i64,
    pub outcome: Outcome,
}

/// A delivery as listed for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub target: String,
    pub state: DeliveryState,
    /// Attempts started so far: each claim counts one, so that a delivery whose attempts
    /// keep ending with the process still runs out of attempts.
    pub attempts: u32,
    pub identity: String,
    pub type_name: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When it is due, for pending and retrying deliveries.
    pub next_attempt_at: Option<Millis>,
    pub last_error: Option<String>,
    /// The owner of a live or expired lease, if any.
    pub lease_owner: Option<String>,
}

/// Which deliveries to list, most recently updated first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// At most this many; 0 means no limit.
    pub limit: usize,
}

/// Which deliveries to put back in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    /// These deliveries, whatever their state, unless leased right now.
    Ids(Vec<i64>),
    /// Every dead delivery.
    AllDead,
}

/// How much of the recent past a crash may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A commit survives the process being killed (`kill -9`, a panic, an OOM kill). A power
    /// loss or kernel crash may lose the last commits (SQLite: WAL with `synchronous=NORMAL`).
    #[default]
    Process,
    /// A commit survives a power loss too, at the cost of one fsync per group commit
    /// (SQLite: `synchronous=FULL`). PostgreSQL follows its own `synchronous_commit`.
    PowerLoss,
}

/// Whether the process opening the store runs deliveries or only inspects the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// A server. With SQLite, at most one server may use a database file at a time; it
    /// takes a lock file and, since no other server can hold leases, releases the leases
    /// left by a server that died.
    #[default]
    Server,
    /// A command-line tool listing or requeueing deliveries next to a running server.
    Tool,
}

/// Settings shared by every implementation.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A notification already accepted this recently is a duplicate.
    pub dedup_window: Duration,
    pub durability: Durability,
    pub role: Role,
    /// Most connections to PostgreSQL.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            dedup_window: Duration::from_secs(24 * 3600),
            durability: Durability::default(),
            role: Role::default(),
            max_connections: 8,
        }
    }
}

/// A store failure. The message never contains a password from the URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store URL {0:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("the database {0} is used by another server process (its lock file is held)")]
    Locked(String),
    #[error("cannot open the store: {0}")]
    Open(String),
    #[error(
        "the store was created by a newer version (schema {found}, this version knows up to {known})"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("invalid input to the store: {0}")]
    Invalid(String),
    #[error("store operation failed: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the store is shut down")]
    Closed,
}

/// The storage behind the relay. See the module documentation for the guarantees.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commits a body, its notifications and their deliveries, and de-duplicates the
    /// notifications against the window. New deliveries are pending and due at
    /// `received_at`.
    async fn accept(&self, body: NewBody<'_>) -> Result<Accepted, StoreError>;

    /// Keeps a signed body that could not be parsed, with the reason, for inspection.
    async fn reject(
        &self,
        received_at: Millis,
        body: &[u8],
        reason: &str,
    ) -> Result<i64, StoreError>;

    /// Leases up to `limit` due deliveries of each named target to `owner` until
    /// `now + lease`. Due means pending or retrying, `next_attempt_at <= now`, and not under
    /// a live lease. Oldest due first. Each claim counts an attempt.
    async fn claim(
        &self,
        owner: &str,
        now: Millis,
        lease: Duration,
        wants: &[(&str, usize)],
    ) -> Result<Vec<Claim>, StoreError>;

    /// Records attempts' outcomes and ends their leases. An outcome is recorded only if
    /// `owner` still holds the delivery's lease, that is if nobody else claimed it since (a
    /// lease that expired unclaimed still counts: the outcome is worth more than a repeat);
    /// returns the ids that were not recorded (their lease was lost).
    async fn finish(
        &self,
        owner: &str,
        now: Millis,
        done: Vec<Finished>,
    ) -> Result<Vec<i64>, StoreError>;

    /// Ends `owner`'s leases on these deliveries and takes back the attempt their claim
    /// counted, so that they can be claimed again at once (a graceful shutdown).
    async fn release(&self, owner: &str, ids: &[i64]) -> Result<(), StoreError>;

    /// The earliest time at which one of these targets' deliveries becomes due: its
    /// `next_attempt_at`, or the end of the live lease holding it. `None` if none is waiting.
    async fn next_due(&self, targets: &[&str], now: Millis) -> Result<Option<Millis>, StoreError>;

    /// Lists deliveries, most recently updated first.
    async fn list(&self, query: ListQuery) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Makes deliveries pending and due at `now`, with their attempts reset to 0 and their
    /// age counted from `now`. Returns how many were requeued.
    async fn requeue(&self, which: Requeue, now: Millis) -> Result<u64, StoreError>;

    /// Deletes delivered deliveries, de-duplication entries and bodies with nothing left to
    /// deliver, last touched before `before`: at most `limit` of each (0 means no limit), so
    /// that a large backlog is pruned in steps with other work in between. Dead and waiting
    /// deliveries are kept. Returns how many deliveries, de-duplication entries and bodies
    /// were deleted, together: 0 once nothing is left to prune.
    ///
    /// `before` must lie at least the de-duplication window in the past, or identities still
    /// inside the window are forgotten and their re-sends delivered again.
    async fn prune(&self, before: Millis, limit: usize) -> Result<u64, StoreError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Counts deliveries by state: every state once, in the order of [`DeliveryState`], zeros
    /// included.
    async fn counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError>;
}

/// Opens (and creates or migrates) the store at `url`.
pub async fn open(url: &str, options: StoreOptions) -> Result<Box<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Box::new(sqlite::SqliteStore::open(path, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(postgres::PgStore::open(url, options).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// The URL with any password replaced by `[redacted]`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_the_password_only() {
        assert_eq!(
            redact_url("postgres://bob:pw@db:5432/relay"),
            "postgres://bob:[redacted]@db:5432/relay"
        );
        assert_eq!(
            redact_url("postgres://bob@db/relay"),
            "postgres://bob@db/relay"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
