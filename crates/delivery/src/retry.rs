//! When to try a failed delivery again, and when to give up.
//!
//! Backoff grows geometrically from `first_backoff` by `multiplier` up to `max_backoff`, with
//! jitter so that deliveries that failed together do not all come back together. A target's
//! `Retry-After` replaces the backoff. A delivery is dead once it has used `max_attempts`, or
//! when its next attempt would come later than `max_age` after it was accepted; a permanent
//! failure is dead at once, and so is an unknown outcome unless `retry_unknown` is set.

use std::time::Duration;

use serde::Deserialize;
use sqreen_webhook_core::{DeliveryError, FailureKind};
use sqreen_webhook_store::Millis;

/// Retry settings of one target.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    #[serde(deserialize_with = "sqreen_webhook_core::duration::deserialize")]
    pub first_backoff: Duration,
    pub multiplier: f64,
    #[serde(deserialize_with = "sqreen_webhook_core::duration::deserialize")]
    pub max_backoff: Duration,
    /// No attempt is made later than this after the notification was accepted.
    #[serde(deserialize_with = "sqreen_webhook_core::duration::deserialize")]
    pub max_age: Duration,
    /// Whether an attempt whose outcome is unknown (sent, no answer) is made again, at the
    /// risk of a duplicate. Right for receivers that de-duplicate, wrong for SMS and email.
    pub retry_unknown: bool,
}

impl Default for RetryPolicy {
    /// Eight attempts over about fifteen hours: 30 s, 2 min, 8 min, 32 min, about 2 h, then
    /// 6 h apart, within a day.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            first_backoff: Duration::from_secs(30),
            multiplier: 4.0,
            max_backoff: Duration::from_secs(6 * 3600),
            max_age: Duration::from_secs(24 * 3600),
            retry_unknown: false,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RetryAt(Millis),
    Dead(DeadReason),
}

/// Why a delivery will not be attempted again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    Permanent,
    UnknownOutcome,
    OutOfAttempts,
    TooOld,
}

impl DeadReason {
    pub fn describe(self) -> &'static str {
        match self {
            DeadReason::Permanent => "the failure is permanent",
            DeadReason::UnknownOutcome => {
                "the outcome is unknown and this target is not retried on unknown outcomes"
            }
            DeadReason::OutOfAttempts => "no attempts left",
            DeadReason::TooOld => "the next attempt would pass the maximum age",
        }
    }
}

/// Problems in a retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("max_attempts must be at least 1")]
    NoAttempts,
    #[error("multiplier must be at least 1")]
    Shrinking,
    #[error("first_backoff must not exceed max_backoff")]
    Inverted,
}

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_attempts == 0 {
            return Err(PolicyError::NoAttempts);
        }
        if self.multiplier.is_nan() || self.multiplier < 1.0 {
            return Err(PolicyError::Shrinking);
        }
        if self.first_backoff > self.max_backoff {
            return Err(PolicyError::Inverted);
        }
        Ok(())
    }

    /// The delay before attempt `attempt + 1` after attempt `attempt` failed, before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let seconds = self.first_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::from_secs_f64(seconds.min(self.max_backoff.as_secs_f64()))
    }

    /// Decides what follows failed attempt number `attempt` (from 1) of a delivery created at
    /// `created_at`. `jitter` is a number in `[0, 1)`: the backoff is scaled into
    /// `[0.75, 1.25)` of itself, a `Retry-After` into `[1, 1.1)`.
    pub fn decide(
        &self,
        attempt: u32,
        created_at: Millis,
        now: Millis,
        error: &DeliveryError,
        jitter: f64,
    ) -> Decision {
        match error.kind() {
            FailureKind::Permanent => return Decision::Dead(DeadReason::Permanent),
            FailureKind::Unknown if !self.retry_unknown => {
                return Decision::Dead(DeadReason::UnknownOutcome);
            }
            FailureKind::Transient | FailureKind::Unknown => {}
        }
        if attempt >= self.max_attempts {
            return Decision::Dead(DeadReason::OutOfAttempts);
        }
        let jitter = jitter.clamp(0.0, 1.0);
        let delay = match error.retry_after() {
            Some(asked) => asked.mul_f64(1.0 + 0.1 * jitter),
            None => self.backoff(attempt).mul_f64(0.75 + 0.5 * jitter),
        };
        let at = now.saturating_add(delay.as_millis().min(i64::MAX as u128) as i64);
        let deadline =
            created_at.saturating_add(self.max_age.as_millis().min(i64::MAX as u128) as i64);
        if at > deadline {
            Decision::Dead(DeadReason::TooOld)
        } else {
            Decision::RetryAt(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Millis = 60_000;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn the_default_schedule_spans_about_fifteen_hours_in_eight_attempts() {
        let p = policy();
        let delays: Vec<u64> = (1..p.max_attempts)
            .map(|a| p.backoff(a).as_secs())
            .collect();
        assert_eq!(delays, [30, 120, 480, 1920, 7680, 21600, 21600]);
        let total: u64 = delays.iter().sum();
        assert!((14 * 3600..24 * 3600).contains(&total), "{total}");
    }

    #[test]
    fn transient_failures_are_retried_with_jittered_backoff() {
        let error = DeliveryError::transient("503");
        let low = policy().decide(1, 0, 0, &error, 0.0);
        let high = policy().decide(1, 0, 0, &error, 0.999);
        assert_eq!(low, Decision::RetryAt(22_500));
        assert!(
            matches!(high, Decision::RetryAt(at) if (37_000..37_500).contains(&at)),
            "{high:?}"
        );
    }

    #[test]
    fn retry_after_replaces_the_backoff() {
        let error = DeliveryError::transient("429").with_retry_after(Duration::from_secs(600));
        assert_eq!(
            policy().decide(1, 0, 1_000, &error, 0.0),
            Decision::RetryAt(601_000)
        );
    }

    #[test]
    fn permanent_failures_are_dead_at_once() {
        let error = DeliveryError::permanent("invalid number");
        assert_eq!(
            policy().decide(1, 0, 0, &error, 0.5),
            Decision::Dead(DeadReason::Permanent)
        );
    }

    #[test]
    fn unknown_outcomes_are_retried_only_when_the_policy_says_so() {
        let error = DeliveryError::unknown("timeout");
        assert_eq!(
            policy().decide(1, 0, 0, &error, 0.0),
            Decision::Dead(DeadReason::UnknownOutcome)
        );
        let retrying = RetryPolicy {
            retry_unknown: true,
            ..policy()
        };
        assert!(matches!(
            retrying.decide(1, 0, 0, &error, 0.0),
            Decision::RetryAt(_)
        ));
    }

    #[test]
    fn the_last_attempt_ends_in_dead() {
        let error = DeliveryError::transient("503");
        assert_eq!(
            policy().decide(8, 0, 0, &error, 0.0),
            Decision::Dead(DeadReason::OutOfAttempts)
        );
        assert!(matches!(
            policy().decide(7, 0, 0, &error, 0.0),
            Decision::RetryAt(_)
        ));
    }

    #[test]
    fn an_attempt_past_the_maximum_age_is_not_scheduled() {
        let error = DeliveryError::transient("503").with_retry_after(Duration::from_secs(3600));
        let p = RetryPolicy {
            max_age: Duration::from_secs(1800),
            ..policy()
        };
        assert_eq!(
            p.decide(1, 0, 10 * MINUTE, &error, 0.0),
            Decision::Dead(DeadReason::TooOld)
        );
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert_eq!(
            RetryPolicy {
                max_attempts: 0,
                ..policy()
            }
            .validate(),
            Err(PolicyError::NoAttempts)
        );
        assert_eq!(
            RetryPolicy {
                multiplier: 0.5,
                ..policy()
            }
            .validate(),
            Err(PolicyError::Shrinking)
        );
        assert_eq!(
            RetryPolicy {
                first_backoff: Duration::from_secs(10),
                max_backoff: Duration::from_secs(1),
                ..policy()
            }
            .validate(),
            Err(PolicyError::Inverted)
        );
        assert_eq!(policy().validate(), Ok(()));
    }
}
