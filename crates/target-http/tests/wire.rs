//! The HTTP target against a fake receiver on loopback: what goes on the wire, and what
//! each kind of answer means for the delivery engine.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;
use sqreen_webhook_core::samples::sample;
use sqreen_webhook_core::{
    FailureKind, Notification, SIGNATURE_HEADER, Secret, SignatureError, Target, Verifier,
};
use sqreen_webhook_target_http::{Config, HttpTarget, Method, render};
use wiremock::matchers::{body_bytes, header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const PATH: &str = "/hooks/sqreen";
const SECRET: &str = "siem-signing-secret";

/// How a test target differs from one that signs with [`SECRET`] and posts to [`PATH`].
struct Options {
    secret: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    method: Method,
    timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            secret: Some(SECRET),
            headers: &[],
            method: Method::Post,
            timeout: Duration::from_secs(5),
        }
    }
}

fn target_for(url: &str, options: Options) -> HttpTarget {
    let mut config = Config::new(url);
    config.secret = options.secret.map(Secret::new);
    config.headers = options
        .headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Secret::new(*value)))
        .collect();
    config.method = options.method;
    HttpTarget::new("siem", config, options.timeout).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn target(server: &MockServer, options: Options) -> HttpTarget {
    target_for(&format!("{}{PATH}", server.uri()), options)
}

fn notification(name: &str) -> Notification {
    let sample = sample(name).unwrap_or_else(|| panic!("no sample {name}"));
    sqreen_webhook_core::parse(sample.body.as_bytes())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .remove(0)
}

async fn answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(template)
        .expect(1)
        .mount(&server)
        .await;
    server
}

async fn received(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_else(|| panic!("the mock server does not record requests"))
}

fn header_value<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_or_else(
            |e| panic!("no free port on loopback: {e}"),
            |address| address.port(),
        )
}

#[tokio::test]
async fn posts_the_notification_as_json_with_the_relay_user_agent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("content-type", "application/json"))
        .and(header(
            "user-agent",
            format!("sqreen-webhook/{}", env!("CARGO_PKG_VERSION")).as_str(),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server, Options::default());

    let result = target.deliver(&notification("v1-security-event")).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn signs_the_exact_body_sent_so_that_the_core_verifier_accepts_it() {
    let server = answering(ResponseTemplate::new(200)).await;
    let target = target(&server, Options::default());

    target
        .deliver(&notification("v2-security-event"))
        .await
        .unwrap();

    let request = received(&server).await.remove(0);
    let signature = header_value(&request, SIGNATURE_HEADER).unwrap();
    assert_eq!(signature.len(), 64);
    assert!(
        signature
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
    let ours = Verifier::new([Secret::new(SECRET)]).unwrap();
    let another = Verifier::new([Secret::new("another-secret")]).unwrap();
    assert_eq!(
        ours.verify(&request.body, Some(signature.as_bytes())),
        Ok(())
    );
    assert_eq!(
        another.verify(&request.body, Some(signature.as_bytes())),
        Err(SignatureError::Mismatch)
    );
}

#[tokio::test]
async fn sends_no_signature_without_a_secret() {
    let server = answering(ResponseTemplate::new(200)).await;
    let options = Options {
        secret: None,
        ..Options::default()
    };
    let target = target(&server, options);

    target.deliver(&notification("v2-test")).await.unwrap();

    let request = received(&server).await.remove(0);
    assert_eq!(header_value(&request, SIGNATURE_HEADER), None);
}

#[tokio::test]
async fn keeps_one_idempotency_key_across_attempts_and_another_for_another_notification() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header_exists("idempotency-key"))
        .respond_with(ResponseTemplate::new(200))
        .expect(3)
        .mount(&server)
        .await;
    let target = target(&server, Options::default());
    let first = notification("v1-security-event");
    let second = notification("v1-pulse");

    target.deliver(&first).await.unwrap();
    target.deliver(&first).await.unwrap();
    target.deliver(&second).await.unwrap();

    let keys: Vec<String> = received(&server)
        .await
        .iter()
        .map(|request| header_value(request, "idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys[0], first.identity().as_str());
    assert_eq!(keys[1], keys[0]);
    assert_eq!(keys[2], second.identity().as_str());
    assert_ne!(keys[2], keys[0]);
}

#[tokio::test]
async fn sends_the_configured_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-team", "security"))
        .and(header("authorization", "Bearer receiver-token"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let options = Options {
        headers: &[
            ("X-Team", "security"),
            ("Authorization", "Bearer receiver-token"),
        ],
        ..Options::default()
    };
    let target = target(&server, options);

    let result = target.deliver(&notification("v1-security-event")).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn sends_url_credentials_as_basic_authentication() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", "Basic cmVsYXk6aHVudGVyMg=="))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let address = server.address();
    let target = target_for(
        &format!("http://relay:hunter2@{address}{PATH}"),
        Options::default(),
    );

    let result = target.deliver(&notification("v1-security-event")).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn sends_with_put_when_configured() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let options = Options {
        method: Method::Put,
        ..Options::default()
    };
    let target = target(&server, options);

    let result = target.deliver(&notification("v1-security-event")).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn the_body_holds_the_view_and_the_hostile_element_byte_for_byte() {
    let hostile = notification("hostile");
    let expected_body = render::body(&hostile).unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_bytes(expected_body))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server, Options::default());

    target.deliver(&hostile).await.unwrap();

    let request = received(&server).await.remove(0);
    let element = format!(r#""element":{}"#, hostile.element().get());
    let body = std::str::from_utf8(&request.body).unwrap();
    assert!(body.ends_with(&format!("{element}}}")), "{body}");
    let json: Value = request.body_json().unwrap();
    let view = hostile.view();
    assert_eq!(json["identity"], hostile.identity().as_str());
    assert_eq!(json["headline"], view.headline());
    assert_eq!(json["risk_level"], "critical");
    assert_eq!(json["notification"]["kind"], "security_event");
    assert_eq!(json["notification"]["summary"], view.summary);
    assert_eq!(json["notification"]["risk"], 90);
    assert_eq!(json["notification"]["ips"][0]["address"], "1.2.3.4");
    assert_eq!(
        json["notification"]["application"]["name"],
        "shop <b>prod</b> & <!here>"
    );
}

#[tokio::test]
async fn succeeds_on_200_and_204() {
    for status in [200, 204] {
        let server = answering(ResponseTemplate::new(status)).await;
        let target = target(&server, Options::default());

        let result = target.deliver(&notification("v1-security-event")).await;

        assert!(result.is_ok(), "{status}: {result:?}");
    }
}

#[tokio::test]
async fn a_400_is_permanent_and_quotes_the_start_of_the_answer_on_one_line() {
    let answer = format!("field \"notification\"\r\nis invalid {}", "x".repeat(300));
    let server = answering(ResponseTemplate::new(400).set_body_string(answer)).await;
    let target = target(&server, Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Permanent);
    let host = server.address().to_string();
    let expected = format!(
        "the receiver at {host} refused the notification: 400 Bad Request: field \"notification\" is invalid x"
    );
    assert!(error.message().starts_with(&expected), "{error}");
    let excerpt = error.message().split_once("Bad Request: ").unwrap().1;
    assert_eq!(excerpt.chars().count(), 200);
    assert!(excerpt.ends_with('…'));
}

#[tokio::test]
async fn a_401_is_permanent_and_names_the_status() {
    let server = answering(ResponseTemplate::new(401)).await;
    let target = target(&server, Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error
            .message()
            .ends_with("refused the notification: 401 Unauthorized"),
        "{error}"
    );
}

#[tokio::test]
async fn a_404_is_permanent() {
    let server = MockServer::start().await;
    let target = target_for(&format!("{}/nowhere", server.uri()), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(error.message().contains("404 Not Found"), "{error}");
    assert_eq!(received(&server).await.len(), 1);
}

#[tokio::test]
async fn a_429_is_transient_and_passes_on_its_retry_after() {
    let answer = ResponseTemplate::new(429).insert_header("retry-after", "30");
    let server = answering(answer).await;
    let target = target(&server, Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    assert!(error.message().contains("429 Too Many Requests"), "{error}");
}

#[tokio::test]
async fn a_500_is_transient() {
    let server = answering(ResponseTemplate::new(500).set_body_string("database down")).await;
    let target = target(&server, Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.retry_after(), None);
    assert!(
        error
            .message()
            .ends_with("500 Internal Server Error: database down"),
        "{error}"
    );
}

#[tokio::test]
async fn a_408_is_transient() {
    let server = answering(ResponseTemplate::new(408)).await;
    let target = target(&server, Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Transient);
}

#[tokio::test]
async fn a_301_is_permanent_and_not_followed() {
    let server = MockServer::start().await;
    let elsewhere = format!("{}/elsewhere", server.uri());
    Mock::given(path(PATH))
        .respond_with(ResponseTemplate::new(301).insert_header("location", elsewhere.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let target = target(&server, Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error
            .message()
            .contains("301 Moved Permanently, a redirect to 127.0.0.1"),
        "{error}"
    );
    assert!(
        error.message().ends_with("set url to the final address"),
        "{error}"
    );
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_an_unknown_outcome() {
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(3));
    let server = answering(slow).await;
    let options = Options {
        timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let target = target(&server, options);

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Unknown);
    assert!(
        error.message().starts_with("no answer from 127.0.0.1:"),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let url = format!("http://127.0.0.1:{}{PATH}", closed_port());
    let target = target_for(&url, Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Transient);
    assert!(
        error.message().starts_with("cannot connect to 127.0.0.1:"),
        "{error}"
    );
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_transient() {
    let target = target_for("https://relay-test.invalid/hooks", Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), FailureKind::Transient);
    assert!(
        error
            .message()
            .starts_with("cannot connect to relay-test.invalid"),
        "{error}"
    );
}

#[tokio::test]
async fn a_connection_closed_after_the_request_was_sent_is_an_unknown_outcome() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{PATH}", listener.local_addr().unwrap());
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = vec![0; 64 * 1024];
        let read = stream.read(&mut request).unwrap();
        // Half an answer, then the connection closes.
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-").unwrap();
        read
    });
    let target = target_for(&url, Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    assert!(receiver.join().unwrap() > 0);
    assert_eq!(error.kind(), FailureKind::Unknown);
    assert!(
        error.message().contains("after the notification was sent"),
        "{error}"
    );
}

#[tokio::test]
async fn errors_never_show_the_url_credentials_the_secret_or_header_values() {
    let server = answering(ResponseTemplate::new(403).set_body_string("forbidden")).await;
    let address = server.address();
    let with_credentials = format!("http://relay:pw-in-url@{address}{PATH}?token=token-in-url");
    let refused = format!(
        "http://relay:pw-in-url@127.0.0.1:{}{PATH}?token=token-in-url",
        closed_port()
    );
    let options = || Options {
        headers: &[("X-Api-Key", "key-in-header")],
        ..Options::default()
    };

    let errors = [
        target_for(&with_credentials, options())
            .deliver(&notification("v1-security-event"))
            .await
            .unwrap_err(),
        target_for(&refused, options())
            .deliver(&notification("v1-security-event"))
            .await
            .unwrap_err(),
    ];

    for error in errors {
        let shown = format!("{error} {error:?}");
        for secret in ["pw-in-url", "token-in-url", "key-in-header", SECRET, PATH] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

#[tokio::test]
async fn debug_shows_neither_the_url_the_secret_nor_header_values() {
    let options = Options {
        headers: &[("Authorization", "Bearer key-in-header")],
        ..Options::default()
    };
    let target = target_for("https://siem.example.com/hooks/token-in-path", options);

    let debug = format!("{target:?}");

    assert!(debug.contains("siem.example.com"), "{debug}");
    assert!(debug.contains("authorization"), "{debug}");
    for secret in ["token-in-path", "key-in-header", SECRET] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn refuses_a_zero_timeout() {
    let config = Config::new("https://siem.example.com/hooks");

    let error = HttpTarget::new("siem", config, Duration::ZERO).unwrap_err();

    assert_eq!(error.to_string(), "timeout must be more than zero");
}
