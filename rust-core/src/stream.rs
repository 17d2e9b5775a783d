//! Streamed replies: a handler outside Rust answers with a head
//! (`sufast_respond_head`), then chunks (`sufast_respond_chunk`), then an
//! end (`sufast_respond_end`), and the server sends each chunk as it comes.
//!
//! Each stream has a bounded buffer (`stream_buffer` bytes, plus the one
//! chunk that crosses it): a chunk is taken while the buffer holds less,
//! and refused (`Full`) while it holds more, so a producer that outruns its
//! client waits instead of growing memory. A producer may wait in the call
//! (a thread), or be told on the ready socket (`sufast_stream_ready_fd`)
//! when its stream has room again (an event loop). A client that leaves,
//! a stream full for longer than `send_timeout`, and a stop that reaches
//! its deadline all make the stream `Gone`: the next chunk says so, and
//! nothing more is sent.
//!
//! A stream also carries frames the other way, to the producer: the
//! messages a WebSocket client sends ([`crate::websocket`]), read with
//! `sufast_stream_read`. That buffer is bounded the same way: the server
//! stops reading from the client while it is full.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body::Frame;

use crate::instance::instance;
use crate::log::{self, SufastLogLevel};

/// The largest chunk one `sufast_respond_chunk` takes (a WebSocket
/// message is one chunk); larger ones are refused as errors.
pub(crate) const MAX_CHUNK: usize = 16 << 20;

/// What a send to a stream did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The chunk was taken.
    Ok,
    /// The buffer stayed full: the chunk was not taken. Send it again;
    /// a producer that did not wait is told on the ready socket.
    Full,
    /// The client left, the stream was closed for stalling, or the server
    /// stopped: nothing more will be sent.
    Gone,
}

/// A stream's shared state: the producer's end writes it, the body reads it.
pub struct Stream {
    id: u64,
    state: Mutex<State>,
    /// Signalled when the buffer gains room or the stream is gone.
    room: Condvar,
    /// Signalled when a frame for the producer arrives or none will.
    arrived: Condvar,
    /// Told when the producer read frames and their buffer has room.
    inbound_room: tokio::sync::Notify,
    /// Bytes buffered at which chunks are refused.
    limit: usize,
    send_timeout: Duration,
}

struct State {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    end: End,
    /// The producer was told `Full` without waiting: tell it on the ready
    /// socket once there is room.
    notify: bool,
    /// Since when chunks have been refused, if they are.
    full_since: Option<Instant>,
    reader: Option<Waker>,
    /// Frames for the producer, oldest first, and their bytes.
    inbound: VecDeque<Bytes>,
    inbound_buffered: usize,
    /// No more frames will come.
    inbound_end: bool,
    /// The producer was told there is nothing to read without waiting:
    /// tell it on the ready socket when there is.
    inbound_notify: bool,
    /// Kept open for the producer until it ends the stream, though
    /// nobody reads it (a WebSocket's frames may still be unread).
    kept: bool,
    /// Why the frames for the producer ended early (a request body that
    /// broke off), for its read to say once they are read.
    inbound_error: Option<&'static str>,
    /// A response body reads this stream ([`open`] took it over).
    answering: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// The producer ended it: send what is buffered, then finish.
    Complete,
    /// The producer failed: what is buffered is sent, then the connection
    /// is cut so that the client sees an incomplete response.
    Failed,
    /// Nobody reads: the client left, or it stalled.
    Gone,
}

impl Stream {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Buffers `chunk`, waiting up to `wait` for room.
    fn send(&self, chunk: &[u8], wait: Duration) -> Sent {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            match state.end {
                End::Open => {}
                End::Gone => return Sent::Gone,
                // Sends after the end are the producer's bug; nothing is sent.
                End::Complete | End::Failed => return Sent::Gone,
            }
            if state.buffered < self.limit {
                break;
            }
            let now = Instant::now();
            let since = *state.full_since.get_or_insert(now);
            if now.duration_since(since) >= self.send_timeout {
                state.end = End::Gone;
                state.chunks.clear();
                let reader = state.reader.take();
                drop(state);
                if let Some(reader) = reader {
                    reader.wake();
                }
                log::event(
                    SufastLogLevel::Warning,
                    format_args!(
                        "stream {}: the client read nothing for send_timeout ({} ms); the stream is closed",
                        self.id,
                        self.send_timeout.as_millis()
                    ),
                );
                return Sent::Gone;
            }
            if now >= deadline {
                state.notify = true;
                return Sent::Full;
            }
            let until = deadline.min(since + self.send_timeout);
            state = self
                .room
                .wait_timeout(state, until - now)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(s, _)| s);
        }
        state.full_since = None;
        if !chunk.is_empty() {
            state.buffered += chunk.len();
            state.chunks.push_back(Bytes::copy_from_slice(chunk));
        }
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
        Sent::Ok
    }

    /// Ends the stream: `complete` false cuts the connection after what
    /// is buffered.
    fn end(&self, complete: bool) -> Sent {
        let mut state = self.lock();
        if state.end != End::Open {
            return Sent::Gone;
        }
        state.end = if complete { End::Complete } else { End::Failed };
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
        Sent::Ok
    }

    /// Nobody reads any more: the producer is told, waiting or not.
    fn gone(&self) {
        let mut state = self.lock();
        let notify = std::mem::take(&mut state.notify);
        if state.end == End::Open {
            state.end = End::Gone;
        }
        state.chunks.clear();
        state.buffered = 0;
        drop(state);
        self.room.notify_all();
        if notify {
            ready(self.id);
        }
    }
}

/// What a read of the frames for the producer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A frame of this many bytes was copied.
    Frame(usize),
    /// None yet (after waiting as long as asked).
    Empty,
    /// None will come.
    End,
    /// The next frame needs this many bytes.
    TooSmall(usize),
    /// None will come, for this reason.
    Failed(&'static str),
}

impl Stream {
    fn read(&self, buf: &mut [u8], wait: Duration) -> Read {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            if let Some(frame) = state.inbound.front() {
                if frame.len() > buf.len() {
                    return Read::TooSmall(frame.len());
                }
                let frame = state.inbound.pop_front().unwrap_or_default();
                let was_full = state.inbound_buffered >= self.limit;
                state.inbound_buffered -= frame.len();
                let has_room = was_full && state.inbound_buffered < self.limit;
                drop(state);
                buf[..frame.len()].copy_from_slice(&frame);
                if has_room {
                    self.inbound_room.notify_one();
                }
                return Read::Frame(frame.len());
            }
            if state.inbound_end {
                return match state.inbound_error {
                    Some(why) => Read::Failed(why),
                    None => Read::End,
                };
            }
            let now = Instant::now();
            if now >= deadline {
                state.inbound_notify = true;
                return Read::Empty;
            }
            state = self
                .arrived
                .wait_timeout(state, deadline - now)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(s, _)| s);
        }
    }

    fn end_inbound(&self) {
        let mut state = self.lock();
        state.inbound_end = true;
        let notify = std::mem::take(&mut state.inbound_notify);
        drop(state);
        self.arrived.notify_all();
        if notify {
            ready(self.id);
        }
    }
}

/// The response body a stream feeds. Dropping it (the response is done,
/// or the client left) closes the stream.
pub struct StreamBody {
    stream: Arc<Stream>,
    /// A failed stream's end was put off once, so that what was sent
    /// before it is flushed before the connection is cut.
    put_off: bool,
}

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let stream = &this.stream;
        let mut state = stream.lock();
        if let Some(chunk) = state.chunks.pop_front() {
            let was_full = state.buffered >= stream.limit;
            state.buffered -= chunk.len();
            let has_room = was_full && state.buffered < stream.limit;
            let notify = has_room && std::mem::take(&mut state.notify);
            drop(state);
            if has_room {
                stream.room.notify_all();
            }
            if notify {
                ready(stream.id);
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match state.end {
            End::Open => {
                state.reader = Some(cx.waker().clone());
                Poll::Pending
            }
            End::Complete => Poll::Ready(None),
            // hyper flushes what it holds when the body is pending; an
            // error would drop it unsent.
            End::Failed if !this.put_off => {
                this.put_off = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            End::Failed => Poll::Ready(Some(Err(io::Error::other(
                "the handler failed while streaming its response",
            )))),
            End::Gone => Poll::Ready(Some(Err(io::Error::other(
                "the stream was closed: its client stalled",
            )))),
        }
    }
}

/// The frames for a stream's producer, fed beside its body.
pub struct Inbound(Arc<Stream>);

impl StreamBody {
    /// The frames for the producer, fed apart from the body.
    pub fn inbound(&self) -> Inbound {
        Inbound(Arc::clone(&self.stream))
    }

    /// Keeps the stream open for its producer after this body is dropped,
    /// until the producer ends it: its frames may still be unread.
    pub fn keep_until_end(&self) {
        self.stream.lock().kept = true;
    }
}

impl Inbound {
    /// Adds `frame` for the producer to read; whether their buffer is
    /// full now (read no more from the client until it has room).
    pub fn push(&self, frame: Bytes) -> bool {
        let stream = &self.0;
        let mut state = stream.lock();
        state.inbound_buffered += frame.len();
        state.inbound.push_back(frame);
        let full = state.inbound_buffered >= stream.limit;
        let notify = std::mem::take(&mut state.inbound_notify);
        drop(state);
        stream.arrived.notify_all();
        if notify {
            ready(stream.id);
        }
        full
    }

    /// Waits until the frames for the producer have room.
    pub async fn room(&self) {
        loop {
            let room = self.0.inbound_room.notified();
            if self.0.lock().inbound_buffered < self.0.limit {
                return;
            }
            room.await;
        }
    }

    /// No more frames for the producer will come.
    pub fn end(&self) {
        self.0.end_inbound();
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if !self.stream.lock().kept {
            streams().open.lock_map().remove(&self.stream.id);
        }
        self.stream.gone();
        self.stream.end_inbound();
    }
}

/// Every open stream, by request id, and the ready socket.
pub struct Streams {
    open: Mutex<HashMap<u64, Arc<Stream>>>,
    /// Streams that have room (or are gone) since their producer was told
    /// `Full`, not yet read by `take_ready`.
    ready: Mutex<Vec<u64>>,
    /// The ready socket's two ends and the process that made them (a fork
    /// child makes its own).
    socket: Mutex<Option<(u32, UnixStream, UnixStream)>>,
}

trait LockMap<T> {
    fn lock_map(&self) -> MutexGuard<'_, T>;
}

impl<T> LockMap<T> for Mutex<T> {
    fn lock_map(&self) -> MutexGuard<'_, T> {
        // Every update leaves the state consistent, even mid-panic.
        self.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Streams {
    pub(crate) fn new() -> Self {
        Streams {
            open: Mutex::new(HashMap::new()),
            ready: Mutex::new(Vec::new()),
            socket: Mutex::new(None),
        }
    }
}

fn streams() -> &'static Streams {
    &instance().streams
}

/// Opens the stream of request `id`, `first` its first chunk, with a
/// buffer of `limit` bytes; the body to send.
/// A request whose body streams in has its stream already ([`feed`]):
/// the response takes it over, its frames still readable.
pub fn open(id: u64, first: Bytes, limit: usize, send_timeout: Duration) -> StreamBody {
    let stream = {
        let mut open = streams().open.lock_map();
        match open.get(&id) {
            Some(stream) => Arc::clone(stream),
            None => {
                let stream = new_stream(id, limit, send_timeout);
                open.insert(id, Arc::clone(&stream));
                stream
            }
        }
    };
    {
        let mut state = stream.lock();
        state.answering = true;
        if !first.is_empty() {
            state.buffered += first.len();
            state.chunks.push_back(first);
        }
    }
    StreamBody {
        stream,
        put_off: false,
    }
}

fn new_stream(id: u64, limit: usize, send_timeout: Duration) -> Arc<Stream> {
    Arc::new(Stream {
        id,
        state: Mutex::new(State {
            chunks: VecDeque::new(),
            buffered: 0,
            end: End::Open,
            notify: false,
            full_since: None,
            reader: None,
            inbound: VecDeque::new(),
            inbound_buffered: 0,
            inbound_end: false,
            inbound_notify: false,
            kept: false,
            inbound_error: None,
            answering: false,
        }),
        room: Condvar::new(),
        arrived: Condvar::new(),
        inbound_room: tokio::sync::Notify::new(),
        limit: limit.max(1),
        send_timeout,
    })
}

/// The stream a request's body flows in through, to its handler, as it
/// arrives. Dropped before the body ended (the client left, or the
/// request was answered), the handler's next read fails.
pub struct BodyFeed {
    inbound: Inbound,
}

/// Opens the stream that request `id`'s body will flow in through, with
/// a buffer of `limit` bytes.
pub fn feed(id: u64, limit: usize, send_timeout: Duration) -> BodyFeed {
    let stream = new_stream(id, limit, send_timeout);
    streams().open.lock_map().insert(id, Arc::clone(&stream));
    BodyFeed {
        inbound: Inbound(stream),
    }
}

impl BodyFeed {
    /// Adds a piece of the body; whether the buffer is full now.
    pub fn push(&self, piece: Bytes) -> bool {
        self.inbound.push(piece)
    }

    /// Waits until the buffer has room.
    pub async fn room(&self) {
        self.inbound.room().await;
    }

    /// The body is complete.
    pub fn end(&self) {
        self.inbound.end();
    }

    /// The body broke off, for `why`.
    pub fn fail(&self, why: &'static str) {
        let mut state = self.inbound.0.lock();
        if state.inbound_end {
            return;
        }
        state.inbound_error = Some(why);
        drop(state);
        self.inbound.end();
    }
}

impl Drop for BodyFeed {
    fn drop(&mut self) {
        let stream = &self.inbound.0;
        self.fail("the request was answered, or its client left, before its body was read");
        if !stream.lock().answering {
            let mut open = streams().open.lock_map();
            if open.get(&stream.id).is_some_and(|s| Arc::ptr_eq(s, stream)) {
                open.remove(&stream.id);
            }
        }
    }
}

fn find(id: u64) -> Option<Arc<Stream>> {
    streams().open.lock_map().get(&id).cloned()
}

/// Sends `chunk` on the stream of request `id`, waiting up to `wait` for
/// room. An id with no open stream is `Gone`.
pub fn send(id: u64, chunk: &[u8], wait: Duration) -> Sent {
    match find(id) {
        Some(stream) => stream.send(chunk, wait),
        None => Sent::Gone,
    }
}

/// Reads the next frame for the producer of stream `id` into `buf`,
/// waiting up to `wait` for one. An id with no open stream is `End`.
pub fn read(id: u64, buf: &mut [u8], wait: Duration) -> Read {
    match find(id) {
        Some(stream) => stream.read(buf, wait),
        None => Read::End,
    }
}

/// Ends the stream of request `id`.
pub fn end(id: u64, complete: bool) -> Sent {
    let stream = streams().open.lock_map().remove(&id);
    match stream {
        Some(stream) => stream.end(complete),
        None => Sent::Gone,
    }
}

/// How many streams are open.
pub fn count() -> usize {
    streams().open.lock_map().len()
}

/// Marks stream `id` ready and wakes the ready socket's reader.
/// Without a ready socket nobody asked to be told: nothing is kept.
fn ready(id: u64) {
    let socket = streams().socket.lock_map();
    let Some((_, _, write)) = &*socket else {
        return;
    };
    let mut ready = streams().ready.lock_map();
    let first = ready.is_empty();
    ready.push(id);
    drop(ready);
    if first {
        // A full socket already says there is something to read.
        let _ = (&*write).write(&[1]);
    }
}

/// The descriptor of the ready socket's reading end, made on first use:
/// readable while streams told `Full` have room again (or are gone).
pub fn ready_fd() -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    let mut socket = streams().socket.lock_map();
    let pid = std::process::id();
    if let Some((owner, read, _)) = &*socket {
        if *owner == pid {
            return Ok(read.as_raw_fd());
        }
    }
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let fd = read.as_raw_fd();
    // A fork child's copy of its parent's socket is left open, unused:
    // closing it here would close the parent's too.
    if let Some(old) = socket.replace((pid, read, write)) {
        std::mem::forget(old);
    }
    Ok(fd)
}

/// Copies the ids of ready streams into `out` (as many as fit) and
/// empties the ready socket; ids that did not fit keep it readable.
pub fn take_ready(out: &mut [u64]) -> usize {
    if let Some((_, read, _)) = &*streams().socket.lock_map() {
        // One write per wake-up, so a short read empties it: stopping
        // there saves the read that would only say so.
        let mut sink = [0u8; 64];
        while matches!((&*read).read(&mut sink), Ok(n) if n == sink.len()) {}
    }
    let mut ready = streams().ready.lock_map();
    let n = ready.len().min(out.len());
    for (slot, id) in out.iter_mut().zip(ready.drain(..n)) {
        *slot = id;
    }
    let more = !ready.is_empty();
    drop(ready);
    if more {
        if let Some((_, _, write)) = &*streams().socket.lock_map() {
            let _ = (&*write).write(&[1]);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chunks_flow_with_backpressure_and_end() {
        ready_fd().unwrap();
        let mut body = open(9001, Bytes::from_static(b"head"), 8, Duration::from_secs(5));
        assert_eq!(send(9001, b"12345", Duration::ZERO), Sent::Ok);
        // 9 bytes buffered of 8: full.
        assert_eq!(send(9001, b"x", Duration::ZERO), Sent::Full);
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "head");
        // 5 of 8: room again, and the producer is told.
        let mut ids = [0u64; 4];
        let n = take_ready(&mut ids);
        assert!(ids[..n].contains(&9001), "{ids:?}");
        assert_eq!(send(9001, b"x", Duration::ZERO), Sent::Ok);
        assert_eq!(end(9001, true), Sent::Ok);
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "12345x");
        assert_eq!(send(9001, b"late", Duration::ZERO), Sent::Gone);
    }

    #[tokio::test]
    async fn a_dropped_body_makes_the_stream_gone() {
        let body = open(9002, Bytes::new(), 8, Duration::from_secs(5));
        assert_eq!(send(9002, b"123456789", Duration::ZERO), Sent::Ok);
        assert_eq!(send(9002, b"x", Duration::ZERO), Sent::Full);
        drop(body);
        assert_eq!(send(9002, b"x", Duration::ZERO), Sent::Gone);
        assert_eq!(end(9002, true), Sent::Gone);
    }

    #[tokio::test]
    async fn a_failed_end_cuts_the_body_after_what_is_buffered() {
        let mut body = open(9003, Bytes::from_static(b"a"), 8, Duration::from_secs(5));
        assert_eq!(end(9003, false), Sent::Ok);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "a"
        );
        assert!(body.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_stalled_reader_is_closed_after_the_send_timeout() {
        let mut body = open(9004, Bytes::new(), 1, Duration::from_millis(30));
        assert_eq!(send(9004, b"ab", Duration::ZERO), Sent::Ok);
        // Waits out the send timeout in the call.
        assert_eq!(send(9004, b"c", Duration::from_secs(5)), Sent::Gone);
        assert!(body.frame().await.unwrap().is_err());
    }
}
