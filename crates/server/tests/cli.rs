//! The `server` binary as a person runs it.

#![cfg(feature = "log")]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_server");

fn server() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    command
}

#[test]
fn sign_prints_the_signature_sqreen_would_send() {
    let output = server()
        .args(["sign", "--secret", "1234"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = output.unwrap();
    child.stdin.take().unwrap().write_all(b"4567").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        "9d101d2bf630748679226b767d2031634c520390ff0e926afc09bc65a05bfdb2"
    );
}

#[test]
fn check_config_explains_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = 8080\n[[targets]]\nname = \"x\"\ntype = \"pager\"\n",
    )
    .unwrap();

    let output = server()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();

    assert!(!output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("server.listen: invalid type"), "{text}");
    assert!(
        text.contains("targets[0] (\"x\").type: unknown type \"pager\""),
        "{text}"
    );
    assert!(text.contains("no webhook secret"), "{text}");
}

#[test]
fn check_config_lists_the_targets_of_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    let toml = "[webhook]\nsecrets = [\"${S}\"]\n[[targets]]\nname = \"audit\"\ntype = \"log\"\n[targets.filter]\nmin_risk = 50\n";
    std::fs::write(&path, toml).unwrap();

    let output = server()
        .env("S", "secret")
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();

    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{text}");
    assert!(text.contains("- audit (log): risk >= 50; ok"), "{text}");
    assert!(
        !text.contains("secret\n"),
        "the secret is never printed: {text}"
    );
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_served_relay_logs_each_sample_sent_with_send_sample_once_per_notification() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let db = format!("sqlite://{}/relay.db", dir.path().display());
    let mut child = server()
        .env("SQREEN_WEBHOOK_SECRET", "quick-start-secret")
        .env("SQREEN_WEBHOOK__SERVER__LISTEN", &listen)
        .env("SQREEN_WEBHOOK__STORE__URL", &db)
        .args(["serve", "--send-sample"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    let wait_for = |needle: &str, log: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if log.iter().any(|l| l.contains(needle)) {
                return;
            }
            if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
                log.push(line);
            }
        }
        panic!("no log line with {needle:?} in:\n{}", log.join("\n"));
    };

    // The built-in sample sent at start-up.
    wait_for("security_event app=\"sqreentest\"", &mut log);

    // A file sent with send-sample, two notifications in one body.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/fixtures/v2-authentication-events.json");
    let output = server()
        .env("SQREEN_WEBHOOK_SECRET", "quick-start-secret")
        .env("SQREEN_WEBHOOK__SERVER__LISTEN", &listen)
        .args(["send-sample", "--file"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("200 OK {\"accepted\":2"));
    wait_for("id=security_event:587b234b4891d57c1bf5c766", &mut log);
    wait_for("id=security_event:587b234e4891d57c1bf5c8c9", &mut log);

    std::thread::sleep(Duration::from_millis(500));
    while let Ok(line) = lines_rx.try_recv() {
        log.push(line);
    }
    let alerts = log
        .iter()
        .filter(|l| l.contains("sqreen_webhook::alert"))
        .count();
    assert_eq!(alerts, 3, "one line per notification:\n{}", log.join("\n"));
    assert!(
        !log.iter().any(|l| l.contains("quick-start-secret")),
        "the secret is never logged"
    );

    // SIGTERM stops it gracefully.
    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for("stopped:", &mut log);
    let mut running = running;
    let status = running.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// A store with one dead and one delivered delivery, as a server would have left it.
async fn store_with_a_dead_delivery(db: &str) {
    use sqreen_webhook_core::parse;
    use sqreen_webhook_store::{Finished, NewBody, NewNotification, Outcome, StoreOptions};

    let store = sqreen_webhook_store::open(db, StoreOptions::default())
        .await
        .unwrap();
    let body = sqreen_webhook_core::samples::sample("v2-authentication-events")
        .unwrap()
        .body
        .as_bytes();
    let notifications = parse(body).unwrap();
    let new = NewBody {
        received_at: 1_000,
        body: body.to_vec().into(),
        notifications: notifications
            .iter()
            .map(|n| NewNotification {
                identity: n.identity().as_str(),
                type_name: &n.view().type_name,
                span: n.span(),
                targets: vec!["siem"],
            })
            .collect(),
    };
    store.accept(new).await.unwrap();
    let claims = store
        .claim("test", 2_000, Duration::from_secs(60), &[("siem", 10)])
        .await
        .unwrap();
    let done = vec![
        Finished {
            id: claims[0].id,
            outcome: Outcome::Dead {
                error: "the receiver refused: 400 Bad Request".into(),
            },
        },
        Finished {
            id: claims[1].id,
            outcome: Outcome::Delivered,
        },
    ];
    store.finish("test", 3_000, done).await.unwrap();
}

#[tokio::test]
async fn dead_deliveries_are_listed_and_put_back_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/relay.db", dir.path().display());
    store_with_a_dead_delivery(&db).await;
    let run = |args: &[&str]| {
        let output = server()
            .env("SQREEN_WEBHOOK_SECRET", "s")
            .env("SQREEN_WEBHOOK__STORE__URL", &db)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    let all = run(&["deliveries"]);
    assert!(all.contains("delivered") && all.contains("dead"), "{all}");
    let dead = run(&["dead"]);
    assert_eq!(
        dead.lines().filter(|l| l.contains(" dead ")).count(),
        1,
        "{dead}"
    );
    assert!(
        dead.contains("the receiver refused: 400 Bad Request"),
        "{dead}"
    );
    assert!(dead.contains("security_event:587b234"), "{dead}");

    assert_eq!(
        run(&["retry", "--all-dead"]).trim(),
        "1 deliveries put back in the queue"
    );

    assert_eq!(run(&["dead"]).trim(), "no deliveries");
    let pending = run(&["deliveries", "--state", "pending"]);
    assert_eq!(
        pending.lines().filter(|l| l.contains(" pending ")).count(),
        1,
        "{pending}"
    );
}
