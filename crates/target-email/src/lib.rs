//! Email target for the Sqreen webhook relay, over SMTP.
