//! Twilio SMS target for the Sqreen webhook relay.
