//! HTTP forwarding target for the Sqreen webhook relay.
