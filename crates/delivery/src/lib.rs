//! The delivery engine of the Sqreen webhook relay: workers, leases, retries.
