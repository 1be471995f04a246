//! Starting the real server on port 0, with a temporary store, recording targets and
//! signed requests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use server::config::{self, Environment, Settings};
use server::{Application, ExtraTarget};
use sqreen_webhook_core::{DeliveryError, Notification, SIGNATURE_HEADER, Secret, Target, sign};
use sqreen_webhook_store::Store;
use tokio::sync::Notify;

pub const SECRET: &str = "test-webhook-secret";

/// A fixed environment, so that tests do not depend on the machine's.
#[derive(Default, Clone)]
pub struct FakeEnv(pub HashMap<String, String>);

impl FakeEnv {
    pub fn with(mut self, key: &str, value: &str) -> FakeEnv {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }
}

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.0.clone().into_iter().collect()
    }
}

/// What a fake target does with each notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Accept,
    FailTransient,
    FailPermanent,
    Hang,
}

/// A target that records what it is given.
pub struct Recorder {
    name: String,
    behaviour: Behaviour,
    received: Mutex<Vec<Notification>>,
    arrived: Notify,
}

impl Recorder {
    pub fn new(name: &str, behaviour: Behaviour) -> Arc<Recorder> {
        Arc::new(Recorder {
            name: name.to_owned(),
            behaviour,
            received: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        })
    }

    pub fn received(&self) -> Vec<Notification> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` notifications arrived, or panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Notification> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{}: expected {n} notifications, got {}",
                    self.name,
                    self.received().len()
                );
            }
        }
    }
}

#[async_trait]
impl Target for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        self.received.lock().unwrap().push(notification.clone());
        self.arrived.notify_waiters();
        match self.behaviour {
            Behaviour::Accept => Ok(()),
            Behaviour::FailTransient => Err(DeliveryError::transient("fake outage")),
            Behaviour::FailPermanent => Err(DeliveryError::permanent("fake refusal")),
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }
}

/// A running server and what a test needs to drive it.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub handle: actix_web::dev::ServerHandle,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Options for [`spawn_app`].
#[derive(Default)]
pub struct Options {
    /// Extra TOML appended to the base configuration.
    pub toml: String,
    /// Extra keys of the `[store]` table, which the base configuration already opens.
    pub store_toml: String,
    pub targets: Vec<ExtraTarget>,
}

fn settings(dir: &std::path::Path, store_toml: &str, extra_toml: &str) -> Settings {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"5s\"\n\
         [webhook]\nsecrets = [\"${{WEBHOOK_SECRET}}\"]\n\
         [store]\nurl = \"sqlite://{}/relay.db\"\n{store_toml}\n\
         [delivery]\npoll_interval = \"200ms\"\n{extra_toml}",
        dir.display()
    );
    config::from_toml(&toml, &FakeEnv::default().with("WEBHOOK_SECRET", SECRET)).unwrap()
}

pub async fn spawn_app(options: Options) -> TestApp {
    server::app::install_crypto_provider();
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), &options.store_toml, &options.toml);
    if !options.toml.contains("[[targets]]") {
        // Only the targets the test asked for, not the default log target.
        settings.targets.clear();
    }
    let app = Application::build(settings, options.targets).await.unwrap();
    let url = format!("http://{}", app.address());
    let store = app.store();
    let handle = app.handle();
    let task = tokio::spawn(app.run());
    TestApp {
        url,
        client: reqwest::Client::new(),
        store,
        handle,
        task,
        _dir: dir,
    }
}

impl TestApp {
    /// Posts `body` signed with `secret`.
    pub async fn post_signed_with(&self, secret: &str, body: &[u8]) -> reqwest::Response {
        let signature = sign(&Secret::new(secret), body);
        self.client
            .post(format!("{}/webhook", self.url))
            .header(SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub async fn post_signed(&self, body: &[u8]) -> reqwest::Response {
        self.post_signed_with(SECRET, body).await
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
    }
}

pub fn recorder_target(recorder: &Arc<Recorder>) -> ExtraTarget {
    ExtraTarget::new(recorder.clone())
}
