//! The server's two streams on stderr: events with a level (start, stop,
//! a stop deadline passed, accept errors), one line each as
//! `sufast: <level>: <message>`; and the access log, one line per request
//! in the Common Log Format plus the duration, or as JSON lines. Both are
//! written here, from the server's threads, without calling into Python.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::instance::instance;

/// How much the server says about itself: events at this level and the
/// ones above it are written. The numbers are part of the ABI
/// (`sufast_set_option("log_level", ...)`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SufastLogLevel {
    /// Only critical events (the server has none of its own today).
    Critical = 0,
    /// Failures that lose something: accept errors, server errors.
    Error = 1,
    /// Something went wrong and was handled: a stop deadline passed.
    Warning = 2,
    /// The default: the above, and what the server is doing.
    Info = 3,
    /// The above, and the server's start and stop.
    Debug = 4,
    /// Everything, such as connections the client reset before accept.
    Trace = 5,
}

impl SufastLogLevel {
    fn name(self) -> &'static str {
        match self {
            SufastLogLevel::Critical => "critical",
            SufastLogLevel::Error => "error",
            SufastLogLevel::Warning => "warning",
            SufastLogLevel::Info => "info",
            SufastLogLevel::Debug => "debug",
            SufastLogLevel::Trace => "trace",
        }
    }

    pub fn from_number(value: i64) -> Option<Self> {
        Some(match value {
            0 => SufastLogLevel::Critical,
            1 => SufastLogLevel::Error,
            2 => SufastLogLevel::Warning,
            3 => SufastLogLevel::Info,
            4 => SufastLogLevel::Debug,
            5 => SufastLogLevel::Trace,
            _ => return None,
        })
    }
}

/// Whether and how requests are logged. The numbers are part of the ABI
/// (`sufast_set_option("access_log", ...)`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SufastAccessLog {
    /// The default: common format in development, none in production.
    Auto = 0,
    /// No access log.
    Off = 1,
    /// `host - - [time] "request line" status bytes duration`, bytes `-`
    /// when the body is empty, the duration in milliseconds (`0.123ms`).
    Common = 2,
    /// One JSON object per line: time, client, method, path, protocol,
    /// status, bytes, duration_ms.
    Json = 3,
}

impl SufastAccessLog {
    pub fn from_number(value: i64) -> Option<Self> {
        Some(match value {
            0 => SufastAccessLog::Auto,
            1 => SufastAccessLog::Off,
            2 => SufastAccessLog::Common,
            3 => SufastAccessLog::Json,
            _ => return None,
        })
    }

    /// What a server started in `production` mode writes.
    pub fn resolve(self, production: bool) -> Self {
        match self {
            SufastAccessLog::Auto if production => SufastAccessLog::Off,
            SufastAccessLog::Auto => SufastAccessLog::Common,
            other => other,
        }
    }
}

/// What is written, one per [`Instance`](crate::instance::Instance).
pub struct LogSettings {
    level: AtomicU8,
    access_log: AtomicU8,
}

impl LogSettings {
    pub(crate) const fn new() -> Self {
        LogSettings {
            level: AtomicU8::new(SufastLogLevel::Info as u8),
            access_log: AtomicU8::new(SufastAccessLog::Auto as u8),
        }
    }
}

fn settings() -> &'static LogSettings {
    &instance().log
}

pub fn set_level(level: SufastLogLevel) {
    settings().level.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: SufastLogLevel) -> bool {
    level as u8 <= settings().level.load(Ordering::Relaxed)
}

pub fn set_access_log(access_log: SufastAccessLog) {
    settings()
        .access_log
        .store(access_log as u8, Ordering::Relaxed);
}

/// The access log as set, `Auto` until set; a server reads it when it starts.
pub fn access_log() -> SufastAccessLog {
    SufastAccessLog::from_number(settings().access_log.load(Ordering::Relaxed).into())
        .unwrap_or(SufastAccessLog::Auto)
}

/// Writes one event line if `level` is enabled.
pub fn event(level: SufastLogLevel, message: impl std::fmt::Display) {
    if enabled(level) {
        line(&format!("sufast: {}: {message}\n", level.name()));
    }
}

/// One write per line, so lines from several threads never interleave.
fn line(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// One request as the access log records it.
pub struct Access<'a> {
    pub client: &'a str,
    pub method: &'a str,
    pub target: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration: Duration,
}

/// Writes `access` in `format` (`Common` or `Json`; others write nothing).
pub fn access(format: SufastAccessLog, access: &Access<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = access.duration.as_secs_f64() * 1000.0;
    let mut out = String::with_capacity(160);
    let _ = match format {
        SufastAccessLog::Common => {
            let bytes = match access.bytes {
                0 => "-".to_owned(),
                n => n.to_string(),
            };
            writeln!(
                out,
                "{} - - [{}] \"{} {} {}\" {} {bytes} {ms:.3}ms",
                access.client,
                common_time(now),
                access.method,
                access.target,
                access.protocol,
                access.status
            )
        }
        SufastAccessLog::Json => writeln!(
            out,
            "{{\"time\":\"{}\",\"client\":{},\"method\":{},\"path\":{},\"protocol\":\"{}\",\"status\":{},\"bytes\":{},\"duration_ms\":{ms:.3}}}",
            iso_time(now),
            json_string(access.client),
            json_string(access.method),
            json_string(access.target),
            access.protocol,
            access.status,
            access.bytes
        ),
        SufastAccessLog::Auto | SufastAccessLog::Off => return,
    };
    line(&out);
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `01/Dec/2026:10:47:19 +0000`, in UTC.
fn common_time(since_epoch: Duration) -> String {
    let (year, month, day, hms) = civil(since_epoch.as_secs());
    let month = MONTHS[(month - 1) as usize];
    format!(
        "{day:02}/{month}/{year}:{:02}:{:02}:{:02} +0000",
        hms / 3600,
        hms / 60 % 60,
        hms % 60
    )
}

/// `2026-12-01T10:47:19.123Z`.
fn iso_time(since_epoch: Duration) -> String {
    let (year, month, day, hms) = civil(since_epoch.as_secs());
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        hms / 3600,
        hms / 60 % 60,
        hms % 60,
        since_epoch.subsec_millis()
    )
}

/// The UTC date of `secs` after the epoch and the seconds into that day,
/// by the days-from-civil inverse of the proleptic Gregorian calendar.
fn civil(secs: u64) -> (u64, u64, u64, u64) {
    let days = secs / 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, secs % 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        // 2026-12-01T10:47:19Z
        let t = Duration::from_millis(1_796_122_039_123);
        assert_eq!(common_time(t), "01/Dec/2026:10:47:19 +0000");
        assert_eq!(iso_time(t), "2026-12-01T10:47:19.123Z");
        assert_eq!(civil(0), (1970, 1, 1, 0));
        // A leap day, and the last second of a year.
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0));
        assert_eq!(civil(1_704_067_199), (2023, 12, 31, 86_399));
    }

    #[test]
    fn levels_filter_in_order() {
        assert!(SufastLogLevel::Error < SufastLogLevel::Trace);
        assert_eq!(
            SufastLogLevel::from_number(2),
            Some(SufastLogLevel::Warning)
        );
        assert_eq!(SufastLogLevel::from_number(6), None);
        assert_eq!(SufastAccessLog::Auto.resolve(true), SufastAccessLog::Off);
        assert_eq!(
            SufastAccessLog::Auto.resolve(false),
            SufastAccessLog::Common
        );
        assert_eq!(SufastAccessLog::Json.resolve(true), SufastAccessLog::Json);
    }
}
