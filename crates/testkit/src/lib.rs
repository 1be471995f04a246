//! Fakes of the services the relay talks to, real enough to be spoken to over the wire.
//!
//! Tests of the relay fake external services at the protocol level, never by replacing our
//! own code: HTTP APIs with wiremock, email with the [`smtp::SmtpSink`] here, a small SMTP
//! server on loopback that records what it accepts and can be told to refuse.
//!
//! This crate is for tests only (`publish = false`) and is used as a dev-dependency.

pub mod smtp;
