//! Wall-clock times for output that arrived at an [`Instant`]: the time of day shown in
//! front of lines (log files, `--timestamps`, the TUI's timestamps) and the RFC 3339 time
//! of the JSON lines.
//!
//! Arrival times are taken from the monotonic clock (the output buffer stores them
//! compactly, relative to an [`Instant`]); one pair of readings at start turns them into
//! wall-clock time, so a clock change during the run cannot reorder lines. The time of
//! day is local time (the zone the user reads it in), computed once per second with
//! `localtime_r`; the UTC offset is part of each log's date line.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Converts arrival [`Instant`]s to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    system: SystemTime,
    instant: Instant,
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::now()
    }
}

impl WallClock {
    /// Reads both clocks now.
    pub fn now() -> WallClock {
        WallClock {
            system: SystemTime::now(),
            instant: Instant::now(),
        }
    }

    /// The wall-clock time of `at`.
    pub fn system_time(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.system.checked_add(after),
            None => self
                .system
                .checked_sub(self.instant.saturating_duration_since(at)),
        }
        .unwrap_or(self.system)
    }

    /// Milliseconds since the Unix epoch at `at` (0 before it).
    pub fn unix_millis(&self, at: Instant) -> i64 {
        let since = self
            .system_time(at)
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A local date and time of day, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// Offset from UTC, in seconds (east positive).
    pub offset: i32,
}

impl LocalTime {
    /// `12:34:56.789`: always 12 bytes.
    pub fn time_of_day(&self) -> [u8; 12] {
        let mut out = *b"00:00:00.000";
        let two = |out: &mut [u8; 12], at: usize, n: u32| {
            out[at] = b'0' + (n / 10 % 10) as u8;
            out[at + 1] = b'0' + (n % 10) as u8;
        };
        two(&mut out, 0, self.hour);
        two(&mut out, 3, self.minute);
        two(&mut out, 6, self.second);
        out[9] = b'0' + (self.millis / 100 % 10) as u8;
        out[10] = b'0' + (self.millis / 10 % 10) as u8;
        out[11] = b'0' + (self.millis % 10) as u8;
        out
    }

    /// `12:34:56.789`.
    pub fn time_of_day_text(&self) -> String {
        String::from_utf8_lossy(&self.time_of_day()).into_owned()
    }

    /// `2025-06-01`.
    pub fn date_text(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `UTC+02:00`, `UTC-05:30`, `UTC`.
    pub fn offset_text(&self) -> String {
        if self.offset == 0 {
            return "UTC".to_string();
        }
        let sign = if self.offset < 0 { '-' } else { '+' };
        let minutes = self.offset.unsigned_abs() / 60;
        format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }

    /// The calendar day and zone: a log writes a date line when this changes.
    pub fn day_key(&self) -> (i32, u32, u32, i32) {
        (self.year, self.month, self.day, self.offset)
    }
}

/// Local time of day for Unix milliseconds, caching the conversion of the last second
/// (output arrives in bursts within the same second).
#[derive(Debug, Default)]
pub struct LocalClock {
    cached: Option<(i64, LocalTime)>,
}

impl LocalClock {
    pub fn new() -> LocalClock {
        LocalClock::default()
    }

    pub fn at_millis(&mut self, unix_millis: i64) -> LocalTime {
        let secs = unix_millis.div_euclid(1000);
        let millis = unix_millis.rem_euclid(1000) as u32;
        let base = match self.cached {
            Some((cached, time)) if cached == secs => time,
            _ => {
                let time = local(secs);
                self.cached = Some((secs, time));
                time
            }
        };
        LocalTime { millis, ..base }
    }
}

/// The local time of a Unix second (UTC when the zone cannot be read).
fn local(secs: i64) -> LocalTime {
    let t = libc::time_t::try_from(secs).unwrap_or(0);
    // SAFETY: an all-zero `tm` is a valid value (integers and a null zone pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `localtime_r` reads `t` and writes `tm`, both valid for the call; unlike
    // `localtime` it uses no static buffer, so threads may call it at once.
    let done = unsafe { libc::localtime_r(&t, &mut tm) };
    if done.is_null() {
        return utc(secs);
    }
    LocalTime {
        year: tm.tm_year + 1900,
        month: u32::try_from(tm.tm_mon + 1).unwrap_or(1),
        day: u32::try_from(tm.tm_mday).unwrap_or(1),
        hour: u32::try_from(tm.tm_hour).unwrap_or(0),
        minute: u32::try_from(tm.tm_min).unwrap_or(0),
        second: u32::try_from(tm.tm_sec).unwrap_or(0).min(59),
        millis: 0,
        offset: i32::try_from(tm.tm_gmtoff).unwrap_or(0),
    }
}

/// UTC, from the days since the epoch (Howard Hinnant's civil-from-days).
fn utc(secs: i64) -> LocalTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    LocalTime {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
        millis: 0,
        offset: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_and_times_of_day() {
        let t = utc(1_717_245_296);
        assert_eq!(t.date_text(), "2024-06-01");
        assert_eq!((t.hour, t.minute, t.second), (12, 34, 56));
        assert_eq!(utc(0).date_text(), "1970-01-01");
        assert_eq!(utc(951_782_400).date_text(), "2000-02-29");
        let with_ms = LocalTime { millis: 7, ..t };
        assert_eq!(with_ms.time_of_day_text(), "12:34:56.007");
        assert_eq!(LocalTime { offset: 7200, ..t }.offset_text(), "UTC+02:00");
        assert_eq!(
            LocalTime {
                offset: -19800,
                ..t
            }
            .offset_text(),
            "UTC-05:30"
        );
    }

    #[test]
    fn local_time_agrees_with_utc_plus_its_offset() {
        let secs = 1_717_245_296;
        let local = LocalClock::new().at_millis(secs * 1000 + 250);
        let shifted = utc(secs + i64::from(local.offset));
        assert_eq!(
            (local.year, local.month, local.day, local.hour, local.minute),
            (
                shifted.year,
                shifted.month,
                shifted.day,
                shifted.hour,
                shifted.minute
            )
        );
        assert_eq!(local.millis, 250);
    }

    #[test]
    fn instants_map_to_wall_time_both_ways() {
        let clock = WallClock::now();
        let later = clock.instant + Duration::from_millis(1500);
        let ms = clock.unix_millis(later) - clock.unix_millis(clock.instant);
        assert_eq!(ms, 1500);
        if let Some(earlier) = clock.instant.checked_sub(Duration::from_millis(20)) {
            assert_eq!(
                clock.unix_millis(clock.instant) - clock.unix_millis(earlier),
                20
            );
        }
    }
}
