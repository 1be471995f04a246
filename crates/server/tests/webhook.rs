//! The webhook endpoint, end to end: the real server on port 0, a SQLite store in a temporary
//! directory, and recording targets.

mod support;

use std::time::Duration;

use serde_json::Value;
use sqreen_webhook_core::samples::{SAMPLES, sample};
use sqreen_webhook_core::{Filter, parse};
use support::{Behaviour, Options, Recorder, recorder_target, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

/// Gives deliveries that should not happen the time to happen.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

#[tokio::test]
async fn every_sample_is_answered_200_and_delivered_once_per_notification() {
    let recorder = Recorder::new("recorder", Behaviour::Accept);
    let app = spawn_app(Options {
        targets: vec![recorder_target(&recorder)],
        ..Options::default()
    })
    .await;
    let mut expected = Vec::new();
    for sample in SAMPLES {
        let response = app.post_signed(sample.body.as_bytes()).await;
        assert_eq!(response.status(), 200, "{}", sample.name);
        let answer: Value = response.json().await.unwrap();
        let count = parse(sample.body.as_bytes()).unwrap().len();
        assert_eq!(answer["accepted"], count, "{}", sample.name);
        expected.extend(
            parse(sample.body.as_bytes())
                .unwrap()
                .into_iter()
                .map(|n| n.identity().clone()),
        );
    }

    // Two captures carry the same event (587b234e…), sent once in v1 and once in v2: it is
    // delivered once.
    expected.sort();
    expected.dedup();
    recorder.wait_for(expected.len(), WAIT).await;
    settle().await;

    let mut got: Vec<_> = recorder
        .received()
        .iter()
        .map(|n| n.identity().clone())
        .collect();
    got.sort();
    assert_eq!(got, expected);
    app.stop().await;
}

#[tokio::test]
async fn a_tampered_body_a_wrong_secret_and_a_missing_header_get_401_and_dispatch_nothing() {
    let recorder = Recorder::new("recorder", Behaviour::Accept);
    let app = spawn_app(Options {
        targets: vec![recorder_target(&recorder)],
        ..Options::default()
    })
    .await;
    let body = sample("v1-security-event").unwrap().body.as_bytes();

    let signature =
        sqreen_webhook_core::sign(&sqreen_webhook_core::Secret::new(support::SECRET), body);
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    let tampered = app
        .client
        .post(format!("{}/webhook", app.url))
        .header("X-Sqreen-Integrity", signature)
        .body(tampered)
        .send()
        .await
        .unwrap();
    let wrong_secret = app.post_signed_with("another-secret", body).await;
    let missing = app
        .client
        .post(format!("{}/webhook", app.url))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();

    for response in [tampered, wrong_secret, missing] {
        assert_eq!(response.status(), 401);
        let text = response.text().await.unwrap();
        assert_eq!(
            text, r#"{"error":"invalid or missing signature"}"#,
            "the same answer, with no hint"
        );
    }
    settle().await;
    assert!(recorder.received().is_empty());
    assert!(app.store.list(Default::default()).await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_signed_body_that_is_not_json_gets_400_and_dispatches_nothing() {
    let recorder = Recorder::new("recorder", Behaviour::Accept);
    let app = spawn_app(Options {
        targets: vec![recorder_target(&recorder)],
        ..Options::default()
    })
    .await;

    let response = app.post_signed(b"{not json").await;

    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("not valid JSON"),
        "{answer}"
    );
    settle().await;
    assert!(recorder.received().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_body_above_the_limit_gets_413() {
    let app = spawn_app(Options {
        toml: String::new(),
        ..Options::default()
    })
    .await;
    let big = format!(
        "[{}]",
        vec![r#"{"sqreen_payload_type":"test"}"#; 40_000].join(",")
    );
    assert!(big.len() > 1024 * 1024);

    let response = app.post_signed(big.as_bytes()).await;

    assert_eq!(response.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let app = spawn_app(Options::default()).await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_failing_or_hanging_target_does_not_delay_the_answer_or_the_other_targets() {
    let good = Recorder::new("good", Behaviour::Accept);
    let failing = Recorder::new("failing", Behaviour::FailTransient);
    let hanging = Recorder::new("hanging", Behaviour::Hang);
    let mut hanging_target = recorder_target(&hanging);
    hanging_target.timeout = Duration::from_millis(200);
    let app = spawn_app(Options {
        targets: vec![
            recorder_target(&failing),
            hanging_target,
            recorder_target(&good),
        ],
        ..Options::default()
    })
    .await;
    let body = sample("v2-authentication-events").unwrap().body.as_bytes();

    let started = std::time::Instant::now();
    let response = app.post_signed(body).await;
    let answered_in = started.elapsed();

    assert_eq!(response.status(), 200);
    assert!(
        answered_in < Duration::from_secs(2),
        "answered in {answered_in:?}"
    );
    assert_eq!(good.wait_for(2, WAIT).await.len(), 2);
    failing.wait_for(2, WAIT).await;
    hanging.wait_for(2, WAIT).await;
    app.stop().await;
}

#[tokio::test]
async fn each_target_gets_only_what_its_filter_lets_through() {
    let everything = Recorder::new("everything", Behaviour::Accept);
    let high_risk = Recorder::new("high-risk", Behaviour::Accept);
    let production = Recorder::new("production", Behaviour::Accept);
    let mut high = recorder_target(&high_risk);
    high.filter = Filter {
        types: vec!["security_event".into()],
        min_risk: Some(50),
        ..Filter::default()
    };
    let mut prod = recorder_target(&production);
    prod.filter = Filter {
        environments: vec!["production".into()],
        ..Filter::default()
    };
    let app = spawn_app(Options {
        targets: vec![recorder_target(&everything), high, prod],
        ..Options::default()
    })
    .await;

    for name in [
        "v1-security-event",
        "v2-security-event",
        "v2-test",
        "v1-pulse",
    ] {
        assert_eq!(
            app.post_signed(sample(name).unwrap().body.as_bytes())
                .await
                .status(),
            200
        );
    }

    everything.wait_for(4, WAIT).await;
    settle().await;
    let kinds = |r: &Recorder| -> Vec<String> {
        r.received()
            .iter()
            .map(|n| n.view().summary.clone())
            .collect()
    };
    // Risk 50 passes min_risk 50; the v2 event (risk 25), the test and the pulse do not.
    assert_eq!(
        kinds(&high_risk),
        ["Potential Automated Vulnerability discovery from 127.0.0.1"]
    );
    // Only the pulse is from production.
    assert_eq!(
        kinds(&production),
        ["Massive account takeover attempts on user@example.com"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_batch_sent_again_is_answered_200_and_not_delivered_again() {
    let recorder = Recorder::new("recorder", Behaviour::Accept);
    let app = spawn_app(Options {
        targets: vec![recorder_target(&recorder)],
        ..Options::default()
    })
    .await;
    let body = sample("v2-authentication-events").unwrap().body.as_bytes();

    let first: Value = app.post_signed(body).await.json().await.unwrap();
    recorder.wait_for(2, WAIT).await;
    let again = app.post_signed(body).await;

    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["duplicates"], 0);
    assert_eq!(again["accepted"], 2);
    assert_eq!(again["duplicates"], 2);
    settle().await;
    assert_eq!(recorder.received().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn delivered_work_is_pruned_after_the_retention_and_dead_deliveries_are_kept() {
    let delivered = Recorder::new("delivered", Behaviour::Accept);
    let refused = Recorder::new("refused", Behaviour::FailPermanent);
    let app = spawn_app(Options {
        store_toml: "retention = \"1ms\"\ndedup_window = \"1ms\"".into(),
        targets: vec![recorder_target(&delivered), recorder_target(&refused)],
        ..Options::default()
    })
    .await;
    let body = sample("v1-security-event").unwrap().body.as_bytes();

    assert_eq!(app.post_signed(body).await.status(), 200);
    delivered.wait_for(1, WAIT).await;

    let deadline = tokio::time::Instant::now() + WAIT;
    let left = loop {
        let all = app
            .store
            .list(sqreen_webhook_store::ListQuery {
                state: None,
                limit: 0,
            })
            .await
            .unwrap();
        let dead_only = all.iter().all(|d| d.target == "refused");
        if (dead_only && !all.is_empty()) || tokio::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].state, sqreen_webhook_store::DeliveryState::Dead);
    app.stop().await;
}
