//! The server's named limits and timeouts, each with a safe default, set
//! through `sufast_set_option` by name. The connection settings are read
//! when a server starts; `request_timeout` and `body_timeout` at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::forms::FormLimits;
use crate::instance::instance;

/// One named limit: its option name, what its number means, its default
/// (0 where the default is worked out, as `max_connections`'s), and the
/// smallest and largest values accepted.
struct Limit {
    name: &'static str,
    unit: &'static str,
    value: AtomicU64,
    default: u64,
    min: u64,
    max: u64,
}

impl Limit {
    const fn new(name: &'static str, unit: &'static str, default: u64, min: u64, max: u64) -> Self {
        Limit {
            name,
            unit,
            value: AtomicU64::new(default),
            default,
            min,
            max,
        }
    }

    fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

const HOUR_MS: u64 = 3_600_000;

/// Every named limit, one set per [`Instance`](crate::instance::Instance).
pub struct LimitSet {
    header_timeout: Limit,
    keepalive_timeout: Limit,
    body_timeout: Limit,
    request_timeout: Limit,
    max_header_size: Limit,
    max_connections: Limit,
    max_form_parts: Limit,
    max_part_size: Limit,
    upload_spool_size: Limit,
    stream_buffer: Limit,
    send_timeout: Limit,
    ws_max_size: Limit,
}

impl LimitSet {
    pub(crate) const fn new() -> Self {
        LimitSet {
            header_timeout: Limit::new("header_timeout_ms", "milliseconds", 10_000, 1, HOUR_MS),
            keepalive_timeout: Limit::new(
                "keepalive_timeout_ms",
                "milliseconds",
                5_000,
                1,
                HOUR_MS,
            ),
            body_timeout: Limit::new("body_timeout_ms", "milliseconds", 30_000, 1, HOUR_MS),
            request_timeout: Limit::new(
                "request_timeout_ms",
                "milliseconds",
                60_000,
                1,
                24 * HOUR_MS,
            ),
            max_header_size: Limit::new("max_header_size", "bytes", 64 * 1024, 1024, 1 << 24),
            max_connections: Limit::new("max_connections", "connections", 0, 0, 1 << 24),
            max_form_parts: Limit::new("max_form_parts", "parts", 1000, 1, 1 << 20),
            // A field's length must fit a form record's u32.
            max_part_size: Limit::new("max_part_size", "bytes", 1 << 20, 1, u32::MAX as u64),
            upload_spool_size: Limit::new(
                "upload_spool_size",
                "bytes",
                1 << 20,
                0,
                u32::MAX as u64,
            ),
            stream_buffer: Limit::new("stream_buffer", "bytes", 256 * 1024, 1, 1 << 30),
            send_timeout: Limit::new("send_timeout_ms", "milliseconds", 30_000, 1, HOUR_MS),
            ws_max_size: Limit::new("ws_max_size", "bytes", 1 << 20, 1, 1 << 30),
        }
    }

    fn all(&self) -> [&Limit; 12] {
        [
            &self.header_timeout,
            &self.keepalive_timeout,
            &self.body_timeout,
            &self.request_timeout,
            &self.max_header_size,
            &self.max_connections,
            &self.max_form_parts,
            &self.max_part_size,
            &self.upload_spool_size,
            &self.stream_buffer,
            &self.send_timeout,
            &self.ws_max_size,
        ]
    }
}

fn limits() -> &'static LimitSet {
    &instance().limits
}

/// The names `set` knows, for messages.
pub fn names() -> String {
    limits()
        .all()
        .into_iter()
        .map(|l| l.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets the limit `name` to `value`: `Ok(false)` if no limit has that name,
/// `Err` with the reason if the value is out of range. 0 restores
/// `max_connections`'s worked-out default.
pub fn set(name: &str, value: i64) -> Result<bool, String> {
    let Some(limit) = limits().all().into_iter().find(|l| l.name == name) else {
        return Ok(false);
    };
    let value = u64::try_from(value)
        .ok()
        .filter(|v| (limit.min..=limit.max).contains(v))
        .ok_or_else(|| {
            format!(
                "{value} is out of range: {} {} to {}{}",
                limit.name,
                limit.min,
                limit.max,
                match limit.default {
                    0 => " (0: the default)".to_owned(),
                    d => format!(" {}, default {d}", limit.unit),
                }
            )
        })?;
    limit.value.store(value, Ordering::Relaxed);
    Ok(true)
}

/// Puts every limit back to its default.
pub fn reset() {
    for limit in limits().all() {
        limit.value.store(limit.default, Ordering::Relaxed);
    }
}

pub fn request_timeout() -> Duration {
    Duration::from_millis(limits().request_timeout.get())
}

/// The bytes a stream buffers before its producer waits.
pub fn stream_buffer() -> usize {
    usize::try_from(limits().stream_buffer.get()).unwrap_or(usize::MAX)
}

/// The largest WebSocket message (and frame) a client may send; larger
/// ones close the socket with 1009.
pub fn ws_max_size() -> usize {
    usize::try_from(limits().ws_max_size.get()).unwrap_or(usize::MAX)
}

/// How long a stream may stay full (its client reading nothing) before
/// it is closed.
pub fn send_timeout() -> Duration {
    Duration::from_millis(limits().send_timeout.get())
}

pub fn body_timeout() -> Duration {
    Duration::from_millis(limits().body_timeout.get())
}

/// What a form is held to, with `max_body` the largest body.
pub fn form_limits(max_body: usize) -> FormLimits {
    let get = |limit: &Limit| usize::try_from(limit.get()).unwrap_or(usize::MAX);
    FormLimits {
        max_body,
        pause: body_timeout(),
        max_parts: get(&limits().max_form_parts),
        max_part: get(&limits().max_part_size),
        spool: get(&limits().upload_spool_size),
    }
}

/// What a connection is held to, read once when a server starts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_header_size: usize,
    pub max_connections: usize,
}

impl Limits {
    pub fn current() -> Self {
        Limits {
            header_timeout: Duration::from_millis(limits().header_timeout.get()),
            keepalive_timeout: Duration::from_millis(limits().keepalive_timeout.get()),
            max_header_size: usize::try_from(limits().max_header_size.get()).unwrap_or(usize::MAX),
            max_connections: match limits().max_connections.get() {
                0 => default_max_connections(),
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
        }
    }
}

/// The descriptors this process may open, less a reserve for everything
/// else it opens (files, database connections, the runtime's own):
/// an eighth, at least 64. Without a limit to read, 1024.
pub fn default_max_connections() -> usize {
    let soft = open_files_limit().unwrap_or(1024).min(1 << 20);
    soft.saturating_sub((soft / 8).max(64)).max(1)
}

#[cfg(unix)]
fn open_files_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then(|| usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

#[cfg(not(unix))]
fn open_files_limit() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_against_each_limits_range() {
        assert_eq!(set("no_such_limit", 1), Ok(false));
        assert!(set("header_timeout_ms", 0)
            .unwrap_err()
            .contains("1 to 3600000 milliseconds"));
        assert!(set("max_header_size", 100)
            .unwrap_err()
            .contains("default 65536"));
        assert!(set("request_timeout_ms", -5).is_err());
        assert!(default_max_connections() >= 1);
    }
}
