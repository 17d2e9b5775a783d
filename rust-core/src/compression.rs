//! Response compression, as Starlette's `GZipMiddleware` does it, by the
//! server: gzip for a client whose `Accept-Encoding` takes it, for a
//! response whose type compresses and whose body is at least the app's
//! `minimum_size`. A stored response is compressed once, when its table is
//! loaded, so serving its variant costs one header check; a cached one
//! once per render; a handler's once per request, on the worker for a
//! body up to [`INLINE_LIMIT`] and off it beyond. Every response that
//! could have been compressed says `Vary: Accept-Encoding`, compressed or
//! not. Files routes are not touched: they send precompressed siblings of
//! their own.

use std::cell::RefCell;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use flate2::{Compress, FlushCompress, Status};

use crate::routes::StaticResponse;

/// The smallest body compressed unless told otherwise: Starlette's.
pub(crate) const DEFAULT_MINIMUM_SIZE: usize = 500;

/// The gzip level unless told otherwise: zlib's own default, nearly the
/// size of 9 on the small bodies of an API at a fraction of its time.
pub(crate) const DEFAULT_LEVEL: u32 = 6;

/// A made body up to this size is compressed on the worker that answers
/// (tens of microseconds); a larger one on tokio's blocking threads, so
/// that it does not hold up the other requests of that worker.
const INLINE_LIMIT: usize = 64 * 1024;

/// An app's compression settings (the `"compression"` field of `"@app"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    minimum_size: usize,
    level: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            minimum_size: DEFAULT_MINIMUM_SIZE,
            level: DEFAULT_LEVEL,
        }
    }
}

impl Compression {
    /// Settings with a gzip `level` from 1 (fastest) to 9 (smallest).
    pub fn new(minimum_size: usize, level: u32) -> Result<Self, String> {
        if !(1..=9).contains(&level) {
            return Err(format!("level must be an integer from 1 to 9, got {level}"));
        }
        Ok(Compression {
            minimum_size,
            level,
        })
    }

    pub fn minimum_size(&self) -> usize {
        self.minimum_size
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    /// Whether `response` may be compressed: a status with a whole body
    /// (not 204, 304 or a 206 part), a body of at least `minimum_size`
    /// bytes, no `Content-Encoding` of its own, a type that compresses.
    pub fn applies(&self, response: &StaticResponse) -> bool {
        let whole = !matches!(
            response.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
        ) && !response.status.is_informational();
        whole
            && !response.body.is_empty()
            && response.body.len() >= self.minimum_size
            && !response.headers.contains_key(header::CONTENT_ENCODING)
            && response
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|value| compressible(value.as_bytes()))
    }

    /// Per request, before the request is handed on: what its client
    /// takes.
    pub fn negotiate(self, request: &HeaderMap) -> Negotiated {
        Negotiated {
            settings: self,
            gzip: accepts_gzip(request),
        }
    }

    /// Once, when a table is loaded (blocking is fine there): marks a
    /// stored response that could be compressed with `Vary` and gives its
    /// gzip variant, when that is smaller.
    pub fn variant(&self, response: &mut StaticResponse) -> Option<Box<StaticResponse>> {
        if !self.applies(response) {
            return None;
        }
        vary(&mut response.headers);
        let body = gzip(&response.body, self.level).filter(|gz| gz.len() < response.body.len())?;
        Some(Box::new(encoded(response.clone(), Bytes::from(body))))
    }

    /// Once per render of a cached response: its gzip body, made before
    /// any client asks for it. App-wide headers come later, per request;
    /// [`Negotiated::apply`] decides then.
    pub async fn ahead(&self, response: &StaticResponse) -> Gzipped {
        if !self.applies(response) {
            return Gzipped::NotYet;
        }
        match gzip_off_worker(response.body.clone(), self.level).await {
            Some(body) if body.len() < response.body.len() => Gzipped::Body(body),
            _ => Gzipped::NotSmaller,
        }
    }
}

/// What is known of a made response's gzip body before it is sent.
#[derive(Clone, Debug, Default)]
pub enum Gzipped {
    /// Nothing yet: compressed when sent, if it should be.
    #[default]
    NotYet,
    /// Made ahead (a cached response's, once per render).
    Body(Bytes),
    /// Tried ahead: gzip is not smaller, the body is sent as it is.
    NotSmaller,
}

/// An app's settings and what one request's client takes.
#[derive(Clone, Copy, Debug)]
pub struct Negotiated {
    pub settings: Compression,
    /// The client takes gzip, and does not prefer the body as it is.
    pub gzip: bool,
}

impl Negotiated {
    /// A response made for this request, its app-wide headers included,
    /// as sent: with `Vary` when it could be compressed, and gzipped when
    /// the client takes it and that is smaller. A failure to compress
    /// sends the body as it is.
    pub async fn apply(self, mut response: StaticResponse, ahead: Gzipped) -> StaticResponse {
        if !self.settings.applies(&response) {
            return response;
        }
        vary(&mut response.headers);
        if !self.gzip {
            return response;
        }
        let body = match ahead {
            Gzipped::Body(body) => body,
            Gzipped::NotSmaller => return response,
            Gzipped::NotYet => {
                match gzip_off_worker(response.body.clone(), self.settings.level).await {
                    Some(body) if body.len() < response.body.len() => body,
                    _ => return response,
                }
            }
        };
        encoded(response, body)
    }
}

/// `response` with `body`, its gzip encoding: `Content-Encoding` set and a
/// strong `ETag` made weak, since the bytes are no longer the ones it
/// names (as nginx does).
fn encoded(mut response: StaticResponse, body: Bytes) -> StaticResponse {
    let headers = &mut response.headers;
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    if let Some(etag) = headers.get(header::ETAG) {
        if !etag.as_bytes().starts_with(b"W/") {
            let weak = [b"W/", etag.as_bytes()].concat();
            match HeaderValue::from_bytes(&weak) {
                Ok(weak) => headers.insert(header::ETAG, weak),
                Err(_) => headers.remove(header::ETAG),
            };
        }
    }
    response.body = body;
    response
}

thread_local! {
    /// This thread's compressor and its level, reset between bodies:
    /// setting one up (its window and tables) costs more than gzipping a
    /// small body.
    static COMPRESSOR: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
}

/// `body` gzipped at `level`, in one call; `None` if that fails (it does
/// not, in memory, but the caller then sends the body as it is).
fn gzip(body: &[u8], level: u32) -> Option<Vec<u8>> {
    COMPRESSOR
        .try_with(|slot| {
            let mut slot = slot.try_borrow_mut().ok()?;
            let compressor = match &mut *slot {
                Some((kept, compressor)) if *kept == level => {
                    compressor.reset();
                    compressor
                }
                other => {
                    let fresh = Compress::new_gzip(flate2::Compression::new(level), 15);
                    &mut other.insert((level, fresh)).1
                }
            };
            let mut out = Vec::with_capacity(body.len() / 2 + 64);
            let start = compressor.total_in();
            loop {
                let read = usize::try_from(compressor.total_in() - start).ok()?;
                let rest = body.get(read..)?;
                let room = out.capacity() > out.len();
                let before = (compressor.total_in(), compressor.total_out());
                match compressor
                    .compress_vec(rest, &mut out, FlushCompress::Finish)
                    .ok()?
                {
                    Status::StreamEnd => return Some(out),
                    // No progress with room to write: give up, not loop.
                    _ if room && before == (compressor.total_in(), compressor.total_out()) => {
                        return None
                    }
                    Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
                }
            }
        })
        .ok()
        .flatten()
}

/// [`gzip`] on this worker for a body up to [`INLINE_LIMIT`], on a
/// blocking thread beyond.
async fn gzip_off_worker(body: Bytes, level: u32) -> Option<Bytes> {
    if body.len() <= INLINE_LIMIT {
        return gzip(&body, level).map(Bytes::from);
    }
    tokio::task::spawn_blocking(move || gzip(&body, level))
        .await
        .ok()
        .flatten()
        .map(Bytes::from)
}

/// Adds `Accept-Encoding` to `Vary` unless it is there (or `*` is):
/// joined to the values already there, in one line, as Starlette does.
pub fn vary(headers: &mut HeaderMap) {
    const NAME: &[u8] = b"Accept-Encoding";
    let mut listed = Vec::new();
    for value in headers.get_all(header::VARY) {
        let covered = value
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|name| name == b"*" || name.eq_ignore_ascii_case(NAME));
        if covered {
            return;
        }
        let value = value.as_bytes().trim_ascii();
        if !value.is_empty() {
            listed.push(value);
        }
    }
    if listed.is_empty() {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        return;
    }
    listed.push(NAME);
    match HeaderValue::from_bytes(&listed.join(&b", "[..])) {
        Ok(joined) => headers.insert(header::VARY, joined),
        Err(_) => headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding")),
    };
}

/// Whether the request's `Accept-Encoding` takes gzip (RFC 9110, 12.5.3):
/// `gzip` (or `x-gzip`), or else `*`, with a q-value above 0, not below
/// that of an explicit `identity`. Names are case-insensitive; an item
/// with a malformed q-value is ignored, a coding listed twice counts with
/// its lower q. No header: the body as it is.
pub fn accepts_gzip(request: &HeaderMap) -> bool {
    let (mut gzip, mut any, mut identity) = (None, None, None);
    for value in request.get_all(header::ACCEPT_ENCODING) {
        for item in value.as_bytes().split(|b| *b == b',') {
            let mut parts = item.split(|b| *b == b';');
            let coding = parts.next().unwrap_or_default().trim_ascii();
            let slot =
                if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                    &mut gzip
                } else if coding == b"*" {
                    &mut any
                } else if coding.eq_ignore_ascii_case(b"identity") {
                    &mut identity
                } else {
                    continue;
                };
            if let Some(q) = quality(parts) {
                *slot = Some(slot.map_or(q, |seen: u16| seen.min(q)));
            }
        }
    }
    let gzip = gzip.or(any).unwrap_or(0);
    gzip > 0 && identity.is_none_or(|identity| gzip >= identity)
}

/// The q-value among an item's parameters, in thousandths (1000 when
/// absent); `None` when it is malformed.
fn quality<'a>(params: impl Iterator<Item = &'a [u8]>) -> Option<u16> {
    for param in params {
        let mut pair = param.splitn(2, |b| *b == b'=');
        let name = pair.next().unwrap_or_default().trim_ascii();
        if name.eq_ignore_ascii_case(b"q") {
            return parse_q(pair.next()?.trim_ascii());
        }
    }
    Some(1000)
}

/// `0`, `0.` to `0.999`, `1`, `1.` to `1.000`, in thousandths.
fn parse_q(value: &[u8]) -> Option<u16> {
    let (whole, fraction) = match value.iter().position(|b| *b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = fraction
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Application types (after `application/`) whose bodies compress.
const APPLICATION: [&str; 16] = [
    "json",
    "javascript",
    "x-javascript",
    "ecmascript",
    "xml",
    "x-www-form-urlencoded",
    "graphql",
    "x-ndjson",
    "yaml",
    "x-yaml",
    "toml",
    "rtf",
    "wasm",
    "x-sh",
    "vnd.ms-fontobject",
    "x-font-ttf",
];

/// Image and font types that are not compressed already.
const IMAGE: [&str; 4] = ["svg+xml", "x-icon", "vnd.microsoft.icon", "bmp"];
const FONT: [&str; 4] = ["ttf", "otf", "collection", "sfnt"];

/// Whether a `Content-Type` value names a type whose bodies compress:
/// text (but an event stream, which is sent as it comes), JSON, XML,
/// JavaScript and their kin (`+json`, `+xml`), SVG, uncompressed fonts
/// and icons; not images, audio, video or archives, which are compressed
/// already. Case-insensitive; parameters are ignored.
pub fn compressible(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let Some(slash) = essence.iter().position(|b| *b == b'/') else {
        return false;
    };
    let (kind, subtype) = (&essence[..slash], &essence[slash + 1..]);
    let one_of = |names: &[&str]| {
        names
            .iter()
            .any(|name| subtype.eq_ignore_ascii_case(name.as_bytes()))
    };
    let ends_with = |suffix: &[u8]| {
        subtype.len() > suffix.len()
            && subtype[subtype.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    if kind.eq_ignore_ascii_case(b"text") {
        !subtype.eq_ignore_ascii_case(b"event-stream")
    } else if kind.eq_ignore_ascii_case(b"application") {
        one_of(&APPLICATION) || ends_with(b"+json") || ends_with(b"+xml")
    } else if kind.eq_ignore_ascii_case(b"image") {
        one_of(&IMAGE)
    } else if kind.eq_ignore_ascii_case(b"font") {
        one_of(&FONT)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn accepts(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        accepts_gzip(&headers)
    }

    #[test]
    fn accept_encoding_is_honoured_with_q_values_refusals_and_wildcards() {
        for yes in [
            "gzip",
            "GZip",
            "x-gzip",
            "gzip, deflate, br",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
            "gzip;q=0.001",
            "gzip ; q = 0.5",
            "gzip;Q=1.000",
            "*",
            "deflate, *;q=0.5",
            "gzip, identity",
            "identity;q=0.5, gzip",
            "gzip;level=1",
            "br, gzip;q=0.5, identity;q=0.5",
        ] {
            assert!(accepts(yes), "{yes}");
        }
        for no in [
            "",
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip;q=0.000",
            "GZIP; Q=0",
            "*;q=0",
            "gzip;q=0, *",
            "*, gzip;q=0",
            "gzip;q=0.5, identity",
            "gzip;q=0.5, identity;q=0.6",
            "gzip, gzip;q=0",
            // Malformed q-values: the item is ignored.
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.1234",
            "gzip;q=",
            "gzip;q=abc",
            "gzip;q=-1",
        ] {
            assert!(!accepts(no), "{no}");
        }
        // No header at all: the body as it is; several lines are one list.
        assert!(!accepts_gzip(&HeaderMap::new()));
        let mut lines = HeaderMap::new();
        lines.append(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        lines.append(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(accepts_gzip(&lines));
    }

    #[test]
    fn q_values_parse_as_the_rfc_writes_them() {
        let cases: [(&str, Option<u16>); 10] = [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.999", Some(999)),
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            (".5", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_q(value.as_bytes()), want, "{value}");
        }
    }

    #[test]
    fn text_json_xml_and_scripts_compress_media_and_archives_do_not() {
        for yes in [
            "text/html; charset=utf-8",
            "text/plain",
            "TEXT/CSS",
            "text/csv",
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/javascript",
            "application/xml",
            "application/problem+json",
            "application/vnd.api+json",
            "application/atom+xml",
            "application/xhtml+xml",
            "application/wasm",
            "image/svg+xml",
            "image/x-icon",
            "font/ttf",
        ] {
            assert!(compressible(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "json",
            "text/event-stream",
            "image/png",
            "image/jpeg",
            "image/webp",
            "audio/mpeg",
            "video/mp4",
            "application/zip",
            "application/gzip",
            "application/pdf",
            "application/octet-stream",
            "application/+json",
            "font/woff2",
            "font/woff",
            "multipart/form-data; boundary=x",
        ] {
            assert!(!compressible(no.as_bytes()), "{no}");
        }
    }

    fn response(content_type: &'static str, body: &str) -> StaticResponse {
        StaticResponse {
            status: StatusCode::OK,
            headers: HeaderMap::from_iter([(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            )]),
            body: Bytes::from(body.to_owned()),
        }
    }

    fn gunzip(body: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn what_applies_is_big_enough_whole_compressible_and_not_encoded_already() {
        let settings = Compression::new(10, 6).unwrap();
        assert!(settings.applies(&response("application/json", "0123456789")));
        assert!(!settings.applies(&response("application/json", "012345678")));
        assert!(!settings.applies(&response("image/png", "0123456789")));
        let mut own = response("text/plain", "0123456789");
        own.headers
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(!settings.applies(&own));
        for status in [204, 206, 304] {
            let mut part = response("text/plain", "0123456789");
            part.status = StatusCode::from_u16(status).unwrap();
            assert!(!settings.applies(&part), "{status}");
        }
        let mut untyped = response("text/plain", "0123456789");
        untyped.headers.remove(header::CONTENT_TYPE);
        assert!(!settings.applies(&untyped));
        // Even a minimum of 0 leaves an empty body alone.
        assert!(!Compression::new(0, 6)
            .unwrap()
            .applies(&response("text/plain", "")));
        assert!(Compression::new(5, 0).is_err());
        assert!(Compression::new(5, 10).is_err());
    }

    #[test]
    fn a_stored_variant_is_gzip_with_vary_joined_and_a_weak_etag() {
        let body = "hello ".repeat(100);
        let mut plain = response("text/plain", &body);
        plain
            .headers
            .insert(header::VARY, HeaderValue::from_static("Origin"));
        plain
            .headers
            .insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        let variant = Compression::default().variant(&mut plain).unwrap();
        assert_eq!(plain.headers[header::VARY], "Origin, Accept-Encoding");
        assert_eq!(plain.headers[header::ETAG], "\"v1\"");
        assert!(!plain.headers.contains_key(header::CONTENT_ENCODING));
        assert_eq!(variant.headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(variant.headers[header::VARY], "Origin, Accept-Encoding");
        assert_eq!(variant.headers[header::ETAG], "W/\"v1\"");
        assert_eq!(gunzip(&variant.body), body);
        // Too small: no variant and no Vary; not smaller: Vary alone.
        let mut small = response("text/plain", "hi");
        assert!(Compression::default().variant(&mut small).is_none());
        assert!(!small.headers.contains_key(header::VARY));
        let mut noise = response("text/plain", "q7#Zx!");
        assert!(Compression::new(1, 6)
            .unwrap()
            .variant(&mut noise)
            .is_none());
        assert_eq!(noise.headers[header::VARY], "Accept-Encoding");
    }

    #[test]
    fn the_threads_compressor_is_reset_between_bodies_and_levels() {
        let bodies = [
            "a".repeat(5000),
            String::new(),
            "hello, world".to_owned(),
            (0..20_000).map(|n| format!("{n},")).collect(),
        ];
        for level in [6, 6, 1, 9, 6] {
            for body in &bodies {
                let zipped = gzip(body.as_bytes(), level).unwrap();
                assert_eq!(gunzip(&zipped), *body, "level {level}");
            }
        }
    }

    #[test]
    fn vary_is_added_once_and_joins_what_is_there() {
        let cases: [(&[&'static str], &str); 5] = [
            (&[], "Accept-Encoding"),
            (&["Origin"], "Origin, Accept-Encoding"),
            (&["Origin", "Cookie"], "Origin, Cookie, Accept-Encoding"),
            (&["origin, accept-encoding"], "origin, accept-encoding"),
            (&["*"], "*"),
        ];
        for (before, after) in cases {
            let mut headers = HeaderMap::new();
            for value in before {
                headers.append(header::VARY, HeaderValue::from_static(value));
            }
            vary(&mut headers);
            let got: Vec<_> = headers.get_all(header::VARY).iter().collect();
            assert_eq!(got, [after], "{before:?}");
        }
    }

    #[tokio::test]
    async fn a_made_response_is_compressed_inline_or_off_the_worker() {
        let settings = Compression::default();
        for size in [1_000, INLINE_LIMIT + 1] {
            let body: String = "{\"k\": 1}, ".repeat(size / 10 + 1);
            let wants = settings.negotiate(&HeaderMap::from_iter([(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("gzip"),
            )]));
            let sent = wants
                .apply(response("application/json", &body), Gzipped::NotYet)
                .await;
            assert_eq!(sent.headers[header::CONTENT_ENCODING], "gzip");
            assert_eq!(sent.headers[header::VARY], "Accept-Encoding");
            assert_eq!(gunzip(&sent.body), body);
            // A client that does not take it gets the body, with Vary.
            let plain = settings
                .negotiate(&HeaderMap::new())
                .apply(response("application/json", &body), Gzipped::NotYet)
                .await;
            assert_eq!(plain.body, body.as_bytes());
            assert_eq!(plain.headers[header::VARY], "Accept-Encoding");
        }
        // A body made ahead is used as it is.
        let wants = Negotiated {
            settings,
            gzip: true,
        };
        let ahead = Gzipped::Body(Bytes::from_static(b"made ahead"));
        let sent = wants
            .apply(response("text/plain", &"x".repeat(600)), ahead)
            .await;
        assert_eq!(sent.body, "made ahead");
        let sent = wants
            .apply(
                response("text/plain", &"x".repeat(600)),
                Gzipped::NotSmaller,
            )
            .await;
        assert!(!sent.headers.contains_key(header::CONTENT_ENCODING));
    }
}
