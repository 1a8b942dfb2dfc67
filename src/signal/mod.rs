//! Signals: what each event says about a principal's behaviour.
//!
//! Owns the key a signal is counted under (usually the actor; the targeted
//! user for failed logins; the charged `run_as` identity for cost and
//! runtime), the pricing of billing usage ([`pricing::PriceBook`]) and the
//! rebuilding of job runs from start/end events ([`job_runs::JobRuns`]).
//! Keeps only the state those two need; never scores.

pub mod job_runs;
pub mod pricing;

use crate::event::{Event, Signal};

/// The principal a signal of this event is attributed to.
pub fn key_of(ev: &Event, signal: Signal) -> &str {
    match signal {
        // The attacker of a failed login is not authenticated: the account
        // under attack is the one that behaves unlike itself.
        Signal::FailedLogin if !ev.target.is_empty() => &ev.target,
        Signal::Cost | Signal::JobRun => ev.charged_principal(),
        _ => &ev.principal,
    }
}
