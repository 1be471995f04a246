//! Building targets from their settings: the one place that knows every target crate.

use std::sync::Arc;

use sqreen_webhook_core::Target;

use crate::config::{TargetKind, TargetSettings};

/// A target that could not be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("target {name:?} ({type_name}): {message}")]
pub struct BuildError {
    pub name: String,
    pub type_name: &'static str,
    pub message: String,
}

/// Builds the target described by `settings`.
pub fn build(settings: &TargetSettings) -> Result<Arc<dyn Target>, BuildError> {
    let name = settings.name.clone();
    let built: Result<Arc<dyn Target>, String> = match &settings.kind {
        #[cfg(feature = "log")]
        TargetKind::Log(config) => Ok(Arc::new(sqreen_webhook_target_log::LogTarget::new(
            name,
            config.clone(),
        ))),
        #[cfg(feature = "email")]
        TargetKind::Email(config) => shared(sqreen_webhook_target_email::EmailTarget::new(
            name,
            config.clone(),
            settings.timeout,
        )),
        #[cfg(feature = "twilio")]
        TargetKind::Twilio(config) => shared(sqreen_webhook_target_twilio::TwilioTarget::new(
            name,
            config.clone(),
            settings.timeout,
        )),
        #[cfg(feature = "slack")]
        TargetKind::Slack(config) => shared(sqreen_webhook_target_slack::SlackTarget::new(
            name,
            config.clone(),
            settings.timeout,
        )),
        #[cfg(feature = "http")]
        TargetKind::Http(config) => shared(sqreen_webhook_target_http::HttpTarget::new(
            name,
            config.clone(),
            settings.timeout,
        )),
    };
    built.map_err(|message| BuildError {
        name: settings.name.clone(),
        type_name: settings.kind.type_name(),
        message,
    })
}

#[cfg(any(
    feature = "email",
    feature = "twilio",
    feature = "slack",
    feature = "http"
))]
fn shared<T: Target + 'static, E: std::fmt::Display>(
    built: Result<T, E>,
) -> Result<Arc<dyn Target>, String> {
    built
        .map(|target| Arc::new(target) as Arc<dyn Target>)
        .map_err(|e| e.to_string())
}
