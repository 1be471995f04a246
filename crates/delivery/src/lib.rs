//! The delivery engine of the relay, usable by any Rust service that stores webhooks in a
//! [`sqreen_webhook_store::Store`].
//!
//! The server accepts a webhook by committing its deliveries to the store, then calls
//! [`Engine::wake`]. The engine claims due deliveries with a lease, runs each against its
//! [`Target`](sqreen_webhook_core::Target) with a timeout, and records the outcome:
//! delivered, retry at a time chosen by the target's [`RetryPolicy`], or dead. Nothing is
//! held only in memory: a crash loses in-flight attempts, whose leases expire and are
//! claimed again, never deliveries.

mod engine;
pub mod retry;

pub use engine::{
    Clock, Engine, EngineError, EngineOptions, ShutdownReport, Stats, SystemClock, TargetSpec,
    default_owner,
};
pub use retry::{DeadReason, Decision, RetryPolicy};
