//! Wiring: settings in, a running relay out.
//!
//! [`Application::build`] opens the store, builds every target, starts the delivery engine
//! and binds the HTTP listener; [`Application::run`] serves until SIGINT or SIGTERM, then
//! stops accepting requests, lets deliveries in flight finish up to the shutdown timeout,
//! and reports what is left in the queue. While it runs, a pruner deletes what
//! `store.retention` no longer keeps. Tests build it on port 0 with extra targets.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use sqreen_webhook_core::{Filter, Router, Target, Verifier};
use sqreen_webhook_delivery::{Engine, EngineOptions, RetryPolicy, SystemClock, TargetSpec};
use sqreen_webhook_store::{DeliveryState, Role, Store, StoreOptions};

use crate::config::Settings;
use crate::routes::{self, AppState};

/// A target added by code rather than configuration, as tests and embedders do.
#[derive(Clone)]
pub struct ExtraTarget {
    pub target: Arc<dyn Target>,
    pub filter: Filter,
    pub policy: RetryPolicy,
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for ExtraTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraTarget")
            .field("name", &self.target.name())
            .field("filter", &self.filter)
            .finish()
    }
}

impl ExtraTarget {
    pub fn new(target: Arc<dyn Target>) -> ExtraTarget {
        ExtraTarget {
            target,
            filter: Filter::default(),
            policy: RetryPolicy::default(),
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// A relay ready to serve.
pub struct Application {
    address: SocketAddr,
    server: Server,
    engine: Engine,
    store: Arc<dyn Store>,
    settings: Settings,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Installs the ring crypto provider for every TLS client in the process; idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Opens the store described by the settings.
pub async fn open_store(settings: &Settings, role: Role) -> anyhow::Result<Arc<dyn Store>> {
    let options = StoreOptions {
        dedup_window: settings.store.dedup_window,
        durability: settings.store.durability.into(),
        role,
        max_connections: settings.store.max_connections,
    };
    let url = settings.store.url.expose();
    let store = sqreen_webhook_store::open(url, options)
        .await
        .with_context(|| {
            format!(
                "cannot open the store at {}",
                sqreen_webhook_store::redact_url(url)
            )
        })?;
    Ok(Arc::from(store))
}

impl Application {
    /// Builds everything and binds the listener; nothing is served until [`Application::run`].
    pub async fn build(settings: Settings, extra: Vec<ExtraTarget>) -> anyhow::Result<Application> {
        install_crypto_provider();
        let verifier = Verifier::new(settings.webhook.secrets.iter()).context("webhook secrets")?;

        let mut router = Router::new();
        let mut specs = Vec::new();
        for target_settings in &settings.targets {
            let target = crate::targets::build(target_settings)?;
            router = router.route(target_settings.name.clone(), target_settings.filter.clone());
            specs.push(TargetSpec {
                target,
                policy: target_settings.retry,
                concurrency: target_settings.concurrency,
                timeout: target_settings.timeout,
            });
        }
        for extra in extra {
            router = router.route(extra.target.name().to_owned(), extra.filter);
            specs.push(TargetSpec {
                target: extra.target,
                policy: extra.policy,
                concurrency: 8,
                timeout: extra.timeout,
            });
        }

        let store = open_store(&settings, Role::Server).await?;
        let options = EngineOptions {
            lease: settings.store.lease,
            poll_interval: settings.delivery.poll_interval,
            concurrency: settings.delivery.concurrency,
            ..EngineOptions::default()
        };
        let engine = Engine::new(store.clone(), specs, options, Arc::new(SystemClock))?;

        let listener = TcpListener::bind(&settings.server.listen)
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        let address = listener.local_addr()?;
        let state = web::Data::new(AppState {
            verifier,
            router,
            store: store.clone(),
            engine: engine.clone(),
        });
        let body_limit = settings.server.body_limit;
        let mut http = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(body_limit))
                .configure(routes::configure)
        })
        .shutdown_timeout(settings.server.shutdown_timeout.as_secs().max(1))
        .listen(listener)?;
        if let Some(workers) = settings.server.workers {
            http = http.workers(workers);
        }
        let server = http.run();
        Ok(Application {
            address,
            server,
            engine,
            store,
            settings,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A handle that stops the HTTP server, as a signal would.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Serves until the HTTP server stops (SIGINT, SIGTERM or [`ServerHandle::stop`]), then
    /// drains the delivery engine.
    pub async fn run(self) -> anyhow::Result<()> {
        self.engine.start();
        self.engine.wake();
        let pruner = tokio::spawn(prune_forever(
            self.store.clone(),
            self.settings.store.retention,
            self.settings.store.dedup_window,
        ));
        let targets: Vec<&str> = self
            .settings
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        log::info!(
            "listening on http://{}/webhook with {} secrets, targets: {}",
            self.address,
            self.settings.webhook.secrets.len(),
            if targets.is_empty() {
                "none".to_owned()
            } else {
                targets.join(", ")
            }
        );
        let served = self.server.await;
        pruner.abort();
        served.context("HTTP server failed")?;
        log::info!("no longer accepting webhooks; finishing deliveries in flight");
        let report = self
            .engine
            .shutdown(self.settings.server.shutdown_timeout)
            .await;
        let waiting = match self.store.counts().await {
            Ok(counts) => counts
                .iter()
                .filter(|(state, _)| {
                    matches!(state, DeliveryState::Pending | DeliveryState::Retrying)
                })
                .map(|(_, n)| n)
                .sum::<u64>(),
            Err(error) => {
                log::warn!("cannot count waiting deliveries: {error}");
                0
            }
        };
        log::info!(
            "stopped: {} attempts finished during shutdown, {} given back to the queue, {} deliveries waiting in the store for the next start",
            report.finished,
            report.released,
            waiting
        );
        Ok(())
    }
}

/// Deletes delivered work older than `retention`, when the relay starts and then every
/// `retention` (between a second and an hour). De-duplication entries are kept for the
/// whole window even if the retention is shorter, or re-sends would be delivered again.
async fn prune_forever(store: Arc<dyn Store>, retention: Duration, dedup_window: Duration) {
    let keep = retention.max(dedup_window);
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let mut every = tokio::time::interval(retention.clamp(PRUNE_INTERVAL_MIN, PRUNE_INTERVAL_MAX));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let before = routes::now_ms().saturating_sub(keep_ms);
        let mut deleted = 0;
        // In steps, so that accepts and claims get the store between them.
        loop {
            match store.prune(before, PRUNE_STEP).await {
                Ok(0) => break,
                Ok(step) => deleted += step,
                Err(error) => {
                    log::warn!("cannot prune the store: {error}");
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        if deleted > 0 {
            log::info!("pruned {deleted} rows older than {keep:?}");
        }
    }
}

/// Rows of each kind one prune step deletes at most.
const PRUNE_STEP: usize = 1000;

/// The pruner's interval is the retention, within these bounds.
const PRUNE_INTERVAL_MIN: Duration = Duration::from_secs(1);
const PRUNE_INTERVAL_MAX: Duration = Duration::from_secs(3600);
