//! Requests for handlers outside Rust (Python): a bounded queue that the
//! handler threads take batches from, with a blocking call that releases
//! the GIL, and answer one by one. Tokio's workers only push and await;
//! no foreign code ever runs on them. The bytes that cross are
//! [`wire`](crate::wire)'s.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use std::path::PathBuf;
use tempfile::TempPath;

use tokio::sync::{oneshot, Notify};

use crate::error::{Error, SufastErrorCode};
use crate::instance::instance;
use crate::limits;
use crate::log::{self, SufastLogLevel};
use crate::responses::internal_error;
use crate::routes::StaticResponse;
use crate::stream::{self, StreamBody};
use crate::wire::{decode_response, RequestParts};

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

impl Queue {
    pub(crate) fn new() -> Self {
        Queue {
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
        }
    }
}

/// The queue of requests for handlers, one per [`Instance`](crate::instance::Instance).
pub struct Queue {
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
    waiting: HashMap<u64, Waiter>,
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
    held: Vec<(oneshot::Sender<Reply>, Reply)>,
    /// When the oldest held response arrived.
    held_since: Instant,
    /// Requests whose deadline passed before their handler answered, so
    /// that a late answer is reported rather than silently dropped.
    expired: HashSet<u64>,
}

/// A handler's answer.
pub enum Reply {
    /// The whole response.
    Whole(StaticResponse),
    /// The head (its body the first chunk), then the stream's chunks.
    Stream(StaticResponse, StreamBody),
    /// The head, then the file at the path, sent by the server.
    File(StaticResponse, PathBuf),
}

/// A request not yet answered.
struct Waiter {
    reply: oneshot::Sender<Reply>,
    /// A body too large for its record (see [`crate::wire::INLINE_BODY`]), until
    /// the handler takes it; empty otherwise.
    body: Vec<Bytes>,
    /// The temporary files of a form's larger uploads, deleted when the
    /// request is answered or withdrawn (see [`crate::forms`]).
    files: Vec<TempPath>,
    /// Past this, `expire_overdue` withdraws it: `request_timeout`.
    deadline: Instant,
}

/// The most expired requests remembered; beyond it the set starts over
/// (a handler that never answers must not grow it without bound).
const MAX_EXPIRED: usize = 4096;

thread_local! {
    /// This thread is counted in `State::busy`.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

fn queue() -> &'static Queue {
    &instance().queue
}

fn state() -> MutexGuard<'static, State> {
    // Every update below leaves the state consistent, even mid-panic.
    queue()
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    reply: oneshot::Receiver<Reply>,
    /// The reply arrived, so `respond` already removed the request.
    answered: bool,
    /// Where its body streams in to the handler, if it does.
    feed: Option<stream::BodyFeed>,
}

impl Pending {
    /// Where the body streams in, for a request whose body does.
    pub fn take_feed(&mut self) -> Option<stream::BodyFeed> {
        self.feed.take()
    }

    /// The handler's response; `None` if the queue closed first, or the
    /// request was withdrawn past its `request_timeout` ([`Self::expired`]).
    pub async fn reply(&mut self) -> Option<Reply> {
        let reply = (&mut self.reply).await.ok();
        // Either way it is no longer waiting.
        self.answered = true;
        reply
    }

    /// Whether `request_timeout` passed before its handler answered (a
    /// handler that answers it later is told, in the log, that nobody got
    /// the answer).
    pub fn expired(&self) -> bool {
        state().expired.contains(&self.id)
    }
}

/// Withdraws every request that waited past its `request_timeout`, about
/// every twentieth of it (at least every 250 ms): its reply then ends
/// without one, which the waiting side answers with a 504. One sweep for
/// all requests, where a timer per request would cost each a trip through
/// tokio's timer wheel.
pub async fn expire_overdue() {
    loop {
        let every = (limits::request_timeout() / 20)
            .clamp(Duration::from_millis(1), Duration::from_millis(250));
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let mut state = state();
        let withdrawn: Vec<(u64, Waiter)> = state
            .waiting
            .extract_if(|_, waiter| waiter.deadline <= now)
            .collect();
        for (id, _) in &withdrawn {
            if state.expired.len() >= MAX_EXPIRED {
                state.expired.clear();
            }
            state.expired.insert(*id);
        }
        drop(state);
        // Their replies end (and held bodies are freed) outside the lock.
        drop(withdrawn);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Only a request still waiting needs withdrawing: an answered one
        // costs no second trip through the queue's lock.
        if !self.answered {
            let withdrawn = state().waiting.remove(&self.id);
            // A held body is freed outside the lock.
            drop(withdrawn);
        }
    }
}

/// Queues a request for its handler, or refuses it at once.
/// `files` are the temporary files its form record names, kept until then.
pub fn submit(parts: &RequestParts<'_>, files: Vec<TempPath>) -> Result<Pending, Rejected> {
    let id = queue().next_id.fetch_add(1, Ordering::Relaxed);
    let record = parts.encode(id).ok_or(Rejected::TooLarge)?;
    // The pieces are shared, not copied: the body is copied once, by
    // `take_body`, into the handler's memory.
    let body = if parts.holds_body() {
        parts.body.to_vec()
    } else {
        Vec::new()
    };
    let (send, reply) = oneshot::channel();
    let deadline = Instant::now() + limits::request_timeout();
    if queue().saturated.load(Ordering::Relaxed) {
        return Err(Rejected::Full);
    }
    // Made before the record can be taken: the handler's first read
    // finds it.
    let feed = parts
        .streamed
        .then(|| stream::feed(id, limits::stream_buffer(), limits::send_timeout()));
    let mut state = state();
    if !state.open {
        return Err(Rejected::Closed);
    }
    if state.waiting.len() >= queue().max_pending.load(Ordering::Relaxed) {
        return Err(Rejected::Full);
    }
    state.waiting.insert(
        id,
        Waiter {
            reply: send,
            body,
            files,
            deadline,
        },
    );
    state.queue.push_back((id, record));
    let defer = state.busy == 0 && !state.waking && state.idle > 0;
    drop(state);
    if defer {
        queue().deferred.store(true, Ordering::Release);
    }
    queue().queued.notify_one();
    Ok(Pending {
        id,
        reply,
        answered: false,
        feed,
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
    if queue().deferred.swap(false, Ordering::AcqRel) {
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
        queue().ready.notify_one();
    }
}

/// Runs beside the server while requests are queued or answers held:
/// sends answers held for `STALL` (their thread is inside a slow handler),
/// and when queued requests see no take for `STALL` (every awake handler
/// thread is inside a slow handler, or the tokio workers never ran out of
/// work), wakes one more handler thread.
pub async fn watch() {
    loop {
        queue().queued.notified().await;
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
        state = queue()
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
pub fn respond(id: u64, response: &[u8]) -> Result<(), Error> {
    let (reply, result) = match decode_response(response) {
        Ok(decoded) => (decoded, Ok(())),
        Err(why) => (internal_error(), Err(invalid(id, &why))),
    };
    deliver(id, Reply::Whole(reply), true);
    result
}

fn invalid(id: u64, why: &str) -> Error {
    Error::new(
        SufastErrorCode::InvalidResponse,
        format!("response to request {id}: {why}; the client got a 500"),
    )
}

/// Answers request `id` with the head of a stream, sent at once: its body
/// is the first chunk. `Ok(false)`: nobody waits for the answer any more
/// (end the stream). A malformed head is an error and the client gets a 500.
pub fn respond_head(id: u64, head: &[u8]) -> Result<bool, Error> {
    let head = match decode_response(head) {
        Ok(head) => head,
        Err(why) => {
            deliver(id, Reply::Whole(internal_error()), false);
            return Err(invalid(id, &why));
        }
    };
    if head.body.len() > stream::MAX_CHUNK {
        deliver(id, Reply::Whole(internal_error()), false);
        return Err(invalid(id, "its first chunk is larger than 1 MiB"));
    }
    let mut head = head;
    let first = std::mem::take(&mut head.body);
    let body = stream::open(id, first, limits::stream_buffer(), limits::send_timeout());
    Ok(deliver(id, Reply::Stream(head, body), false))
}

/// Answers request `id` with `head` and the file at `path`, which the
/// server opens and sends (its body must be empty). `Ok(false)`: nobody
/// waits for the answer any more.
pub fn respond_file(id: u64, head: &[u8], path: PathBuf) -> Result<bool, Error> {
    let head = match decode_response(head) {
        Ok(head) if head.body.is_empty() => head,
        Ok(_) => {
            deliver(id, Reply::Whole(internal_error()), false);
            return Err(invalid(id, "a file response has no body of its own"));
        }
        Err(why) => {
            deliver(id, Reply::Whole(internal_error()), false);
            return Err(invalid(id, &why));
        }
    };
    Ok(deliver(id, Reply::File(head, path), true))
}

/// Hands `reply` to the request `id` waits with; whether it still waited.
/// With `hold`, a busy handler thread's reply is held (see below).
///
/// A handler thread's responses are held until it comes back for more
/// requests (or for `STALL`, see `watch`): waking a tokio worker once per
/// batch instead of once per response saves a context switch per request.
fn deliver(id: u64, reply: Reply, hold: bool) -> bool {
    let mut state = state();
    let Some(Waiter {
        reply: send,
        body,
        files,
        ..
    }) = state.waiting.remove(&id)
    else {
        if state.expired.remove(&id) {
            drop(state);
            log::event(
                SufastLogLevel::Warning,
                format_args!(
                    "the answer to request {id} came after its request_timeout; its client got a 504 and the answer is dropped"
                ),
            );
        }
        // A stream's body goes here, outside the lock, closing it.
        return false;
    };
    if !body.is_empty() || !files.is_empty() {
        // A body the handler never took, and the temporary files, are
        // freed outside the lock.
        drop(state);
        drop(body);
        drop(files);
        state = self::state();
    }
    if hold && BUSY.get() {
        let first = state.held.is_empty();
        if first {
            state.held_since = Instant::now();
        }
        state.held.push((send, reply));
        drop(state);
        if first {
            // The thread may never take again (it stops): `watch` sends
            // the answers then.
            queue().queued.notify_one();
        }
        true
    } else {
        drop(state);
        send.send(reply).is_ok()
    }
}

/// Copies the body held for request `id` into `buf`, which must be as
/// long as the record's held length, and frees the library's copy. An
/// error if no body is held for `id`: the request was answered, its client
/// went away, a stop closed it, or its body was taken already.
pub fn take_body(id: u64, buf: &mut [u8]) -> Result<(), Error> {
    let body = {
        let mut state = state();
        let Some(waiter) = state.waiting.get_mut(&id) else {
            return Err(Error::new(
                SufastErrorCode::Gone,
                format!("request {id} is no longer waiting: it was answered, its client went away or the server stopped"),
            ));
        };
        let len: usize = waiter.body.iter().map(Bytes::len).sum();
        if len == 0 {
            return Err(Error::new(
                SufastErrorCode::InvalidArgument,
                format!(
                    "request {id} has no held body (it is in the record, or was taken already)"
                ),
            ));
        }
        if len != buf.len() {
            return Err(Error::new(
                SufastErrorCode::InvalidArgument,
                format!(
                    "the buffer for the body of request {id} has {} bytes; the body has {len}",
                    buf.len()
                ),
            ));
        }
        std::mem::take(&mut waiter.body)
    };
    // Copied outside the lock, each piece freed once copied.
    let mut at = 0;
    for chunk in body {
        buf[at..at + chunk.len()].copy_from_slice(&chunk);
        at += chunk.len();
    }
    Ok(())
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
    queue().saturated.store(false, Ordering::Relaxed);
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
    queue().ready.notify_all();
}

/// Sets how many requests may wait for or be inside handlers at once.
/// Whether the handler threads can take requests; while they cannot,
/// requests to handlers get a 503 at once instead of waiting.
pub fn set_saturated(saturated: bool) {
    queue().saturated.store(saturated, Ordering::Relaxed);
}

pub fn set_max_pending(max: usize) {
    queue().max_pending.store(max, Ordering::Relaxed);
}
