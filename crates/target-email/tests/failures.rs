//! One test per class of SMTP failure, against a loopback server told to fail at that step:
//! what kind of error the delivery engine gets, and what a person reads in it.

mod common;

use std::time::Duration;

use common::{failure, keys, target, target_for};
use sqreen_webhook_core::FailureKind::{Permanent, Transient, Unknown};
use sqreen_webhook_target_email::EmailTarget;
use sqreen_webhook_testkit::smtp::{Answer, SmtpSink, Step};

/// A target with a short timeout, for the tests that wait for one.
fn impatient(sink: &SmtpSink) -> EmailTarget {
    let config = common::config(keys(sink.port()));
    EmailTarget::new("security-team", config, Duration::from_millis(500))
        .expect("config builds a target")
}

fn logging_in(sink: &SmtpSink) -> EmailTarget {
    let mut keys = keys(sink.port());
    keys["username"] = "relay".into();
    keys["password"] = "hunter2-secret".into();
    target(keys)
}

#[tokio::test]
async fn a_server_that_is_not_listening_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };

    let error = failure(&target(keys(port))).await;

    assert_eq!(error.kind(), Transient);
    assert!(
        error
            .message()
            .starts_with(&format!("cannot reach the SMTP server 127.0.0.1:{port}")),
        "{error}"
    );
}

#[tokio::test]
async fn a_connection_closed_before_the_greeting_is_transient() {
    let sink = SmtpSink::start().await;
    sink.answer(Step::Greeting, Answer::Close);

    let error = failure(&target_for(&sink)).await;

    assert_eq!(error.kind(), Transient, "{error}");
    assert!(
        error
            .message()
            .starts_with("no valid greeting from the SMTP server"),
        "{error}"
    );
    assert_eq!(sink.connections(), 1);
}

#[tokio::test]
async fn a_greeting_of_421_is_transient_and_of_554_permanent() {
    let busy = SmtpSink::start().await;
    busy.answer(
        Step::Greeting,
        Answer::reply(421, "4.3.2 too busy, try later"),
    );
    let closed = SmtpSink::start().await;
    closed.answer(Step::Greeting, Answer::reply(554, "5.7.1 no mail from you"));

    let busy_error = failure(&target_for(&busy)).await;
    let closed_error = failure(&target_for(&closed)).await;

    assert_eq!(busy_error.kind(), Transient);
    assert_eq!(
        busy_error.to_string(),
        "the SMTP server 127.0.0.1 is not taking mail now: 421 4.3.2 too busy, try later"
    );
    assert_eq!(closed_error.kind(), Permanent);
    assert!(
        closed_error.message().contains("refused the connection"),
        "{closed_error}"
    );
}

#[tokio::test]
async fn a_refused_login_is_permanent_and_names_the_user_but_not_the_password() {
    let sink = SmtpSink::start().await;
    sink.require_login("relay", "another-password");

    let error = failure(&logging_in(&sink)).await;

    assert_eq!(error.kind(), Permanent);
    assert!(
        error.message().starts_with(
            "the SMTP server 127.0.0.1 refused the login for user relay: check `username` and \
             `password`"
        ),
        "{error}"
    );
    assert!(error.to_string().contains("535"), "{error}");
    assert!(!format!("{error} {error:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_login_the_server_cannot_check_now_is_transient() {
    let sink = SmtpSink::start().await;
    sink.answer(
        Step::Auth,
        Answer::reply(454, "4.7.0 temporary authentication failure"),
    );

    let error = failure(&logging_in(&sink)).await;

    assert_eq!(error.kind(), Transient);
    assert!(
        error
            .message()
            .contains("could not check the login for user relay"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_that_requires_a_login_we_do_not_have_is_permanent() {
    let sink = SmtpSink::start().await;
    sink.require_login("relay", "app-password");

    let error = failure(&target_for(&sink)).await;

    assert_eq!(error.kind(), Permanent);
    assert!(
        error.message().contains("requires a login: set `username`"),
        "{error}"
    );
}

#[tokio::test]
async fn every_recipient_refused_is_permanent_without_their_addresses() {
    let sink = SmtpSink::start().await;
    sink.answer(
        Step::RcptTo,
        Answer::reply(550, "5.1.1 <who@example.com> no such mailbox"),
    );

    let error = failure(&target_for(&sink)).await;

    assert_eq!(error.kind(), Permanent);
    assert_eq!(
        error.message(),
        "the SMTP server 127.0.0.1 refused recipient 1 of 2 (at example.com), recipient 2 of 2 \
         (at example.org), none of them got the message: check `to`"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("alice") && !shown.contains("bob") && !shown.contains("who@"));
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn a_deferred_recipient_is_transient_and_sends_to_no_one() {
    for code in [450, 451, 452] {
        let sink = SmtpSink::start().await;
        sink.answer_recipient("bob@example.org", Answer::reply(code, "4.2.2 mailbox busy"));

        let error = failure(&target_for(&sink)).await;

        assert_eq!(error.kind(), Transient, "{code}");
        assert!(
            error
                .message()
                .contains("deferred recipient 2 of 2 (at example.org)"),
            "{error}"
        );
        assert!(
            sink.received().is_empty(),
            "a retry must not reach alice twice"
        );
    }
}

#[tokio::test]
async fn a_deferred_message_is_transient_and_a_rejected_one_permanent() {
    let deferred = SmtpSink::start().await;
    deferred.answer(Step::EndOfData, Answer::reply(451, "4.3.0 queue full"));
    let rejected = SmtpSink::start().await;
    rejected.answer(Step::EndOfData, Answer::reply(554, "5.7.1 looks like spam"));

    let deferred_error = failure(&target_for(&deferred)).await;
    let rejected_error = failure(&target_for(&rejected)).await;

    assert_eq!(deferred_error.kind(), Transient);
    assert_eq!(
        deferred_error.message(),
        "the SMTP server 127.0.0.1 deferred the message"
    );
    assert_eq!(rejected_error.kind(), Permanent);
    assert_eq!(
        rejected_error.to_string(),
        "the SMTP server 127.0.0.1 refused the message: 554 5.7.1 looks like spam"
    );
}

#[tokio::test]
async fn a_server_shutting_down_at_mail_from_is_transient() {
    let sink = SmtpSink::start().await;
    sink.answer(Step::MailFrom, Answer::reply(421, "4.3.2 shutting down"));

    let error = failure(&target_for(&sink)).await;

    assert_eq!(error.kind(), Transient);
    assert!(
        error
            .message()
            .contains("deferred the sender in `from` (at example.com)")
    );
}

#[tokio::test]
async fn silence_before_the_message_was_sent_is_transient() {
    let sink = SmtpSink::start().await;
    sink.answer(Step::Data, Answer::Stall);

    let error = failure(&impatient(&sink)).await;

    assert_eq!(error.kind(), Transient);
    assert_eq!(
        error.message(),
        "the SMTP server 127.0.0.1 did not answer within 500ms after DATA, before the message \
         was sent"
    );
}

#[tokio::test]
async fn silence_after_the_message_was_sent_is_an_unknown_outcome() {
    let sink = SmtpSink::start().await;
    sink.answer(Step::EndOfData, Answer::Stall);

    let error = failure(&impatient(&sink)).await;

    assert_eq!(error.kind(), Unknown);
    assert!(
        error
            .message()
            .contains("may or may not have been accepted"),
        "{error}"
    );
}

#[tokio::test]
async fn a_connection_closed_after_the_message_was_sent_is_an_unknown_outcome() {
    let sink = SmtpSink::start().await;
    sink.answer(Step::EndOfData, Answer::Close);

    let error = failure(&target_for(&sink)).await;

    assert_eq!(error.kind(), Unknown);
    assert!(
        error.message().contains("broke after the message was sent"),
        "{error}"
    );
}

#[tokio::test]
async fn starttls_against_a_server_that_does_not_offer_it_is_permanent() {
    let sink = SmtpSink::start().await;
    let mut keys = keys(sink.port());
    keys["tls"] = "starttls".into();

    let error = failure(&target(keys)).await;

    assert_eq!(error.kind(), Permanent);
    assert!(
        error.message().contains("does not offer STARTTLS"),
        "{error}"
    );
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn tls_against_a_plain_text_server_is_permanent() {
    let sink = SmtpSink::start().await;
    let mut keys = keys(sink.port());
    keys["tls"] = "tls".into();

    let error = failure(&target(keys)).await;

    assert_eq!(error.kind(), Permanent, "{error}");
    assert!(
        error
            .message()
            .starts_with("TLS with the SMTP server 127.0.0.1:"),
        "{error}"
    );
}
