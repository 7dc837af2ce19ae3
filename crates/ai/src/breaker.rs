//! Per-model circuit breaker: closed -> open after repeated failures -> half-open probes ->
//! closed again. Failures are only what the model did wrong; a caller that went away is
//! neither a failure nor a success, and its probe slot is always handed back.

use crate::config::BreakerConfig;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

enum State {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { successes: u32, in_flight: u32 },
}

pub struct CircuitBreaker {
    model: String,
    cfg: BreakerConfig,
    state: Mutex<State>,
}

impl CircuitBreaker {
    pub fn new(model: impl Into<String>, cfg: BreakerConfig) -> Arc<Self> {
        let b = Arc::new(Self {
            model: model.into(),
            cfg,
            state: Mutex::new(State::Closed {
                failures: VecDeque::new(),
            }),
        });
        b.publish(BreakerState::Closed);
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, s: BreakerState) {
        metrics::gauge!("assay_ai_breaker_state", "model" => self.model.clone()).set(s.gauge());
    }

    /// The state as a caller would see it now (an expired open period reads as half-open).
    pub fn state(&self) -> BreakerState {
        match &*self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Permission for one call, or `None` while open (or all probe slots are taken).
    pub fn try_acquire(self: &Arc<Self>) -> Option<BreakerPermit> {
        let mut st = self.lock();
        let now = Instant::now();
        if let State::Open { until } = *st {
            if now < until {
                return None;
            }
            *st = State::HalfOpen {
                successes: 0,
                in_flight: 0,
            };
            self.publish(BreakerState::HalfOpen);
        }
        match &mut *st {
            State::Closed { .. } => Some(BreakerPermit {
                breaker: self.clone(),
                probe: false,
                settled: false,
            }),
            State::HalfOpen { in_flight, .. } if *in_flight < self.cfg.half_open_max_probes => {
                *in_flight += 1;
                Some(BreakerPermit {
                    breaker: self.clone(),
                    probe: true,
                    settled: false,
                })
            }
            _ => None,
        }
    }

    fn on_success(&self, probe: bool) {
        let mut st = self.lock();
        if let State::HalfOpen {
            successes,
            in_flight,
        } = &mut *st
            && probe
        {
            *in_flight = in_flight.saturating_sub(1);
            *successes += 1;
            if *successes >= self.cfg.half_open_successes {
                *st = State::Closed {
                    failures: VecDeque::new(),
                };
                self.publish(BreakerState::Closed);
                tracing::info!(model = %self.model, "circuit breaker closed");
            }
        }
    }

    fn on_failure(&self, probe: bool) {
        let mut st = self.lock();
        let now = Instant::now();
        let open = |st: &mut State| {
            *st = State::Open {
                until: now + Duration::from_millis(self.cfg.open_ms),
            };
            self.publish(BreakerState::Open);
            tracing::warn!(model = %self.model, "circuit breaker opened");
        };
        match &mut *st {
            State::Closed { failures } => {
                let window = Duration::from_millis(self.cfg.window_ms);
                while failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > window)
                {
                    failures.pop_front();
                }
                failures.push_back(now);
                if failures.len() as u32 >= self.cfg.failure_threshold {
                    open(&mut st);
                }
            }
            State::HalfOpen { .. } if probe => open(&mut st),
            // A call admitted while closed that fails after the breaker opened changes nothing.
            _ => {}
        }
    }

    fn on_release(&self, probe: bool) {
        if !probe {
            return;
        }
        if let State::HalfOpen { in_flight, .. } = &mut *self.lock() {
            *in_flight = in_flight.saturating_sub(1);
        }
    }
}

/// One admitted call. Report `success()` or `failure()`; dropping it unreported (a cancelled
/// call) counts as neither and frees a half-open probe slot.
pub struct BreakerPermit {
    breaker: Arc<CircuitBreaker>,
    probe: bool,
    settled: bool,
}

impl BreakerPermit {
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.on_success(self.probe);
    }

    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.on_failure(self.probe);
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.on_release(self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 5,
            window_ms: 60_000,
            open_ms: 60_000,
            half_open_successes: 3,
            half_open_max_probes: 1,
        }
    }

    fn fail(b: &Arc<CircuitBreaker>, n: u32) {
        for _ in 0..n {
            b.try_acquire().expect("admitted").failure();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_five_failures_within_the_window() {
        let b = CircuitBreaker::new("m", cfg());
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_add_up() {
        let b = CircuitBreaker::new("m", cfg());
        fail(&b, 4);
        tokio::time::advance(Duration::from_secs(61)).await;
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_after_the_open_period_then_closes_after_three_probes() {
        let b = CircuitBreaker::new("m", cfg());
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(b.try_acquire().is_none());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        for i in 0..3 {
            let p = b.try_acquire().expect("probe admitted");
            assert!(b.try_acquire().is_none(), "one probe at a time");
            p.success();
            let want = if i < 2 {
                BreakerState::HalfOpen
            } else {
                BreakerState::Closed
            };
            assert_eq!(b.state(), want);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens() {
        let b = CircuitBreaker::new("m", cfg());
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(61)).await;
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_its_slot_and_counts_for_nothing() {
        let b = CircuitBreaker::new("m", cfg());
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(61)).await;
        let p = b.try_acquire().unwrap();
        drop(p); // the caller went away
        assert_eq!(b.state(), BreakerState::HalfOpen);
        for _ in 0..3 {
            b.try_acquire().expect("slot was released").success();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_calls_while_closed_never_open_it() {
        let b = CircuitBreaker::new("m", cfg());
        for _ in 0..50 {
            drop(b.try_acquire().unwrap());
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
