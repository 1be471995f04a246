//! Slack target for the Sqreen webhook relay.
