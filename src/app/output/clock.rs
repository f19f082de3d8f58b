//! Turning the probes' CLOCK_MONOTONIC nanoseconds into wall-clock time.
//!
//! The offset CLOCK_REALTIME - CLOCK_MONOTONIC is taken once at start: events then keep their
//! order and spacing even if the wall clock is stepped while tracing.

use super::digits::{push_i64, push_u64_zero_padded};
use super::sink::Sink;
use std::io;

#[cfg(test)]
const NS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, in nanoseconds.
    realtime_offset_ns: i64,
}

impl Clock {
    /// Measures the offset now. Reads the monotonic clock on both sides of the real-time read
    /// and uses the midpoint, so the offset is off by at most half the time between the reads.
    pub fn now() -> io::Result<Clock> {
        let before = read_clock(libc::CLOCK_MONOTONIC)?;
        let real = read_clock(libc::CLOCK_REALTIME)?;
        let after = read_clock(libc::CLOCK_MONOTONIC)?;
        let mono = before + (after - before) / 2;
        let offset = real - mono;
        Ok(Clock {
            realtime_offset_ns: i64::try_from(offset).unwrap_or(i64::MAX),
        })
    }

    /// A clock with a known offset (tests, replays).
    pub fn with_offset(realtime_offset_ns: i64) -> Clock {
        Clock { realtime_offset_ns }
    }

    /// Nanoseconds since the Unix epoch for a CLOCK_MONOTONIC timestamp (saturating).
    pub fn unix_ns(&self, monotonic_ns: u64) -> i64 {
        let sum = i128::from(monotonic_ns) + i128::from(self.realtime_offset_ns);
        i64::try_from(sum).unwrap_or(if sum < 0 { i64::MIN } else { i64::MAX })
    }

    /// CLOCK_MONOTONIC now, in the units `bpf_ktime_get_ns()` uses (for records without a
    /// timestamp of their own, such as lost-event notices).
    pub fn monotonic_now_ns() -> io::Result<u64> {
        let ns = read_clock(libc::CLOCK_MONOTONIC)?;
        Ok(u64::try_from(ns).unwrap_or(0))
    }
}

fn read_clock(id: libc::clockid_t) -> io::Result<i128> {
    crate::kernel::sys::host::clock_ns(id)
}

/// A calendar date in the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: i64,
    pub month: u8,
    pub day: u8,
}

/// The date `days` days after 1970-01-01.
///
/// Shifts the year to start in March, so the leap day is the last day of the year, then splits
/// days into 400-year eras (146097 days each), years within the era, and days within the year.
pub fn date_from_days(days: i64) -> Date {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // 0..=146096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0 = March .. 11 = February
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    Date {
        year,
        month: month as u8,
        day: day as u8,
    }
}

/// Appends `unix_ns` as RFC 3339 UTC with microseconds: `2026-11-28T02:30:00.123456Z`.
/// Sub-microsecond digits are truncated (floor), so ordering is preserved.
pub fn push_rfc3339_micros(out: &mut impl Sink, unix_ns: i64) {
    let (secs, micros) = split_micros(unix_ns);
    push_date_time(out, secs);
    push_fraction(out, micros);
}

/// [`push_rfc3339_micros`] that remembers the date and time of the last second it formatted:
/// events come in bursts within one second, and the calendar arithmetic is most of the cost.
pub struct TimestampFormatter {
    second: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`; its capacity is reserved once, so refills do not
    /// allocate.
    date_time: Vec<u8>,
}

impl Default for TimestampFormatter {
    fn default() -> Self {
        TimestampFormatter {
            second: None,
            date_time: Vec::with_capacity(32),
        }
    }
}

impl TimestampFormatter {
    pub fn push(&mut self, out: &mut impl Sink, unix_ns: i64) {
        let (secs, micros) = split_micros(unix_ns);
        if self.second != Some(secs) {
            self.date_time.clear();
            push_date_time(&mut self.date_time, secs);
            self.second = Some(secs);
        }
        out.put(&self.date_time);
        push_fraction(out, micros);
    }
}

/// Whole seconds and the microseconds within them (floor division, also before 1970).
fn split_micros(unix_ns: i64) -> (i64, u64) {
    let micros = unix_ns.div_euclid(1000);
    // rem_euclid is in 0..1_000_000, so the cast is lossless.
    (
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000) as u64,
    )
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the epoch.
fn push_date_time(out: &mut impl Sink, secs: i64) {
    let days = secs.div_euclid(SECS_PER_DAY);
    let sec_of_day = secs.rem_euclid(SECS_PER_DAY) as u64;
    let date = date_from_days(days);
    if (0..=9999).contains(&date.year) {
        push_u64_zero_padded(out, date.year as u64, 4);
    } else {
        push_i64(out, date.year); // outside RFC 3339's range; still readable
    }
    out.put_byte(b'-');
    push_u64_zero_padded(out, date.month.into(), 2);
    out.put_byte(b'-');
    push_u64_zero_padded(out, date.day.into(), 2);
    out.put_byte(b'T');
    push_u64_zero_padded(out, sec_of_day / 3600, 2);
    out.put_byte(b':');
    push_u64_zero_padded(out, sec_of_day / 60 % 60, 2);
    out.put_byte(b':');
    push_u64_zero_padded(out, sec_of_day % 60, 2);
}

/// `.uuuuuuZ`
fn push_fraction(out: &mut impl Sink, micros: u64) {
    out.put_byte(b'.');
    push_u64_zero_padded(out, micros, 6);
    out.put_byte(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc3339(unix_ns: i64) -> String {
        let mut out = Vec::new();
        push_rfc3339_micros(&mut out, unix_ns);
        String::from_utf8(out).unwrap()
    }

    fn date(year: i64, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn known_dates() {
        assert_eq!(date_from_days(0), date(1970, 1, 1));
        assert_eq!(date_from_days(-1), date(1969, 12, 31));
        assert_eq!(date_from_days(59), date(1970, 3, 1));
        assert_eq!(date_from_days(11_016), date(2000, 2, 29)); // divisible by 400: leap
        assert_eq!(date_from_days(19_782), date(2024, 2, 29));
        assert_eq!(date_from_days(24_855), date(2038, 1, 19));
        assert_eq!(date_from_days(47_540), date(2100, 2, 28)); // divisible by 100: not leap
        assert_eq!(date_from_days(47_541), date(2100, 3, 1));
        assert_eq!(date_from_days(2_932_896), date(9999, 12, 31));
    }

    /// Walks day by day from 1900 to 2500 with a naive calendar and compares every date.
    #[test]
    fn agrees_with_a_naive_calendar_every_day() {
        fn leap(y: i64) -> bool {
            (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        }
        fn month_len(y: i64, m: u8) -> u8 {
            match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            }
        }
        let mut expected = date(1900, 1, 1);
        let first_day = -25_567; // 1900-01-01
        for days in first_day..first_day + 600 * 366 {
            assert_eq!(date_from_days(days), expected, "day {days}");
            expected.day += 1;
            if expected.day > month_len(expected.year, expected.month) {
                expected.day = 1;
                expected.month += 1;
                if expected.month > 12 {
                    expected.month = 1;
                    expected.year += 1;
                }
            }
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(999), "1970-01-01T00:00:00.000000Z"); // truncated, not rounded
        assert_eq!(rfc3339(1_000), "1970-01-01T00:00:00.000001Z");
        assert_eq!(rfc3339(-1_000), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            rfc3339(2_147_483_647 * NS_PER_SEC),
            "2038-01-19T03:14:07.000000Z"
        );
        assert_eq!(
            rfc3339(2_147_483_648 * NS_PER_SEC + 500_000),
            "2038-01-19T03:14:08.000500Z"
        );
        assert_eq!(
            rfc3339(1_795_833_000 * NS_PER_SEC + 123_456_789),
            "2026-11-28T02:30:00.123456Z"
        );
        assert_eq!(
            rfc3339(951_782_400 * NS_PER_SEC),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339(i64::MAX), "2262-04-11T23:47:16.854775Z");
    }

    #[test]
    fn cached_formatter_agrees_with_the_plain_one() {
        let mut cached = TimestampFormatter::default();
        let base = 1_795_833_000 * NS_PER_SEC;
        // Within a second, across seconds, back in time, and across a day boundary.
        for ns in [
            0,
            1,
            999_999_999,
            NS_PER_SEC,
            5,
            -1,
            base,
            base + 7_000,
            base - 1,
            86_399 * NS_PER_SEC + 999_999_999,
            86_400 * NS_PER_SEC,
        ] {
            let mut out = Vec::new();
            cached.push(&mut out, ns);
            assert_eq!(String::from_utf8(out).unwrap(), rfc3339(ns), "{ns}");
        }
    }

    #[test]
    fn monotonic_to_unix() {
        let clock = Clock::with_offset(1_000 * NS_PER_SEC);
        assert_eq!(clock.unix_ns(5), 1_000 * NS_PER_SEC + 5);
        assert_eq!(Clock::with_offset(i64::MAX).unix_ns(u64::MAX), i64::MAX);
        assert_eq!(Clock::with_offset(-10).unix_ns(3), -7);
    }

    #[test]
    fn measured_offset_matches_the_system_clock() {
        let clock = Clock::now().unwrap();
        let mono = Clock::monotonic_now_ns().unwrap();
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!(
            (clock.unix_ns(mono) - real).abs() < NS_PER_SEC,
            "off by more than a second"
        );
    }
}
