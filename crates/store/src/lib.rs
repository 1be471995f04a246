//! Durable storage of accepted webhooks and their deliveries, on SQLite or PostgreSQL.
