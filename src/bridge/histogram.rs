//! Latency histograms for the bridge's figures (own latency, cloud, recording): fixed
//! buckets of atomics, so recording never locks and percentiles need no samples kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latencies in microseconds, in buckets of about 5 % width (50 a decade): enough for percentiles
/// without keeping every sample.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_us: AtomicU64,
}

const HISTOGRAM_BUCKETS: usize = 1200;

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..HISTOGRAM_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        // Linear to 100 µs, then 50 buckets per decade.
        if us < 100 {
            return us as usize;
        }
        let decades = (us as f64).log10() - 2.0;
        (100.0 + decades * 50.0) as usize
    }

    fn bucket_floor(index: usize) -> u64 {
        if index < 100 {
            return index as u64;
        }
        10f64.powf(2.0 + (index - 100) as f64 / 50.0) as u64
    }

    /// Adds one observation.
    pub fn record(&self, elapsed: Duration) {
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let index = Histogram::bucket(us).min(HISTOGRAM_BUCKETS - 1);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..=1), as the lower bound of its bucket.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Duration::from_micros(Histogram::bucket_floor(i)));
            }
        }
        None
    }

    /// Counts at or below each of `bounds` (cumulative), for Prometheus.
    pub fn cumulative(&self, bounds: &[Duration]) -> Vec<u64> {
        bounds
            .iter()
            .map(|b| {
                let top = Histogram::bucket(b.as_micros() as u64).min(HISTOGRAM_BUCKETS - 1);
                self.buckets
                    .iter()
                    .take(top)
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum()
            })
            .collect()
    }

    /// The sum of all observations.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket_of_the_truth() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=1000 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 1000);
        for (q, truth_ms) in [(0.5, 500.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = h.quantile(q).unwrap().as_secs_f64() * 1000.0;
            // The lower bound of a bucket about 5 % wide.
            assert!(got <= truth_ms && got >= truth_ms / 1.05, "p{q}: {got} ms");
        }
        let cumulative = h.cumulative(&[Duration::from_millis(100), Duration::from_secs(10)]);
        assert_eq!(cumulative.last(), Some(&1000));
        assert!((95..=100).contains(&cumulative[0]), "{cumulative:?}");
    }
}
