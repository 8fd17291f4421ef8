//! Injected client-side delay before each HTTP exchange (the "paper regime" RTT).
//!
//! tokio's timer has 1 ms granularity, so the delay blocks the client thread. When the client
//! has a CPU of its own (pinned) it spins on the clock to the deadline: a sleeping thread on
//! this VM is sometimes woken milliseconds late when other processes run. Unpinned, it sleeps
//! with 1 ns timer slack (spinning would steal the servers' CPU). Cells that use a delay have
//! exactly one request in flight, so blocking the single-threaded client runtime is what a
//! real waiting client does.
use std::cell::RefCell;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A per-exchange delay with a record of what was actually achieved.
#[derive(Debug)]
pub struct Delay {
    target: Duration,
    /// How late `thread::sleep` wakes up on this machine (measured, for the record).
    oversleep: Duration,
    /// Spin instead of sleeping.
    spin: bool,
    achieved_ns: RefCell<Vec<u64>>,
}

/// What a delay achieved over a cell.
#[derive(Debug, Clone, Serialize)]
pub struct DelayStats {
    pub target_us: f64,
    pub count: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub method: String,
}

impl Delay {
    /// A delay of `target`. Measures this thread's sleep overshoot (call it on the thread that
    /// will inject the delay, after its timer slack is set).
    pub fn calibrated(target: Duration, spin: bool) -> Delay {
        let mut late = Vec::with_capacity(32);
        for _ in 0..32 {
            let start = Instant::now();
            std::thread::sleep(target.max(Duration::from_micros(1)));
            late.push(start.elapsed().saturating_sub(target));
        }
        late.sort();
        Delay {
            target,
            oversleep: late[late.len() / 2],
            spin,
            achieved_ns: RefCell::new(Vec::new()),
        }
    }

    /// The same delay with an empty record (one per cell).
    pub fn fresh(&self) -> Delay {
        Delay {
            target: self.target,
            oversleep: self.oversleep,
            spin: self.spin,
            achieved_ns: RefCell::new(Vec::new()),
        }
    }

    /// Whether waiting burns client CPU (then cells subtract it from the client's CPU time).
    pub fn spins(&self) -> bool {
        self.spin
    }

    /// Waits the delay (blocking) and records how long it took.
    pub fn inject(&self) {
        if self.target.is_zero() {
            return;
        }
        let start = Instant::now();
        if self.spin {
            let deadline = start + self.target;
            while Instant::now() < deadline {
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(self.target);
        }
        let took = start.elapsed().as_nanos() as u64;
        self.achieved_ns.borrow_mut().push(took);
    }

    /// Total time spent in delays so far.
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.achieved_ns.borrow().iter().sum())
    }

    /// Statistics of the delays injected so far.
    pub fn stats(&self) -> DelayStats {
        let mut v = self.achieved_ns.borrow().clone();
        v.sort_unstable();
        let us = |ns: u64| ns as f64 / 1000.0;
        let pick = |q: f64| {
            if v.is_empty() {
                0.0
            } else {
                us(v[((v.len() - 1) as f64 * q).round() as usize])
            }
        };
        let mean = if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0
        };
        let oversleep = self.oversleep.as_secs_f64() * 1e6;
        DelayStats {
            target_us: self.target.as_secs_f64() * 1e6,
            count: v.len(),
            mean_us: mean,
            p50_us: pick(0.5),
            p99_us: pick(0.99),
            max_us: v.last().map_or(0.0, |&x| us(x)),
            method: if self.spin {
                format!(
                    "spin on the clock (client has its own CPU); a plain sleep would overshoot by {oversleep:.1} µs (median)"
                )
            } else {
                format!("sleep with 1 ns timer slack; median overshoot {oversleep:.1} µs")
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_last_at_least_the_target() {
        for spin in [true, false] {
            let d = Delay::calibrated(Duration::from_micros(100), spin);
            for _ in 0..20 {
                d.inject();
            }
            let s = d.stats();
            assert_eq!(s.count, 20);
            assert!(s.p50_us >= 100.0, "{s:?}");
            assert!(d.total() >= Duration::from_micros(2000));
            assert_eq!(d.fresh().stats().count, 0);
        }
    }
}
