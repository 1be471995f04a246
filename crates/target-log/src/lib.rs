//! Log target for the Sqreen webhook relay: one log line per notification.
