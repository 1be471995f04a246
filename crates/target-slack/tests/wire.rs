//! The Slack target against a fake Slack on loopback: what it sends (method, path, token,
//! Block Kit body), and what it makes of every kind of answer, from `ok` to a rate limit to
//! silence.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqreen_webhook_core::{DeliveryError, FailureKind, Notification, Secret, Target, parse};
use sqreen_webhook_target_slack::{Config, SlackTarget};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const WEBHOOK_PATH: &str = "/services/T0000/B0000/WebhookSecret1234";
const TOKEN: &str = "xoxb-1111-2222-TokenSecret5678";
const TIMEOUT: Duration = Duration::from_secs(5);

fn webhook_target(server: &MockServer, timeout: Duration) -> SlackTarget {
    let config = Config {
        webhook_url: Some(Secret::new(format!("{}{WEBHOOK_PATH}", server.uri()))),
        ..Config::default()
    };
    SlackTarget::new("secops", config, timeout).expect("valid configuration")
}

fn bot_target(server: &MockServer, timeout: Duration) -> SlackTarget {
    let config = Config {
        token: Some(Secret::new(TOKEN)),
        channel: Some("#secops".to_owned()),
        api_url: Some(format!("{}/api/", server.uri())),
        username: Some("Sqreen".to_owned()),
        icon_emoji: Some(":shield:".to_owned()),
        ..Config::default()
    };
    SlackTarget::new("secops", config, timeout).expect("valid configuration")
}

fn sample(name: &str) -> Notification {
    let body = sqreen_webhook_core::samples::sample(name)
        .expect("sample exists")
        .body;
    parse(body.as_bytes()).expect("sample parses").remove(0)
}

fn body_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

fn chat_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "channel": "C0123456789",
        "ts": "1573120630.000200",
        "message": {"type": "message", "text": "posted", "ts": "1573120630.000200", "bot_id": "B01"},
    }))
}

fn api_refusal(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code}))
}

/// Neither the error's message, its causes nor its `Debug` show a credential.
fn assert_hides_secrets(error: &DeliveryError, server: &MockServer) {
    let shown = format!("{error} {error:?}");
    for secret in [
        "WebhookSecret1234",
        WEBHOOK_PATH,
        "TokenSecret5678",
        TOKEN,
        &format!("{}{WEBHOOK_PATH}", server.uri()),
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

/// The error for one webhook post answered with `answer`, which must be received once.
async fn webhook_failure(answer: ResponseTemplate) -> DeliveryError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    let target = webhook_target(&server, TIMEOUT);

    let error = target
        .deliver(&sample("v1-security-event"))
        .await
        .expect_err("the post fails");

    assert_hides_secrets(&error, &server);
    error
}

/// The error for one `chat.postMessage` answered with `answer`, which must be received once.
async fn bot_failure(answer: ResponseTemplate) -> DeliveryError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    let target = bot_target(&server, TIMEOUT);

    let error = target
        .deliver(&sample("v1-security-event"))
        .await
        .expect_err("the post fails");

    assert_hides_secrets(&error, &server);
    error
}

#[tokio::test]
async fn posts_the_escaped_hostile_event_to_the_incoming_webhook() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .and(header("content-type", "application/json; charset=utf-8"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let target = webhook_target(&server, TIMEOUT);

    target
        .deliver(&sample("hostile"))
        .await
        .expect("slack said ok");

    let requests = server.received_requests().await.expect("recorded");
    assert!(requests[0].headers.get("authorization").is_none());
    let body = body_of(&requests[0]);
    let raw = body.to_string();
    for forged in [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<@U024BE7LH>",
        "<https://evil",
    ] {
        assert!(!raw.contains(forged), "{forged} reached slack: {raw}");
    }
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        "🔴 Critical risk security event on shop &lt;b&gt;prod&lt;/b&gt; &amp; &lt;!here&gt; \
         (production)"
    );
    let summary = body["blocks"][1]["text"]["text"].as_str().expect("summary");
    assert!(
        summary.starts_with(
            "Login of &lt;!channel&gt; &lt;@U024BE7LH&gt; &lt;https://evil.example/phish|Reset \
             your password&gt; as &lt;script&gt;"
        ),
        "{summary}"
    );
    assert!(
        !summary.contains('\u{1b}') && !summary.contains('\u{202e}'),
        "{summary}"
    );
    let fallback = body["text"].as_str().expect("fallback text");
    assert!(
        fallback.starts_with("Critical risk security event on shop &lt;b&gt;"),
        "{fallback}"
    );
    assert!(body.get("channel").is_none());
}

#[tokio::test]
async fn posts_to_chat_post_message_with_the_bot_token_and_channel() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_partial_json(json!({
            "channel": "#secops",
            "username": "Sqreen",
            "icon_emoji": ":shield:",
            "unfurl_links": false,
            "unfurl_media": false,
        })))
        .respond_with(chat_ok())
        .expect(1)
        .mount(&server)
        .await;
    let target = bot_target(&server, TIMEOUT);

    target
        .deliver(&sample("v1-security-event-geo"))
        .await
        .expect("slack said ok");

    let requests = server.received_requests().await.expect("recorded");
    let body = body_of(&requests[0]);
    assert_eq!(
        body["text"],
        "High risk security event on crabshelter (development): Potential Automated \
         Vulnerability discovery from 5.51.199.63"
    );
    let kinds: Vec<&str> = body["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|block| block["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        ["header", "section", "section", "actions", "context"]
    );
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        "🟠 High risk security event on crabshelter (development)"
    );
}

#[tokio::test]
async fn counts_a_plain_ok_without_content_type_as_posted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_bytes("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let target = webhook_target(&server, TIMEOUT);

    let result = target.deliver(&sample("v2-test")).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn counts_ok_true_with_unexpected_fields_as_posted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&server)
        .await;
    let target = bot_target(&server, TIMEOUT);

    let result = target.deliver(&sample("v2-incident")).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn webhook_400_invalid_payload_is_permanent_and_reported_as_a_bug() {
    let error =
        webhook_failure(ResponseTemplate::new(400).set_body_string("invalid_payload")).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert_eq!(
        error.to_string(),
        "slack refused the message's format (400 invalid_payload): this is a bug in the relay, \
         please report it"
    );
}

#[tokio::test]
async fn webhook_403_invalid_token_is_permanent_and_asks_for_a_new_webhook() {
    let error = webhook_failure(ResponseTemplate::new(403).set_body_string("invalid_token")).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert_eq!(
        error.to_string(),
        "the incoming webhook was disabled or removed (403 invalid_token): create a webhook and \
         update `webhook_url`"
    );
}

#[tokio::test]
async fn webhook_404_no_service_is_permanent_and_asks_for_a_new_webhook() {
    let error = webhook_failure(ResponseTemplate::new(404).set_body_string("no_service")).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error
            .to_string()
            .contains("(404 no_service): create a webhook"),
        "{error}"
    );
}

#[tokio::test]
async fn webhook_410_channel_is_archived_is_permanent() {
    let error =
        webhook_failure(ResponseTemplate::new(410).set_body_string("channel_is_archived")).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error
            .to_string()
            .starts_with("the webhook's channel was deleted or archived")
    );
}

#[tokio::test]
async fn a_proxy_page_echoing_the_webhook_url_is_not_repeated() {
    let page = format!("<html><body>Not Found: {WEBHOOK_PATH}</body></html>");

    let error = webhook_failure(ResponseTemplate::new(404).set_body_raw(page, "text/html")).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert_eq!(
        error.to_string(),
        "slack refused the post (404): check `webhook_url`"
    );
}

#[tokio::test]
async fn channel_not_found_is_permanent_and_names_the_channel() {
    let error = bot_failure(api_refusal("channel_not_found")).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert_eq!(
        error.to_string(),
        "slack knows no channel #secops (channel_not_found): check `channel`, and invite the \
         bot to the channel if it is private"
    );
}

#[tokio::test]
async fn not_in_channel_is_permanent_and_asks_to_invite_the_bot() {
    let error = bot_failure(api_refusal("not_in_channel")).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error.to_string().contains("invite the bot to the channel"),
        "{error}"
    );
}

#[tokio::test]
async fn invalid_auth_is_permanent_and_says_the_token_is_invalid_or_revoked() {
    let error = bot_failure(api_refusal("invalid_auth")).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error
            .to_string()
            .contains("the token is invalid or revoked"),
        "{error}"
    );
}

#[tokio::test]
async fn missing_scope_names_the_scope_slack_wants() {
    let answer = ResponseTemplate::new(200).set_body_json(json!({
        "ok": false, "error": "missing_scope", "needed": "chat:write", "provided": "users:read",
    }));

    let error = bot_failure(answer).await;

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error
            .to_string()
            .starts_with("the token lacks the chat:write scope"),
        "{error}"
    );
}

#[tokio::test]
async fn ratelimited_in_an_ok_false_answer_is_transient() {
    let error = bot_failure(api_refusal("ratelimited")).await;

    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.retry_after(), None);
}

#[tokio::test]
async fn web_api_429_is_transient_with_slacks_retry_after() {
    let answer = ResponseTemplate::new(429)
        .insert_header("retry-after", "30")
        .set_body_json(json!({"ok": false, "error": "ratelimited"}));

    let error = bot_failure(answer).await;

    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(
        error.to_string(),
        "slack is rate limiting this target: retry after 30s"
    );
}

#[tokio::test]
async fn webhook_429_is_transient_with_slacks_retry_after() {
    let answer = ResponseTemplate::new(429)
        .insert_header("retry-after", "7")
        .set_body_string("rate_limited");

    let error = webhook_failure(answer).await;

    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn server_errors_and_request_timeouts_are_transient() {
    for status in [500, 502, 503, 408] {
        let error =
            webhook_failure(ResponseTemplate::new(status).set_body_string("rollup_error")).await;

        assert_eq!(error.kind(), FailureKind::Transient, "{status}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("slack answered {status}"))
        );
    }
    let error = bot_failure(ResponseTemplate::new(503)).await;
    assert_eq!(error.kind(), FailureKind::Transient);
}

#[tokio::test]
async fn an_answer_that_cannot_be_read_is_an_unknown_outcome() {
    let answer = ResponseTemplate::new(200).set_body_raw(
        format!("not json, from {WEBHOOK_PATH} with {TOKEN}"),
        "application/json",
    );

    let error = bot_failure(answer).await;

    assert_eq!(error.kind(), FailureKind::Unknown);
    assert!(
        error
            .to_string()
            .starts_with("slack's answer could not be read"),
        "{error}"
    );
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_an_unknown_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("ok")
                .set_delay(Duration::from_secs(3)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let target = webhook_target(&server, Duration::from_millis(300));
    let started = Instant::now();

    let error = target
        .deliver(&sample("v1-security-event"))
        .await
        .expect_err("no answer in time");

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.kind(), FailureKind::Unknown);
    assert_eq!(
        error.to_string(),
        "no answer from slack within 300ms: the message may have been posted"
    );
    assert_hides_secrets(&error, &server);
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_hides_the_webhook_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("an address");
    drop(listener);
    let url = format!("http://{address}{WEBHOOK_PATH}");
    let config = Config {
        webhook_url: Some(Secret::new(url.as_str())),
        ..Config::default()
    };
    let target = SlackTarget::new("secops", config, TIMEOUT).expect("valid configuration");

    let error = target
        .deliver(&sample("v1-security-event"))
        .await
        .expect_err("nothing listens");

    assert_eq!(error.kind(), FailureKind::Transient);
    assert!(
        error.to_string().starts_with("cannot connect to slack: "),
        "{error}"
    );
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("WebhookSecret1234") && !shown.contains(&url),
        "{shown}"
    );
}
