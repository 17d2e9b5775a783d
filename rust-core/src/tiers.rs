//! How a matched route is answered by its tier: static routes from stored
//! bytes, dynamic routes by their handler through the dispatch queue,
//! cached routes from their cache with one render per expiry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use http_body_util::LengthLimitError;

use crate::cache::{Cache, Plan, Rendered};
use crate::dispatch::{self, json_error, Rejected, RequestParts};
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
    let body = match axum::body::to_bytes(body, MAX_BODY.load(Ordering::Relaxed)).await {
        Ok(body) => body,
        Err(e) if limit_exceeded(&e) => return too_large(),
        Err(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                r#"{"error": "Bad Request: the body could not be read"}"#,
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
    pending.reply().await.unwrap_or_else(unavailable)
}

fn limit_exceeded(error: &axum::Error) -> bool {
    std::error::Error::source(error).is_some_and(|e| e.is::<LengthLimitError>())
}

fn too_large() -> StaticResponse {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"error": "Payload Too Large"}"#,
    )
}

fn unavailable() -> StaticResponse {
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"error": "Service Unavailable"}"#,
    );
    response
        .headers
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
