//! How a matched route is answered by its tier: static routes from stored
//! bytes, dynamic routes by their handler through the dispatch queue,
//! cached routes from their cache with one render per expiry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::body::{Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;

use crate::cache::{Cache, Plan, Rendered};
use crate::dispatch::{self, json_error, Rejected, RequestParts};
use crate::limits;
use crate::log::{self, SufastLogLevel};
use crate::routes::forwarded::Client;
use crate::routes::StaticResponse;

/// The largest request body a handler is given unless told otherwise.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

static MAX_BODY: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_BODY);

/// Sets the largest request body a handler is given; larger ones get 413.
pub fn set_max_body(bytes: usize) {
    MAX_BODY.store(bytes, Ordering::Relaxed);
}

/// A stored response as sent: the body is shared, never copied.
pub fn stored(response: &StaticResponse) -> Response {
    let mut out = Response::new(Body::from(response.body.clone()));
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers.clone();
    out
}

/// A response built for one request, sent as it is.
pub fn owned(response: StaticResponse) -> Response {
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers;
    out
}

/// Answers `request` with the handler `handler`, per request.
pub async fn dynamic(
    handler: u32,
    params: Vec<String>,
    client: Client,
    request: Request,
) -> Response {
    owned(call(handler, params, &client, request).await)
}

/// Answers `request` from `cache`, rendering through `handler` when the
/// stored copy is missing or expired.
pub async fn cached(
    handler: u32,
    params: Vec<String>,
    cache: Arc<Cache>,
    client: Client,
    request: Request,
) -> Response {
    let key = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match cache.plan(&key, Instant::now()) {
        Plan::Serve(response) => stored(&response),
        Plan::Wait(render) => wait(render).await,
        Plan::Bypass => dynamic(handler, params, client, request).await,
        Plan::Render { done, stale } => {
            let render = done.subscribe();
            // The render runs as a task of its own: the client that started
            // it may leave, the others still get the response.
            tokio::spawn(async move {
                let response = Arc::new(call(handler, params, &client, request).await);
                cache.finish(&key, &response, Instant::now());
                let _ = done.send(Some(response));
            });
            match stale {
                Some(response) => stored(&response),
                None => wait(render).await,
            }
        }
    }
}

async fn wait(mut render: Rendered) -> Response {
    match render.wait_for(Option::is_some).await {
        Ok(done) => match done.as_ref() {
            Some(response) => stored(response),
            None => owned(unavailable()),
        },
        // The render was dropped: the server is stopping.
        Err(_) => owned(unavailable()),
    }
}

/// Reads the body, hands the request to its handler and waits for the
/// response. Every failure is a response: 413, 503 or 500.
async fn call(
    handler: u32,
    params: Vec<String>,
    client: &Client,
    request: Request,
) -> StaticResponse {
    let (parts, body) = request.into_parts();
    let body = match read_body(
        body,
        MAX_BODY.load(Ordering::Relaxed),
        limits::body_timeout(),
    )
    .await
    {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Slow) => return body_too_slow(),
        Err(BodyError::Broken) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                r#"{"detail": "Bad Request: the body could not be read"}"#,
            )
        }
    };
    let request = RequestParts {
        handler,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        client,
        params: &params,
        headers: &parts.headers,
        body: &body,
    };
    let mut pending = match dispatch::submit(&request) {
        Ok(pending) => pending,
        Err(Rejected::TooLarge) => return too_large(),
        Err(Rejected::Full | Rejected::Closed) => return unavailable(),
    };
    let deadline = limits::request_timeout();
    match tokio::time::timeout(deadline, pending.reply()).await {
        Ok(reply) => reply.unwrap_or_else(unavailable),
        Err(_) => {
            pending.expire();
            log::event(
                SufastLogLevel::Warning,
                format_args!(
                    "{} {}: no answer from handler {handler} within request_timeout ({} ms); the client got a 504",
                    parts.method,
                    parts.uri.path(),
                    deadline.as_millis()
                ),
            );
            json_error(
                StatusCode::GATEWAY_TIMEOUT,
                r#"{"detail": "Gateway Timeout: the handler did not answer in time"}"#,
            )
        }
    }
}

/// Why a request body could not be read whole.
enum BodyError {
    TooLarge,
    /// A pause between two reads was longer than `body_timeout`.
    Slow,
    Broken,
}

/// Reads `body` whole: at most `limit` bytes, with no pause between reads
/// longer than `pause`. A body that arrives in one piece is not copied.
async fn read_body(mut body: Body, limit: usize, pause: Duration) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
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
        let so_far = first.as_ref().map_or(0, Bytes::len) + rest.len();
        if so_far + data.len() > limit {
            return Err(BodyError::TooLarge);
        }
        match &first {
            None => first = Some(data),
            Some(head) => {
                if rest.is_empty() {
                    let expected = usize::try_from(body.size_hint().lower()).unwrap_or(0);
                    rest.reserve(head.len() + data.len() + expected.min(limit));
                    rest.extend_from_slice(head);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(match (first, rest.is_empty()) {
        (Some(only), true) => only,
        (None, _) => Bytes::new(),
        (Some(_), false) => Bytes::from(rest),
    })
}

fn too_large() -> StaticResponse {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"detail": "Payload Too Large: the body is larger than max_body_size"}"#,
    )
}

/// 408, and the connection closes: what is left of the body is not read.
fn body_too_slow() -> StaticResponse {
    let mut response = json_error(
        StatusCode::REQUEST_TIMEOUT,
        r#"{"detail": "Request Timeout: the body paused for longer than body_timeout"}"#,
    );
    response
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn unavailable() -> StaticResponse {
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"detail": "Service Unavailable"}"#,
    );
    response
        .headers
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
