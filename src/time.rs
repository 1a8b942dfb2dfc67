//! Event time: the one clock every stage after decode uses.
//!
//! Owns the conversion between the time formats Databricks writes (epoch
//! milliseconds, RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` in UTC) and
//! [`EventTime`]. Never reads the wall clock: replay and live must agree.

use std::fmt;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct EventTime(pub i64);

/// Earliest time accepted from input: 2000-01-01T00:00:00Z. Databricks did
/// not exist before; an earlier value is a broken clock or a zeroed field.
/// (The public rule-pack fixtures use 2009-02-13, so the floor stays below.)
pub const MIN_VALID: EventTime = EventTime(946_684_800_000);
/// Latest time accepted from input: 2100-01-01T00:00:00Z. A fixed bound (not
/// "now + skew") so that replay of the same bytes always decides the same.
pub const MAX_VALID: EventTime = EventTime(4_102_444_800_000);

pub const MS_PER_MINUTE: i64 = 60_000;
pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

/// Why a time value could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("not a recognised time format")]
    Unparsable,
    #[error("outside 2000-01-01 .. 2100-01-01")]
    OutOfRange,
}

impl EventTime {
    pub fn from_millis(ms: i64) -> Self {
        EventTime(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Checks the accepted range; see [`MIN_VALID`] and [`MAX_VALID`].
    pub fn checked(self) -> Result<Self, TimeError> {
        if self < MIN_VALID || self >= MAX_VALID { Err(TimeError::OutOfRange) } else { Ok(self) }
    }

    /// Start of the bucket of `width_ms` that holds this time.
    pub fn floor(self, width_ms: i64) -> Self {
        EventTime(self.0.div_euclid(width_ms) * width_ms)
    }

    /// Hour of the day (0..24), UTC.
    pub fn hour_of_day(self) -> u32 {
        (self.0.div_euclid(MS_PER_HOUR).rem_euclid(24)) as u32
    }

    /// Day of the week, 0 = Monday .. 6 = Sunday (UTC). 1970-01-01 was a Thursday.
    pub fn day_of_week(self) -> u32 {
        ((self.0.div_euclid(MS_PER_DAY) + 3).rem_euclid(7)) as u32
    }

    /// Parses the textual forms found in system-table exports and CLI flags:
    /// RFC 3339 (`2024-01-01T12:00:00.000Z`, with any offset),
    /// `2024-01-01 12:00:00[.fff]` or `2024-01-01T12:00:00` (both read as UTC),
    /// a bare date `2024-01-01` (midnight UTC), or an integer of epoch
    /// seconds (10 digits or fewer) or milliseconds.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(TimeError::Unparsable);
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = t.parse().map_err(|_| TimeError::Unparsable)?;
            return Ok(EventTime(if t.len() <= 10 { n * 1000 } else { n }));
        }
        if let Ok(ts) = t.parse::<jiff::Timestamp>() {
            return Ok(EventTime(ts.as_millisecond()));
        }
        // No offset: Databricks writes system-table timestamps in UTC.
        let civil = t
            .parse::<jiff::civil::DateTime>()
            .or_else(|_| t.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
            .map_err(|_| TimeError::Unparsable)?;
        let ts = civil.to_zoned(jiff::tz::TimeZone::UTC).map_err(|_| TimeError::Unparsable)?.timestamp();
        Ok(EventTime(ts.as_millisecond()))
    }
}

impl fmt::Display for EventTime {
    /// RFC 3339 in UTC with millisecond precision, e.g. `2024-01-01T12:00:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => write!(f, "{}", ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")),
            Err(_) => write!(f, "@{}ms", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        let want = EventTime(1_704_110_400_000); // 2024-01-01T12:00:00Z
        for text in [
            "2024-01-01T12:00:00Z",
            "2024-01-01T12:00:00.000Z",
            "2024-01-01T13:00:00+01:00",
            "2024-01-01 12:00:00",
            "2024-01-01 12:00:00.000",
            "2024-01-01T12:00:00",
            "1704110400",
            "1704110400000",
        ] {
            assert_eq!(EventTime::parse(text), Ok(want), "{text}");
        }
        assert_eq!(EventTime::parse("2024-01-01"), Ok(EventTime(1_704_067_200_000)));
        assert_eq!(EventTime::parse("yesterday"), Err(TimeError::Unparsable));
    }

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(EventTime(1_704_110_400_123).to_string(), "2024-01-01T12:00:00.123Z");
    }

    #[test]
    fn range_rejects_1970_and_2999() {
        assert_eq!(EventTime(0).checked(), Err(TimeError::OutOfRange));
        assert_eq!(EventTime(32_503_680_000_000).checked(), Err(TimeError::OutOfRange));
        assert!(EventTime(1_234_567_890_000).checked().is_ok());
    }

    #[test]
    fn calendar_fields() {
        let t = EventTime(1_704_110_400_000); // Monday 2024-01-01 12:00
        assert_eq!(t.hour_of_day(), 12);
        assert_eq!(t.day_of_week(), 0);
        assert_eq!(t.floor(MS_PER_HOUR), t);
    }
}
