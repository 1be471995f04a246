//! The Twilio target against a fake Twilio: wiremock checks every request at the wire
//! (method, path, basic authentication, content type, form fields), and answers as Twilio
//! does, so that each class of answer is seen to become the right kind of failure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sqreen_webhook_core::samples::sample;
use sqreen_webhook_core::{DeliveryError, FailureKind, Notification, Target, parse};
use sqreen_webhook_target_twilio::{Config, PhoneNumber, TwilioTarget, render};
use wiremock::matchers::{basic_auth, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
const FROM: &str = "+15005550006";
const TO: [&str; 3] = ["+15005550001", "+15005550002", "+15005550003"];
const MESSAGES_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

/// How a test wants its target.
struct Options {
    recipients: usize,
    messaging_service: bool,
    timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            recipients: 1,
            messaging_service: false,
            timeout: Duration::from_secs(5),
        }
    }
}

fn target(base_url: &str, options: Options) -> TwilioTarget {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (from, messaging_service_sid) = if options.messaging_service {
        (None, Some(SERVICE_SID.to_owned()))
    } else {
        (Some(PhoneNumber::new(FROM)), None)
    };
    let config = Config {
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: AUTH_TOKEN.into(),
        from,
        messaging_service_sid,
        to: TO[..options.recipients]
            .iter()
            .map(|n| PhoneNumber::new(*n))
            .collect(),
        base_url: base_url.to_owned(),
        max_segments: 2,
    };
    TwilioTarget::new("on-call", config, options.timeout).expect("a valid config")
}

fn notification(name: &str) -> Notification {
    let body = sample(name).expect("a built-in sample").body;
    parse(body.as_bytes()).expect("a sample parses").remove(0)
}

/// Matches a request whose form body holds exactly these fields.
struct Form(BTreeMap<String, String>);

impl Form {
    fn new(fields: &[(&str, &str)]) -> Form {
        Form(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

impl Match for Form {
    fn matches(&self, request: &Request) -> bool {
        form_of(request) == self.0
    }
}

/// Matches a request whose `To` field is this number.
struct To(&'static str);

impl Match for To {
    fn matches(&self, request: &Request) -> bool {
        form_of(request).get("To").map(String::as_str) == Some(self.0)
    }
}

fn form_of(request: &Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": "SM0123456789abcdef0123456789abcdef",
        "status": "queued",
    }))
}

fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// Fails when an error shows the auth token or any configured phone number, in its message,
/// its cause chain or its `Debug` output.
fn assert_shows_no_secret(error: &DeliveryError) {
    let printed = format!("{error} {error:?}");
    assert!(!printed.contains(AUTH_TOKEN), "{printed}");
    for number in TO.iter().chain([&FROM]) {
        assert!(!printed.contains(&number[2..]), "{printed}");
    }
}

#[tokio::test]
async fn posts_a_form_with_basic_auth_to_the_messages_resource() {
    let server = MockServer::start().await;
    let alert = notification("v1-security-event");
    let body = render::sms(alert.view(), 2);
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(Form::new(&[("To", TO[0]), ("From", FROM), ("Body", &body)]))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let result = target.deliver(&alert).await;

    assert!(result.is_ok(), "{result:?}");
    assert!(
        body.starts_with("Sqreen: high risk security event on sqreentest"),
        "{body}"
    );
}

#[tokio::test]
async fn sends_through_a_messaging_service_when_one_is_configured() {
    let server = MockServer::start().await;
    let alert = notification("v2-incident");
    let body = render::sms(alert.view(), 2);
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .and(Form::new(&[
            ("To", TO[0]),
            ("MessagingServiceSid", SERVICE_SID),
            ("Body", &body),
        ]))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let target = target(
        &server.uri(),
        Options {
            messaging_service: true,
            ..Options::default()
        },
    );

    let result = target.deliver(&alert).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn texts_every_recipient_once() {
    let server = MockServer::start().await;
    for number in TO {
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .and(To(number))
            .respond_with(accepted())
            .expect(1)
            .mount(&server)
            .await;
    }
    let target = target(
        &server.uri(),
        Options {
            recipients: 3,
            ..Options::default()
        },
    );

    let result = target.deliver(&notification("v1-pulse")).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn hostile_text_reaches_the_phone_without_control_characters_or_invisible_marks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    target
        .deliver(&notification("hostile"))
        .await
        .expect("delivered");

    let requests = server.received_requests().await.expect("recording is on");
    let body = form_of(&requests[0]).remove("Body").expect("a body");
    assert!(
        body.starts_with("Sqreen: critical risk security event on shop"),
        "{body}"
    );
    assert!(
        !body
            .chars()
            .any(|c| (c.is_control() && c != '\n')
                || sqreen_webhook_core::text::is_invisible_mark(c)),
        "{body:?}"
    );
    assert!(
        body.contains("\"admin\" X-Injected: yes"),
        "the line break became a space: {body}"
    );
}

#[tokio::test]
async fn an_invalid_number_is_permanent_and_says_what_twilio_said_without_the_number() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(
            400,
            21211,
            "The 'To' number +15005550001 is not a valid phone number.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("twilio refused it");

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert_eq!(
        error.message(),
        "sms to to[0] failed: twilio answered 400 with error 21211: \
         The 'To' number [phone number] is not a valid phone number: \
         check the number in `to[0]` (https://www.twilio.com/docs/errors/21211)"
    );
    assert_shows_no_secret(&error);
}

#[tokio::test]
async fn refused_credentials_are_permanent_and_point_at_the_keys_to_check() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(401, 20003, "Authenticate"))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("twilio refused the credentials");

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error
            .message()
            .contains("401 with error 20003: Authenticate: check `account_sid` and `auth_token`"),
        "{error}"
    );
    assert_shows_no_secret(&error);
}

#[tokio::test]
async fn an_unknown_account_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(
            404,
            20404,
            "The requested resource /2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json was not found",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("no such account");

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(
        error
            .message()
            .contains("check `account_sid` and `base_url`"),
        "{error}"
    );
    assert_shows_no_secret(&error);
}

#[tokio::test]
async fn a_404_without_a_twilio_body_is_permanent_too() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("<html>not found</html>"))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("nothing there");

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert_eq!(
        error.message(),
        "sms to to[0] failed: twilio answered 404: check `account_sid` and `base_url`"
    );
}

#[tokio::test]
async fn rate_limiting_is_transient_and_keeps_the_delay_twilio_asked_for() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "30"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("rate limited");

    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    assert!(
        error
            .message()
            .contains("429 with error 20429: Too Many Requests"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(500, 20500, "Internal Server Error"))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("twilio is down");

    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.retry_after(), None);
}

#[tokio::test]
async fn a_request_timeout_answer_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(408))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("408");

    assert_eq!(error.kind(), FailureKind::Transient);
}

#[tokio::test]
async fn no_answer_in_time_is_an_unknown_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted().set_delay(Duration::from_secs(3)))
        .expect(1)
        .mount(&server)
        .await;
    let target = target(
        &server.uri(),
        Options {
            timeout: Duration::from_millis(300),
            ..Options::default()
        },
    );

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("timed out");

    assert_eq!(error.kind(), FailureKind::Unknown);
    assert!(
        error.message().contains("the sms may have been sent"),
        "{error}"
    );
    assert_shows_no_secret(&error);
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("an address");
    drop(listener);
    let target = target(&format!("http://{address}"), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("nobody listens");

    assert_eq!(error.kind(), FailureKind::Transient);
    assert!(
        error.message().contains("cannot connect to twilio"),
        "{error}"
    );
    assert!(
        std::error::Error::source(&error).is_some(),
        "the cause is kept"
    );
    assert_shows_no_secret(&error);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(307).insert_header("Location", "/elsewhere"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere"))
        .respond_with(accepted())
        .expect(0)
        .mount(&server)
        .await;
    let target = target(&server.uri(), Options::default());

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("redirected");

    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(error.message().contains("check `base_url`"), "{error}");
}

#[tokio::test]
async fn a_retry_after_a_partial_failure_texts_only_the_recipients_still_missing() {
    let server = MockServer::start().await;
    Mock::given(To(TO[1]))
        .respond_with(twilio_error(503, 20503, "Service Unavailable"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    for number in TO {
        Mock::given(To(number))
            .respond_with(accepted())
            .expect(1)
            .mount(&server)
            .await;
    }
    let target = target(
        &server.uri(),
        Options {
            recipients: 3,
            ..Options::default()
        },
    );
    let alert = notification("v1-security-event");

    let first = target.deliver(&alert).await.expect_err("to[1] failed");
    let retry = target.deliver(&alert).await;

    assert_eq!(first.kind(), FailureKind::Transient);
    assert_eq!(
        first.message(),
        "sms to to[1] failed (1 of 3 recipients): twilio answered 503 with error 20503: \
         Service Unavailable; 2 other recipients have it and are skipped on retry"
    );
    assert_shows_no_secret(&first);
    assert!(retry.is_ok(), "{retry:?}");
}

#[tokio::test]
async fn a_notification_delivered_to_everyone_is_sent_in_full_if_delivered_again() {
    let server = MockServer::start().await;
    for number in &TO[..2] {
        Mock::given(To(number))
            .respond_with(accepted())
            .expect(2)
            .mount(&server)
            .await;
    }
    let target = target(
        &server.uri(),
        Options {
            recipients: 2,
            ..Options::default()
        },
    );
    let alert = notification("v2-test");

    let first = target.deliver(&alert).await;
    let second = target.deliver(&alert).await;

    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
}

#[tokio::test]
async fn a_recipient_refused_while_others_were_texted_is_permanent_and_named_by_place() {
    let server = MockServer::start().await;
    Mock::given(To(TO[0]))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(To(TO[1]))
        .respond_with(twilio_error(
            400,
            21610,
            "Attempt to send to unsubscribed recipient +15005550002",
        ))
        .expect(2)
        .mount(&server)
        .await;
    let target = target(
        &server.uri(),
        Options {
            recipients: 2,
            ..Options::default()
        },
    );
    let alert = notification("v1-security-event");

    let first = target
        .deliver(&alert)
        .await
        .expect_err("to[1] unsubscribed");
    let again = target
        .deliver(&alert)
        .await
        .expect_err("still unsubscribed");

    assert_eq!(first.kind(), FailureKind::Permanent);
    assert!(
        first
            .message()
            .starts_with("sms to to[1] failed (1 of 2 recipients)"),
        "{first}"
    );
    assert!(
        first.message().contains(
            "unsubscribed recipient [phone number]: the recipient in `to[1]` replied STOP"
        ),
        "{first}"
    );
    assert!(
        first
            .message()
            .ends_with("1 other recipient has it and is skipped on retry"),
        "{first}"
    );
    assert_shows_no_secret(&first);
    assert_eq!(again.kind(), FailureKind::Permanent);
}

#[tokio::test]
async fn a_mixed_failure_is_classified_by_what_a_retry_can_still_achieve() {
    let server = MockServer::start().await;
    Mock::given(To(TO[0]))
        .respond_with(twilio_error(
            400,
            21211,
            "The 'To' number +15005550001 is not a valid phone number.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(To(TO[1]))
        .respond_with(
            twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "7"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(To(TO[2]))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let target = target(
        &server.uri(),
        Options {
            recipients: 3,
            ..Options::default()
        },
    );

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .expect_err("two recipients failed");

    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(
        error
            .message()
            .starts_with("sms to to[0], to[1] failed (2 of 3 recipients); to[0]: "),
        "{error}"
    );
    assert!(
        error.message().contains("; to[1]: twilio answered 429"),
        "{error}"
    );
    assert_shows_no_secret(&error);
}

#[tokio::test]
async fn the_target_debug_output_shows_neither_the_token_nor_the_numbers() {
    let target = target(
        "https://api.twilio.com",
        Options {
            recipients: 3,
            ..Options::default()
        },
    );

    let printed = format!("{target:?}");

    assert!(!printed.contains(AUTH_TOKEN), "{printed}");
    for number in TO.iter().chain([&FROM]) {
        assert!(!printed.contains(&number[2..]), "{printed}");
    }
    assert!(printed.contains("on-call"), "{printed}");
}
