//! Latency statistics shared by the benchmarks under `bench/`.
//!
//! Every benchmark measures the thing under test and a baseline in the same run and prints
//! both plus their difference or ratio, so results compare across machines and load.

use std::time::Duration;

/// Percentiles of a set of latency samples.
#[derive(Clone, Copy, Debug)]
pub struct LatencyStats {
    pub count: usize,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LatencyStats {
    /// Summarise samples (any order). Panics on an empty set: a benchmark with no samples
    /// measured nothing and must not print a number.
    pub fn from_samples(samples: &[Duration]) -> Self {
        assert!(!samples.is_empty(), "no latency samples recorded");
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let total: Duration = sorted.iter().sum();
        Self {
            count: sorted.len(),
            mean: total / sorted.len() as u32,
            p50: pick(0.50),
            p90: pick(0.90),
            p99: pick(0.99),
            max: *sorted.last().expect("non-empty"),
        }
    }

    /// One line: `label  n=…  p50=…  p90=…  p99=…  max=…` in milliseconds.
    pub fn line(&self, label: &str) -> String {
        format!(
            "{label:<28} n={:<6} mean={:>8.3}ms p50={:>8.3}ms p90={:>8.3}ms p99={:>8.3}ms max={:>8.3}ms",
            self.count,
            ms(self.mean),
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// A duration in fractional milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Print a candidate against its baseline: both lines, then the added latency at p50/p99.
pub fn print_added_latency(
    candidate_label: &str,
    candidate: &LatencyStats,
    baseline_label: &str,
    baseline: &LatencyStats,
) {
    println!("{}", baseline.line(baseline_label));
    println!("{}", candidate.line(candidate_label));
    println!(
        "added latency vs baseline: p50 {:+.3}ms  p99 {:+.3}ms  (ratio p50 {:.3})",
        ms(candidate.p50) - ms(baseline.p50),
        ms(candidate.p99) - ms(baseline.p99),
        ms(candidate.p50) / ms(baseline.p50).max(f64::EPSILON)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = LatencyStats::from_samples(&samples);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_millis(51));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
    }
}
