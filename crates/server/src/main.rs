//! The Sqreen webhook relay server.
fn main() {}
