//! Warnings that outsiders can provoke, logged at most a few per interval.
//!
//! A forged notification costs an attacker one request and used to cost the box one
//! journal line: 200 clients wrote 17 MB of warnings in 20 s. A [`Throttle`] lets the
//! first few of each interval through and counts the rest, and the next one logged
//! says how many were left out. Counters (the metrics) still count every event.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `burst` admissions per `every`.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    burst: u32,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    admitted: u32,
    left_out: u64,
}

impl Throttle {
    /// A throttle letting `burst` events through per `every`.
    pub fn new(every: Duration, burst: u32) -> Throttle {
        Throttle {
            every,
            burst,
            window: Mutex::new(Window {
                started: Instant::now(),
                admitted: 0,
                left_out: 0,
            }),
        }
    }

    /// Whether to log this event now; if so, with how many were left out since the
    /// last one logged.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut window = crate::locks::lock(&self.window);
        if now.saturating_duration_since(window.started) >= self.every {
            window.started = now;
            window.admitted = 0;
        }
        if window.admitted < self.burst {
            window.admitted += 1;
            Some(std::mem::take(&mut window.left_out))
        } else {
            window.left_out += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_interval_and_the_rest_counted_into_the_next() {
        let t = Throttle::new(Duration::from_secs(10), 3);
        let start = Instant::now();
        let admitted: Vec<Option<u64>> = (0..1000).map(|_| t.admit_at(start)).collect();
        assert_eq!(&admitted[..3], &[Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));
        // Still within the interval: nothing more.
        assert_eq!(t.admit_at(start + Duration::from_secs(9)), None);
        // The next interval's first says how many were left out.
        assert_eq!(t.admit_at(start + Duration::from_secs(10)), Some(998));
        assert_eq!(t.admit_at(start + Duration::from_secs(11)), Some(0));
    }
}
