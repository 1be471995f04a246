//! The cases of the store suite, each a function of a fresh [`Db`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqreen_webhook_store::{
    DeliveryState, Durability, Finished, ListQuery, Outcome, Requeue, Store, StoreError,
    StoreOptions,
};

use super::{Db, HOUR, LEASE, SECOND, Sample, T0};

const HTTP: &str = "http";
const SMS: &str = "sms";

fn count(counts: &[(DeliveryState, u64)], state: DeliveryState) -> u64 {
    counts
        .iter()
        .find(|(s, _)| *s == state)
        .map_or(0, |(_, n)| *n)
}

async fn claim_ids(store: &dyn Store, owner: &str, now: i64, wants: &[(&str, usize)]) -> Vec<i64> {
    store
        .claim(owner, now, LEASE, wants)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

fn retry(id: i64, at: i64) -> Finished {
    Finished {
        id,
        outcome: Outcome::Retry {
            at,
            error: "503 service unavailable".into(),
        },
    }
}

fn dead(id: i64) -> Finished {
    Finished {
        id,
        outcome: Outcome::Dead {
            error: "401 bad credentials".into(),
        },
    }
}

fn delivered(id: i64) -> Finished {
    Finished {
        id,
        outcome: Outcome::Delivered,
    }
}

pub async fn accept_commits_the_body_and_one_delivery_per_target(db: &Db) {
    let store = db.open().await;
    let sample = Sample::new(&["a", "b"]);

    let accepted = store.accept(sample.body(T0, &[HTTP, SMS])).await.unwrap();

    assert_eq!(
        (accepted.fresh, accepted.duplicates, accepted.deliveries),
        (2, 0, 4)
    );
    assert_eq!(
        db.body(accepted.body_id).await,
        Some((sample.bytes.to_vec(), None))
    );
    assert_eq!(
        store.counts().await.unwrap(),
        vec![
            (DeliveryState::Pending, 4),
            (DeliveryState::Retrying, 0),
            (DeliveryState::Delivered, 0),
            (DeliveryState::Dead, 0)
        ]
    );
    let listed = store.list(ListQuery::default()).await.unwrap();
    let mut seen: Vec<(String, String)> = listed
        .iter()
        .map(|d| (d.identity.clone(), d.target.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("a", HTTP), ("a", SMS), ("b", HTTP), ("b", SMS)]
            .map(|(i, t)| (i.to_owned(), t.to_owned()))
            .to_vec()
    );
    for d in &listed {
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(
            (d.attempts, d.created_at, d.updated_at, d.next_attempt_at),
            (0, T0, T0, Some(T0))
        );
        assert_eq!(
            (
                d.type_name.as_str(),
                d.last_error.as_deref(),
                d.lease_owner.as_deref()
            ),
            ("security_event", None, None)
        );
    }
}

pub async fn accept_refuses_a_span_outside_the_body_and_stores_nothing(db: &Db) {
    let store = db.open().await;
    let sample = Sample::new(&["a"]);
    let mut body = sample.body(T0, &[HTTP]);
    body.notifications[0].span = 1..sample.bytes.len() + 1;

    let result = store.accept(body).await;

    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert!(store.list(ListQuery::default()).await.unwrap().is_empty());
    let again = store.accept(sample.body(T0, &[HTTP])).await.unwrap();
    assert_eq!(
        again.fresh, 1,
        "the refused body must not have recorded its identity"
    );
}

pub async fn a_notification_accepted_within_the_window_is_a_duplicate(db: &Db) {
    let store = db.open().await;
    let sample = Sample::new(&["a", "b"]);
    store.accept(sample.body(T0, &[HTTP])).await.unwrap();

    let resent = store
        .accept(sample.body(T0 + 23 * HOUR, &[HTTP]))
        .await
        .unwrap();

    assert_eq!(
        (resent.fresh, resent.duplicates, resent.deliveries),
        (0, 2, 0)
    );
    assert_eq!(
        count(&store.counts().await.unwrap(), DeliveryState::Pending),
        2
    );
}

pub async fn a_notification_accepted_before_the_window_is_fresh_again(db: &Db) {
    let store = db.open().await;
    let sample = Sample::new(&["a"]);
    store.accept(sample.body(T0, &[HTTP])).await.unwrap();
    // A duplicate inside the window must not push the window on.
    store
        .accept(sample.body(T0 + 20 * HOUR, &[HTTP]))
        .await
        .unwrap();

    let later = store
        .accept(sample.body(T0 + 25 * HOUR, &[HTTP]))
        .await
        .unwrap();
    let soon_after = store
        .accept(sample.body(T0 + 26 * HOUR, &[HTTP]))
        .await
        .unwrap();

    assert_eq!((later.fresh, later.duplicates, later.deliveries), (1, 0, 1));
    assert_eq!((soon_after.fresh, soon_after.duplicates), (0, 1));
    assert_eq!(
        count(&store.counts().await.unwrap(), DeliveryState::Pending),
        2
    );
}

pub async fn an_identity_twice_in_one_body_is_delivered_once(db: &Db) {
    let store = db.open().await;
    let sample = Sample::new(&["a", "a", "b"]);

    let accepted = store.accept(sample.body(T0, &[HTTP])).await.unwrap();

    assert_eq!(
        (accepted.fresh, accepted.duplicates, accepted.deliveries),
        (2, 1, 2)
    );
    let claims = store.claim("w", T0, LEASE, &[(HTTP, 10)]).await.unwrap();
    let mut identities: Vec<&str> = claims.iter().map(|c| c.identity.as_str()).collect();
    identities.sort();
    assert_eq!(identities, ["a", "b"]);
}

pub async fn concurrent_accepts_of_one_identity_deliver_it_once(db: &Db) {
    let store: Arc<dyn Store> = Arc::from(db.open().await);
    let sample = Arc::new(Sample::new(&["same"]));

    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (store, sample) = (store.clone(), sample.clone());
            tokio::spawn(async move { store.accept(sample.body(T0 + i, &[HTTP])).await.unwrap() })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        fresh += task.await.unwrap().fresh;
    }

    assert_eq!(fresh, 1);
    assert_eq!(
        count(&store.counts().await.unwrap(), DeliveryState::Pending),
        1
    );
}

pub async fn concurrent_accepts_from_many_tasks_are_all_committed(db: &Db) {
    let store: Arc<dyn Store> = Arc::from(
        db.open_with(StoreOptions {
            durability: Durability::PowerLoss,
            ..StoreOptions::default()
        })
        .await,
    );
    const TASKS: usize = 200;

    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let sample = Sample::new(&[&format!("n{i}")]);
                store.accept(sample.body(T0, &[HTTP, SMS])).await.unwrap()
            })
        })
        .collect();
    let mut bodies = HashSet::new();
    for task in tasks {
        let accepted = task.await.unwrap();
        assert_eq!(accepted.deliveries, 2);
        bodies.insert(accepted.body_id);
    }

    assert_eq!(bodies.len(), TASKS);
    assert_eq!(
        count(&store.counts().await.unwrap(), DeliveryState::Pending),
        2 * TASKS as u64
    );
    drop(store);
    let reopened = db.open().await;
    assert_eq!(
        count(&reopened.counts().await.unwrap(), DeliveryState::Pending),
        2 * TASKS as u64
    );
}

pub async fn a_claim_returns_the_element_as_it_was_in_the_body(db: &Db) {
    let store = db.open().await;
    let sample = Sample::new(&["a", "b", "c"]);
    store.accept(sample.body(T0, &[HTTP])).await.unwrap();

    let claims = store.claim("w", T0, LEASE, &[(HTTP, 10)]).await.unwrap();

    assert_eq!(claims.len(), 3);
    for claim in &claims {
        let index = sample
            .elements
            .iter()
            .position(|(id, _)| *id == claim.identity)
            .unwrap();
        assert_eq!(claim.element, sample.element(index));
        assert_eq!(
            (claim.target.as_str(), claim.attempt, claim.created_at),
            (HTTP, 1, T0)
        );
    }
    assert!(claims[0].element.contains("détectée — «0» ✓"));
}

pub async fn a_leased_delivery_is_not_claimed_again_until_its_lease_expires(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let first = claim_ids(&*store, "one", T0, &[(HTTP, 10)]).await;

    let during = claim_ids(&*store, "two", T0 + 59 * SECOND, &[(HTTP, 10)]).await;
    let after = store
        .claim("two", T0 + 60 * SECOND, LEASE, &[(HTTP, 10)])
        .await
        .unwrap();

    assert_eq!(first.len(), 1);
    assert!(during.is_empty());
    assert_eq!(after.iter().map(|c| c.id).collect::<Vec<_>>(), first);
    assert_eq!(
        after[0].attempt, 2,
        "an expired lease counts its attempt: its holder may have died during it"
    );
    let listed = store.list(ListQuery::default()).await.unwrap();
    assert_eq!(listed[0].lease_owner.as_deref(), Some("two"));
}

pub async fn only_the_lease_owner_can_finish_a_delivery(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a", "b"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let ids = claim_ids(&*store, "one", T0, &[(HTTP, 10)]).await;
    // The second lease expires and another claimer takes it over.
    let taken = claim_ids(&*store, "two", T0 + 61 * SECOND, &[(HTTP, 10)]).await;
    assert_eq!(taken.len(), 2);

    let stranger = store
        .finish("three", T0 + 62 * SECOND, vec![delivered(ids[0])])
        .await
        .unwrap();
    let late = store
        .finish(
            "one",
            T0 + 62 * SECOND,
            vec![delivered(ids[0]), dead(ids[1])],
        )
        .await
        .unwrap();
    let owner = store
        .finish("two", T0 + 62 * SECOND, vec![delivered(ids[0])])
        .await
        .unwrap();

    assert_eq!(stranger, vec![ids[0]]);
    assert_eq!(late, ids);
    assert!(owner.is_empty());
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            count(&counts, DeliveryState::Delivered),
            count(&counts, DeliveryState::Pending)
        ),
        (1, 1)
    );
    let again = store
        .finish("two", T0 + 63 * SECOND, vec![delivered(ids[0])])
        .await
        .unwrap();
    assert_eq!(
        again,
        vec![ids[0]],
        "a finished delivery has no lease left to finish"
    );
}

pub async fn a_lease_that_expired_unclaimed_still_lets_its_owner_finish(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let ids = claim_ids(&*store, "one", T0, &[(HTTP, 10)]).await;

    let lost = store
        .finish("one", T0 + 10 * 60 * SECOND, vec![delivered(ids[0])])
        .await
        .unwrap();

    assert!(lost.is_empty());
    assert_eq!(
        count(&store.counts().await.unwrap(), DeliveryState::Delivered),
        1
    );
}

pub async fn a_retried_delivery_is_claimed_again_only_once_due(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let ids = claim_ids(&*store, "w", T0, &[(HTTP, 10)]).await;
    let due = T0 + 5 * 60 * SECOND;
    store
        .finish("w", T0 + SECOND, vec![retry(ids[0], due)])
        .await
        .unwrap();

    let early = claim_ids(&*store, "w", due - 1, &[(HTTP, 10)]).await;
    let listed = store.list(ListQuery::default()).await.unwrap();
    let on_time = store.claim("w", due, LEASE, &[(HTTP, 10)]).await.unwrap();

    assert!(early.is_empty());
    let record = &listed[0];
    assert_eq!(
        (record.state, record.attempts, record.next_attempt_at),
        (DeliveryState::Retrying, 1, Some(due))
    );
    assert_eq!(
        (record.updated_at, record.last_error.as_deref()),
        (T0 + SECOND, Some("503 service unavailable"))
    );
    assert_eq!(record.lease_owner, None);
    assert_eq!(on_time.len(), 1);
    assert_eq!(
        (on_time[0].id, on_time[0].attempt, on_time[0].created_at),
        (ids[0], 2, T0)
    );
}

pub async fn a_dead_delivery_is_not_claimed_again(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let ids = claim_ids(&*store, "w", T0, &[(HTTP, 10)]).await;

    store
        .finish("w", T0 + SECOND, vec![dead(ids[0])])
        .await
        .unwrap();

    assert!(
        claim_ids(&*store, "w", T0 + 100 * HOUR, &[(HTTP, 10)])
            .await
            .is_empty()
    );
    let dead = store
        .list(ListQuery {
            state: Some(DeliveryState::Dead),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].next_attempt_at), (1, None));
    assert_eq!(dead[0].last_error.as_deref(), Some("401 bad credentials"));
    assert_eq!(store.next_due(&[HTTP], T0 + SECOND).await.unwrap(), None);
}

pub async fn claims_take_each_targets_limit_oldest_first(db: &Db) {
    let store = db.open().await;
    for i in 0..5 {
        store
            .accept(Sample::new(&[&format!("n{i}")]).body(T0 + i * SECOND, &[HTTP, SMS]))
            .await
            .unwrap();
    }

    let claims = store
        .claim("w", T0 + HOUR, LEASE, &[(HTTP, 2), (SMS, 3), ("email", 4)])
        .await
        .unwrap();

    let of = |target: &str| -> Vec<String> {
        claims
            .iter()
            .filter(|c| c.target == target)
            .map(|c| c.identity.clone())
            .collect()
    };
    assert_eq!(of(HTTP), ["n0", "n1"]);
    assert_eq!(of(SMS), ["n0", "n1", "n2"]);
    assert_eq!(claims.len(), 5);
    let rest = store
        .claim("w", T0 + HOUR, LEASE, &[(HTTP, 10), (SMS, 0)])
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|c| c.identity.as_str()).collect::<Vec<_>>(),
        ["n2", "n3", "n4"]
    );
}

pub async fn a_released_delivery_can_be_claimed_again_at_once(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a", "b"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let ids = claim_ids(&*store, "one", T0, &[(HTTP, 10)]).await;

    store.release("someone else", &ids).await.unwrap();
    let still_leased = claim_ids(&*store, "two", T0 + SECOND, &[(HTTP, 10)]).await;
    store.release("one", &ids[..1]).await.unwrap();
    let released = store
        .claim("two", T0 + SECOND, LEASE, &[(HTTP, 10)])
        .await
        .unwrap();

    assert!(
        still_leased.is_empty(),
        "only the owner may release a lease"
    );
    assert_eq!(released.len(), 1);
    assert_eq!((released[0].id, released[0].attempt), (ids[0], 1));
}

pub async fn dead_deliveries_are_requeued_by_id_or_all_at_once(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a", "b", "c"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let ids = claim_ids(&*store, "w", T0, &[(HTTP, 10)]).await;
    store
        .finish("w", T0 + SECOND, ids.iter().map(|id| dead(*id)).collect())
        .await
        .unwrap();
    let later = T0 + 48 * HOUR;

    let one = store
        .requeue(Requeue::Ids(vec![ids[0]]), later)
        .await
        .unwrap();
    let requeued = store.claim("w", later, LEASE, &[(HTTP, 10)]).await.unwrap();
    let rest = store
        .requeue(Requeue::AllDead, later + SECOND)
        .await
        .unwrap();

    assert_eq!(one, 1);
    assert_eq!(requeued.len(), 1);
    assert_eq!((requeued[0].id, requeued[0].attempt), (ids[0], 1));
    assert_eq!(
        requeued[0].created_at, later,
        "a requeued delivery's age starts again"
    );
    assert_eq!(rest, 2);
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            count(&counts, DeliveryState::Dead),
            count(&counts, DeliveryState::Pending)
        ),
        (0, 3)
    );
    let pending = store
        .list(ListQuery {
            state: Some(DeliveryState::Pending),
            limit: 0,
        })
        .await
        .unwrap();
    // Requeued with a fresh count of attempts; the one claimed since has that claim counted.
    assert!(
        pending
            .iter()
            .all(|d| d.attempts == u32::from(d.id == ids[0]) && d.created_at == T0),
        "{pending:?}"
    );
}

pub async fn requeue_skips_a_delivery_under_a_live_lease(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let ids = claim_ids(&*store, "w", T0, &[(HTTP, 10)]).await;

    let during = store
        .requeue(Requeue::Ids(ids.clone()), T0 + SECOND)
        .await
        .unwrap();
    let after = store
        .requeue(Requeue::Ids(ids.clone()), T0 + 61 * SECOND)
        .await
        .unwrap();
    let missing = store
        .requeue(Requeue::Ids(vec![ids[0] + 1000]), T0 + 61 * SECOND)
        .await
        .unwrap();

    assert_eq!((during, after, missing), (0, 1, 0));
    let lost = store
        .finish("w", T0 + 62 * SECOND, vec![delivered(ids[0])])
        .await
        .unwrap();
    assert_eq!(lost, ids, "a requeue ends the expired lease");
}

pub async fn list_filters_by_state_newest_first_and_honours_the_limit(db: &Db) {
    let store = db.open().await;
    store
        .accept(Sample::new(&["a", "b", "c", "d"]).body(T0, &[HTTP]))
        .await
        .unwrap();
    let ids = claim_ids(&*store, "w", T0, &[(HTTP, 10)]).await;
    store
        .finish("w", T0 + SECOND, vec![dead(ids[0])])
        .await
        .unwrap();
    store
        .finish("w", T0 + 3 * SECOND, vec![dead(ids[1])])
        .await
        .unwrap();
    store
        .finish("w", T0 + 2 * SECOND, vec![delivered(ids[2])])
        .await
        .unwrap();

    let dead = store
        .list(ListQuery {
            state: Some(DeliveryState::Dead),
            limit: 10,
        })
        .await
        .unwrap();
    let newest = store
        .list(ListQuery {
            state: None,
            limit: 2,
        })
        .await
        .unwrap();
    let all = store
        .list(ListQuery {
            state: None,
            limit: 0,
        })
        .await
        .unwrap();

    assert_eq!(
        dead.iter().map(|d| d.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
    assert_eq!(
        newest.iter().map(|d| d.id).collect::<Vec<_>>(),
        [ids[1], ids[2]]
    );
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].id, ids[3]);
    assert_eq!(all[3].state, DeliveryState::Pending);
}

pub async fn prune_deletes_finished_work_and_keeps_dead_and_waiting_deliveries(db: &Db) {
    let store = db.open().await;
    let done = Sample::new(&["done"]);
    let failed = Sample::new(&["failed"]);
    let waiting = Sample::new(&["waiting"]);
    let done_body = store.accept(done.body(T0, &[HTTP])).await.unwrap().body_id;
    let failed_body = store
        .accept(failed.body(T0, &[HTTP]))
        .await
        .unwrap()
        .body_id;
    let waiting_body = store
        .accept(waiting.body(T0, &[SMS]))
        .await
        .unwrap()
        .body_id;
    let rejected_body = store
        .reject(T0, b"not json", "expected value at line 1 column 1")
        .await
        .unwrap();
    let claims = store.claim("w", T0, LEASE, &[(HTTP, 10)]).await.unwrap();
    let id_of = |identity: &str| claims.iter().find(|c| c.identity == identity).unwrap().id;
    store
        .finish(
            "w",
            T0 + SECOND,
            vec![delivered(id_of("done")), dead(id_of("failed"))],
        )
        .await
        .unwrap();

    let nothing = store.prune(T0, 0).await.unwrap();
    let pruned = store.prune(T0 + 2 * SECOND, 0).await.unwrap();

    assert_eq!(nothing, 0);
    // The delivered delivery, three de-duplication entries, and the bodies left with nothing
    // to deliver: the delivered one and the rejected one.
    assert_eq!(pruned, 1 + 3 + 2);
    assert_eq!(db.body(done_body).await, None);
    assert_eq!(db.body(rejected_body).await, None);
    assert!(db.body(failed_body).await.is_some());
    assert!(db.body(waiting_body).await.is_some());
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            count(&counts, DeliveryState::Delivered),
            count(&counts, DeliveryState::Dead),
            count(&counts, DeliveryState::Pending)
        ),
        (0, 1, 1)
    );
    let waiting_claim = store
        .claim("w", T0 + 3 * SECOND, LEASE, &[(SMS, 10)])
        .await
        .unwrap();
    assert_eq!(waiting_claim[0].element, waiting.element(0));
    let resent = store
        .accept(done.body(T0 + 3 * SECOND, &[HTTP]))
        .await
        .unwrap();
    assert_eq!(resent.fresh, 1, "a pruned identity is forgotten");
}

pub async fn prune_with_a_limit_deletes_a_backlog_in_steps(db: &Db) {
    let store = db.open().await;
    for name in ["one", "two", "three"] {
        store
            .accept(Sample::new(&[name]).body(T0, &[HTTP]))
            .await
            .unwrap();
    }
    let claims = store.claim("w", T0, LEASE, &[(HTTP, 10)]).await.unwrap();
    let done = claims.iter().map(|c| delivered(c.id)).collect();
    store.finish("w", T0 + SECOND, done).await.unwrap();

    let mut steps = Vec::new();
    loop {
        let deleted = store.prune(T0 + 2 * SECOND, 1).await.unwrap();
        if deleted == 0 {
            break;
        }
        steps.push(deleted);
        assert!(steps.len() <= 3, "pruning does not end: {steps:?}");
    }

    // Each step: one delivery, one de-duplication entry, and the body it emptied.
    assert_eq!(steps, [3, 3, 3]);
    let counts = store.counts().await.unwrap();
    assert_eq!(count(&counts, DeliveryState::Delivered), 0);
}

pub async fn a_rejected_body_is_kept_with_its_reason(db: &Db) {
    let store = db.open().await;
    let body = b"\x00\xffnot json at all".to_vec();

    let id = store
        .reject(T0, &body, "expected value at line 1 column 1")
        .await
        .unwrap();

    assert_eq!(
        db.body(id).await,
        Some((body, Some("expected value at line 1 column 1".to_owned())))
    );
    assert!(store.list(ListQuery::default()).await.unwrap().is_empty());
}

pub async fn nul_characters_from_a_payload_or_a_target_are_stored(db: &Db) {
    let store = db.open().await;
    let sample = Sample::new(&[r"a\u0000b"]);
    let mut body = sample.body(T0, &[HTTP]);
    body.notifications[0].identity = "a\0b";
    body.notifications[0].type_name = "security\0event";

    let accepted = store.accept(body.clone()).await.unwrap();
    let claims = store.claim("w", T0, LEASE, &[(HTTP, 1)]).await.unwrap();
    let error = Outcome::Retry {
        at: T0 + HOUR,
        error: "502 from receiver: \0\0".into(),
    };
    let lost = store
        .finish(
            "w",
            T0 + 1,
            vec![Finished {
                id: claims[0].id,
                outcome: error,
            }],
        )
        .await
        .unwrap();
    let resent = store.accept(body).await.unwrap();
    let rejected = store
        .reject(T0, b"{\0", "control character \0 at line 1")
        .await
        .unwrap();

    assert_eq!((accepted.fresh, resent.duplicates), (1, 1));
    assert_eq!(claims[0].identity, "a\u{FFFD}b");
    assert!(lost.is_empty());
    let listed = store.list(ListQuery::default()).await.unwrap();
    assert_eq!(
        listed[0].last_error.as_deref(),
        Some("502 from receiver: \u{FFFD}\u{FFFD}")
    );
    assert_eq!(listed[0].type_name, "security\u{FFFD}event");
    let kept = db.body(rejected).await.unwrap();
    assert_eq!(
        kept,
        (
            b"{\0".to_vec(),
            Some("control character \u{FFFD} at line 1".to_owned())
        )
    );
}

pub async fn next_due_is_the_earliest_due_time_or_lease_end(db: &Db) {
    let store = db.open().await;
    assert_eq!(store.next_due(&[HTTP, SMS], T0).await.unwrap(), None);
    store
        .accept(Sample::new(&["a"]).body(T0 + 10 * SECOND, &[HTTP]))
        .await
        .unwrap();
    store
        .accept(Sample::new(&["b"]).body(T0 + 20 * SECOND, &[SMS]))
        .await
        .unwrap();

    let both = store.next_due(&[HTTP, SMS], T0).await.unwrap();
    let sms = store.next_due(&[SMS], T0).await.unwrap();
    let other = store.next_due(&["email"], T0).await.unwrap();
    let http = claim_ids(&*store, "w", T0 + 10 * SECOND, &[(HTTP, 1)]).await;
    let leased = store.next_due(&[HTTP], T0 + 10 * SECOND).await.unwrap();
    store
        .finish("w", T0 + 11 * SECOND, vec![retry(http[0], T0 + HOUR)])
        .await
        .unwrap();
    let retrying = store.next_due(&[HTTP], T0 + 11 * SECOND).await.unwrap();

    assert_eq!(
        (both, sms, other),
        (Some(T0 + 10 * SECOND), Some(T0 + 20 * SECOND), None)
    );
    assert_eq!(
        leased,
        Some(T0 + 10 * SECOND + 60 * SECOND),
        "a leased delivery is due when its lease ends"
    );
    assert_eq!(retrying, Some(T0 + HOUR));
}

pub async fn reopening_the_store_keeps_everything(db: &Db) {
    let store = db.open().await;
    let sample = Sample::new(&["a", "b", "c"]);
    store.accept(sample.body(T0, &[HTTP])).await.unwrap();
    let ids = claim_ids(&*store, "w", T0, &[(HTTP, 2)]).await;
    store
        .finish("w", T0 + SECOND, vec![delivered(ids[0])])
        .await
        .unwrap();
    let before = store.list(ListQuery::default()).await.unwrap();
    drop(store);

    let reopened = db.open_tool().await;

    assert_eq!(reopened.list(ListQuery::default()).await.unwrap(), before);
    let resent = reopened
        .accept(sample.body(T0 + HOUR, &[HTTP]))
        .await
        .unwrap();
    assert_eq!(resent.duplicates, 3);
    let lease_kept = claim_ids(&*reopened, "other", T0 + 2 * SECOND, &[(HTTP, 10)]).await;
    assert_eq!(lease_kept.len(), 1, "a tool leaves the leases alone");
}

pub async fn a_database_from_a_newer_version_is_refused(db: &Db) {
    drop(db.open().await);
    db.set_schema_version(99).await;

    let result = sqreen_webhook_store::open(&db.url, StoreOptions::default()).await;

    match result {
        Err(StoreError::SchemaTooNew { found: 99, known }) => assert!(known < 99),
        other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| "a store")),
    }
}

pub async fn ping_answers_on_an_open_store(db: &Db) {
    let store = db.open().await;

    let answer = tokio::time::timeout(Duration::from_secs(5), store.ping()).await;

    assert!(matches!(answer, Ok(Ok(()))));
}
