//! When a replica's probes run, as a kubelet runs them: the startup probe first (until it
//! passes), then readiness and liveness side by side, each after its initial delay and on
//! its own interval. Results go to the agent loop as events; the loop decides what they
//! mean (out of rotation, or killed and restarted).

use std::time::Duration;

use tier_model::environment::Health;

use crate::health::{self, Check};

/// How often readiness is probed until the replica first passes, so a new replica joins
/// the pool as soon as it answers (its declared interval applies from then on).
pub const FIRST_READY_EVERY: Duration = Duration::from_millis(100);

/// Which probe a result is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

/// A check with its timings.
#[derive(Clone, Debug)]
pub struct Timed {
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub initial_delay: Duration,
}

impl Timed {
    pub fn of(health: &Health, check: Check) -> Timed {
        Timed {
            check,
            interval: health.interval.to_std(),
            timeout: health.timeout.to_std(),
            initial_delay: health
                .initial_delay
                .map_or(Duration::ZERO, |delay| delay.to_std()),
        }
    }
}

/// A replica's probes.
#[derive(Clone, Debug)]
pub struct ProbePlan {
    pub readiness: Timed,
    pub liveness: Option<Timed>,
    pub startup: Option<Timed>,
}

/// Runs the replica's probes until `send` reports the agent gone (or the caller drops the
/// future, when the replica stops). `port` is the replica's own port.
pub async fn run_probes(
    plan: ProbePlan,
    port: u16,
    send: impl Fn(ProbeKind, Result<(), String>) -> bool,
) {
    if let Some(startup) = &plan.startup {
        tokio::time::sleep(startup.initial_delay).await;
        loop {
            let result = health::probe(&startup.check, port, startup.timeout).await;
            let passed = result.is_ok();
            if !send(ProbeKind::Startup, result) {
                return;
            }
            if passed {
                break;
            }
            tokio::time::sleep(startup.interval).await;
        }
    }
    let readiness = async {
        tokio::time::sleep(plan.readiness.initial_delay).await;
        let mut passed = false;
        loop {
            let result = health::probe(&plan.readiness.check, port, plan.readiness.timeout).await;
            passed = passed || result.is_ok();
            if !send(ProbeKind::Readiness, result) {
                return;
            }
            let wait = if passed {
                plan.readiness.interval
            } else {
                FIRST_READY_EVERY.min(plan.readiness.interval)
            };
            tokio::time::sleep(wait).await;
        }
    };
    let liveness = async {
        let Some(liveness) = &plan.liveness else {
            return std::future::pending().await;
        };
        tokio::time::sleep(liveness.initial_delay).await;
        loop {
            let result = health::probe(&liveness.check, port, liveness.timeout).await;
            if !send(ProbeKind::Liveness, result) {
                return;
            }
            tokio::time::sleep(liveness.interval).await;
        }
    };
    tokio::select! {
        () = readiness => {}
        () = liveness => {}
    }
}
