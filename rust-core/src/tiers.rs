//! How a matched route is answered by its tier: static routes from stored
//! bytes, dynamic routes by their handler through the dispatch queue,
//! cached routes from their cache with one render per expiry. A handler's
//! whole response is handed back for the server to add the app-wide
//! headers and compress it ([`crate::compression`]); a streamed one
//! ([`crate::stream`]) or a file is handed back as a response to send.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::body::{Bytes, HttpBody};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::Response;
use http_body_util::BodyExt;

use crate::cache::{Cache, Kept, Plan, Rendered};
use crate::compression::{Compression, Gzipped};
use crate::deadlines::Upgrading;
use crate::dispatch::{self, Rejected, Reply};
use crate::files;
use crate::forms::{self, FormError};
use crate::instance::instance;
use crate::limits;
use crate::log::{self, SufastLogLevel};
use crate::responses::{
    bad_body, body_too_slow, gateway_timeout, internal_error, json_detail, too_large, unavailable,
};
use crate::routes::forwarded::Client;
use crate::routes::BodyKind;
use crate::routes::StaticResponse;
use crate::stream;
use crate::websocket;
use crate::wire::RequestParts;

/// The largest request body a handler is given unless told otherwise.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// Sets the largest request body a handler is given; larger ones get 413.
pub fn set_max_body(bytes: usize) {
    instance().max_body.store(bytes, Ordering::Relaxed);
}

/// What a handler answered.
pub enum Answered {
    /// A whole response, for the server to finish and compress.
    Whole(StaticResponse),
    /// A response whose body is sent as it comes (a stream, a file): the
    /// server adds the app-wide headers and sends it as it is.
    Body(Response),
}

/// Answers `request` with the handler `handler`, per request; `reads`:
/// how it gets the body (a form is parsed here, see [`crate::forms`]; a
/// stream flows in beside the request, see [`crate::stream`]).
pub async fn dynamic(
    handler: u32,
    reads: BodyKind,
    params: Vec<String>,
    client: Client,
    request: Request,
) -> Answered {
    call(handler, reads, params, &client, request).await
}

/// Answers `request` from `cache`, rendering through `handler` when the
/// stored copy is missing or expired; with `compression`, a render's gzip
/// body is made once and kept beside it.
pub async fn cached(
    handler: u32,
    params: Vec<String>,
    cache: Arc<Cache>,
    client: Client,
    request: Request,
    compression: Option<Compression>,
) -> (StaticResponse, Gzipped) {
    let key = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match cache.plan(&key, Instant::now()) {
        Plan::Serve(kept) => copy(&kept),
        Plan::Wait(render) => wait(render).await,
        Plan::Bypass => (
            whole(
                handler,
                dynamic(handler, BodyKind::Whole, params, client, request).await,
            ),
            Gzipped::NotYet,
        ),
        Plan::Render { done, stale } => {
            let render = done.subscribe();
            // The render runs as a task of its own: the client that started
            // it may leave, the others still get the response.
            tokio::spawn(async move {
                let response = whole(
                    handler,
                    call(handler, BodyKind::Whole, params, &client, request).await,
                );
                let gzip = match compression {
                    Some(compression) => compression.ahead(&response).await,
                    None => Gzipped::NotYet,
                };
                let kept = Arc::new(Kept { response, gzip });
                cache.finish(&key, &kept, Instant::now());
                let _ = done.send(Some(kept));
            });
            match stale {
                Some(kept) => copy(&kept),
                None => wait(render).await,
            }
        }
    }
}

/// The read buffer of a WebSocket connection.
const WS_READ_BUFFER: usize = 8 * 1024;

/// Answers a request to a WebSocket route. The handler is asked with the
/// request: a stream head accepts (the socket is then served by
/// [`websocket::run`], its subprotocol and headers those of the head),
/// a whole response refuses the connection with that response. A request
/// that is no WebSocket handshake gets 426.
pub async fn websocket(
    handler: u32,
    params: Vec<String>,
    client: Client,
    request: Request,
) -> Answered {
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(why) => {
            return Answered::Whole(json_detail(
                StatusCode::UPGRADE_REQUIRED,
                &format!("Upgrade Required: this route takes WebSocket connections ({why})"),
            ))
        }
    };
    let reply = match ask(
        handler,
        BodyKind::Whole,
        params,
        &client,
        &parts,
        Body::empty(),
    )
    .await
    {
        Ok(reply) => reply,
        Err(response) => return Answered::Whole(response),
    };
    match reply {
        Reply::Whole(response) => Answered::Whole(response),
        Reply::Stream(head, body) => {
            let max = limits::ws_max_size();
            // tungstenite zeroes its read buffer's free space on each read
            // (128 KiB by default): a small buffer keeps that cheap, and
            // larger messages are read in more pieces.
            let mut upgrade = upgrade
                .max_message_size(max)
                .max_frame_size(max)
                .read_buffer_size(WS_READ_BUFFER);
            let protocol = axum::http::header::SEC_WEBSOCKET_PROTOCOL;
            if let Some(chosen) = head.headers.get(&protocol) {
                upgrade.set_selected_protocol(chosen.clone());
            }
            if let Some(upgrading) = parts.extensions.get::<Upgrading>() {
                upgrading.upgraded();
            }
            let mut response = upgrade.on_upgrade(move |socket| websocket::run(socket, body));
            for (name, value) in &head.headers {
                if name != protocol {
                    response.headers_mut().append(name, value.clone());
                }
            }
            Answered::Body(response)
        }
        Reply::File(..) => {
            log::event(
                SufastLogLevel::Error,
                format_args!(
                    "handler {handler} answered a WebSocket with a file; the client got a 500"
                ),
            );
            Answered::Whole(internal_error())
        }
    }
}

/// A cached route's response: a stream or a file cannot be kept, so a
/// handler that answers with one is a 500.
fn whole(handler: u32, answered: Answered) -> StaticResponse {
    match answered {
        Answered::Whole(response) => response,
        Answered::Body(_) => {
            log::event(
                SufastLogLevel::Error,
                format_args!(
                    "handler {handler} answered a cached route with a stream or a file, which cannot be kept; the client got a 500"
                ),
            );
            internal_error()
        }
    }
}

/// A kept response to send: its body and gzip body are shared, not copied.
fn copy(kept: &Kept) -> (StaticResponse, Gzipped) {
    (kept.response.clone(), kept.gzip.clone())
}

async fn wait(mut render: Rendered) -> (StaticResponse, Gzipped) {
    match render.wait_for(Option::is_some).await {
        Ok(done) => match done.as_ref() {
            Some(kept) => copy(kept),
            None => (unavailable(), Gzipped::NotYet),
        },
        // The render was dropped: the server is stopping.
        Err(_) => (unavailable(), Gzipped::NotYet),
    }
}

/// Reads the body (a form on a form route), hands the request to its
/// handler and waits for the response. Every failure is a response: 400,
/// 408, 413, 503 or 500.
async fn call(
    handler: u32,
    reads: BodyKind,
    params: Vec<String>,
    client: &Client,
    request: Request,
) -> Answered {
    let (parts, body) = request.into_parts();
    let reply = match ask(handler, reads, params, client, &parts, body).await {
        Ok(reply) => reply,
        Err(response) => return Answered::Whole(response),
    };
    match reply {
        Reply::Whole(response) => Answered::Whole(response),
        Reply::Stream(head, body) => {
            let mut response = Response::new(Body::new(body));
            *response.status_mut() = head.status;
            *response.headers_mut() = head.headers;
            Answered::Body(response)
        }
        Reply::File(head, path) => Answered::Body(files::send_file(&path, head, &parts).await),
    }
}

/// `call` up to the handler's reply; every failure is a response.
async fn ask(
    handler: u32,
    reads: BodyKind,
    params: Vec<String>,
    client: &Client,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Reply, StaticResponse> {
    let max_body = instance().max_body.load(Ordering::Relaxed);
    if reads == BodyKind::Stream {
        return ask_streaming(handler, params, client, parts, body, max_body).await;
    }
    let kind = if reads == BodyKind::Form {
        forms::kind(&parts.headers)
    } else {
        None
    };
    let (body, files) = match kind {
        None => match read_body(body, max_body, limits::body_timeout()).await {
            Ok(body) => (body, Vec::new()),
            Err(why) => return Err(body_error(why)),
        },
        Some(Err(why)) => {
            return Err(json_detail(
                StatusCode::BAD_REQUEST,
                &format!("Bad Request: {why}"),
            ))
        }
        Some(Ok(kind)) => match forms::read(body, kind, &limits::form_limits(max_body)).await {
            Ok(form) => (form.record, form.files),
            Err(why) => return Err(form_error(parts, why)),
        },
    };
    let submitted = submit(handler, &params, client, parts, &body, false, files);
    // The record holds its own copy: the body need not wait for the handler.
    drop(body);
    reply_to(handler, parts, submitted.map_err(refused)?, None).await
}

/// Queues the request for `handler` with `body` (or, `streamed`, none:
/// it streams in).
fn submit(
    handler: u32,
    params: &[String],
    client: &Client,
    parts: &axum::http::request::Parts,
    body: &[Bytes],
    streamed: bool,
    files: Vec<tempfile::TempPath>,
) -> Result<dispatch::Pending, Rejected> {
    let request = RequestParts {
        handler,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        client,
        params,
        headers: &parts.headers,
        body,
        streamed,
    };
    dispatch::submit(&request, files)
}

/// The answer to a request the queue refused.
fn refused(why: Rejected) -> StaticResponse {
    match why {
        Rejected::TooLarge => too_large(),
        Rejected::Full | Rejected::Closed => unavailable(),
    }
}

/// `ask` for a route whose handler reads the body as it arrives: the
/// request goes to the handler at once, and the body flows in beside it,
/// held to `max_body` and `body_timeout` (a failure is what the
/// handler's next read says).
async fn ask_streaming(
    handler: u32,
    params: Vec<String>,
    client: &Client,
    parts: &axum::http::request::Parts,
    body: Body,
    max_body: usize,
) -> Result<Reply, StaticResponse> {
    if body.size_hint().lower() > max_body as u64 {
        return Err(too_large());
    }
    let mut pending =
        submit(handler, &params, client, parts, &[], true, Vec::new()).map_err(refused)?;
    let feed = pending.take_feed();
    let pump = async {
        if let Some(feed) = &feed {
            pump(body, feed, max_body, limits::body_timeout()).await;
        }
    };
    reply_to(handler, parts, pending, Some(Box::pin(pump))).await
}

/// Feeds `body` to the handler through `feed` as it arrives.
async fn pump(mut body: Body, feed: &stream::BodyFeed, limit: usize, pause: Duration) {
    let mut size = 0;
    loop {
        let frame = match tokio::time::timeout(pause, body.frame()).await {
            Err(_) => {
                return feed.fail("408 Request Timeout: the body paused longer than body_timeout")
            }
            Ok(None) => return feed.end(),
            // A body cut off (or garbled) is a client gone, as Starlette has it.
            Ok(Some(Err(_))) => {
                return feed.fail("the client went away before its body was complete")
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        size += data.len();
        if size > limit {
            return feed.fail("413 Payload Too Large: the body is larger than max_body_size");
        }
        if !data.is_empty() && feed.push(data) {
            feed.room().await;
        }
    }
}

/// Waits for the handler's reply to `pending`, up to `request_timeout`,
/// driving `beside` (a body flowing in) meanwhile.
async fn reply_to(
    handler: u32,
    parts: &axum::http::request::Parts,
    mut pending: dispatch::Pending,
    beside: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>>,
) -> Result<Reply, StaticResponse> {
    // `request_timeout` is kept by `dispatch::expire_overdue`, which
    // withdraws the request: its reply then ends without one.
    let reply = match beside {
        None => pending.reply().await,
        Some(mut beside) => {
            let mut fed = false;
            loop {
                tokio::select! {
                    reply = pending.reply() => break reply,
                    () = &mut beside, if !fed => fed = true,
                }
            }
        }
    };
    match reply {
        Some(reply) => Ok(reply),
        None if !pending.expired() => Err(unavailable()),
        None => {
            let deadline = limits::request_timeout();
            log::event(
                SufastLogLevel::Warning,
                format_args!(
                    "{} {}: no answer from handler {handler} within request_timeout ({} ms); the client got a 504",
                    parts.method,
                    parts.uri.path(),
                    deadline.as_millis()
                ),
            );
            Err(gateway_timeout())
        }
    }
}

fn body_error(why: BodyError) -> StaticResponse {
    match why {
        BodyError::TooLarge => too_large(),
        BodyError::Slow => body_too_slow(),
        BodyError::Broken => bad_body(),
    }
}

fn form_error(parts: &axum::http::request::Parts, why: FormError) -> StaticResponse {
    match why {
        FormError::Body(why) => body_error(why),
        FormError::Malformed(why) => {
            json_detail(StatusCode::BAD_REQUEST, &format!("Bad Request: {why}"))
        }
        FormError::TooLarge(why) => json_detail(StatusCode::PAYLOAD_TOO_LARGE, &why),
        FormError::Disk(why) => {
            log::event(
                SufastLogLevel::Error,
                format_args!(
                    "{} {}: {why}; the client got a 500",
                    parts.method,
                    parts.uri.path()
                ),
            );
            internal_error()
        }
    }
}

/// Why a request body could not be read whole.
#[derive(Debug, Clone, Copy)]
pub enum BodyError {
    TooLarge,
    /// A pause between two reads was longer than `body_timeout`.
    Slow,
    Broken,
}

/// Reads `body` whole as the pieces it arrived in (copied once, into the
/// request record): at most `limit` bytes, with no pause between reads
/// longer than `pause`.
pub async fn read_body(
    mut body: Body,
    limit: usize,
    pause: Duration,
) -> Result<Vec<Bytes>, BodyError> {
    if body.is_end_stream() {
        return Ok(Vec::new()); // no body: no timer for it
    }
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut chunks = Vec::new();
    let mut size = 0;
    loop {
        let frame = match tokio::time::timeout(pause, body.frame()).await {
            Err(_) => return Err(BodyError::Slow),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        size += data.len();
        if size > limit {
            return Err(BodyError::TooLarge);
        }
        if !data.is_empty() {
            chunks.push(data);
        }
    }
    Ok(chunks)
}
