//! The embedded store, on one SQLite file: the default, for a single server process.
//!
//! One thread owns the connection and commits the operations of concurrent callers together
//! (see the `writer` module). The database runs in WAL mode, so that a tool can read it next
//! to the server, with `synchronous=NORMAL` or `FULL` as [`Durability`] asks. A server takes an
//! exclusive lock on `PATH.lock` for as long as the store is open: two servers on one file
//! would hand the same delivery out twice, since neither could tell the other's leases from
//! a dead process's. Holding the lock also proves that every lease in the file belongs to a
//! process that is gone, so a server releases them all when it opens.

mod ops;
mod schema;
mod writer;

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;

use crate::owned::{Body, millis, storable};
use crate::*;
use writer::Writer;

/// How long a statement waits for another connection's write lock (a tool's, or a server's
/// seen from a tool) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// WAL pages that make a commit checkpoint (see `configure`).
const WAL_CHECKPOINT_PAGES: i64 = 500;

/// The embedded store.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    dedup_window: Millis,
    writer: Writer,
}

impl SqliteStore {
    /// Opens the database at `path` (a file name, as in `sqlite://PATH`), creating it, its
    /// parent directories and its schema if needed, and migrating an older schema.
    pub async fn open(path: &str, options: StoreOptions) -> Result<SqliteStore, StoreError> {
        if path.is_empty() {
            return Err(StoreError::Open(
                "the SQLite URL names no file: expected sqlite://PATH".into(),
            ));
        }
        let file = PathBuf::from(path);
        if options.role == Role::Tool && !file.exists() {
            // A tool that created an empty database would report "no deliveries" for a
            // mistyped path instead of the mistake.
            return Err(StoreError::Open(format!(
                "there is no database at {}: check store.url, or start the server once to create it",
                file.display()
            )));
        }
        let setup_file = file.clone();
        let dedup_window = millis(options.dedup_window);
        let writer = Writer::start("sqreen-webhook-store".into(), move || {
            setup(&setup_file, &options)
        })
        .await?;
        Ok(SqliteStore {
            path: file,
            dedup_window,
            writer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Runs on the writer thread before it takes jobs.
fn setup(path: &Path, options: &StoreOptions) -> Result<(Connection, Option<File>), StoreError> {
    let shown = path.display().to_string();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Open(format!(
                "cannot create the directory {}: {e}",
                parent.display()
            ))
        })?;
    }
    let lock = match options.role {
        Role::Server => Some(lock(path)?),
        Role::Tool => None,
    };
    let mut conn = Connection::open(path)
        .map_err(|e| StoreError::Open(format!("cannot open the database {shown}: {e}")))?;
    configure(&conn, options.durability)
        .map_err(|e| StoreError::Open(format!("cannot configure {shown}: {e}")))?;
    schema::migrate(&mut conn)?;
    if options.role == Role::Server {
        let released = ops::release_all(&conn).map_err(|e| {
            StoreError::Open(format!(
                "cannot release the leases of a previous server: {e}"
            ))
        })?;
        if released > 0 {
            log::info!("released {released} leases left by a previous server");
        }
    }
    Ok((conn, lock))
}

fn lock(path: &Path) -> Result<File, StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::Open(format!(
                "cannot open the lock file {}: {e}",
                lock_path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(path.display().to_string())),
        Err(TryLockError::Error(e)) => Err(StoreError::Open(format!(
            "cannot lock the lock file {}: {e}",
            lock_path.display()
        ))),
    }
}

fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!(
            "the database refused WAL mode (journal mode {mode}): tools will wait for the server"
        );
    }
    let synchronous = match durability {
        Durability::Process => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Each job runs in a savepoint, whose journal would otherwise be a temporary file
    // written on every job: in memory it costs no system call.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The writer mostly appends: bodies to new pages, ids to the right edge of each index. A
    // 1 MiB page cache holds those as well as the 2 MiB default does (same accepts per
    // second), and a flood of large bodies then costs a megabyte less.
    conn.pragma_update(None, "cache_size", -1024)?;
    // The commit that finds the WAL at this many pages copies it back into the file while
    // the next batch waits, and its fsync also holds up the WAL writes behind it. Half of
    // SQLite's default keeps each such pause short: answer p99 at 1,000 req/s fell from
    // 4-6 ms to about 3 ms. A quarter of it did better still (2.5 ms) but left too little
    // of the writer for deliveries at 10,000 a second; a checkpoint thread of its own was
    // worse (its fsyncs stalled the writer's WAL writes: p99 11-30 ms).
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn accept(&self, body: NewBody<'_>) -> Result<Accepted, StoreError> {
        let body = Body::check(&body)?;
        let cutoff = body.received_at.saturating_sub(self.dedup_window);
        self.writer
            .call(move |conn| ops::accept(conn, &body, cutoff))
            .await
    }

    async fn reject(
        &self,
        received_at: Millis,
        body: &[u8],
        reason: &str,
    ) -> Result<i64, StoreError> {
        let (body, reason) = (body.to_vec(), storable(reason));
        self.writer
            .call(move |conn| ops::reject(conn, received_at, &body, &reason))
            .await
    }

    async fn claim(
        &self,
        owner: &str,
        now: Millis,
        lease: Duration,
        wants: &[(&str, usize)],
    ) -> Result<Vec<Claim>, StoreError> {
        let owner = owner.to_owned();
        let until = now.saturating_add(millis(lease));
        let wants: Vec<(String, usize)> =
            wants.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect();
        self.writer
            .call(move |conn| ops::claim(conn, &owner, now, until, &wants))
            .await
    }

    async fn finish(
        &self,
        owner: &str,
        now: Millis,
        done: Vec<Finished>,
    ) -> Result<Vec<i64>, StoreError> {
        let owner = owner.to_owned();
        self.writer
            .call(move |conn| ops::finish(conn, &owner, now, &done))
            .await
    }

    async fn release(&self, owner: &str, ids: &[i64]) -> Result<(), StoreError> {
        let (owner, ids) = (owner.to_owned(), ids.to_vec());
        self.writer
            .call(move |conn| ops::release(conn, &owner, &ids))
            .await
    }

    async fn next_due(&self, targets: &[&str], now: Millis) -> Result<Option<Millis>, StoreError> {
        let targets: Vec<String> = targets.iter().map(|t| (*t).to_owned()).collect();
        self.writer
            .call(move |conn| ops::next_due(conn, &targets, now))
            .await
    }

    async fn list(&self, query: ListQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.writer.call(move |conn| ops::list(conn, &query)).await
    }

    async fn requeue(&self, which: Requeue, now: Millis) -> Result<u64, StoreError> {
        self.writer
            .call(move |conn| ops::requeue(conn, &which, now))
            .await
    }

    async fn prune(&self, before: Millis, limit: usize) -> Result<u64, StoreError> {
        self.writer
            .call(move |conn| ops::prune(conn, before, limit))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.writer
            .call(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        self.writer.call(ops::counts).await
    }
}
