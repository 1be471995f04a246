//! The HTTP endpoints: `POST /webhook`, `GET /healthz`, `GET /readyz`.
//!
//! The webhook handler does the little that must happen before Sqreen gets its answer:
//! verify the signature over the raw bytes, parse, route each notification to the targets
//! that want it, and commit it all to the store. Delivery happens afterwards, in the
//! engine, so that a slow or broken target never delays or fails the answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use sqreen_webhook_core::{Router, SIGNATURE_HEADER, Verifier, parse};
use sqreen_webhook_delivery::Engine;
use sqreen_webhook_store::{NewBody, NewNotification, Store};

/// What every request handler shares.
pub struct AppState {
    pub verifier: Verifier,
    pub router: Router,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("verifier", &self.verifier)
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/webhook", web::post().to(webhook))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

async fn webhook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let peer = request
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|v| v.as_bytes());
    if let Err(reason) = state.verifier.verify(&body, signature) {
        log::warn!(
            "webhook refused from {peer}: {reason} ({} bytes)",
            body.len()
        );
        return error(StatusCode::UNAUTHORIZED, "invalid or missing signature");
    }
    let received_at = now_ms();
    let notifications = match parse(&body) {
        Ok(notifications) => notifications,
        Err(parse_error) => {
            let reason = parse_error.to_string();
            return match state.store.reject(received_at, &body, &reason).await {
                Ok(id) => {
                    log::warn!("webhook from {peer} kept as body {id} but not delivered: {reason}");
                    error(StatusCode::BAD_REQUEST, &reason)
                }
                Err(store_error) => {
                    log::error!(
                        "webhook from {peer} is not JSON ({reason}) and cannot be kept: {store_error}"
                    );
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the store is unavailable, try again",
                    )
                }
            };
        }
    };
    // What the store needs of each notification, owned, so that the parsed notifications
    // (several times the body's size) are freed before the wait for the commit.
    let count = notifications.len();
    let index: Vec<Indexed<'_>> = notifications
        .iter()
        .map(|n| Indexed {
            identity: n.identity().as_str().to_owned(),
            type_name: n.view().type_name.clone(),
            span: n.span(),
            targets: state.router.targets_for(n).collect(),
        })
        .collect();
    drop(notifications);
    let new = NewBody {
        received_at,
        body,
        notifications: index
            .iter()
            .map(|n| NewNotification {
                identity: &n.identity,
                type_name: &n.type_name,
                span: n.span.clone(),
                targets: n.targets.clone(),
            })
            .collect(),
    };
    match state.store.accept(new).await {
        Ok(accepted) => {
            state.engine.wake();
            log::info!(
                "webhook accepted from {peer}: {} notifications, {} duplicates, {} deliveries (body {})",
                accepted.fresh,
                accepted.duplicates,
                accepted.deliveries,
                accepted.body_id
            );
            HttpResponse::Ok().json(json!({
                "accepted": count,
                "duplicates": accepted.duplicates,
            }))
        }
        Err(store_error) => {
            log::error!("webhook from {peer} not accepted, the store failed: {store_error}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable, try again",
            )
        }
    }
}

/// A notification as the store takes it.
struct Indexed<'r> {
    identity: String,
    type_name: String,
    span: std::ops::Range<usize>,
    targets: Vec<&'r str>,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(store_error) => {
            log::warn!("not ready: {store_error}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the store is unreachable")
        }
    }
}
