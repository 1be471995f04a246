//! Two replicas of the real server binary on one PostgreSQL store, sharing one queue.
//!
//! Under load, every delivery is made and none twice: a delivery is leased to one replica
//! at a time. Then one replica is killed with `kill -9` while it holds leases (the receiver
//! hangs, so its attempts are in flight): the other replica must leave those deliveries
//! alone while the leases live, and make them once they expire.
//!
//! Needs `DATABASE_URL`; each run works in a schema of its own. `SQREEN_WEBHOOK_SKIP_POSTGRES=1`
//! skips it.

#![cfg(feature = "http")]

mod e2e;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::{
    Answer, Batch, LEASE, Mode, PgSchema, Receiver, Relay, Stream, TARGET_TIMEOUT, by_key, listed,
    post, store_counts, within,
};

/// Webhooks of the load, of 1 to 10 notifications each, sent half to each replica.
const REQUESTS: usize = 300;
const SENDERS: usize = 4;
/// Notifications in flight at the kill: fewer than the target's concurrency (8), so that
/// the replica that accepts them claims them all at once.
const HELD: usize = 6;
/// How early, before the lease's end, the receiver may see the survivor's attempt: the time
/// between the killed replica's claim and its request reaching the receiver.
const CLAIM_TO_REQUEST: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_everything_once_and_take_over_the_leases_of_a_killed_one() {
    let Some(schema) = PgSchema::create("e2e_replicas").await else {
        return;
    };
    within(Duration::from_secs(55), async {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let mut receiver = Receiver::reserve();
        receiver.start().await;
        let mut a = Relay::new(dir.path(), "a", &schema.url, &receiver.url());
        let mut b = Relay::new(dir.path(), "b", &schema.url, &receiver.url());
        a.start().await;
        b.start().await;
        let logs = |a: &Relay, b: &Relay| format!("a:\n{}\nb:\n{}", a.log_tail(20), b.log_tail(20));

        // Step 1: a load of webhooks, split across both replicas.
        let batches = Batch::stream("load", REQUESTS);
        let load_started = Instant::now();
        let answers = Stream::start(&batches, &[a.webhook_url(), b.webhook_url()], SENDERS)
            .finish()
            .await;
        let accepted_in = load_started.elapsed();
        let not_accepted: Vec<&Answer> = answers
            .iter()
            .filter(|a| **a != Answer::Accepted { duplicates: 0 })
            .collect();
        assert!(
            not_accepted.is_empty(),
            "not accepted: {}",
            listed(&not_accepted)
        );
        let load_keys: Vec<&String> = batches.iter().flat_map(|b| &b.keys).collect();
        let load_time = receiver
            .wait_delivered(load_keys.iter().copied(), Duration::from_secs(30))
            .await
            .unwrap_or_else(|missing| {
                panic!(
                    "of {} notifications, some never arrived, {}\n{}",
                    load_keys.len(),
                    listed(&missing),
                    logs(&a, &b)
                )
            });
        // Time for a second delivery of anything to show up.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let received = receiver.received();
        let keys = by_key(&received);
        let twice: Vec<(&str, Vec<&str>)> = keys
            .iter()
            .filter(|(_, requests)| requests.len() > 1)
            .map(|(key, requests)| (*key, requests.iter().map(|r| r.relay.as_str()).collect()))
            .collect();
        assert!(
            receiver.refused().is_empty(),
            "refused by the receiver: {}",
            listed(&receiver.refused())
        );
        assert_eq!(
            keys.len(),
            load_keys.len(),
            "nothing but what was sent arrives"
        );
        assert!(
            twice.is_empty(),
            "delivered more than once (key, by): {}",
            listed(&twice)
        );
        let mut by_relay: BTreeMap<&str, usize> = BTreeMap::new();
        for request in &received {
            *by_relay.entry(request.relay.as_str()).or_default() += 1;
        }
        assert!(
            by_relay.get("a").is_some_and(|n| *n > 0) && by_relay.get("b").is_some_and(|n| *n > 0),
            "both replicas deliver: {by_relay:?}"
        );

        // Step 2: the receiver hangs; a webhook to a, whose attempts then hang in flight;
        // a is killed before its target's timeout ends them, its leases held.
        receiver.set_mode(Mode::Hang);
        let held = Batch::new("held", 0, HELD);
        let posted = Instant::now();
        assert_eq!(
            post(&e2e::client(), &a.webhook_url(), &held).await,
            Answer::Accepted { duplicates: 0 }
        );
        loop {
            let in_flight_from_a = receiver
                .received()
                .iter()
                .filter(|r| r.relay == "a" && held.keys.contains(&r.key))
                .count();
            if in_flight_from_a == HELD || posted.elapsed() > TARGET_TIMEOUT / 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.kill();
        let killed = Instant::now();
        receiver.set_mode(Mode::Answer);
        let held_by_a: Vec<(String, Instant)> = receiver
            .received()
            .into_iter()
            .filter(|r| r.relay == "a" && held.keys.contains(&r.key))
            .map(|r| (r.key, r.at))
            .collect();
        assert!(
            !held_by_a.is_empty(),
            "a made no attempt within {:?}\n{}",
            TARGET_TIMEOUT / 2,
            logs(&a, &b)
        );
        let first_held = held_by_a.iter().map(|(_, at)| *at).min().unwrap();
        assert!(
            killed - first_held < TARGET_TIMEOUT,
            "a was killed {:?} after its first attempt, after the target's timeout: its \
             leases may have ended already",
            killed - first_held
        );

        // Step 3: b makes a's deliveries once a's leases expire, and only then.
        let takeover_time = receiver
            .wait_delivered(&held.keys, LEASE + Duration::from_secs(5))
            .await
            .unwrap_or_else(|missing| {
                panic!(
                    "b did not deliver {} after a's leases expired\n{}",
                    listed(&missing),
                    logs(&a, &b)
                )
            });
        tokio::time::sleep(Duration::from_millis(500)).await;

        let received = receiver.received();
        let keys = by_key(&received);
        for (key, held_at) in &held_by_a {
            let answered: Vec<_> = keys[key.as_str()].iter().filter(|r| r.answered).collect();
            assert_eq!(answered.len(), 1, "{key} delivered once: {answered:?}");
            let delivery = answered[0];
            assert_eq!(delivery.relay, "b", "{key}");
            let after = delivery.at - *held_at;
            assert!(
                after + CLAIM_TO_REQUEST >= LEASE,
                "b delivered {key} {after:?} after a's attempt, before a's lease of {LEASE:?} \
                 could expire"
            );
        }
        for key in &held.keys {
            let answered = keys[key.as_str()].iter().filter(|r| r.answered).count();
            assert_eq!(answered, 1, "{key} delivered once");
        }
        let counts = store_counts(&schema.url).await;
        let total = (load_keys.len() + HELD) as u64;
        assert_eq!(counts["delivered"], total, "{counts:?}");
        assert_eq!(counts["pending"] + counts["retrying"] + counts["dead"], 0);

        println!(
            "replicas: {REQUESTS} webhooks ({} notifications) accepted in {accepted_in:.1?}, \
             all delivered {load_time:.1?} later, by a: {}, by b: {}, twice: {}; {} of {HELD} \
             attempts in flight from a at its kill, {:.0?} after the first; b delivered them \
             {takeover_time:.1?} after the kill (lease {LEASE:?}); whole test {:.1?}",
            load_keys.len(),
            by_relay.get("a").unwrap_or(&0),
            by_relay.get("b").unwrap_or(&0),
            twice.len(),
            held_by_a.len(),
            killed - first_held,
            started.elapsed()
        );
    })
    .await;
    schema.drop_schema().await;
}
