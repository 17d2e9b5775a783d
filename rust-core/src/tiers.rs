//! How a matched route is answered by its tier: static routes from stored
//! bytes, dynamic routes by their handler through the dispatch queue,
//! cached routes from their cache with one render per expiry.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::body::{Bytes, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use http_body_util::BodyExt;

use crate::cache::{Cache, Plan, Rendered};
use crate::dispatch::{self, Rejected};
use crate::instance::instance;
use crate::limits;
use crate::log::{self, SufastLogLevel};
use crate::responses::{
    bad_body, body_too_slow, gateway_timeout, owned, stored, too_large, unavailable,
};
use crate::routes::forwarded::Client;
use crate::routes::StaticResponse;
use crate::wire::RequestParts;

/// The largest request body a handler is given unless told otherwise.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// Sets the largest request body a handler is given; larger ones get 413.
pub fn set_max_body(bytes: usize) {
    instance().max_body.store(bytes, Ordering::Relaxed);
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
        instance().max_body.load(Ordering::Relaxed),
        limits::body_timeout(),
    )
    .await
    {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Slow) => return body_too_slow(),
        Err(BodyError::Broken) => return bad_body(),
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
    let submitted = dispatch::submit(&request);
    // The record holds its own copy: the body need not wait for the handler.
    drop(body);
    let mut pending = match submitted {
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
            gateway_timeout()
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

/// Reads `body` whole as the pieces it arrived in (copied once, into the
/// request record): at most `limit` bytes, with no pause between reads
/// longer than `pause`.
async fn read_body(mut body: Body, limit: usize, pause: Duration) -> Result<Vec<Bytes>, BodyError> {
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
