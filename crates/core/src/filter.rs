//! Dispatch rules: which targets want which notifications.
//!
//! Each target has a [`Filter`]. A filter lets a notification through when every condition
//! it sets holds. A condition on a field that the notification does not carry never holds it
//! back: an incident has no environment and an authentication event no risk, and an alert
//! that cannot be classified is delivered rather than dropped. Use `types` to exclude kinds
//! of notification outright.

use serde::Deserialize;

use crate::notification::{Notification, View};

/// Conditions on the notifications a target receives. The empty filter lets all through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Kinds (`security_event`, `test`, `pulse`, `security_response`, `incident`,
    /// `unknown`) or exact type names (`http_scan`). Empty means every type.
    #[serde(default)]
    pub types: Vec<String>,
    /// The lowest risk let through, for notifications that carry a risk.
    #[serde(default)]
    pub min_risk: Option<u32>,
    /// Environment names, compared exactly. Empty means every environment.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Application ids or names, compared exactly. Empty means every application.
    #[serde(default)]
    pub applications: Vec<String>,
}

impl Filter {
    /// Whether the filter lets `notification` through.
    pub fn matches(&self, notification: &Notification) -> bool {
        self.matches_view(notification.view())
    }

    fn matches_view(&self, view: &View) -> bool {
        let type_ok = self.types.is_empty()
            || self
                .types
                .iter()
                .any(|t| t == view.kind.as_str() || *t == view.type_name);
        let risk_ok = match (self.min_risk, view.risk) {
            (Some(min), Some(risk)) => risk >= min,
            _ => true,
        };
        let environment_ok = match &view.environment {
            Some(env) if !self.environments.is_empty() => self.environments.contains(env),
            _ => true,
        };
        let app = &view.application;
        let application_ok = self.applications.is_empty()
            || (app.id.is_none() && app.name.is_none())
            || self
                .applications
                .iter()
                .any(|a| Some(a) == app.id.as_ref() || Some(a) == app.name.as_ref());
        type_ok && risk_ok && environment_ok && application_ok
    }
}

/// The dispatch table: target names with their filters, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(String, Filter)>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a target and its filter.
    pub fn route(mut self, target: impl Into<String>, filter: Filter) -> Router {
        self.routes.push((target.into(), filter));
        self
    }

    /// The names of the targets that want `notification`. The names borrow the router
    /// only, so they outlive the notification.
    pub fn targets_for<'r, 'n>(
        &'r self,
        notification: &'n Notification,
    ) -> impl Iterator<Item = &'r str> + use<'r, 'n> {
        self.routes
            .iter()
            .filter(|(_, filter)| filter.matches(notification))
            .map(|(name, _)| name.as_str())
    }

    /// Every target name, in configuration order.
    pub fn target_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|(name, _)| name.as_str())
    }
}
