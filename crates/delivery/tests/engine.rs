//! The engine against a real SQLite store, with a clock the test moves: retry schedules,
//! `Retry-After`, dead deliveries, per-target isolation and shutdown.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqreen_webhook_core::samples::sample;
use sqreen_webhook_core::{DeliveryError, Notification, Target, parse};
use sqreen_webhook_delivery::{Clock, Engine, EngineOptions, RetryPolicy, TargetSpec};
use sqreen_webhook_store::{
    DeliveryRecord, DeliveryState, ListQuery, NewBody, NewNotification, Store, StoreOptions,
};

const START: i64 = 1_700_000_000_000;

#[derive(Default)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A target that answers from a script, then succeeds.
struct Scripted {
    name: String,
    script: Mutex<VecDeque<Result<(), DeliveryError>>>,
    attempts: Mutex<Vec<String>>,
    hang: bool,
}

impl Scripted {
    fn new(name: &str, script: Vec<Result<(), DeliveryError>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            name: name.into(),
            script: Mutex::new(script.into()),
            attempts: Mutex::default(),
            hang: false,
        })
    }

    fn hanging(name: &str) -> Arc<Scripted> {
        Arc::new(Scripted {
            name: name.into(),
            script: Mutex::default(),
            attempts: Mutex::default(),
            hang: true,
        })
    }

    fn attempts(&self) -> usize {
        self.attempts.lock().unwrap().len()
    }
}

#[async_trait]
impl Target for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        self.attempts
            .lock()
            .unwrap()
            .push(notification.identity().to_string());
        if self.hang {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        self.script.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

struct Harness {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    engine: Engine,
    _dir: tempfile::TempDir,
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        first_backoff: Duration::from_secs(10),
        multiplier: 2.0,
        max_backoff: Duration::from_secs(60),
        max_age: Duration::from_secs(3600),
        retry_unknown: false,
    }
}

async fn harness(targets: Vec<Arc<Scripted>>) -> Harness {
    let h = stopped_harness(targets).await;
    h.engine.start();
    h
}

/// A harness whose engine has not started claiming yet.
async fn stopped_harness(targets: Vec<Arc<Scripted>>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/engine.db", dir.path().display());
    let store: Arc<dyn Store> = Arc::from(
        sqreen_webhook_store::open(&url, StoreOptions::default())
            .await
            .unwrap(),
    );
    let clock = Arc::new(ManualClock(AtomicI64::new(START)));
    let specs = targets
        .into_iter()
        .map(|t| TargetSpec {
            target: t,
            policy: policy(),
            concurrency: 2,
            timeout: Duration::from_millis(300),
        })
        .collect();
    let options = EngineOptions {
        lease: Duration::from_secs(10),
        poll_interval: Duration::from_millis(50),
        ..EngineOptions::default()
    };
    let engine = Engine::new(store.clone(), specs, options, clock.clone()).unwrap();
    Harness {
        store,
        clock,
        engine,
        _dir: dir,
    }
}

impl Harness {
    /// Accepts the sample `name` for `targets`, as the server does.
    async fn accept(&self, name: &str, targets: &[&str]) {
        let body = sample(name).unwrap().body.as_bytes();
        let notifications = parse(body).unwrap();
        let new = NewBody {
            received_at: self.clock.now(),
            body: body.to_vec().into(),
            notifications: notifications
                .iter()
                .map(|n| NewNotification {
                    identity: n.identity().as_str(),
                    type_name: &n.view().type_name,
                    span: n.span(),
                    targets: targets.to_vec(),
                })
                .collect(),
        };
        self.store.accept(new).await.unwrap();
        self.engine.wake();
    }

    async fn records(&self) -> Vec<DeliveryRecord> {
        self.store
            .list(ListQuery {
                state: None,
                limit: 100,
            })
            .await
            .unwrap()
    }

    /// Waits (in real time, briefly) until the deliveries reach the expected states.
    async fn settle(&self, expected: &[(&str, DeliveryState, u32)]) -> Vec<DeliveryRecord> {
        for _ in 0..100 {
            let records = self.records().await;
            let matches = expected.iter().all(|(target, state, attempts)| {
                records
                    .iter()
                    .any(|r| r.target == *target && r.state == *state && r.attempts == *attempts)
            });
            if matches {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!(
            "expected {expected:?}, store has {:#?}",
            self.records().await
        );
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.engine.wake();
    }
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_the_backoff_and_not_before() {
    let target = Scripted::new("t", vec![Err(DeliveryError::transient("503"))]);
    let h = harness(vec![target.clone()]).await;
    h.accept("v1-security-event", &["t"]).await;

    let records = h.settle(&[("t", DeliveryState::Retrying, 1)]).await;
    let due = records[0].next_attempt_at.unwrap() - START;
    // 10 s backoff, jittered into [0.75, 1.25).
    assert!((7_500..12_500).contains(&due), "due in {due} ms");

    h.advance(Duration::from_millis(7_000)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(target.attempts(), 1, "not due yet");

    h.advance(Duration::from_millis(6_000)).await;
    h.settle(&[("t", DeliveryState::Delivered, 2)]).await;
    assert_eq!(target.attempts(), 2);
}

#[tokio::test]
async fn retry_after_sets_the_next_attempt() {
    let asked = DeliveryError::transient("429").with_retry_after(Duration::from_secs(120));
    let target = Scripted::new("t", vec![Err(asked)]);
    let h = harness(vec![target.clone()]).await;
    h.accept("v1-security-event", &["t"]).await;

    let records = h.settle(&[("t", DeliveryState::Retrying, 1)]).await;
    let due = records[0].next_attempt_at.unwrap() - START;
    assert!((120_000..132_000).contains(&due), "due in {due} ms");
}

#[tokio::test]
async fn a_delivery_is_dead_after_its_last_attempt_and_says_why() {
    let fail = || Err(DeliveryError::transient("still down"));
    let target = Scripted::new("t", vec![fail(), fail(), fail()]);
    let h = harness(vec![target.clone()]).await;
    h.accept("v1-security-event", &["t"]).await;

    for attempts in 1..3 {
        h.settle(&[("t", DeliveryState::Retrying, attempts)]).await;
        h.advance(Duration::from_secs(60)).await;
    }
    let records = h.settle(&[("t", DeliveryState::Dead, 3)]).await;
    assert_eq!(records[0].last_error.as_deref(), Some("still down"));
    assert_eq!(target.attempts(), 3);
}

#[tokio::test]
async fn a_delivery_whose_attempts_never_finish_is_dead_once_they_are_used_up() {
    let target = Scripted::new("t", vec![]);
    let h = stopped_harness(vec![target.clone()]).await;
    h.accept("v1-security-event", &["t"]).await;
    // Three processes claimed it and died during the attempt: their leases expired.
    for attempt in 1..=3 {
        let claims = h
            .store
            .claim(
                "crashed",
                h.clock.now(),
                Duration::from_secs(10),
                &[("t", 10)],
            )
            .await
            .unwrap();
        assert_eq!(claims[0].attempt, attempt);
        h.clock.advance(Duration::from_secs(11));
    }

    h.engine.start();
    h.engine.wake();

    let records = h.settle(&[("t", DeliveryState::Dead, 4)]).await;
    let error = records[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("3 attempts were started and none finished"),
        "{error}"
    );
    assert_eq!(target.attempts(), 0, "no fourth attempt was made");
}

#[tokio::test]
async fn permanent_failures_and_unknown_outcomes_are_dead_at_once() {
    let permanent = Scripted::new(
        "permanent",
        vec![Err(DeliveryError::permanent("invalid number"))],
    );
    let unknown = Scripted::new("unknown", vec![Err(DeliveryError::unknown("no answer"))]);
    let h = harness(vec![permanent.clone(), unknown.clone()]).await;
    h.accept("v1-security-event", &["permanent", "unknown"])
        .await;

    h.settle(&[
        ("permanent", DeliveryState::Dead, 1),
        ("unknown", DeliveryState::Dead, 1),
    ])
    .await;
}

#[tokio::test]
async fn a_hanging_target_times_out_and_does_not_hold_back_another() {
    let hanging = Scripted::hanging("hanging");
    let quick = Scripted::new("quick", vec![]);
    let h = harness(vec![hanging.clone(), quick.clone()]).await;
    h.accept("v2-authentication-events", &["hanging", "quick"])
        .await;

    h.settle(&[("quick", DeliveryState::Delivered, 1)]).await;
    // 300 ms timeout plus the engine's grace; an unknown outcome, not retried by this policy.
    let records = h.settle(&[("hanging", DeliveryState::Dead, 1)]).await;
    let hanging_record = records.iter().find(|r| r.target == "hanging").unwrap();
    assert!(
        hanging_record
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("no answer within"),
        "{hanging_record:?}"
    );
}

#[tokio::test]
async fn shutdown_gives_back_the_leases_of_attempts_still_running() {
    let hanging = Scripted::hanging("hanging");
    let h = harness(vec![hanging.clone()]).await;
    h.accept("v1-security-event", &["hanging"]).await;
    for _ in 0..100 {
        if hanging.attempts() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let report = h.engine.shutdown(Duration::from_millis(100)).await;

    assert_eq!(report.released, 1);
    let records = h.records().await;
    assert_eq!(records[0].state, DeliveryState::Pending);
    assert_eq!(
        records[0].attempts, 0,
        "an attempt cut short is not counted"
    );
    assert_eq!(records[0].lease_owner, None, "claimable again at once");
}
