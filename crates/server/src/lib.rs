//! The relay server: configuration, HTTP endpoints, command line and the wiring of the
//! store, the delivery engine and the targets. The logic lives in the library crates; this
//! crate only connects them.

pub mod app;
pub mod cli;
pub mod config;
pub mod routes;
pub mod targets;

pub use app::{Application, ExtraTarget};
pub use config::Settings;
