//! One webhook fans out to one target of each type, each faked at the wire, and a target
//! that is down does not stop the others.

#![cfg(all(
    feature = "email",
    feature = "twilio",
    feature = "slack",
    feature = "http"
))]

mod support;

use std::time::Duration;

use serde_json::Value;
use sqreen_webhook_core::samples::sample;
use sqreen_webhook_store::DeliveryState;
use sqreen_webhook_testkit::smtp::SmtpSink;
use support::{Behaviour, Options, Recorder, recorder_target, spawn_app};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const WAIT: Duration = Duration::from_secs(10);

async fn received_within(server: &MockServer, n: usize) -> Vec<wiremock::Request> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let requests = server.received_requests().await.unwrap_or_default();
        if requests.len() >= n || tokio::time::Instant::now() > deadline {
            return requests;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_webhook_reaches_every_target_type_and_a_down_target_does_not_stop_the_others() {
    let smtp = SmtpSink::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        )))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"sid": "SM1", "status": "queued"})),
        )
        .expect(1)
        .mount(&twilio)
        .await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/XXXX"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&slack)
        .await;
    let siem = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/sqreen"))
        .and(header(
            "Idempotency-Key",
            "security_event:5dc3ea7706c8cd0013b6c15c",
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&siem)
        .await;
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = Recorder::new("audit", Behaviour::Accept);
    let toml = format!(
        r#"
        [[targets]]
        name = "team"
        type = "email"
        host = "127.0.0.1"
        port = {smtp_port}
        tls = "none"
        from = "Relay <relay@example.com>"
        to = ["security@example.com", "oncall@example.org"]

        [[targets]]
        name = "on-call"
        type = "twilio"
        account_sid = "{ACCOUNT}"
        auth_token = "twilio-token"
        from = "+15005550006"
        to = ["+15005550001"]
        base_url = "{twilio}"

        [[targets]]
        name = "secops"
        type = "slack"
        webhook_url = "{slack}/services/T000/B000/XXXX"

        [[targets]]
        name = "siem"
        type = "http"
        url = "{siem}/hooks/sqreen"
        secret = "siem-secret"

        [[targets]]
        name = "backup-siem"
        type = "http"
        url = "http://{down}/hooks/sqreen"
        timeout = "1s"
        "#,
        smtp_port = smtp.port(),
        twilio = twilio.uri(),
        slack = slack.uri(),
        siem = siem.uri(),
    );
    let app = spawn_app(Options {
        toml,
        targets: vec![recorder_target(&log)],
        ..Options::default()
    })
    .await;

    let response = app
        .post_signed(sample("v1-security-event").unwrap().body.as_bytes())
        .await;
    assert_eq!(response.status(), 200);

    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(
        mails[0].recipients,
        ["security@example.com", "oncall@example.org"]
    );
    assert_eq!(
        mails[0].subject().as_deref(),
        Some("[Sqreen] high risk security event on sqreentest (development)")
    );
    let sms = received_within(&twilio, 1).await;
    let form = String::from_utf8_lossy(&sms[0].body).to_string();
    assert!(form.contains("To=%2B15005550001"), "{form}");
    let slack_requests = received_within(&slack, 1).await;
    let message: Value = serde_json::from_slice(&slack_requests[0].body).unwrap();
    assert!(message["blocks"].is_array(), "{message}");
    let forwarded = received_within(&siem, 1).await;
    let body: Value = serde_json::from_slice(&forwarded[0].body).unwrap();
    assert_eq!(body["identity"], "security_event:5dc3ea7706c8cd0013b6c15c");
    assert_eq!(log.wait_for(1, WAIT).await.len(), 1);

    // The target that is down is retrying, the others are delivered, and the store says so.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let records = app.store.list(Default::default()).await.unwrap();
        assert_eq!(records.len(), 6, "one delivery per target: {records:#?}");
        let settled = records.iter().all(|r| match r.target.as_str() {
            "backup-siem" => r.state == DeliveryState::Retrying && r.last_error.is_some(),
            _ => r.state == DeliveryState::Delivered,
        });
        if settled {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{records:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
