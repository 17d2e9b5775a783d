//! Read deadlines of one connection, kept by wrapping its socket: the
//! request head must be complete within `header_timeout` (from the accept
//! for a connection's first request, from the first byte for the others),
//! and a keep-alive connection may idle between requests for
//! `keepalive_timeout`. An idle connection past its deadline reads as
//! closed, which hyper ends quietly; a head past its deadline gets a 408
//! (nothing else was written for it) and the connection closes.
//!
//! The service tells the clock when a request's head is complete and
//! when its response is ready; between those no deadline applies here
//! (`body_timeout` and `request_timeout` do).
//!
//! Until a connection's first request reaches the service, anything
//! written to it is hyper's reply to a head it could not parse (400, or
//! 431 past `max_header_size`), which has no body: it is replaced by the
//! server's own, with a `{"detail": ...}` body. (A malformed head after a
//! request on the same connection keeps hyper's reply: its bytes cannot be
//! told from a response's there.)
//!
//! At `max_connections`, the accept loop may evict a connection that has
//! no request in flight (idle, or still sending its head): it then reads
//! as closed at once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::responses::{refused_head, HEAD_TIMED_OUT};

/// How long a head may be on its way before its connection counts as
/// slow and may be evicted at `max_connections`, and how long a stop waits
/// for heads on their way: far longer than a head takes from a client that
/// sends one, far shorter than `header_timeout`.
pub const HEAD_GRACE: Duration = Duration::from_millis(250);

/// The clock of a connection whose request asks for an upgrade (a
/// WebSocket), as a request extension: an upgraded connection holds it
/// busy for good, so that no read deadline or eviction applies to it.
#[derive(Clone, Debug)]
pub struct Upgrading(pub Arc<Clock>);

impl Upgrading {
    /// The connection is upgraded: from now on it is the upgrade's.
    pub fn upgraded(&self) {
        self.0.request_started();
        self.0.upgraded.store(true, Ordering::Release);
    }
}

/// What the service and the socket share.
#[derive(Debug)]
pub struct Clock {
    origin: Instant,
    /// Requests whose head is in and whose response is not yet ready.
    busy: AtomicU32,
    /// A head is being read (true from the accept for the first one).
    in_head: AtomicBool,
    /// When the current phase began, in microseconds since `origin`.
    since: AtomicU64,
    /// The accept loop closed this connection to make room.
    evicted: AtomicBool,
    /// A request reached the service: writes are responses from now on.
    served: AtomicBool,
    /// The connection was upgraded: no read deadline applies any more.
    upgraded: AtomicBool,
    /// Who to wake when it is evicted: the read waiting for a head.
    reader: Mutex<Option<Waker>>,
}

impl Clock {
    pub fn new() -> Arc<Self> {
        Arc::new(Clock {
            origin: Instant::now(),
            busy: AtomicU32::new(0),
            in_head: AtomicBool::new(true),
            since: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            served: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            reader: Mutex::new(None),
        })
    }

    /// When this connection last started waiting (idle after a response,
    /// or for a head), if it has no request in flight and may be evicted:
    /// idle at once, in a head only after [`HEAD_GRACE`], so that a client
    /// whose head is on its way is not closed for the next one.
    pub fn evictable_since(&self, now: Instant) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) > 0 || self.evicted.load(Ordering::Acquire) {
            return None;
        }
        let since = self.origin + Duration::from_micros(self.since.load(Ordering::Acquire));
        let waited = now.saturating_duration_since(since);
        (!self.in_head.load(Ordering::Acquire) || waited >= HEAD_GRACE).then_some(since)
    }

    /// Whether a request head is awaited: none in flight, and the
    /// connection is new or the next head began. hyper closes such a
    /// connection at once when told to drain, so a stop waits a little.
    pub fn awaiting_head(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
            && self.in_head.load(Ordering::Acquire)
            && !self.evicted.load(Ordering::Acquire)
    }

    /// Closes the connection at its next read, which this wakes.
    pub fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    fn wake_me(&self, waker: &Waker) {
        let mut reader = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *reader = Some(waker.clone());
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// A request's head is complete: no read deadline until it is answered.
    pub fn request_started(&self) {
        self.served.store(true, Ordering::Release);
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.in_head.store(false, Ordering::Release);
    }

    /// Its response is ready: the connection idles from now.
    pub fn request_done(&self) {
        self.since.store(self.now(), Ordering::Release);
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Idle,
}

/// A socket with the read deadlines of `clock`.
pub struct Timed<T> {
    io: T,
    clock: Arc<Clock>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    /// Set no later than the current phase's deadline (see `poll_read`).
    sleep: Pin<Box<Sleep>>,
    /// The task the timer (and an eviction) wakes, since the timer was set.
    waiting: Option<Waker>,
    /// The start of the request in flight whose timer was set.
    busy_since: Option<u64>,
    /// The reply written in place of hyper's to a head it refused, and how
    /// much of it is written.
    refusal: Option<(Vec<u8>, usize)>,
}

impl<T> Timed<T> {
    pub fn new(
        io: T,
        clock: Arc<Clock>,
        header_timeout: Duration,
        keepalive_timeout: Duration,
    ) -> Self {
        Timed {
            io,
            sleep: Box::pin(tokio::time::sleep_until(clock.origin + header_timeout)),
            clock,
            header_timeout,
            keepalive_timeout,
            waiting: None,
            busy_since: None,
            refusal: None,
        }
    }

    /// Whether `data`, about to be written, is hyper's reply to a head it
    /// refused; if so the server's own replaces it (and what hyper writes
    /// after it, as it closes, is dropped).
    fn refuses(&mut self, data: &[u8]) -> bool {
        if self.refusal.is_some() {
            return true;
        }
        if self.clock.served.load(Ordering::Acquire) {
            return false;
        }
        // No request reached the service, so no response is due: hyper
        // writes only such a reply, "HTTP/1.1 431 ...".
        let status = data
            .get(9..12)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(400);
        self.refusal = Some((refused_head(status), 0));
        true
    }
}

impl<T: AsyncWrite + Unpin> Timed<T> {
    /// Writes what is left of the reply that replaced hyper's.
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((reply, written)) = &mut self.refusal else {
            return Poll::Ready(Ok(()));
        };
        while *written < reply.len() {
            match Pin::new(&mut self.io).poll_write(cx, &reply[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Timed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.clock.evicted.load(Ordering::Acquire)
            && this.clock.busy.load(Ordering::Acquire) == 0
        {
            // Reads as closed: hyper ends the connection.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let clock = &this.clock;
                if buf.filled().len() > before
                    && clock.busy.load(Ordering::Acquire) == 0
                    && !clock.in_head.load(Ordering::Acquire)
                {
                    // The first byte of the next head.
                    clock.since.store(clock.now(), Ordering::Release);
                    clock.in_head.store(true, Ordering::Release);
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        let clock = &this.clock;
        let busy = clock.busy.load(Ordering::Acquire) > 0;
        if busy && clock.upgraded.load(Ordering::Acquire) {
            return Poll::Pending; // the upgrade's for good
        }
        // The deadline of the phase. A request in flight has none; the
        // timer is then kept within `keepalive_timeout` of its start all
        // the same, since hyper may not read again after the response:
        // the timer's wake-up is what starts the idle deadline then.
        let (phase, limit) = if busy {
            (None, this.keepalive_timeout)
        } else if clock.in_head.load(Ordering::Acquire) {
            (Some(Phase::Head), this.header_timeout)
        } else {
            (Some(Phase::Idle), this.keepalive_timeout)
        };
        let since = clock.since.load(Ordering::Acquire);
        let deadline = clock.origin + Duration::from_micros(since) + limit;
        // The timer is moved only to an earlier time. Moving it with every
        // request costs a trip through tokio's timer wheel; one set too
        // early fires, and is set again below. A request in flight moves
        // it once (after that it is set again only as it fires).
        let settled = busy && this.busy_since == Some(since);
        if !settled && this.sleep.deadline() > deadline {
            this.sleep.as_mut().reset(deadline);
            this.waiting = None;
        }
        this.busy_since = if busy { Some(since) } else { None };
        loop {
            if !this.sleep.is_elapsed()
                && this
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
            {
                // The timer and an eviction wake this task already.
                return Poll::Pending;
            }
            if this.sleep.as_mut().poll(cx).is_pending() {
                clock.wake_me(cx.waker());
                this.waiting = Some(cx.waker().clone());
                // An eviction between the check above and the waker's store
                // woke the waker before this one: look again, or it is lost.
                if clock.evicted.load(Ordering::Acquire) {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Pending;
            }
            this.waiting = None;
            let now = Instant::now();
            match phase {
                Some(phase) if now >= deadline => break this.phase_expired(phase, cx),
                // Set too early, or a request in flight: set again.
                Some(_) => this.sleep.as_mut().reset(deadline),
                None => this.sleep.as_mut().reset(now + limit),
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Timed<T> {
    /// What a read gets once `phase`'s deadline passed.
    fn phase_expired(&mut self, phase: Phase, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match phase {
            // Reads as closed: hyper ends an idle connection quietly.
            Phase::Idle => Poll::Ready(Ok(())),
            Phase::Head => {
                // Best effort: a client too slow to send is rarely too slow
                // to take 200 bytes, and the socket's buffer is empty.
                let _ = Pin::new(&mut self.io).poll_write(cx, HEAD_TIMED_OUT);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request head took longer than header_timeout",
                )))
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Timed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refuses(data) {
            return Poll::Ready(Ok(data.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if this.refuses(first) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_refusal(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_refusal(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(5);

    async fn timed() -> (
        Timed<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        Arc<Clock>,
    ) {
        let (server, client) = tokio::io::duplex(4096);
        let clock = Clock::new();
        (
            Timed::new(server, Arc::clone(&clock), HEAD, IDLE),
            client,
            clock,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_head_has_header_timeout_from_the_accept() {
        let (mut server, mut client, _clock) = timed().await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(server.read(&mut buf).await.unwrap(), 16);
        let started = Instant::now();
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), HEAD);
        let mut reply = vec![0u8; HEAD_TIMED_OUT.len()];
        client.read_exact(&mut reply).await.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
    }

    #[tokio::test]
    async fn hyper_s_reply_to_a_refused_first_head_is_replaced_by_one_with_a_detail() {
        let (mut server, mut client, _clock) = timed().await;
        server
            .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        server.write_all(b"anything after it").await.unwrap();
        server.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, refused_head(431));
        let reply = String::from_utf8(reply).unwrap();
        assert!(reply.ends_with(r#"{"detail": "Request Header Fields Too Large: the request head is larger than max_header_size"}"#), "{reply}");
    }

    #[tokio::test]
    async fn once_a_request_was_served_writes_pass_through() {
        let (mut server, mut client, clock) = timed().await;
        clock.request_started();
        clock.request_done();
        let response = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        server.write_all(response).await.unwrap();
        server.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, response);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_reads_as_closed_after_keepalive_timeout() {
        let (mut server, _client, clock) = timed().await;
        clock.request_started();
        let mut buf = [0u8; 64];
        // Busy: no deadline, however long the handler takes.
        let waited = tokio::time::timeout(HEAD * 3, server.read(&mut buf)).await;
        assert!(waited.is_err());
        clock.request_done();
        let started = Instant::now();
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert_eq!(started.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_begun_while_busy_ends_keepalive_timeout_after_the_response() {
        // hyper reads while a request is in flight and may not read again
        // after its response: that one read must still end the connection.
        let (mut server, _client, clock) = timed().await;
        clock.request_started();
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            server.read(&mut buf).await.unwrap()
        });
        tokio::time::sleep(HEAD * 2).await; // a slow handler: no deadline
        assert!(!reading.is_finished());
        clock.request_done();
        let done = Instant::now();
        assert_eq!(reading.await.unwrap(), 0);
        assert_eq!(done.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_connection_reads_as_closed_at_once_unless_busy() {
        let (mut server, _client, clock) = timed().await;
        let accepted = Instant::now();
        assert!(
            clock.evictable_since(accepted).is_none(),
            "a head may be on its way"
        );
        let later = accepted + HEAD_GRACE;
        assert!(clock.evictable_since(later).is_some(), "a slow head");
        let waiting = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let started = Instant::now();
            let read = server.read(&mut buf).await.unwrap();
            (read, started.elapsed())
        });
        tokio::task::yield_now().await;
        clock.evict();
        let (read, waited) = waiting.await.unwrap();
        assert_eq!((read, waited), (0, Duration::ZERO));
        assert!(clock.evictable_since(later).is_none(), "evicted once");

        let (_server, _client, busy) = timed().await;
        busy.request_started();
        assert!(
            busy.evictable_since(later).is_none(),
            "a request in flight is never evicted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_evictable_at_once() {
        let (_server, _client, clock) = timed().await;
        clock.request_started();
        clock.request_done();
        assert!(clock.evictable_since(Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_head_has_header_timeout_from_its_first_byte() {
        let (mut server, mut client, clock) = timed().await;
        clock.request_started();
        clock.request_done();
        tokio::time::sleep(IDLE - Duration::from_secs(1)).await;
        client.write_all(b"G").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(server.read(&mut buf).await.unwrap(), 1);
        let started = Instant::now();
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), HEAD);
    }
}
