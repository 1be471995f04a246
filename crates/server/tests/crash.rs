//! The crash test: the real server binary on SQLite, killed with `kill -9` in the middle of
//! a stream of webhooks while its HTTP target is down, then restarted.
//!
//! The promise under test is the relay's main one: a webhook answered `200` is delivered,
//! whatever happens to the process afterwards, and the receiver, which de-duplicates on
//! `Idempotency-Key`, sees each notification once. A webhook that got no answer is not
//! counted as lost: Sqreen sends it again, and that re-send is part of the test.

#![cfg(feature = "http")]

mod e2e;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::{
    Answer, Batch, LONGEST_BACKOFF, Receiver, Relay, Stream, by_key, listed, store_counts, within,
};

/// Webhooks in the stream, of 1 to 10 notifications each.
const REQUESTS: usize = 200;
/// Concurrent senders, as Sqreen posts from several workers.
const SENDERS: usize = 4;
/// Webhooks answered `200` before the kill: well inside the stream.
const KILL_AFTER: usize = 80;
/// Webhooks answered `200` before the kill that Sqreen sends again after the restart.
const RESENT_ACCEPTED: usize = 10;
/// Long enough for every attempt that was due to be made once more.
const SETTLE: Duration = Duration::from_millis(2 * LONGEST_BACKOFF.as_millis() as u64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_answered_200_before_a_kill_9_is_delivered_once_after_the_restart() {
    within(Duration::from_secs(55), async {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}/relay.db", dir.path().display());
        let mut receiver = Receiver::reserve();
        let mut relay = Relay::new(dir.path(), "relay", &store, &receiver.url());
        relay.start().await;

        // Step 1: a stream of webhooks while the receiver is down, and kill -9 in its middle.
        let batches = Batch::stream("crash", REQUESTS);
        let mut stream = Stream::start(&batches, &[relay.webhook_url()], SENDERS);
        stream
            .wait_accepted(KILL_AFTER, Duration::from_secs(20))
            .await;
        relay.kill();
        let killed_at = started.elapsed();
        // A repeat at the receiver can only come from an attempt it had already taken when
        // the relay died; it is down, so there is none.
        let taken_before_the_kill: BTreeSet<String> =
            receiver.received().into_iter().map(|r| r.key).collect();
        let answers = stream.finish().await;

        let accepted: Vec<&Batch> = answered(&batches, &answers, true);
        let unanswered: Vec<&Batch> = answered(&batches, &answers, false);
        let refused: Vec<&Answer> = answers
            .iter()
            .filter(|a| matches!(a, Answer::Refused { .. }))
            .collect();
        assert!(
            refused.is_empty(),
            "answers other than 200: {}",
            listed(&refused)
        );
        assert!(accepted.len() >= KILL_AFTER);
        assert!(
            !unanswered.is_empty(),
            "the kill came after the stream ended"
        );
        let accepted_keys: BTreeSet<&str> = keys_of(accepted.iter().copied());
        let sent_keys: BTreeSet<&str> = keys_of(&batches);

        // Step 2: the relay restarts on the same store, then the receiver comes up.
        relay.start().await;
        let restarted_at = started.elapsed();
        receiver.start().await;

        // Step 3: everything answered 200 arrives; the attempts still due get their time.
        let delivery_time = receiver
            .wait_delivered(&accepted_keys, Duration::from_secs(20))
            .await
            .unwrap_or_else(|missing| {
                panic!(
                    "of {} accepted notifications, some never arrived, {}\n{}",
                    accepted_keys.len(),
                    listed(&missing),
                    relay.log_tail(40)
                )
            });
        tokio::time::sleep(SETTLE).await;

        let received = receiver.received();
        let keys = by_key(&received);
        let repeated: Vec<&str> = keys
            .iter()
            .filter(|(_, requests)| requests.len() > 1)
            .map(|(key, _)| *key)
            .collect();
        let never_sent: Vec<&str> = keys
            .keys()
            .copied()
            .filter(|key| !sent_keys.contains(key))
            .collect();
        let delivered_unanswered = unanswered
            .iter()
            .filter(|b| b.keys.iter().any(|k| keys.contains_key(k.as_str())))
            .count();
        let refused = receiver.refused();
        assert!(
            refused.is_empty(),
            "refused by the receiver: {}",
            listed(&refused)
        );
        assert!(
            never_sent.is_empty(),
            "received but never sent: {}",
            listed(&never_sent)
        );
        assert!(
            repeated
                .iter()
                .all(|key| taken_before_the_kill.contains(*key)),
            "received more than once although the receiver was down at the kill: {}",
            listed(&repeated)
        );
        for batch in &unanswered {
            let arrived = batch
                .keys
                .iter()
                .filter(|k| keys.contains_key(k.as_str()))
                .count();
            assert!(
                arrived == 0 || arrived == batch.keys.len(),
                "a webhook is committed whole or not at all, yet {arrived} of its {} \
                 notifications arrived",
                batch.keys.len()
            );
        }
        let first_repeats = repeated.len();

        // Step 4: Sqreen sends again what got no answer, and some of what it thinks failed
        // although it got 200. Batches the relay had committed before dying are duplicates
        // now; the others are new. Nothing arrives twice.
        let resend: Vec<Batch> = unanswered
            .iter()
            .chain(accepted.iter().take(RESENT_ACCEPTED))
            .map(|b| (*b).clone())
            .collect();
        let answers = Stream::start(&resend, &[relay.webhook_url()], SENDERS)
            .finish()
            .await;
        for (batch, answer) in resend.iter().zip(&answers) {
            let already = batch
                .keys
                .iter()
                .filter(|k| keys.contains_key(k.as_str()))
                .count();
            assert_eq!(
                answer,
                &Answer::Accepted {
                    duplicates: already
                },
                "a re-sent webhook is a duplicate exactly when it had been committed"
            );
        }
        receiver
            .wait_delivered(&sent_keys, Duration::from_secs(10))
            .await
            .unwrap_or_else(|missing| {
                panic!(
                    "re-sent notifications never arrived, {}\n{}",
                    listed(&missing),
                    relay.log_tail(40)
                )
            });
        tokio::time::sleep(SETTLE).await;

        let received = receiver.received();
        let keys = by_key(&received);
        let repeated = keys.values().filter(|r| r.len() > 1).count();
        assert_eq!(
            keys.len(),
            sent_keys.len(),
            "each notification sent arrives, and nothing else"
        );
        assert_eq!(repeated, 0, "a re-sent webhook was delivered again");
        assert!(received.iter().all(|r| r.answered));
        let counts = store_counts(&store).await;
        assert_eq!(counts["delivered"], sent_keys.len() as u64, "{counts:?}");
        assert_eq!(counts["pending"] + counts["retrying"] + counts["dead"], 0);

        println!(
            "crash: {REQUESTS} webhooks ({} notifications), {} answered 200 and {} unanswered \
             around the kill at {killed_at:.1?} (of which {delivered_unanswered} had been \
             committed); restarted at {restarted_at:.1?}; all accepted delivered \
             {delivery_time:.1?} after the receiver came up; raw repeats at the receiver: \
             {first_repeats} after the restart, {repeated} after the re-send; whole test {:.1?}",
            sent_keys.len(),
            accepted.len(),
            unanswered.len(),
            started.elapsed()
        );
    })
    .await;
}

/// The batches whose answer was `200` (`true`) or none at all (`false`).
fn answered<'b>(batches: &'b [Batch], answers: &[Answer], accepted: bool) -> Vec<&'b Batch> {
    batches
        .iter()
        .zip(answers)
        .filter(|(_, answer)| match answer {
            Answer::Accepted { .. } => accepted,
            Answer::Unanswered { .. } => !accepted,
            Answer::Refused { .. } => false,
        })
        .map(|(batch, _)| batch)
        .collect()
}

/// The `Idempotency-Key`s of every notification of `batches`.
fn keys_of<'b>(batches: impl IntoIterator<Item = &'b Batch>) -> BTreeSet<&'b str> {
    batches
        .into_iter()
        .flat_map(|b| b.keys.iter().map(String::as_str))
        .collect()
}
