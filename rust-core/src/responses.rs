//! Every response the server makes itself, in one shape: FastAPI's
//! `{"detail": "..."}` with `application/json`; and the two ways a stored
//! or built response becomes one to send.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use crate::routes::StaticResponse;

/// A response with a fixed JSON body.
pub fn json_error(status: StatusCode, body: &'static str) -> StaticResponse {
    StaticResponse {
        status,
        headers: HeaderMap::from_iter([(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )]),
        body: Bytes::from_static(body.as_bytes()),
    }
}

/// A response with the JSON body `{"detail": detail}`.
pub fn json_detail(status: StatusCode, detail: &str) -> StaticResponse {
    let body = serde_json::json!({ "detail": detail }).to_string();
    StaticResponse {
        body: Bytes::from(body),
        ..json_error(status, "")
    }
}

pub fn not_found() -> StaticResponse {
    json_error(StatusCode::NOT_FOUND, r#"{"detail": "Not Found"}"#)
}

/// 405, with the methods the path has in `Allow`.
pub fn method_not_allowed(allow: HeaderValue) -> StaticResponse {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        r#"{"detail": "Method Not Allowed"}"#,
    );
    response.headers.insert(header::ALLOW, allow);
    response
}

pub fn bad_path() -> StaticResponse {
    json_error(
        StatusCode::BAD_REQUEST,
        r#"{"detail": "Bad Request: the path is not UTF-8 after percent-decoding"}"#,
    )
}

pub fn bad_body() -> StaticResponse {
    json_error(
        StatusCode::BAD_REQUEST,
        r#"{"detail": "Bad Request: the body could not be read"}"#,
    )
}

pub fn too_large() -> StaticResponse {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"detail": "Payload Too Large: the body is larger than max_body_size"}"#,
    )
}

/// 408, and the connection closes: what is left of the body is not read.
pub fn body_too_slow() -> StaticResponse {
    let mut response = json_error(
        StatusCode::REQUEST_TIMEOUT,
        r#"{"detail": "Request Timeout: the body paused for longer than body_timeout"}"#,
    );
    response
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The 500 a client gets when its handler's response cannot be sent.
pub fn internal_error() -> StaticResponse {
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"detail": "Internal Server Error"}"#,
    )
}

/// 503: the handlers' queue is full, closed, or no thread can take it.
pub fn unavailable() -> StaticResponse {
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"detail": "Service Unavailable"}"#,
    );
    response
        .headers
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// 504: the handler did not answer within `request_timeout`.
pub fn gateway_timeout() -> StaticResponse {
    json_error(
        StatusCode::GATEWAY_TIMEOUT,
        r#"{"detail": "Gateway Timeout: the handler did not answer in time"}"#,
    )
}

/// Written as raw bytes when a request head takes longer than
/// `header_timeout`, before the connection closes.
pub const HEAD_TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: 71\r\nconnection: close\r\n\r\n{\"detail\": \"Request Timeout: the request head took longer than allowed\"}";

/// The reply, as raw bytes, to a request head hyper refused to parse
/// (`status` is the one hyper chose: 400, 414, 431 or 505), in place of
/// hyper's own, which has no body. The connection closes after it.
pub fn refused_head(status: u16) -> Vec<u8> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let reason = status.canonical_reason().unwrap_or("Bad Request");
    let detail = match status.as_u16() {
        400 => format!("{reason}: the request line or headers are malformed"),
        431 => format!("{reason}: the request head is larger than max_header_size"),
        _ => reason.to_owned(),
    };
    let body = format!(r#"{{"detail": "{detail}"}}"#);
    format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        body.len()
    )
    .into_bytes()
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
