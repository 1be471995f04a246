//! The two controls the relay is measured against, each an actix-web server with the
//! relay's worker count, run as a child process of the harness (`xtask bench --control
//! bare|verify --port P --workers N --secret S`).
//!
//! - `bare` reads the body and answers `200`: the most the HTTP stack does on this machine.
//! - `verify` also checks the HMAC with ring and parses the body into `serde_json::Value`:
//!   the work no relay can skip, done as plainly as possible.
//!
//! A process of its own gives each control its own memory figures and processor time, and
//! keeps it off the load generator's threads, exactly like the relay. A control ends when
//! its standard input closes, so that one never outlives the harness that started it.

use std::io::Read;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use ring::hmac;
use sqreen_webhook_core::SIGNATURE_HEADER;

/// Which control to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bare,
    Verify,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Verify => "verify",
        }
    }
}

/// The largest body a control reads, as the relay's default `server.body_limit`.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Runs a control until its standard input closes: `ARGS` are `bare|verify --port P
/// --workers N --secret S`.
pub fn main(args: &[String]) -> Result<(), String> {
    let mut kind = None;
    let (mut port, mut workers, mut secret) = (None, None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "bare" => kind = Some(Kind::Bare),
            "verify" => kind = Some(Kind::Verify),
            "--port" => port = Some(value()?.parse::<u16>().map_err(|e| e.to_string())?),
            "--workers" => workers = Some(value()?.parse::<usize>().map_err(|e| e.to_string())?),
            "--secret" => secret = Some(value()?),
            other => return Err(format!("unknown control argument {other:?}")),
        }
    }
    let kind = kind.ok_or("which control: bare or verify")?;
    let port = port.ok_or("--port is needed")?;
    let workers = workers.ok_or("--workers is needed")?;
    let key = hmac::Key::new(
        hmac::HMAC_SHA256,
        secret.ok_or("--secret is needed")?.as_bytes(),
    );

    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });

    let key = web::Data::new(key);
    actix_web::rt::System::new()
        .block_on(async move {
            HttpServer::new(move || {
                let app = App::new()
                    .app_data(key.clone())
                    .app_data(web::PayloadConfig::new(BODY_LIMIT))
                    .route("/readyz", web::get().to(ready));
                match kind {
                    Kind::Bare => app.route("/webhook", web::post().to(bare)),
                    Kind::Verify => app.route("/webhook", web::post().to(verify)),
                }
            })
            .workers(workers)
            .bind(("127.0.0.1", port))?
            .run()
            .await
        })
        .map_err(|e| format!("control {} failed: {e}", kind.as_str()))
}

async fn ready() -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn bare(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn verify(request: HttpRequest, body: web::Bytes, key: web::Data<hmac::Key>) -> HttpResponse {
    let tag = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| decode_hex(v.as_bytes()));
    let Some(tag) = tag else {
        return HttpResponse::new(StatusCode::UNAUTHORIZED);
    };
    if hmac::verify(&key, &body, &tag).is_err() {
        return HttpResponse::new(StatusCode::UNAUTHORIZED);
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        // Answer with as much as the relay says, so that both write the same.
        Ok(value) => HttpResponse::Ok().json(serde_json::json!({
            "accepted": value.as_array().map_or(1, Vec::len),
            "duplicates": 0,
        })),
        Err(_) => HttpResponse::new(StatusCode::BAD_REQUEST),
    }
}

fn decode_hex(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut tag = [0u8; 32];
    for (byte, pair) in tag.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_signature_header() {
        let signature = sqreen_webhook_core::sign(&sqreen_webhook_core::Secret::new("k"), b"x");
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");

        let tag = decode_hex(signature.as_bytes()).unwrap();

        assert!(hmac::verify(&key, b"x", &tag).is_ok());
        assert_eq!(decode_hex(b"zz"), None);
    }
}
