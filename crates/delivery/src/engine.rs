//! The engine: claims due deliveries from the store, runs them against their targets with a
//! timeout, and records each outcome.
//!
//! One claim loop runs per engine. It asks the store only for as many deliveries as there
//! are free slots, per target and in all, so that a slow target fills its own slots and never
//! the others'. It sleeps until it is woken (new deliveries were accepted, an attempt ended),
//! until the next retry is due, or for the poll interval, which is how one replica notices
//! work accepted by another.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqreen_webhook_core::{DeliveryError, Notification, Target};
use sqreen_webhook_store::{Claim, Finished, Millis, Outcome, Store, StoreError};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::retry::{Decision, RetryPolicy};

/// Time added to a target's own timeout before the engine gives up on an attempt itself.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// The source of "now" for leases and schedules. Tests use one they can move.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}

/// A target as the engine runs it.
#[derive(Clone)]
pub struct TargetSpec {
    pub target: Arc<dyn Target>,
    pub policy: RetryPolicy,
    /// Most attempts in flight at once for this target.
    pub concurrency: usize,
    /// The per-attempt timeout given to the target.
    pub timeout: Duration,
}

impl std::fmt::Debug for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetSpec")
            .field("name", &self.target.name())
            .field("policy", &self.policy)
            .field("concurrency", &self.concurrency)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Who holds the leases this engine takes: unique per process.
    pub owner: String,
    /// How long a claimed delivery stays leased. Longer than any target's timeout.
    pub lease: Duration,
    /// How often the store is asked for work when nothing wakes the engine.
    pub poll_interval: Duration,
    /// Most attempts in flight at once, all targets together.
    pub concurrency: usize,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            owner: default_owner(),
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            concurrency: 64,
        }
    }
}

/// A unique lease owner name for this process: host, process id and a random part.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        RandomState::new().hash_one(0u8) as u32
    )
}

/// A setting that makes the engine unsafe to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("target {0:?} is configured twice")]
    DuplicateTarget(String),
    #[error(
        "the lease ({lease:?}) must be longer than twice the timeout of target {target:?} ({timeout:?})"
    )]
    LeaseTooShort {
        target: String,
        lease: Duration,
        timeout: Duration,
    },
    #[error("concurrency must be at least 1 (target {0:?})")]
    NoConcurrency(String),
    #[error("retry policy of target {target:?}: {error}")]
    Policy {
        target: String,
        error: crate::retry::PolicyError,
    },
}

/// Counts since the engine started, for status and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    pub lost_leases: AtomicU64,
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Attempts that ended within the deadline.
    pub finished: usize,
    /// Attempts cut short and given back to the queue.
    pub released: usize,
}

struct Slot {
    spec: TargetSpec,
    in_flight: AtomicUsize,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    slots: HashMap<String, Slot>,
    /// Target names in configuration order, for fair claims.
    order: Vec<String>,
    options: EngineOptions,
    in_flight: AtomicUsize,
    wake: Notify,
    stopping: AtomicBool,
    /// How long a shutdown waits for attempts in flight, in milliseconds.
    drain_ms: AtomicU64,
    stats: Stats,
    random: RandomState,
    sequence: AtomicU64,
    /// The earliest retry this engine scheduled and has not claimed yet (`Millis::MAX`: none).
    next_retry: AtomicI64,
    /// Outcomes on their way to the store, recorded together by [`record_outcomes`].
    outcomes: mpsc::UnboundedSender<Recording>,
    pending_outcomes: Mutex<Option<mpsc::UnboundedReceiver<Recording>>>,
}

/// One attempt's outcome, and where to say whether its lease was still held.
struct Recording {
    finished: Finished,
    reply: oneshot::Sender<Result<bool, String>>,
}

/// Most outcomes recorded in one call to the store.
const OUTCOME_BATCH: usize = 256;

/// The delivery engine. Cheap to clone; every clone drives the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Option<tokio::task::JoinHandle<ShutdownReport>>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("owner", &self.inner.options.owner)
            .field("targets", &self.inner.order)
            .finish()
    }
}

impl Engine {
    /// Checks the settings and prepares an engine; [`Engine::start`] runs it.
    pub fn new(
        store: Arc<dyn Store>,
        targets: Vec<TargetSpec>,
        options: EngineOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        let mut slots = HashMap::new();
        let mut order = Vec::new();
        for spec in targets {
            let name = spec.target.name().to_owned();
            if spec.concurrency == 0 {
                return Err(EngineError::NoConcurrency(name));
            }
            spec.policy
                .validate()
                .map_err(|error| EngineError::Policy {
                    target: name.clone(),
                    error,
                })?;
            if options.lease < (spec.timeout + TIMEOUT_GRACE) * 2 {
                return Err(EngineError::LeaseTooShort {
                    target: name,
                    lease: options.lease,
                    timeout: spec.timeout,
                });
            }
            if slots.contains_key(&name) {
                return Err(EngineError::DuplicateTarget(name));
            }
            order.push(name.clone());
            slots.insert(
                name,
                Slot {
                    spec,
                    in_flight: AtomicUsize::new(0),
                },
            );
        }
        if options.concurrency == 0 {
            return Err(EngineError::NoConcurrency("*".to_owned()));
        }
        let (outcomes, pending_outcomes) = mpsc::unbounded_channel();
        let inner = Inner {
            outcomes,
            pending_outcomes: Mutex::new(Some(pending_outcomes)),
            store,
            clock,
            slots,
            order,
            options,
            in_flight: AtomicUsize::new(0),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            drain_ms: AtomicU64::new(0),
            stats: Stats::default(),
            random: RandomState::new(),
            sequence: AtomicU64::new(0),
            next_retry: AtomicI64::new(Millis::MAX),
        };
        Ok(Engine {
            inner: Arc::new(inner),
            tasks: Arc::new(Mutex::new(None)),
        })
    }

    /// Starts the claim loop on the current tokio runtime.
    pub fn start(&self) {
        let pending = self
            .inner
            .pending_outcomes
            .lock()
            .ok()
            .and_then(|mut p| p.take());
        if let Some(receiver) = pending {
            let store = self.inner.store.clone();
            let clock = self.inner.clock.clone();
            let owner = self.inner.options.owner.clone();
            tokio::spawn(record_outcomes(store, clock, owner, receiver));
        }
        let inner = self.inner.clone();
        let handle = tokio::spawn(async move { inner.run().await });
        if let Ok(mut tasks) = self.tasks.lock() {
            *tasks = Some(handle);
        }
    }

    /// Tells the engine that deliveries may be due now, for example just accepted.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// The lease owner name of this engine.
    pub fn owner(&self) -> &str {
        &self.inner.options.owner
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Attempts in flight right now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Stops claiming, lets attempts in flight finish until `deadline`, and gives the
    /// leases of those still running back to the store so that the next start (or another
    /// replica) takes them at once.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.inner
            .drain_ms
            .store(deadline.as_millis() as u64, Ordering::SeqCst);
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let handle = self.tasks.lock().ok().and_then(|mut tasks| tasks.take());
        let Some(handle) = handle else {
            return ShutdownReport::default();
        };
        handle.await.unwrap_or_else(|join_error| {
            log::error!("delivery engine stopped abnormally: {join_error}");
            ShutdownReport::default()
        })
    }
}

impl Inner {
    async fn run(self: Arc<Self>) -> ShutdownReport {
        let mut attempts: JoinSet<()> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, i64> = HashMap::new();
        while !self.stopping.load(Ordering::SeqCst) {
            while let Some(done) = attempts.try_join_next_with_id() {
                if let Ok((id, ())) = done {
                    running.remove(&id);
                }
            }
            let (claimed, asked) = match self.claim().await {
                Ok(claimed) => claimed,
                Err(error) => {
                    log::error!("cannot claim deliveries: {error}");
                    (Vec::new(), 0)
                }
            };
            let got = claimed.len();
            for claim in claimed {
                let id = claim.id;
                let inner = self.clone();
                let handle = attempts.spawn(async move { inner.attempt(claim).await });
                running.insert(handle.id(), id);
            }
            if asked > 0 && got == asked {
                // The store may have more due work than it gave: ask again at once.
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.sleep_duration()) => {}
                Some(done) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                    if let Ok((id, ())) = done {
                        running.remove(&id);
                    }
                }
            }
        }
        self.drain(attempts, running).await
    }

    async fn drain(
        &self,
        mut attempts: JoinSet<()>,
        mut running: HashMap<tokio::task::Id, i64>,
    ) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        let grace = Duration::from_millis(self.drain_ms.load(Ordering::SeqCst));
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            tokio::select! {
                done = attempts.join_next_with_id() => match done {
                    Some(Ok((id, ()))) => {
                        running.remove(&id);
                        report.finished += 1;
                    }
                    Some(Err(error)) => {
                        running.remove(&error.id());
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        attempts.abort_all();
        let ids: Vec<i64> = running.into_values().collect();
        report.released = ids.len();
        if !ids.is_empty()
            && let Err(error) = self.store.release(&self.options.owner, &ids).await
        {
            log::error!(
                "cannot release {} leases at shutdown, they will expire: {error}",
                ids.len()
            );
        }
        report
    }

    fn free_slots(&self) -> usize {
        self.options
            .concurrency
            .saturating_sub(self.in_flight.load(Ordering::SeqCst))
    }

    /// Claims due deliveries for every free slot; returns them and how many were asked for
    /// (0 when every slot is taken, and then the store is not asked at all).
    async fn claim(&self) -> Result<(Vec<Claim>, usize), StoreError> {
        let mut free = self.free_slots();
        let mut wants: Vec<(&str, usize)> = Vec::new();
        for name in &self.order {
            if free == 0 {
                break;
            }
            let slot = &self.slots[name];
            let room = slot
                .spec
                .concurrency
                .saturating_sub(slot.in_flight.load(Ordering::SeqCst))
                .min(free);
            if room > 0 {
                wants.push((name.as_str(), room));
                free -= room;
            }
        }
        if wants.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let asked = wants.iter().map(|(_, n)| n).sum();
        let claims = self
            .store
            .claim(
                &self.options.owner,
                self.clock.now(),
                self.options.lease,
                &wants,
            )
            .await?;
        for claim in &claims {
            if let Some(slot) = self.slots.get(&claim.target) {
                slot.in_flight.fetch_add(1, Ordering::SeqCst);
            }
            self.in_flight.fetch_add(1, Ordering::SeqCst);
        }
        Ok((claims, asked))
    }

    /// How long to wait for work when nothing wakes the engine: until the earliest retry this
    /// engine scheduled, or the poll interval. Retries scheduled by another replica, or
    /// before a restart, are found by polling.
    fn sleep_duration(&self) -> Duration {
        let poll = self.options.poll_interval;
        let hint = self.next_retry.load(Ordering::SeqCst);
        let now = self.clock.now();
        if hint == Millis::MAX {
            return poll;
        }
        if hint <= now {
            // It was due at the claim just made, which took it or had no room for it (a slot
            // that frees up wakes the engine).
            let _ = self.next_retry.compare_exchange(
                hint,
                Millis::MAX,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            return poll;
        }
        Duration::from_millis((hint - now) as u64).min(poll)
    }

    fn jitter(&self) -> f64 {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        (self.random.hash_one(n) >> 11) as f64 / (1u64 << 53) as f64
    }

    async fn attempt(self: Arc<Self>, claim: Claim) {
        let Some(slot) = self.slots.get(&claim.target) else {
            // Claims name only configured targets; nothing to do if that ever changes.
            return;
        };
        let spec = &slot.spec;
        let outcome = if claim.attempt > spec.policy.max_attempts {
            self.give_up(&claim)
        } else {
            self.try_once(&claim, spec).await
        };
        let (reply, recorded) = oneshot::channel();
        let recording = Recording {
            finished: Finished {
                id: claim.id,
                outcome,
            },
            reply,
        };
        let result = match self.outcomes.send(recording) {
            Ok(()) => recorded
                .await
                .unwrap_or_else(|_| Err("the outcome recorder stopped".to_owned())),
            Err(_) => Err("the outcome recorder stopped".to_owned()),
        };
        match result {
            Ok(true) => {
                self.stats.lost_leases.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "delivery {} to {}: the lease expired during the attempt; another claimer may repeat it",
                    claim.id,
                    claim.target
                );
            }
            Ok(false) => {}
            Err(error) => log::error!(
                "delivery {} to {}: cannot record the outcome, the attempt will be repeated when its lease expires: {error}",
                claim.id,
                claim.target
            ),
        }
        slot.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Makes one attempt and decides what follows it.
    async fn try_once(&self, claim: &Claim, spec: &TargetSpec) -> Outcome {
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        let result = match Notification::from_element(&claim.element) {
            Ok(notification) => {
                let deadline = spec.timeout + TIMEOUT_GRACE;
                match tokio::time::timeout(deadline, spec.target.deliver(&notification)).await {
                    Ok(result) => result,
                    Err(_) => Err(DeliveryError::unknown(format!(
                        "no answer within {deadline:?}"
                    ))),
                }
            }
            Err(error) => Err(
                DeliveryError::permanent("the stored notification cannot be parsed")
                    .with_source(error),
            ),
        };
        let now = self.clock.now();
        match result {
            Ok(()) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "delivery {} to {} delivered (attempt {}, {})",
                    claim.id,
                    claim.target,
                    claim.attempt,
                    claim.identity
                );
                Outcome::Delivered
            }
            Err(error) => match spec.policy.decide(
                claim.attempt,
                claim.created_at,
                now,
                &error,
                self.jitter(),
            ) {
                Decision::RetryAt(at) => {
                    self.next_retry.fetch_min(at, Ordering::SeqCst);
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "delivery {} to {} failed (attempt {}, {}, {}): {error}; next attempt in {}",
                        claim.id,
                        claim.target,
                        claim.attempt,
                        error.kind(),
                        claim.identity,
                        sqreen_webhook_core::duration::format_duration(Duration::from_millis(
                            (at - now).max(0) as u64
                        )),
                    );
                    Outcome::Retry {
                        at,
                        error: error.to_string(),
                    }
                }
                Decision::Dead(reason) => {
                    self.stats.dead.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        "delivery {} to {} is dead after attempt {} ({}, {}): {error}; {}",
                        claim.id,
                        claim.target,
                        claim.attempt,
                        error.kind(),
                        claim.identity,
                        reason.describe(),
                    );
                    Outcome::Dead {
                        error: error.to_string(),
                    }
                }
            },
        }
    }

    /// Ends a delivery whose earlier attempts were started and never finished: the process
    /// stopped during each (a crash, or a payload that brings it down), and trying again
    /// would only do that once more.
    fn give_up(&self, claim: &Claim) -> Outcome {
        self.stats.dead.fetch_add(1, Ordering::Relaxed);
        let error = format!(
            "{} attempts were started and none finished: the relay stopped during each",
            claim.attempt - 1
        );
        log::error!(
            "delivery {} to {} is dead ({}): {error}",
            claim.id,
            claim.target,
            claim.identity
        );
        Outcome::Dead { error }
    }
}

/// Records attempts' outcomes in batches: every outcome waiting when the store is free goes
/// in one call, so that a busy engine costs one store transaction per batch of deliveries,
/// not one per delivery. Each attempt waits for its own outcome to be recorded, so that a
/// shutdown that waits for attempts also waits for their outcomes.
async fn record_outcomes(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    owner: String,
    mut receiver: mpsc::UnboundedReceiver<Recording>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < OUTCOME_BATCH {
            match receiver.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let (finished, replies): (Vec<Finished>, Vec<_>) = batch
            .into_iter()
            .map(|r| (r.finished.clone(), (r.finished.id, r.reply)))
            .unzip();
        match store.finish(&owner, clock.now(), finished).await {
            Ok(lost) => {
                for (id, reply) in replies {
                    let _ = reply.send(Ok(lost.contains(&id)));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for (_, reply) in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}
