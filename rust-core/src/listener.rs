//! The accept loop: hyper's HTTP/1 connection builder, one
//! permit per connection, and a graceful drain with a deadline.
//!
//! - A connection is accepted only with a permit (`max_connections`). At
//!   the limit, the connection that has waited longest without a request
//!   in flight (idle between requests, or sending a head for longer than
//!   `HEAD_GRACE`: what slow-header attacks hold) is closed to make room;
//!   when every
//!   connection has a request in flight, new clients wait in the kernel's
//!   backlog. The first of a burst is logged.
//! - Each socket keeps the read deadlines of [`deadlines`]: a request head
//!   within `header_timeout`, an idle keep-alive connection for at most
//!   `keepalive_timeout`. hyper has no timer: these deadlines are the
//!   only ones on reads. A head over `max_header_size` gets 431.
//!
//! [`deadlines`]: crate::deadlines
//! - Accept errors (out of file descriptors, ...) are logged at once and
//!   then at most once a second with a count; accepting pauses briefly,
//!   connections already open are not affected.
//! - The peer address is carried per connection into the service, not
//!   stored in every request.

use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use crate::deadlines::{Clock, Timed, Upgrading, HEAD_GRACE};
use crate::limits::Limits;
use crate::log::{self, SufastLogLevel};
use crate::server::{handle, Settings};

/// How long accepting pauses after an error that is not one connection's.
const BACKOFF: Duration = Duration::from_millis(100);
/// How often a full accept loop looks for a connection to evict.
const RECHECK: Duration = Duration::from_millis(100);
/// How often a stop looks whether the heads it waits for have arrived.
const HEAD_POLL: Duration = Duration::from_millis(5);
/// How long an evicted connection may take to close before another is.
const EVICTION_PATIENCE: Duration = Duration::from_secs(1);
/// At most one accept-error line per this long.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Serves `listener` until `stop` says to, then stops accepting and gives
/// open connections until the deadline it sent to finish.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    limits: Limits,
    mut stop: oneshot::Receiver<Duration>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // The drain: hyper-util's GracefulShutdown takes no connection that
    // can upgrade, so each connection watches `drain` and holds a clone
    // of `done`, whose receiver ends when the last one is closed.
    let (drain, draining) = tokio::sync::watch::channel(false);
    let (done, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut builder = http1::Builder::new();
    // No timer for hyper: its header timeout would arm (and allocate) a
    // timer for every request, where the connection's own deadlines
    // (`Timed`) already bound each head and each idle wait.
    builder
        .header_read_timeout(None)
        .max_header_size(limits.max_header_size)
        .max_buf_size(limits.max_header_size.max(8192));
    let mut errors = AcceptErrors::default();
    let mut full = FullReports::default();
    // Every open connection's clock, to pick one to evict at the limit.
    let mut open: Vec<Weak<Clock>> = Vec::new();
    // Closed connections leave their entry behind: pruned when the list
    // doubles, so it stays within twice the connections open.
    let mut prune_at = 1024;
    let deadline = 'serving: loop {
        let (stream, peer) = tokio::select! {
            next = listener.accept() => match next {
                Ok(next) => next,
                Err(error) => {
                    errors.failed(error).await;
                    continue;
                }
            },
            limit = &mut stop => break limit.unwrap_or(Duration::ZERO),
        };
        // At the limit the client is held (one beyond the limit) while a
        // permit is found: only a client that is really there costs
        // another its connection, or is reported waiting.
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let mut evicted = false;
                let mut reported = false;
                loop {
                    if let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
                        break permit;
                    }
                    if !evicted {
                        evicted = evict_one(&mut open);
                        if evicted || !reported {
                            full.reached(limits.max_connections, evicted);
                            reported = true;
                        }
                    }
                    // Once one is evicted, its permit comes as it closes
                    // (should it not, another is evicted after a while).
                    // Until then look again shortly: a connection stuck in
                    // its head becomes evictable after HEAD_GRACE.
                    let recheck = if evicted { EVICTION_PATIENCE } else { RECHECK };
                    tokio::select! {
                        permit = Arc::clone(&permits).acquire_owned() => match permit {
                            Ok(permit) => break permit,
                            Err(_) => break 'serving Duration::ZERO, // never closed
                        },
                        () = tokio::time::sleep(recheck) => evicted = false,
                        limit = &mut stop => break 'serving limit.unwrap_or(Duration::ZERO),
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let clock = Clock::new();
        if open.len() >= prune_at {
            open.retain(|clock| clock.strong_count() > 0);
            prune_at = (open.len() * 2).max(1024);
        }
        open.push(Arc::downgrade(&clock));
        let io = Timed::new(
            stream,
            Arc::clone(&clock),
            limits.header_timeout,
            limits.keepalive_timeout,
        );
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::start(&clock);
            let mut request = request.map(Body::new);
            if request.headers().contains_key(axum::http::header::UPGRADE) {
                request
                    .extensions_mut()
                    .insert(Upgrading(Arc::clone(&clock)));
            }
            async move {
                let response = handle(settings, Some(peer), request).await;
                Ok::<_, Infallible>(busy.until_sent(response))
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut draining = draining.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            // A client that misbehaves or leaves ends only its connection.
            tokio::select! {
                _ = connection.as_mut() => {}
                true = async { draining.wait_for(|drain| *drain).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
            drop(done);
        });
    };
    // No new connections from here: refused by the kernel once closed.
    drop(listener);
    let give_up = tokio::time::Instant::now() + deadline;
    // hyper closes a connection whose head is not complete at once when
    // told to drain: a client that just connected, or just began its next
    // request, would lose it. Heads get HEAD_GRACE to arrive first.
    let heads_due = (tokio::time::Instant::now() + HEAD_GRACE).min(give_up);
    while tokio::time::Instant::now() < heads_due
        && open
            .iter()
            .any(|c| c.upgrade().is_some_and(|c| c.awaiting_head()))
    {
        tokio::time::sleep(HEAD_POLL).await;
    }
    // WebSockets are told to close (1001), and get until the deadline.
    crate::websocket::close_all();
    tokio::select! {
        () = async {
            let _ = drain.send(true);
            drop(done);
            let _ = all_done.recv().await;
            while crate::websocket::open() > 0 {
                tokio::time::sleep(HEAD_POLL).await;
            }
        } => {}
        () = tokio::time::sleep_until(give_up) => {
            log::event(
                SufastLogLevel::Warning,
                "stop deadline passed; closing connections still open",
            );
        }
    }
}

/// Reports reaching `max_connections`: at once, then at most once per
/// `REPORT_FULL_EVERY` with what happened since, so that a burst is one line.
#[derive(Default)]
struct FullReports {
    last: Option<Instant>,
    evicted: u64,
    waited: u64,
}

const REPORT_FULL_EVERY: Duration = Duration::from_secs(10);

impl FullReports {
    fn reached(&mut self, limit: usize, evicted: bool) {
        if evicted {
            self.evicted += 1;
        } else {
            self.waited += 1;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REPORT_FULL_EVERY)
        {
            return;
        }
        log::event(
            SufastLogLevel::Warning,
            format_args!(
                "max_connections ({limit}) reached: {} connection(s) that waited longest without a request in flight closed for new clients, {} time(s) new clients waited for one to close",
                self.evicted, self.waited
            ),
        );
        self.last = Some(now);
        self.evicted = 0;
        self.waited = 0;
    }
}

/// Evicts the open connection that has waited longest without a request in
/// flight; false if none may be evicted.
fn evict_one(open: &mut Vec<Weak<Clock>>) -> bool {
    open.retain(|clock| clock.strong_count() > 0);
    let now = tokio::time::Instant::now();
    let oldest = open
        .iter()
        .filter_map(Weak::upgrade)
        .filter_map(|clock| clock.evictable_since(now).map(|since| (since, clock)))
        .min_by_key(|(since, _)| *since);
    match oldest {
        Some((_, clock)) => {
            clock.evict();
            true
        }
        None => false,
    }
}

/// A request between its complete head and its response: the connection's
/// read deadlines pause, also if the request is dropped half-way.
struct Busy(Arc<Clock>);

impl Busy {
    fn start(clock: &Arc<Clock>) -> Self {
        clock.request_started();
        Busy(Arc::clone(clock))
    }
}

impl Busy {
    /// `response`, with the request counted busy until its body is sent
    /// when that may take a while (a stream, a file, a large body): a
    /// body still on its way is no idle connection, and its client reads
    /// nothing meanwhile. A small whole body goes out in one write, so
    /// it ends the request at once, which costs no wrapper.
    fn until_sent(self, response: Response) -> Response {
        let quick = axum::body::HttpBody::size_hint(response.body())
            .exact()
            .is_some_and(|len| len <= QUICK_BODY);
        if quick {
            return response;
        }
        response.map(|body| Body::new(Sending { body, _busy: self }))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// The largest whole body that ends its request when handed to hyper.
const QUICK_BODY: u64 = 64 * 1024;

/// A response body that holds its request busy until it is dropped.
struct Sending {
    body: Body,
    _busy: Busy,
}

impl axum::body::HttpBody for Sending {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Reports accept errors, rate-limited, and pauses accepting after one.
#[derive(Default)]
struct AcceptErrors {
    last_report: Option<Instant>,
    unreported: u64,
}

impl AcceptErrors {
    async fn failed(&mut self, error: io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            // One client gave up before it was accepted; nothing to fix.
            log::event(SufastLogLevel::Trace, format_args!("accept: {error}"));
            return;
        }
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= REPORT_EVERY)
        {
            let hint = match error.raw_os_error() {
                Some(23 | 24) => "; out of file descriptors: raise `ulimit -n` or lower the load",
                _ => "",
            };
            log::event(
                SufastLogLevel::Error,
                format_args!(
                    "cannot accept connections: {error}{hint} ({} time(s) since the last report)",
                    self.unreported
                ),
            );
            self.last_report = Some(now);
            self.unreported = 0;
        }
        tokio::time::sleep(BACKOFF).await;
    }
}
