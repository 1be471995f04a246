//! Percentiles of latency samples and medians of rounds.
//!
//! Latencies are kept as whole microseconds, every sample, and sorted once: a run holds at
//! most a few hundred thousand of them, and exact percentiles are easier to trust than a
//! histogram's buckets.

use std::time::Duration;

use serde::Serialize;

/// A sample for something that never happened (a notification that did not arrive):
/// later than any real one, and shown as no figure.
pub const NEVER: u32 = u32::MAX;

/// Sorted latency samples in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    micros: Vec<u32>,
}

impl Samples {
    pub fn new(mut micros: Vec<u32>) -> Samples {
        micros.sort_unstable();
        Samples { micros }
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// The sample at quantile `q` (0 to 1), nearest rank; `None` when there is none.
    pub fn quantile(&self, q: f64) -> Option<u32> {
        if self.micros.is_empty() {
            return None;
        }
        let rank = (q * self.micros.len() as f64).ceil() as usize;
        Some(self.micros[rank.clamp(1, self.micros.len()) - 1])
    }

    pub fn summary(&self) -> Latency {
        let ms = |q: f64| {
            self.quantile(q)
                .filter(|&us| us != NEVER)
                .map(|us| f64::from(us) / 1000.0)
        };
        Latency {
            count: self.len(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: ms(1.0),
        }
    }
}

/// The latency figures a table shows.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    /// Per-round figures combined: the median of each percentile, the largest maximum, the
    /// total count.
    pub fn combine(rounds: &[Latency]) -> Latency {
        Latency {
            count: rounds.iter().map(|r| r.count).sum(),
            p50_ms: median(rounds.iter().filter_map(|r| r.p50_ms)),
            p99_ms: median(rounds.iter().filter_map(|r| r.p99_ms)),
            max_ms: rounds.iter().filter_map(|r| r.max_ms).reduce(f64::max),
        }
    }
}

/// Microseconds, as samples are kept, saturating just below [`NEVER`].
pub fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).map_or(NEVER - 1, |us| us.min(NEVER - 1))
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let samples = Samples::new((1..=100).rev().collect());

        assert_eq!(samples.quantile(0.5), Some(50));
        assert_eq!(samples.quantile(0.99), Some(99));
        assert_eq!(samples.quantile(1.0), Some(100));
        assert_eq!(samples.quantile(0.0), Some(1));
        assert_eq!(Samples::default().quantile(0.5), None);
    }

    #[test]
    fn what_never_happened_has_no_figure_but_pushes_the_percentiles_up() {
        let samples = Samples::new(vec![1000, NEVER, NEVER]);

        let summary = samples.summary();

        assert_eq!(summary.p50_ms, None);
        assert_eq!(summary.max_ms, None);
        assert_eq!(
            Samples::new(vec![1000, 2000, NEVER]).summary().p50_ms,
            Some(2.0)
        );
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([]), None);
    }

    #[test]
    fn rounds_combine_into_medians_and_the_largest_maximum() {
        let round = |p50, max| Latency {
            count: 10,
            p50_ms: Some(p50),
            p99_ms: Some(p50 * 2.0),
            max_ms: Some(max),
        };

        let combined = Latency::combine(&[round(1.0, 9.0), round(3.0, 4.0), round(2.0, 5.0)]);

        assert_eq!(combined.count, 30);
        assert_eq!(combined.p50_ms, Some(2.0));
        assert_eq!(combined.p99_ms, Some(4.0));
        assert_eq!(combined.max_ms, Some(9.0));
    }
}
