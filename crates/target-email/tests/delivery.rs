//! What a real SMTP server on loopback receives from the target: envelope, headers, both
//! parts, their escaping, and the login.

mod common;

use common::{WAIT, keys, notification, target, target_for};
use sqreen_webhook_core::Target;
use sqreen_webhook_core::text::is_invisible_mark;
use sqreen_webhook_testkit::smtp::{Answer, SmtpSink};

#[tokio::test]
async fn sends_one_multipart_message_to_every_recipient() {
    let sink = SmtpSink::start().await;
    let target = target_for(&sink);

    target.deliver(&notification("hostile")).await.unwrap();

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.from, "relay@example.com");
    assert_eq!(mail.recipients, ["alice@example.com", "bob@example.org"]);
    assert_eq!(
        mail.content_type().as_deref(),
        Some("multipart/alternative")
    );
    assert_eq!(
        mail.subject().as_deref(),
        Some("[Sqreen] critical risk security event on shop <b>prod</b> & <!here> (production)")
    );
    let to = mail.header("To").unwrap();
    assert!(
        to.contains("alice@example.com") && to.contains("bob@example.org"),
        "{to}"
    );
    assert!(mail.header("From").unwrap().contains("relay@example.com"));
    assert_eq!(
        mail.header("X-Sqreen-Kind").as_deref(),
        Some("security_event")
    );
    assert_eq!(mail.header("X-Sqreen-Risk").as_deref(), Some("90"));
    assert_eq!(mail.auth_user, None);
}

#[tokio::test]
async fn both_parts_arrive_with_the_hostile_text_made_harmless() {
    let sink = SmtpSink::start().await;
    let target = target_for(&sink);

    target.deliver(&notification("hostile")).await.unwrap();

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    let text = mail.part("text/plain").unwrap();
    let html = mail.part("text/html").unwrap();
    assert!(text.contains("Login of <!channel> <@U024BE7LH>"), "{text}");
    assert!(text.contains("\"admin\" X-Injected: yes [31m red gnp.exe from 1.2.3.4"));
    let unsafe_char = |c: char| is_invisible_mark(c) || (c.is_control() && c != '\n' && c != '\r');
    assert!(!text.chars().any(unsafe_char), "{text:?}");
    assert!(!html.chars().any(unsafe_char), "{html:?}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;admin&quot;")
    );
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"https://my.sqreen.com/application/5dc3e2bade0bbd00883e6691/events/5dc3ea7706c8cd0013b6c15d\""));
}

#[tokio::test]
async fn no_payload_text_becomes_a_header() {
    let sink = SmtpSink::start().await;
    let target = target_for(&sink);

    target.deliver(&notification("hostile")).await.unwrap();

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.header("X-Injected"), None);
    assert!(mail.data.is_ascii(), "the message is sent as 7-bit text");
}

#[tokio::test]
async fn logs_in_with_the_configured_user_and_password() {
    let sink = SmtpSink::start().await;
    sink.require_login("relay", "app-password");
    let mut keys = keys(sink.port());
    keys["username"] = "relay".into();
    keys["password"] = "app-password".into();
    let target = target(keys);

    target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap();

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.auth_user.as_deref(), Some("relay"));
}

#[tokio::test]
async fn every_attempt_at_one_notification_has_the_same_message_id() {
    let sink = SmtpSink::start().await;
    let target = target_for(&sink);

    target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap();
    target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap();
    target.deliver(&notification("v1-pulse")).await.unwrap();

    let mails = sink.wait_for(3, WAIT).await;
    let ids: Vec<String> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    assert!(
        ids[0].ends_with(".security-team@example.com>"),
        "{}",
        ids[0]
    );
}

#[tokio::test]
async fn a_refused_recipient_does_not_keep_the_message_from_the_others() {
    let sink = SmtpSink::start().await;
    sink.answer_recipient(
        "bob@example.org",
        Answer::reply(550, "5.1.1 <bob@example.org>: recipient address rejected"),
    );
    let target = target_for(&sink);

    let error = target
        .deliver(&notification("v1-security-event"))
        .await
        .unwrap_err();

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.recipients, ["alice@example.com"]);
    assert_eq!(error.kind(), sqreen_webhook_core::FailureKind::Permanent);
    assert_eq!(
        error.to_string(),
        "the SMTP server 127.0.0.1 refused recipient 2 of 2 (at example.org), the others got \
         the message: check `to`: 550 5.1.1 <…@example.org>: recipient address rejected"
    );
}
