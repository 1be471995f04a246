//! The thread that owns the SQLite connection and commits work in groups.
//!
//! SQLite lets one writer in at a time, and with `synchronous=FULL` each commit costs an
//! fsync. So every operation is a [`Job`] sent to this thread, which takes all the jobs
//! waiting in its channel and runs them in one transaction, each in its own savepoint (one
//! failing job does not undo the others), then commits once and only then answers them.
//! Under load, batches grow by themselves: the more requests wait, the more share a commit.

use std::collections::VecDeque;
use std::fs::File;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// Most jobs in one transaction, so that a flood does not hold the write lock for long.
const MAX_BATCH: usize = 512;

/// Jobs waiting for the writer; senders wait when it is full.
const QUEUE: usize = 4096;

/// Work for the writer, with the way to answer its caller.
pub(super) type Job = Box<dyn Work>;

pub(super) trait Work: Send {
    /// Runs the job's statements, keeps their result, and tells whether they succeeded (if
    /// not, the writer rolls the job's savepoint back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known: `commit_error` is the reason
    /// it failed, or why the job never ran.
    fn answer(self: Box<Self>, commit_error: Option<&str>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Work for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn).map_err(database);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit_error: Option<&str>) {
        let failed = |message: &str| Err(StoreError::Database(message.to_owned().into()));
        let result = match (self.result, commit_error) {
            (Some(Err(error)), _) => Err(error),
            (_, Some(message)) => failed(message),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => failed("the operation was not run"),
        };
        // The caller may have gone away (a cancelled request): nothing to tell.
        let _ = self.reply.send(result);
    }
}

/// Wraps `work` into a job and gives the receiver of its result.
fn job<T, F>(work: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    (
        Box::new(Pending {
            work: Some(work),
            result: None,
            reply,
        }),
        rx,
    )
}

pub(super) fn database(error: rusqlite::Error) -> StoreError {
    StoreError::Database(Box::new(error))
}

/// The running writer thread. Dropping it lets the thread finish the jobs already sent,
/// close the connection and release the lock file, and waits for that.
#[derive(Debug)]
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread. `setup` runs on it first (open, lock, migrate); its error is
    /// returned and the thread ends.
    pub(super) async fn start<S>(name: String, setup: S) -> Result<Writer, StoreError>
    where
        S: FnOnce() -> Result<(Connection, Option<File>), StoreError> + Send + 'static,
    {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let (ready_tx, ready) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || match setup() {
                Ok((conn, lock)) => {
                    let _ = ready_tx.send(Ok(()));
                    run(conn, receiver);
                    // The lock outlives the connection: a new server may open the file only
                    // once this one has closed it.
                    drop(lock);
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                }
            })
            .map_err(|e| StoreError::Open(format!("cannot start the store thread: {e}")))?;
        let mut writer = Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        match ready.await {
            Ok(Ok(())) => Ok(writer),
            Ok(Err(error)) => {
                writer.stop();
                Err(error)
            }
            Err(_) => {
                writer.stop();
                Err(StoreError::Open(
                    "the store thread ended while opening".into(),
                ))
            }
        }
    }

    pub(super) async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (job, answer) = job(work);
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the store thread panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(mut conn: Connection, mut receiver: mpsc::Receiver<Job>) {
    let mut batch = VecDeque::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push_back(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push_back(job),
                Err(_) => break,
            }
        }
        commit(&mut conn, &mut batch);
    }
}

/// Runs and commits every job of `batch`, then answers them.
fn commit(conn: &mut Connection, batch: &mut VecDeque<Job>) {
    let size = batch.len();
    let mut ran = Vec::with_capacity(size);
    let result = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        while let Some(mut job) = batch.pop_front() {
            if let Err(error) = run_cached(&tx, "SAVEPOINT job") {
                batch.push_front(job);
                return Err(error);
            }
            let ended = if job.run(&tx) {
                run_cached(&tx, "RELEASE job")
            } else {
                run_cached(&tx, "ROLLBACK TO job").and_then(|()| run_cached(&tx, "RELEASE job"))
            };
            ran.push(job);
            ended?;
        }
        tx.commit()
    })();
    let error = result.err().map(|error| {
        log::error!("store commit of {size} operations failed: {error}");
        error.to_string()
    });
    for job in ran.into_iter().chain(batch.drain(..)) {
        job.answer(error.as_deref());
    }
}

/// Runs a statement that takes no parameter, prepared once per connection: savepoints are
/// taken for every job, and parsing them each time showed in profiles.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
