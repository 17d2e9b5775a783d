//! The HTTP server: the service that answers each request from the live
//! route table, and the one running server (start on its own thread,
//! graceful stop with a deadline, restart), both kept in the
//! [`Instance`](crate::instance::Instance).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::cache::Cache;
use crate::compression::{self, Gzipped};
use crate::error::{Error, SufastErrorCode};
use crate::files::{self, Files, Part};
use crate::instance::instance;
use crate::limits::Limits;
use crate::log::{self, SufastAccessLog, SufastLogLevel};
use crate::routes::forwarded::Client;
use crate::routes::{BodyKind, Lookup, RouteTable, Serve};
use crate::tiers::Answered;
use crate::{dispatch, listener, responses, tiers};

/// How long a stop waits for in-flight requests unless told otherwise.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(5);

/// A server that runs: its port, its owner process, how to stop it.
pub struct Running {
    port: u16,
    pid: u32,
    stop: oneshot::Sender<Duration>,
    thread: JoinHandle<()>,
}

fn server() -> MutexGuard<'static, Option<Running>> {
    // A panic while holding the lock leaves the Option consistent.
    instance()
        .server
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Validates `json` and swaps it in as the live table; returns its size.
pub fn set_routes(json: &[u8]) -> Result<usize, Error> {
    let mut table = RouteTable::from_json(json)?;
    table.keep_caches(&instance().routes.load());
    let len = table.len();
    instance().routes.store(Arc::new(table));
    Ok(len)
}

/// Validates `json` as a route table without swapping it in.
pub fn check_routes(json: &[u8]) -> Result<usize, Error> {
    RouteTable::from_json(json).map(|t| t.len())
}

/// Per-server settings every request sees.
#[derive(Clone, Copy)]
pub struct Settings {
    pub access_log: SufastAccessLog,
}

/// Answers one request from `peer` from the live route table.
pub async fn handle(settings: Settings, peer: Option<SocketAddr>, request: Request) -> Response {
    let head = request.method() == Method::HEAD;
    let mut log = None;
    // The table is only borrowed here: a handler call below may outlive it.
    let call = {
        let routes = instance().routes.load();
        let app = routes.app_wide();
        let client = app.client(peer, request.headers());
        if settings.access_log != SufastAccessLog::Off {
            log = Some(AccessLog::of(&request, &client, settings.access_log));
        }
        // Only an OPTIONS request can be a preflight; no other pays for it.
        let preflight = match *request.method() {
            Method::OPTIONS => app.preflight(request.headers()),
            _ => None,
        };
        match preflight {
            Some(preflight) => Err(responses::owned(preflight)),
            None => {
                let origin = app.allowed_origin(request.headers());
                match answer(&routes, &request, client) {
                    Answer::Stored(mut response) => {
                        app.finish_prepared(response.headers_mut(), origin);
                        Err(response)
                    }
                    Answer::Made(mut response) => {
                        app.finish(response.headers_mut(), origin);
                        Err(response)
                    }
                    Answer::Handler(handler, form, params, cache, client) => Ok((
                        Later::Handler(handler, form, params, cache, client),
                        Arc::clone(app),
                        origin,
                    )),
                    Answer::Files(directory, part, params) => Ok((
                        Later::Files(directory, part, params),
                        Arc::clone(app),
                        origin,
                    )),
                    Answer::WebSocket(handler, params, client) => Ok((
                        Later::WebSocket(handler, params, client),
                        Arc::clone(app),
                        origin,
                    )),
                }
            }
        }
    };
    let response = match call {
        Err(response) => response,
        Ok((Later::Files(directory, part, params), app, origin)) => {
            // Files send precompressed siblings of their own, never more.
            let mut response = files::serve(directory, part, params, request).await;
            app.finish(response.headers_mut(), origin);
            response
        }
        Ok((Later::WebSocket(handler, params, client), app, origin)) => {
            match tiers::websocket(handler, params, client, request).await {
                Answered::Whole(mut made) => {
                    app.finish(&mut made.headers, origin);
                    responses::owned(made)
                }
                Answered::Body(mut response) => {
                    app.finish(response.headers_mut(), origin);
                    response
                }
            }
        }
        Ok((Later::Handler(handler, form, params, cache, client), app, origin)) => {
            // Read before the request is handed on; only with compression.
            let compression = app.compression().copied();
            let negotiated = compression.map(|c| c.negotiate(request.headers()));
            let (mut made, gzip) = match cache {
                None => match tiers::dynamic(handler, form, params, client, request).await {
                    Answered::Whole(made) => (made, Gzipped::NotYet),
                    // Streams and files are sent as they come, uncompressed.
                    Answered::Body(mut response) => {
                        app.finish(response.headers_mut(), origin);
                        return finish(response, head, log);
                    }
                },
                Some(cache) => {
                    tiers::cached(handler, params, cache, client, request, compression).await
                }
            };
            app.finish(&mut made.headers, origin);
            // Last, so that `Vary` joins what the app-wide headers and CORS put there.
            if let Some(negotiated) = negotiated {
                made = negotiated.apply(made, gzip).await;
            }
            responses::owned(made)
        }
    };
    finish(response, head, log)
}

/// `response` as sent: without its body for HEAD, logged.
fn finish(response: Response, head: bool, log: Option<AccessLog>) -> Response {
    let response = if head {
        without_body(response)
    } else {
        response
    };
    if let Some(log) = log {
        log.write(&response);
    }
    response
}

/// What the table says to do with a request.
enum Answer {
    /// Send a stored response, which already carries the app-wide headers.
    Stored(Response),
    /// Send a response made for this request.
    Made(Response),
    /// Ask a handler: its id, how it gets the body, the parameter
    /// values, the route's cache, the client.
    Handler(u32, BodyKind, Vec<String>, Option<Arc<Cache>>, Client),
    /// Send from a directory: which part of its route matched, the raw
    /// parameter values.
    Files(Arc<Files>, Part, Vec<String>),
    /// Ask a WebSocket route's handler: its id, the parameter values, the client.
    WebSocket(u32, Vec<String>, Client),
}

/// What answers once the table is let go.
enum Later {
    Handler(u32, BodyKind, Vec<String>, Option<Arc<Cache>>, Client),
    Files(Arc<Files>, Part, Vec<String>),
    WebSocket(u32, Vec<String>, Client),
}

fn answer(routes: &RouteTable, request: &Request, client: Client) -> Answer {
    match routes.lookup(request.method(), request.uri().path()) {
        Lookup::Found(route, params) => match &route.serve {
            // Accept-Encoding is read only when there is a variant to send.
            Serve::Static(response, gzip) => Answer::Stored(responses::stored(match gzip {
                Some(gzip) if compression::accepts_gzip(request.headers()) => gzip,
                _ => response,
            })),
            Serve::Dynamic { handler, body } => {
                Answer::Handler(*handler, *body, params, None, client)
            }
            Serve::WebSocket { handler } => Answer::WebSocket(*handler, params, client),
            Serve::Cached { handler, cache } => Answer::Handler(
                *handler,
                BodyKind::Whole,
                params,
                Some(cache.clone()),
                client,
            ),
            Serve::Files { files, part } => Answer::Files(Arc::clone(files), *part, params),
        },
        Lookup::NotFound => match routes.app_wide().not_found_handler() {
            Some(handler) => Answer::Handler(handler, BodyKind::Whole, Vec::new(), None, client),
            None => Answer::Made(responses::owned(responses::not_found())),
        },
        Lookup::MethodNotAllowed(allow) => match routes.app_wide().method_not_allowed_handler() {
            // The handler gets the Allow value the 405 would carry.
            Some(handler) => {
                let allow = String::from_utf8_lossy(allow.as_bytes()).into_owned();
                Answer::Handler(handler, BodyKind::Whole, vec![allow], None, client)
            }
            None => Answer::Made(responses::owned(responses::method_not_allowed(allow))),
        },
        Lookup::BadPath => Answer::Made(responses::owned(responses::bad_path())),
    }
}

/// HEAD gets the headers a GET would, Content-Length included, no body.
fn without_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(len) = axum::body::HttpBody::size_hint(&body).exact() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Response::from_parts(parts, Body::empty())
}

/// What the access log line needs of a request, taken before the request
/// is handed on.
struct AccessLog {
    format: SufastAccessLog,
    started: Instant,
    client: String,
    method: Method,
    target: String,
    protocol: &'static str,
}

impl AccessLog {
    fn of(request: &Request, client: &Client, format: SufastAccessLog) -> Self {
        AccessLog {
            format,
            started: Instant::now(),
            client: match client.host() {
                host if host.is_empty() => "-".to_owned(),
                host => host.into_owned(),
            },
            method: request.method().clone(),
            target: request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
            protocol: match request.version() {
                axum::http::Version::HTTP_09 => "HTTP/0.9",
                axum::http::Version::HTTP_10 => "HTTP/1.0",
                axum::http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
        }
    }

    fn write(self, response: &Response) {
        let bytes = axum::body::HttpBody::size_hint(response.body())
            .exact()
            .unwrap_or(0);
        log::access(
            self.format,
            &log::Access {
                client: &self.client,
                method: self.method.as_str(),
                target: &self.target,
                protocol: self.protocol,
                status: response.status().as_u16(),
                bytes,
                duration: self.started.elapsed(),
            },
        );
    }
}

/// Binds `host:port` and starts serving on a new thread; returns the bound
/// port once the socket is listening. Fails at once on a busy port or if a
/// server is already running.
pub fn start(host: &str, port: u16, production: bool) -> Result<u16, Error> {
    start_with(production, || bind(host, port))
}

/// Starts serving a copy of the listening socket `fd` on a new thread;
/// returns its port. The caller keeps `fd`: a stop closes only the copy.
/// Fails at once if `fd` is not a bound TCP socket or a server is running.
#[cfg(unix)]
pub fn start_fd(fd: std::os::fd::BorrowedFd<'_>, production: bool) -> Result<u16, Error> {
    start_with(production, || adopt(fd))
}

fn bind(host: &str, port: u16) -> Result<std::net::TcpListener, Error> {
    let ip: IpAddr = match host {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        _ => host.parse().map_err(|_| {
            Error::new(
                SufastErrorCode::InvalidArgument,
                format!("host {host:?} is not an IP address"),
            )
        })?,
    };
    let addr = SocketAddr::new(ip, port);
    std::net::TcpListener::bind(addr).map_err(|e| {
        Error::new(
            SufastErrorCode::Bind,
            format!("cannot listen on {addr}: {e}"),
        )
    })
}

/// Duplicates `fd` (close-on-exec) as a listener of our own, refusing
/// what could never get a connection: no descriptor, not an IP socket,
/// not TCP (`SO_TYPE`), not bound, not listening (`SO_ACCEPTCONN`).
#[cfg(unix)]
fn adopt(fd: std::os::fd::BorrowedFd<'_>) -> Result<std::net::TcpListener, Error> {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    let invalid =
        |why: String| Error::new(SufastErrorCode::InvalidArgument, format!("fd {raw} {why}"));
    let listener = std::net::TcpListener::from(
        fd.try_clone_to_owned()
            .map_err(|e| invalid(format!("is not an open file descriptor: {e}")))?,
    );
    let addr = listener
        .local_addr()
        .map_err(|e| invalid(format!("is not a listening TCP socket: {e}")))?;
    if addr.port() == 0 {
        return Err(invalid(format!(
            "is a socket that is not bound ({addr}), so it cannot be listening"
        )));
    }
    let option = |name: libc::c_int| -> Result<libc::c_int, Error> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`.
        let ok = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_SOCKET,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        } == 0;
        ok.then_some(value).ok_or_else(|| {
            invalid(format!(
                "cannot be inspected: {}",
                std::io::Error::last_os_error()
            ))
        })
    };
    if option(libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(invalid(format!(
            "is not a TCP socket ({addr} is not a stream socket)"
        )));
    }
    if option(libc::SO_ACCEPTCONN)? == 0 {
        return Err(invalid(format!(
            "is a TCP socket bound to {addr} that is not listening; call listen() on it first"
        )));
    }
    Ok(listener)
}

/// The one start path: refuses a second server, gets the listener from
/// `listen`, and serves it from a runtime on a thread of its own.
fn start_with(
    production: bool,
    listen: impl FnOnce() -> Result<std::net::TcpListener, Error>,
) -> Result<u16, Error> {
    let mut slot = server();
    if let Some(running) = slot.as_ref() {
        not_forked(running)?;
        return Err(Error::new(
            SufastErrorCode::AlreadyRunning,
            format!(
                "a server is already running on port {}; stop it first",
                running.port
            ),
        ));
    }
    let listener = listen()?;
    let bound = listener
        .set_nonblocking(true)
        .and_then(|()| listener.local_addr())
        .map_err(|e| {
            Error::new(
                SufastErrorCode::Bind,
                format!("cannot prepare the listening socket: {e}"),
            )
        })?;
    let runtime_error = |e: std::io::Error| {
        Error::new(
            SufastErrorCode::Runtime,
            format!("cannot start the server runtime: {e}"),
        )
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sufast-worker")
        // Handler threads are woken when the workers run out of work, so
        // that one wake carries every request queued meanwhile.
        .on_thread_park(dispatch::wake_deferred)
        .build()
        .map_err(runtime_error)?;
    let listener = {
        let _context = runtime.enter();
        TcpListener::from_std(listener).map_err(runtime_error)?
    };
    let access_log = log::access_log().resolve(production);
    let (stop, stop_requested) = oneshot::channel();
    // Open before the first accept: a request that arrives at once (a
    // worker joining a socket others already serve) is queued, not 503.
    dispatch::open();
    let thread = std::thread::Builder::new()
        .name("sufast-server".into())
        .spawn(move || {
            runtime.block_on(run(listener, Settings { access_log }, stop_requested));
            // Connections still open past the deadline are dropped here.
            runtime.shutdown_timeout(Duration::from_millis(100));
        })
        .map_err(|e| {
            dispatch::close();
            runtime_error(e)
        })?;
    instance().owner.store(std::process::id(), Ordering::SeqCst);
    *slot = Some(Running {
        pid: std::process::id(),
        port: bound.port(),
        stop,
        thread,
    });
    instance().port.store(bound.port(), Ordering::SeqCst);
    log::event(
        SufastLogLevel::Debug,
        format_args!("server listening on {bound}"),
    );
    Ok(bound.port())
}

/// Serves `listener` until a stop is requested, then drains in-flight
/// requests until they finish or the requested deadline passes.
async fn run(
    listener: TcpListener,
    settings: Settings,
    stop_requested: oneshot::Receiver<Duration>,
) {
    // Ends with the runtime.
    tokio::spawn(dispatch::watch());
    tokio::spawn(dispatch::expire_overdue());
    listener::serve(listener, settings, Limits::current(), stop_requested).await;
}

/// Stops the running server: no new connections, in-flight requests get
/// until `deadline` to finish. Returns once the port is released.
pub fn stop(deadline: Duration) -> Result<(), Error> {
    let mut slot = server();
    if let Some(running) = slot.as_ref() {
        // Its threads do not exist here: joining them is not possible.
        not_forked(running)?;
    }
    let Some(running) = slot.take() else {
        return Err(Error::new(
            SufastErrorCode::NotRunning,
            "no server is running",
        ));
    };
    instance().port.store(0, Ordering::SeqCst);
    let _ = running.stop.send(deadline);
    let joined = running.thread.join();
    // Only now: handlers answered requests in flight until the deadline.
    dispatch::close();
    // A restart starts clean: the table stays, its stored responses go.
    instance().routes.load().clear_caches();
    log::event(SufastLogLevel::Debug, "server stopped");
    joined.map_err(|_| {
        Error::new(
            SufastErrorCode::Panic,
            "the server thread panicked while stopping",
        )
    })
}

/// The port the running server listens on, or 0.
pub fn bound_port() -> u16 {
    if instance().owner.load(Ordering::SeqCst) != std::process::id() {
        return 0;
    }
    instance().port.load(Ordering::SeqCst)
}

/// Fails if `running` was started by another process (this one is its
/// fork child).
fn not_forked(running: &Running) -> Result<(), Error> {
    if running.pid == std::process::id() {
        return Ok(());
    }
    Err(Error::new(
        SufastErrorCode::OtherProcess,
        format!(
            "the server on port {} belongs to process {}, which this process was forked from; \
             fork before starting a server, and start one in each process",
            running.port, running.pid
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    async fn call(method: &str, uri: &str) -> Response {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let settings = Settings {
            access_log: SufastAccessLog::Off,
        };
        handle(settings, None, request).await
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    // One test owns the global table so that parallel tests do not race.
    #[tokio::test]
    async fn serves_the_live_table() {
        set_routes(
            br#"{"GET": {"/": "{\"a\":1}"}, "POST": {"/p": {"status": 201, "body": "ok"}}}"#,
        )
        .unwrap();
        let r = call("GET", "/").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(text(r).await, r#"{"a":1}"#);

        let r = call("HEAD", "/").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "7");
        assert_eq!(text(r).await, "");

        let r = call("GET", "/p").await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "POST");

        let r = call("GET", "/nope").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(text(r).await, r#"{"detail": "Not Found"}"#);

        let r = call("GET", "/%FF").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        assert!(set_routes(b"{").is_err());
        assert_eq!(call("POST", "/p").await.status(), StatusCode::CREATED);
    }
}
