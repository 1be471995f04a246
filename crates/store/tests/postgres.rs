//! The store suite on PostgreSQL, and what only the shared store does: several replicas on
//! one database.
//!
//! Needs `DATABASE_URL` (for example `postgres://postgres@127.0.0.1:5432/test`); each test
//! works in a schema of its own. `SQREEN_WEBHOOK_SKIP_POSTGRES=1` skips them.

mod suite;

use suite::Db;

async fn postgres() -> Option<Db> {
    Db::postgres().await
}

store_suite!(postgres);

use std::collections::HashSet;
use std::sync::Arc;

use sqreen_webhook_store::{DeliveryState, Finished, Outcome, Store, StoreError, StoreOptions};
use suite::{LEASE, SECOND, Sample, T0};

/// Claims and finishes until nothing is due, returning what `owner` claimed.
async fn work_off(store: Arc<dyn Store>, owner: String) -> Vec<i64> {
    let mut mine = Vec::new();
    loop {
        let claims = store
            .claim(&owner, T0, LEASE, &[("http", 7), ("sms", 3)])
            .await
            .expect("claim");
        if claims.is_empty() {
            return mine;
        }
        let done = claims
            .iter()
            .map(|c| Finished {
                id: c.id,
                outcome: Outcome::Delivered,
            })
            .collect();
        assert!(
            store
                .finish(&owner, T0 + 1, done)
                .await
                .expect("finish")
                .is_empty(),
            "{owner} lost a lease"
        );
        mine.extend(claims.iter().map(|c| c.id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_claiming_at_once_never_get_the_same_delivery() {
    let Some(db) = postgres().await else { return };
    let replicas: [Arc<dyn Store>; 2] = [Arc::from(db.open().await), Arc::from(db.open().await)];
    let accepts: Vec<_> = (0..150)
        .map(|i| {
            let store = replicas[i % 2].clone();
            tokio::spawn(async move {
                store
                    .accept(Sample::new(&[&format!("n{i}")]).body(T0, &["http", "sms"]))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for accept in accepts {
        accept.await.unwrap();
    }

    let workers: Vec<_> = (0..8)
        .map(|w| {
            tokio::spawn(work_off(
                replicas[w % 2].clone(),
                format!("replica-{}-worker-{w}", w % 2),
            ))
        })
        .collect();
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }

    let distinct: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 300, "every delivery claimed exactly once");
    assert_eq!(distinct.len(), 300);
    let counts = replicas[0].counts().await.unwrap();
    assert!(
        counts.contains(&(DeliveryState::Delivered, 300)),
        "{counts:?}"
    );
    drop(replicas);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replicas_leases_expire_and_another_replica_takes_them_over() {
    let Some(db) = postgres().await else { return };
    let crashed = db.open().await;
    let survivor = db.open().await;
    survivor
        .accept(Sample::new(&["a", "b", "c"]).body(T0, &["http"]))
        .await
        .unwrap();
    let held = crashed
        .claim("crashed", T0, LEASE, &[("http", 10)])
        .await
        .unwrap();
    drop(crashed);

    let before = survivor
        .claim("survivor", T0 + 59 * SECOND, LEASE, &[("http", 10)])
        .await
        .unwrap();
    let after = survivor
        .claim("survivor", T0 + 60 * SECOND, LEASE, &[("http", 10)])
        .await
        .unwrap();

    assert_eq!(held.len(), 3);
    assert!(before.is_empty());
    let mut taken: Vec<i64> = after.iter().map(|c| c.id).collect();
    taken.sort();
    let mut expected: Vec<i64> = held.iter().map(|c| c.id).collect();
    expected.sort();
    assert_eq!(taken, expected);
    let restarted = db.open().await;
    let late = restarted.finish(
        "crashed",
        T0 + 61 * SECOND,
        vec![Finished {
            id: taken[0],
            outcome: Outcome::Delivered,
        }],
    );
    assert_eq!(
        late.await.unwrap(),
        vec![taken[0]],
        "the crashed replica's lease is gone"
    );
    drop((survivor, restarted));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_accepting_the_same_batches_deliver_each_notification_once() {
    let Some(db) = postgres().await else { return };
    let replicas: [Arc<dyn Store>; 2] = [Arc::from(db.open().await), Arc::from(db.open().await)];
    let identities: Vec<String> = (0..12).map(|i| format!("n{i}")).collect();

    // Sqreen re-sending a batch to two replicas at once, the elements in different orders:
    // the de-duplication rows are locked in opposite orders, which PostgreSQL may resolve as
    // a deadlock that the store must absorb.
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = replicas[t % 2].clone();
            let mut order: Vec<&str> = identities.iter().map(String::as_str).collect();
            if t % 2 == 1 {
                order.reverse();
            }
            let sample = Sample::new(&order);
            tokio::spawn(async move {
                store
                    .accept(sample.body(T0 + t as i64, &["http"]))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        fresh += task.await.unwrap().fresh;
    }

    assert_eq!(fresh, identities.len());
    let counts = replicas[1].counts().await.unwrap();
    assert!(
        counts.contains(&(DeliveryState::Pending, identities.len() as u64)),
        "{counts:?}"
    );
    drop(replicas);
    db.cleanup().await;
}

#[tokio::test]
async fn a_refused_connection_names_the_database_without_its_password() {
    let url = "postgres://relay:hunter2@127.0.0.1:1/relay";

    let result = sqreen_webhook_store::open(url, StoreOptions::default()).await;

    let Err(StoreError::Open(message)) = result else {
        panic!("expected an open error")
    };
    assert!(
        message.contains("relay:[redacted]@127.0.0.1:1/relay"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_postgres_refuses_fails_alone_and_spares_its_batch() {
    let Some(db) = postgres().await else { return };
    let store: Arc<dyn Store> = Arc::from(db.open().await);

    // PostgreSQL refuses NUL in text; the store cleans what payloads carry, not target names,
    // so this one write fails inside whatever batch it lands in.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let target = if i == 7 { "bad\0target" } else { "http" };
                store
                    .accept(Sample::new(&[&format!("n{i}")]).body(T0, &[target]))
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }

    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.is_ok(), i != 7, "write {i}: {result:?}");
    }
    let counts = store.counts().await.unwrap();
    assert!(counts.contains(&(DeliveryState::Pending, 19)), "{counts:?}");
    let resent = store
        .accept(Sample::new(&["n7"]).body(T0 + 1, &["http"]))
        .await
        .unwrap();
    assert_eq!(resent.fresh, 1, "the refused write left no trace");
    drop(store);
    db.cleanup().await;
}
