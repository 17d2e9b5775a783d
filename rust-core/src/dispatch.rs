//! Requests for handlers outside Rust (Python): a bounded queue that the
//! handler threads take batches from, with a blocking call that releases
//! the GIL, and answer one by one. Tokio's workers only push and await;
//! no foreign code ever runs on them.
//!
//! # A request record (little-endian)
//! ```text
//! u32 length of the rest of the record
//! u64 request id          (echoed by the response)
//! u32 handler id          (from the route table)
//! u16 client port
//! u16 number of path parameters (n)
//! u32 × 7 lengths of: method, raw path, raw query, client host, scheme,
//!         headers, body
//! u32 × n lengths of the percent-decoded path parameter values
//! the bytes of: method, path, query, host, scheme, parameters…, headers, body
//! ```
//! The client host and port are the TCP peer's, or those a trusted proxy
//! named (port 0 when it named none); the scheme is `http`, or `https`
//! when a trusted proxy said so.
//!
//! The headers block repeats `u32 name length, u32 value length, name,
//! value` for every header as received (lower-case names, repeats kept).
//!
//! # A response (little-endian)
//! ```text
//! u16 status, u32 number of headers,
//! then per header u32 name length, u32 value length, name, value,
//! then the body: every remaining byte
//! ```

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use once_cell::sync::Lazy;
use tokio::sync::{oneshot, Notify};

use crate::error::{Error, SufastErrorCode};
use crate::log::{self, SufastLogLevel};
use crate::routes::forwarded::Client;
use crate::routes::spec::{is_managed_header, StaticResponse};

/// How many requests may wait for or be inside handlers unless told otherwise.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// The most records one take hands out: one, so that a thread inside a
/// slow handler holds no other request back (see `watch`). Taking again
/// while busy costs no wake-up, so this costs little.
const MAX_BATCH: usize = 1;

/// How long queued requests may wait with no thread taking any before one
/// more handler thread is woken (a thread stuck in a slow handler holds
/// nothing queued back for longer than about this).
const STALL: Duration = Duration::from_millis(1);

const FIXED: usize = 4 + 8 + 4 + 2 + 2 + 7 * 4;

static QUEUE: Lazy<Queue> = Lazy::new(|| Queue {
    state: Mutex::new(State {
        open: false,
        queue: VecDeque::new(),
        waiting: HashMap::new(),
        idle: 0,
        busy: 0,
        waking: false,
        takes: 0,
        held: Vec::new(),
        held_since: Instant::now(),
        expired: HashSet::new(),
    }),
    ready: Condvar::new(),
    deferred: AtomicBool::new(false),
    queued: Notify::new(),
    next_id: AtomicU64::new(1),
    max_pending: AtomicUsize::new(DEFAULT_MAX_PENDING),
    saturated: AtomicBool::new(false),
});

struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    /// Requests were queued while no handler thread was awake: the next
    /// tokio worker to run out of work wakes one, so that one wake-up
    /// carries every request queued in the meantime.
    deferred: AtomicBool,
    /// Tells `watch` that requests were queued.
    queued: Notify,
    next_id: AtomicU64,
    max_pending: AtomicUsize,
    /// The handler threads said none of them can take a request (all are
    /// stuck and no more may start): requests get a 503 at once.
    saturated: AtomicBool,
}

struct State {
    open: bool,
    /// Records not yet taken, oldest first.
    queue: VecDeque<(u64, Vec<u8>)>,
    /// Every request not yet answered, taken or not, by id.
    waiting: HashMap<u64, oneshot::Sender<StaticResponse>>,
    /// Handler threads blocked in `take`.
    idle: usize,
    /// Handler threads that took requests and have not come back for more:
    /// they take what is queued next, so nobody needs waking for it.
    busy: usize,
    /// A thread was notified and has not left its wait yet.
    waking: bool,
    /// Takes that handed out records; `watch` reads progress from it.
    takes: u64,
    /// Responses from busy handler threads, not yet sent (see `respond`).
    held: Vec<(oneshot::Sender<StaticResponse>, StaticResponse)>,
    /// When the oldest held response arrived.
    held_since: Instant,
    /// Requests whose deadline passed before their handler answered, so
    /// that a late answer is reported rather than silently dropped.
    expired: HashSet<u64>,
}

/// The most expired requests remembered; beyond it the set starts over
/// (a handler that never answers must not grow it without bound).
const MAX_EXPIRED: usize = 4096;

thread_local! {
    /// This thread is counted in `State::busy`.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

fn state() -> MutexGuard<'static, State> {
    // Every update below leaves the state consistent, even mid-panic.
    QUEUE
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a request needs to cross to a handler.
pub struct RequestParts<'a> {
    pub handler: u32,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub client: &'a Client,
    pub params: &'a [String],
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl RequestParts<'_> {
    /// The record for request `id`; `None` if a part exceeds 4 GiB.
    fn encode(&self, id: u64) -> Option<Vec<u8>> {
        let host = self.client.host();
        let headers_len: usize = self
            .headers
            .iter()
            .map(|(n, v)| 8 + n.as_str().len() + v.len())
            .sum();
        let parts = [
            self.method.as_bytes(),
            self.path.as_bytes(),
            self.query.as_bytes(),
            host.as_bytes(),
            self.client.scheme.as_bytes(),
        ];
        let variable: usize = parts.iter().map(|p| p.len()).sum::<usize>()
            + self.params.iter().map(|p| 4 + p.len()).sum::<usize>()
            + headers_len
            + self.body.len();
        let rest = u32::try_from(FIXED - 4 + variable).ok()?;
        let len32 = |n: usize| u32::try_from(n).ok().map(u32::to_le_bytes);
        let mut out = Vec::with_capacity(FIXED + variable);
        out.extend_from_slice(&rest.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&self.handler.to_le_bytes());
        out.extend_from_slice(&self.client.port().to_le_bytes());
        out.extend_from_slice(&u16::try_from(self.params.len()).ok()?.to_le_bytes());
        for part in parts {
            out.extend_from_slice(&len32(part.len())?);
        }
        out.extend_from_slice(&len32(headers_len)?);
        out.extend_from_slice(&len32(self.body.len())?);
        for param in self.params {
            out.extend_from_slice(&len32(param.len())?);
        }
        for part in parts {
            out.extend_from_slice(part);
        }
        for param in self.params {
            out.extend_from_slice(param.as_bytes());
        }
        for (name, value) in self.headers {
            out.extend_from_slice(&len32(name.as_str().len())?);
            out.extend_from_slice(&len32(value.len())?);
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(self.body);
        Some(out)
    }
}

/// Why a request could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// `max_pending` requests are already waiting or running.
    Full,
    /// No server is running (or it is stopping).
    Closed,
    /// The request is too large to encode.
    TooLarge,
}

/// A queued request; dropping it (the client went away) withdraws it, so
/// that a request nobody waits for is not handed to a handler.
pub struct Pending {
    id: u64,
    reply: oneshot::Receiver<StaticResponse>,
    /// The reply arrived, so `respond` already removed the request.
    answered: bool,
}

impl Pending {
    /// The handler's response; `None` if the queue closed first.
    pub async fn reply(&mut self) -> Option<StaticResponse> {
        let reply = (&mut self.reply).await.ok();
        self.answered = reply.is_some();
        reply
    }

    /// Withdraws a request whose deadline passed: a handler that answers
    /// it later is told (in the log) that nobody got the answer.
    pub fn expire(mut self) {
        let mut state = state();
        if state.waiting.remove(&self.id).is_some() {
            if state.expired.len() >= MAX_EXPIRED {
                state.expired.clear();
            }
            state.expired.insert(self.id);
        }
        self.answered = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Only a request still waiting needs withdrawing: an answered one
        // costs no second trip through the queue's lock.
        if !self.answered {
            state().waiting.remove(&self.id);
        }
    }
}

/// Queues a request for its handler, or refuses it at once.
pub fn submit(parts: &RequestParts<'_>) -> Result<Pending, Rejected> {
    let id = QUEUE.next_id.fetch_add(1, Ordering::Relaxed);
    let record = parts.encode(id).ok_or(Rejected::TooLarge)?;
    let (send, reply) = oneshot::channel();
    if QUEUE.saturated.load(Ordering::Relaxed) {
        return Err(Rejected::Full);
    }
    let mut state = state();
    if !state.open {
        return Err(Rejected::Closed);
    }
    if state.waiting.len() >= QUEUE.max_pending.load(Ordering::Relaxed) {
        return Err(Rejected::Full);
    }
    state.waiting.insert(id, send);
    state.queue.push_back((id, record));
    let defer = state.busy == 0 && !state.waking && state.idle > 0;
    drop(state);
    if defer {
        QUEUE.deferred.store(true, Ordering::Release);
    }
    QUEUE.queued.notify_one();
    Ok(Pending {
        id,
        reply,
        answered: false,
    })
}

/// What a take found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// This many bytes of whole records were written.
    Records(usize),
    /// Nothing arrived before the timeout.
    Timeout,
    /// The next record alone needs this many bytes.
    TooSmall(usize),
    /// The server stopped: no more requests will come.
    Closed,
}

/// Wakes a handler thread for requests queued while none was awake. Runs
/// on a tokio worker about to park, so it must stay cheap when there is
/// nothing to do.
pub fn wake_deferred() {
    if QUEUE.deferred.swap(false, Ordering::AcqRel) {
        let state = state();
        if state.busy == 0 && !state.queue.is_empty() {
            wake_one(state);
        }
    }
}

fn wake_one(mut state: MutexGuard<'_, State>) {
    if state.idle > 0 && !state.waking {
        state.waking = true;
        drop(state);
        QUEUE.ready.notify_one();
    }
}

/// Runs beside the server while requests are queued or answers held:
/// sends answers held for `STALL` (their thread is inside a slow handler),
/// and when queued requests see no take for `STALL` (every awake handler
/// thread is inside a slow handler, or the tokio workers never ran out of
/// work), wakes one more handler thread.
pub async fn watch() {
    loop {
        QUEUE.queued.notified().await;
        let mut seen = state().takes;
        loop {
            tokio::time::sleep(STALL).await;
            let state = state();
            if state.queue.is_empty() && state.held.is_empty() {
                break;
            }
            let overdue = !state.held.is_empty() && state.held_since.elapsed() >= STALL;
            let stalled = !state.queue.is_empty() && state.takes == seen;
            seen = state.takes;
            if stalled {
                wake_one(state);
            } else {
                drop(state);
            }
            if overdue {
                release_held();
            }
        }
    }
}

/// Waits up to `timeout` for requests and copies whole records into `buf`.
/// The calling thread then counts as busy until its next take: requests
/// queued meanwhile are left for it, unless it stalls (see `watch`).
pub fn take(buf: &mut [u8], timeout: Duration) -> Taken {
    let deadline = Instant::now() + timeout;
    if BUSY.get() {
        // Still counted busy, so that the requests these answers bring
        // are left for this thread rather than waking another.
        release_held();
    }
    let mut state = state();
    if BUSY.replace(false) {
        state.busy = state.busy.saturating_sub(1);
    }
    loop {
        if !state.open {
            return Taken::Closed;
        }
        // Requests whose client went away are dropped unseen.
        while let Some((id, _)) = state.queue.front() {
            if state.waiting.contains_key(id) {
                break;
            }
            state.queue.pop_front();
        }
        if !state.queue.is_empty() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            return Taken::Timeout;
        }
        state.idle += 1;
        state = QUEUE
            .ready
            .wait_timeout(state, deadline - now)
            .map_or_else(|poisoned| poisoned.into_inner().0, |(s, _)| s);
        state.idle -= 1;
        // Whether or not this thread was the one notified, a thread is
        // awake now: a spare wake-up costs less than a lost one.
        state.waking = false;
    }
    let mut written = 0;
    let mut taken = 0;
    while taken < MAX_BATCH {
        let Some((id, record)) = state.queue.front() else {
            break;
        };
        if !state.waiting.contains_key(id) {
            state.queue.pop_front();
            continue;
        }
        if record.len() > buf.len() - written {
            if taken == 0 {
                return Taken::TooSmall(record.len());
            }
            break;
        }
        buf[written..written + record.len()].copy_from_slice(record);
        written += record.len();
        taken += 1;
        state.queue.pop_front();
    }
    state.takes += 1;
    state.busy += 1;
    BUSY.set(true);
    Taken::Records(written)
}

/// Delivers the response to request `id`. A malformed response is an error,
/// and the client then gets a 500 instead. A request whose client went away
/// (or that was closed by a stop) is answered by nobody: that is no error.
///
/// A handler thread's responses are held until it comes back for more
/// requests (or for `STALL`, see `watch`): waking a tokio worker once per
/// batch instead of once per response saves a context switch per request.
pub fn respond(id: u64, response: &[u8]) -> Result<(), Error> {
    let (reply, result) = match decode_response(response) {
        Ok(decoded) => (decoded, Ok(())),
        Err(why) => (
            internal_error(),
            Err(Error::new(
                SufastErrorCode::InvalidResponse,
                format!("response to request {id}: {why}; the client got a 500"),
            )),
        ),
    };
    let mut state = state();
    let Some(send) = state.waiting.remove(&id) else {
        if state.expired.remove(&id) {
            drop(state);
            log::event(
                SufastLogLevel::Warning,
                format_args!(
                    "the answer to request {id} came after its request_timeout; its client got a 504 and the answer is dropped"
                ),
            );
        }
        // Validated all the same: a malformed response is the caller's bug
        // whether or not anyone still waits for it.
        return result;
    };
    if BUSY.get() {
        let first = state.held.is_empty();
        if first {
            state.held_since = Instant::now();
        }
        state.held.push((send, reply));
        drop(state);
        if first {
            // The thread may never take again (it stops): `watch` sends
            // the answers then.
            QUEUE.queued.notify_one();
        }
    } else {
        drop(state);
        let _ = send.send(reply);
    }
    result
}

/// Sends the held responses.
fn release_held() {
    let held = std::mem::take(&mut state().held);
    for (send, reply) in held {
        let _ = send.send(reply);
    }
}

/// Opens the queue for a server that starts.
pub fn open() {
    QUEUE.saturated.store(false, Ordering::Relaxed);
    let mut state = state();
    state.open = true;
    // Threads of an earlier run that were busy are not coming back.
    state.busy = 0;
    state.waking = false;
}

/// Closes the queue: requests still waiting get a 503, threads blocked in
/// `take` return `Closed`.
pub fn close() {
    let mut state = state();
    state.open = false;
    state.queue.clear();
    state.waiting.clear();
    state.held.clear();
    drop(state);
    QUEUE.ready.notify_all();
}

/// Sets how many requests may wait for or be inside handlers at once.
/// Whether the handler threads can take requests; while they cannot,
/// requests to handlers get a 503 at once instead of waiting.
pub fn set_saturated(saturated: bool) {
    QUEUE.saturated.store(saturated, Ordering::Relaxed);
}

pub fn set_max_pending(max: usize) {
    QUEUE.max_pending.store(max, Ordering::Relaxed);
}

/// The 500 a client gets when its handler's response cannot be sent.
pub fn internal_error() -> StaticResponse {
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"detail": "Internal Server Error"}"#,
    )
}

/// A response with a fixed JSON body.
pub fn json_error(status: StatusCode, body: &'static str) -> StaticResponse {
    StaticResponse {
        status,
        headers: HeaderMap::from_iter([(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )]),
        body: Bytes::from_static(body.as_bytes()),
    }
}

/// A response in the layout `sufast_respond` reads, for Rust callers (a
/// handler thread written in Rust, the tests).
pub fn encode_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = status.to_le_bytes().to_vec();
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (name, value) in headers {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn decode_response(bytes: &[u8]) -> Result<StaticResponse, String> {
    let mut reader = Reader(bytes);
    let status = reader.u16().ok_or("it is shorter than its status")?;
    let status = match status {
        200..=599 => StatusCode::from_u16(status).map_err(|e| e.to_string())?,
        _ => return Err(format!("status must be between 200 and 599, got {status}")),
    };
    let count = reader
        .u32()
        .ok_or("it is cut off before its header count")?;
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        let (name, value) = reader.pair().ok_or("it is cut off inside its headers")?;
        let shown = String::from_utf8_lossy(name);
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("header name {shown:?} is not a valid HTTP header name"))?;
        if is_managed_header(&name) {
            return Err(format!(
                "header {shown:?} is set by the server and cannot be given"
            ));
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| {
            format!("header {shown:?} has a value with CR, LF or another control character")
        })?;
        headers.append(name, value);
    }
    let body = reader.0;
    if matches!(status.as_u16(), 204 | 304) && !body.is_empty() {
        return Err(format!("status {} cannot carry a body", status.as_u16()));
    }
    Ok(StaticResponse {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }

    fn pair(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let name = self.u32()? as usize;
        let value = self.u32()? as usize;
        Some((self.bytes(name)?, self.bytes(value)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encode_response as response;

    #[test]
    fn responses_decode_with_repeated_headers() {
        let r = decode_response(&response(
            201,
            &[("Set-Cookie", "a=1"), ("set-cookie", "b=2")],
            b"\x00body",
        ))
        .unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(r.body, &b"\x00body"[..]);
    }

    #[test]
    fn malformed_responses_are_errors() {
        let cases: [(Vec<u8>, &str); 6] = [
            (vec![200], "shorter"),
            (response(99, &[], b""), "between 200 and 599"),
            (
                response(200, &[("X A", "1")], b""),
                "not a valid HTTP header name",
            ),
            (response(200, &[("X-A", "1\r\nX-B: 2")], b""), "CR, LF"),
            (
                response(200, &[("Content-Length", "1")], b""),
                "set by the server",
            ),
            (response(204, &[], b"x"), "cannot carry a body"),
        ];
        for (bytes, needle) in cases {
            let err = decode_response(&bytes).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let mut cut = response(200, &[("X-A", "1")], b"");
        cut.truncate(cut.len() - 1);
        assert!(decode_response(&cut).unwrap_err().contains("cut off"));
    }

    #[test]
    fn records_follow_the_documented_layout() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let params = ["42".to_owned()];
        let parts = RequestParts {
            handler: 3,
            method: "GET",
            path: "/u/42",
            query: "v=1",
            client: &Client {
                peer: Some("10.0.0.1:9".parse().unwrap()),
                forwarded: Some(("127.0.0.1".to_owned(), 5000)),
                scheme: "https",
            },
            params: &params,
            headers: &headers,
            body: b"xyz",
        };
        let record = parts.encode(9).unwrap();
        let u32_at = |i: usize| u32::from_le_bytes(record[i..i + 4].try_into().unwrap());
        assert_eq!(u32_at(0) as usize, record.len() - 4);
        assert_eq!(u64::from_le_bytes(record[4..12].try_into().unwrap()), 9);
        assert_eq!(u32_at(12), 3);
        assert_eq!(u16::from_le_bytes([record[16], record[17]]), 5000);
        assert_eq!(u16::from_le_bytes([record[18], record[19]]), 1);
        let lens: Vec<u32> = (0..8).map(|i| u32_at(20 + 4 * i)).collect();
        assert_eq!(lens, [3, 5, 3, 9, 5, 2 * (8 + 3 + 1), 3, 2]);
        let tail = &record[FIXED + 4..];
        assert!(tail.starts_with(b"GET/u/42v=1127.0.0.1https42"));
        assert!(tail.ends_with(b"x-a1\x03\x00\x00\x00\x01\x00\x00\x00x-a2xyz"));
    }
}
