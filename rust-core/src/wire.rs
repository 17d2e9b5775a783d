//! The bytes that cross between the server and handlers outside Rust: the
//! request record a handler takes and the response it gives back, in one
//! layout whose version (`SUFAST_LAYOUT_VERSION` in the header,
//! `sufast_layout_version()` in the library) a reader can check. Every integer is little-endian.
//!
//! # A request record
//! ```text
//! u32 length of the rest of the record
//! u64 request id          (echoed by the response)
//! u32 handler id          (from the route table)
//! u16 client port
//! u16 number of path parameters (n)
//! u32 × 8 lengths of: method, raw path, raw query, client host, scheme,
//!         headers, body, held body
//! u32 × n lengths of the percent-decoded path parameter values
//! the bytes of: method, path, query, host, scheme, parameters…, headers, body
//! ```
//! A body that streams in (a route with `"stream": true`) has the held
//! length [`STREAMED_BODY`], `u32::MAX`, and none of it is in the record:
//! the handler reads it with `sufast_stream_read`, piece by piece, as it
//! arrives; the end of the frames is the end of the body.
//!
//! A body of at most [`INLINE_BODY`] bytes is in the record (its length is
//! the body length, the held length is 0). A larger one is not: the record
//! gives its length as the held length, and the library keeps the body
//! until the handler copies it out with `sufast_take_body`, once, into
//! memory of its own, or answers the request.
//! The client host and port are the TCP peer's, or those a trusted proxy
//! named (port 0 when it named none); the scheme is `http`, or `https`
//! when a trusted proxy said so.
//!
//! The headers block repeats `u32 name length, u32 value length, name,
//! value` for every header as received (lower-case names, repeats kept).
//!
//! # A response
//! ```text
//! u16 status, u32 number of headers,
//! then per header u32 name length, u32 value length, name, value,
//! then the body: every remaining byte
//! ```

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::routes::forwarded::Client;
use crate::routes::spec::{is_managed_header, StaticResponse};

/// The version of the request-record and response layouts: 1 had six
/// lengths in a record, 2 added the scheme, 3 the held body, 4 the
/// streamed body ([`STREAMED_BODY`]). A new field, order or meaning is a
/// new number. Compare it with `sufast_layout_version()`.
pub const SUFAST_LAYOUT_VERSION: u32 = 4;

/// The largest body a request record carries itself; a larger one is held
/// by the library for `sufast_take_body`, so that it is copied once on its
/// way to the handler instead of into the record and again out of it.
pub const INLINE_BODY: usize = 64 * 1024;

/// The held length of a body that streams in (a route with `"stream":
/// true`): it is read with `sufast_stream_read` as it arrives.
pub const STREAMED_BODY: u32 = u32::MAX;

const FIXED: usize = 4 + 8 + 4 + 2 + 2 + 8 * 4;

/// What a request needs to cross to a handler.
pub struct RequestParts<'a> {
    pub handler: u32,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub client: &'a Client,
    pub params: &'a [String],
    pub headers: &'a HeaderMap,
    /// The body as the pieces it arrived in.
    pub body: &'a [Bytes],
    /// The body is not here: it streams in, read with `sufast_stream_read`.
    pub streamed: bool,
}

impl RequestParts<'_> {
    /// The body's length.
    pub fn body_len(&self) -> usize {
        self.body.iter().map(Bytes::len).sum()
    }

    /// Whether the body stays out of the record, held for `sufast_take_body`.
    pub fn holds_body(&self) -> bool {
        self.body_len() > INLINE_BODY
    }

    /// The record for request `id`; `None` if a part exceeds 4 GiB.
    pub fn encode(&self, id: u64) -> Option<Vec<u8>> {
        let host = self.client.host();
        let (body_len, held_len) = match self.body_len() {
            _ if self.streamed => (0, STREAMED_BODY as usize),
            n if n > INLINE_BODY => (0, n),
            n => (n, 0),
        };
        let headers_len: usize = self
            .headers
            .iter()
            .map(|(n, v)| 8 + n.as_str().len() + v.len())
            .sum();
        let parts = [
            self.method.as_bytes(),
            self.path.as_bytes(),
            self.query.as_bytes(),
            host.as_bytes(),
            self.client.scheme.as_bytes(),
        ];
        let variable: usize = parts.iter().map(|p| p.len()).sum::<usize>()
            + self.params.iter().map(|p| 4 + p.len()).sum::<usize>()
            + headers_len
            + body_len;
        let rest = u32::try_from(FIXED - 4 + variable).ok()?;
        let len32 = |n: usize| u32::try_from(n).ok().map(u32::to_le_bytes);
        let mut out = Vec::with_capacity(FIXED + variable);
        out.extend_from_slice(&rest.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&self.handler.to_le_bytes());
        out.extend_from_slice(&self.client.port().to_le_bytes());
        out.extend_from_slice(&u16::try_from(self.params.len()).ok()?.to_le_bytes());
        for part in parts {
            out.extend_from_slice(&len32(part.len())?);
        }
        out.extend_from_slice(&len32(headers_len)?);
        out.extend_from_slice(&len32(body_len)?);
        out.extend_from_slice(&len32(held_len)?);
        for param in self.params {
            out.extend_from_slice(&len32(param.len())?);
        }
        for part in parts {
            out.extend_from_slice(part);
        }
        for param in self.params {
            out.extend_from_slice(param.as_bytes());
        }
        for (name, value) in self.headers {
            out.extend_from_slice(&len32(name.as_str().len())?);
            out.extend_from_slice(&len32(value.len())?);
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        if held_len == 0 {
            for chunk in self.body {
                out.extend_from_slice(chunk);
            }
        }
        Some(out)
    }
}

/// A response in the layout `sufast_respond` reads, for Rust callers (a
/// handler thread written in Rust, the tests).
pub fn encode_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = status.to_le_bytes().to_vec();
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (name, value) in headers {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// Reads a handler's response, refusing what the server cannot send.
pub fn decode_response(bytes: &[u8]) -> Result<StaticResponse, String> {
    let mut reader = Reader(bytes);
    let status = reader.u16().ok_or("it is shorter than its status")?;
    let status = match status {
        200..=599 => StatusCode::from_u16(status).map_err(|e| e.to_string())?,
        _ => return Err(format!("status must be between 200 and 599, got {status}")),
    };
    let count = reader
        .u32()
        .ok_or("it is cut off before its header count")?;
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        let (name, value) = reader.pair().ok_or("it is cut off inside its headers")?;
        let shown = String::from_utf8_lossy(name);
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("header name {shown:?} is not a valid HTTP header name"))?;
        if is_managed_header(&name) {
            return Err(format!(
                "header {shown:?} is set by the server and cannot be given"
            ));
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| {
            format!("header {shown:?} has a value with CR, LF or another control character")
        })?;
        headers.append(name, value);
    }
    let body = reader.0;
    if matches!(status.as_u16(), 204 | 304) && !body.is_empty() {
        return Err(format!("status {} cannot carry a body", status.as_u16()));
    }
    Ok(StaticResponse {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }

    fn pair(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let name = self.u32()? as usize;
        let value = self.u32()? as usize;
        Some((self.bytes(name)?, self.bytes(value)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encode_response as response;

    #[test]
    fn responses_decode_with_repeated_headers() {
        let r = decode_response(&response(
            201,
            &[("Set-Cookie", "a=1"), ("set-cookie", "b=2")],
            b"\x00body",
        ))
        .unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(r.body, &b"\x00body"[..]);
    }

    #[test]
    fn malformed_responses_are_errors() {
        let cases: [(Vec<u8>, &str); 6] = [
            (vec![200], "shorter"),
            (response(99, &[], b""), "between 200 and 599"),
            (
                response(200, &[("X A", "1")], b""),
                "not a valid HTTP header name",
            ),
            (response(200, &[("X-A", "1\r\nX-B: 2")], b""), "CR, LF"),
            (
                response(200, &[("Content-Length", "1")], b""),
                "set by the server",
            ),
            (response(204, &[], b"x"), "cannot carry a body"),
        ];
        for (bytes, needle) in cases {
            let err = decode_response(&bytes).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let mut cut = response(200, &[("X-A", "1")], b"");
        cut.truncate(cut.len() - 1);
        assert!(decode_response(&cut).unwrap_err().contains("cut off"));
    }

    #[test]
    fn records_follow_the_documented_layout() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let params = ["42".to_owned()];
        let parts = RequestParts {
            handler: 3,
            method: "GET",
            path: "/u/42",
            query: "v=1",
            client: &Client {
                peer: Some("10.0.0.1:9".parse().unwrap()),
                forwarded: Some(("127.0.0.1".to_owned(), 5000)),
                scheme: "https",
            },
            params: &params,
            headers: &headers,
            body: &[Bytes::from_static(b"x"), Bytes::from_static(b"yz")],
            streamed: false,
        };
        let record = parts.encode(9).unwrap();
        let u32_at = |i: usize| u32::from_le_bytes(record[i..i + 4].try_into().unwrap());
        assert_eq!(u32_at(0) as usize, record.len() - 4);
        assert_eq!(u64::from_le_bytes(record[4..12].try_into().unwrap()), 9);
        assert_eq!(u32_at(12), 3);
        assert_eq!(u16::from_le_bytes([record[16], record[17]]), 5000);
        assert_eq!(u16::from_le_bytes([record[18], record[19]]), 1);
        let lens: Vec<u32> = (0..9).map(|i| u32_at(20 + 4 * i)).collect();
        assert_eq!(lens, [3, 5, 3, 9, 5, 2 * (8 + 3 + 1), 3, 0, 2]);
        let tail = &record[FIXED + 4..];
        assert!(tail.starts_with(b"GET/u/42v=1127.0.0.1https42"));
        assert!(tail.ends_with(b"x-a1\x03\x00\x00\x00\x01\x00\x00\x00x-a2xyz"));
    }

    #[test]
    fn a_body_past_the_inline_size_is_held_out_of_the_record() {
        let headers = HeaderMap::new();
        let client = Client {
            peer: Some("10.0.0.1:9".parse().unwrap()),
            forwarded: None,
            scheme: "http",
        };
        let body = [
            Bytes::from(vec![b'a'; INLINE_BODY]),
            Bytes::from_static(b"b"),
        ];
        let mut parts = RequestParts {
            handler: 1,
            method: "POST",
            path: "/",
            query: "",
            client: &client,
            params: &[],
            headers: &headers,
            body: &body[..1],
            streamed: false,
        };
        assert!(!parts.holds_body(), "exactly INLINE_BODY bytes ride along");
        assert_eq!(
            parts.encode(1).unwrap().len(),
            FIXED + 4 + 1 + 8 + 4 + INLINE_BODY
        );
        parts.body = &body;
        assert!(parts.holds_body());
        let record = parts.encode(2).unwrap();
        let u32_at = |i: usize| u32::from_le_bytes(record[i..i + 4].try_into().unwrap());
        assert_eq!(
            (u32_at(20 + 4 * 6), u32_at(20 + 4 * 7)),
            (0, INLINE_BODY as u32 + 1)
        );
        assert_eq!(record.len(), FIXED + 4 + 1 + 8 + 4, "no body bytes");
    }
}
