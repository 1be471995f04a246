//! The thread that owns the SQLite connection and commits work in groups.
//!
//! SQLite lets one writer in at a time, and with `synchronous=FULL` each commit costs an
//! fsync. So every operation is a [`Job`] sent to this thread, which takes all the jobs
//! waiting in its channel and runs them in one transaction, commits once and only then
//! answers them. Under load, batches grow by themselves: the more requests wait, the more
//! share a commit.
//!
//! One failing job must not undo the others. Jobs can be run again, so the writer runs a
//! batch plainly and, only when one of its jobs fails, rolls the whole batch back and runs
//! it again with each job in its own savepoint. A savepoint per job in every batch costs
//! about a third of the writer's time, for a failure that almost never happens.

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
    /// Runs the job's statements, keeps their result, and tells whether they succeeded. It
    /// may be called again after its transaction was rolled back; the last result counts.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known: `commit_error` is the reason
    /// it failed, or why the job never ran.
    fn answer(self: Box<Self>, commit_error: Option<&str>);
}

struct Pending<T, F> {
    work: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Work for Pending<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn).map_err(database);
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
    F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    (
        Box::new(Pending {
            work,
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
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
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
    let result = match run_plainly(conn, batch) {
        Ok(true) => Ok(()),
        // A job failed and its batch was rolled back: run it again job by job.
        Ok(false) => run_in_savepoints(conn, batch),
        Err(error) => Err(error),
    };
    let error = result.err().map(|error| {
        log::error!("store commit of {size} operations failed: {error}");
        error.to_string()
    });
    for job in batch.drain(..) {
        job.answer(error.as_deref());
    }
}

/// Runs every job in one transaction and commits it if all of them succeeded (`true`); rolls
/// it back as soon as one fails (`false`).
fn run_plainly(conn: &mut Connection, batch: &mut VecDeque<Job>) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        if !job.run(&tx) {
            // Some errors end the transaction themselves; the batch is run again either way.
            if let Err(error) = tx.rollback() {
                log::debug!("rolling back a failed batch: {error}");
            }
            return Ok(false);
        }
    }
    tx.commit()?;
    Ok(true)
}

/// Runs every job in its own savepoint of one transaction, so that a failing job leaves
/// the others' work in place, and commits.
fn run_in_savepoints(conn: &mut Connection, batch: &mut VecDeque<Job>) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        run_cached(&tx, "SAVEPOINT job")?;
        if job.run(&tx) {
            run_cached(&tx, "RELEASE job")?;
        } else {
            run_cached(&tx, "ROLLBACK TO job")?;
            run_cached(&tx, "RELEASE job")?;
        }
    }
    tx.commit()
}

/// Runs a statement that takes no parameter, prepared once per connection.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn writer() -> Writer {
        Writer::start("test-writer".into(), || {
            let conn = Connection::open_in_memory().map_err(database)?;
            conn.execute_batch("CREATE TABLE t (n INTEGER NOT NULL CHECK (n >= 0))")
                .map_err(database)?;
            Ok((conn, None))
        })
        .await
        .unwrap()
    }

    fn insert(n: i64) -> impl Fn(&Connection) -> rusqlite::Result<()> + Send + 'static {
        move |conn| {
            // Two statements, so that a failing job has done part of its work when it fails.
            conn.execute("INSERT INTO t (n) VALUES (?1)", [n.abs() + 1000])?;
            conn.execute("INSERT INTO t (n) VALUES (?1)", [n])
                .map(|_| ())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_is_undone_alone_and_its_batch_commits() {
        let writer = std::sync::Arc::new(writer().await);
        // Holds the writer so that the jobs below queue up and share one batch.
        let hold = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .call(|_| {
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let jobs: Vec<_> = [1, 2, -3, 4]
            .into_iter()
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.call(insert(n)).await })
            })
            .collect();
        hold.await.unwrap().unwrap();
        let mut results = Vec::new();
        for job in jobs {
            results.push(job.await.unwrap());
        }

        assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
        let Err(StoreError::Database(error)) = &results[2] else {
            panic!("the job breaking the CHECK must fail: {results:?}")
        };
        assert!(error.to_string().contains("CHECK"), "{error}");
        let rows: Vec<i64> = writer
            .call(|conn| {
                conn.prepare("SELECT n FROM t ORDER BY n")?
                    .query_map([], |row| row.get(0))?
                    .collect()
            })
            .await
            .unwrap();
        assert_eq!(rows, [1, 2, 4, 1001, 1002, 1004], "job -3 left nothing");
    }
}
