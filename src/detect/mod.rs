//! Detect: event-time buckets, closed by the watermark, scored by detectors.
//!
//! Owns bucketing, the late-event rule and the decision to alert. The
//! watermark is the largest event time seen minus the allowed lateness;
//! a bucket closes when the watermark passes its end. **Late-event rule:**
//! an event whose bucket has already closed when it arrives is counted as
//! late and not added to any bucket: a closed bucket's score is never
//! rewritten. Detectors see closed buckets in time order per principal,
//! and principals of one bucket in name order, so the alerts do not depend
//! on arrival order within the allowed lateness.

pub mod access;
pub mod allowlist;
pub mod buckets;
pub mod count;
pub mod definition;
pub mod evidence;
pub mod jit;
pub mod novelty;
pub mod registry;
pub mod rules;
pub mod share_down;
pub mod value;

use crate::time::EventTime;

/// Default allowed lateness: Databricks may deliver audit events up to
/// about 15 minutes late.
pub const DEFAULT_ALLOWED_LATENESS_MS: i64 = 15 * crate::time::MS_PER_MINUTE;

/// The event-time watermark.
#[derive(Debug, Clone, Copy)]
pub struct Watermark {
    max_seen: Option<EventTime>,
    lateness_ms: i64,
}

impl Watermark {
    pub fn new(lateness_ms: i64) -> Self {
        Watermark { max_seen: None, lateness_ms }
    }

    pub fn observe(&mut self, t: EventTime) {
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
    }

    /// Everything before this time is complete.
    pub fn current(&self) -> EventTime {
        self.max_seen.map_or(EventTime(i64::MIN), |m| EventTime(m.0 - self.lateness_ms))
    }
}
