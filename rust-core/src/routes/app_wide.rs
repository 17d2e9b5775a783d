//! The app-wide section of a route table, `"@app"`: headers every response
//! carries, a CORS policy, response compression, the proxies whose
//! forwarding headers are trusted, and the handlers (if any) that answer
//! requests no route takes instead of the server's own 404 and 405.
//! Whatever does not depend on the request is merged into each stored
//! response once, when the table is built; a request to a stored response
//! then costs nothing more, or one `Origin` lookup when the policy names
//! origins (and one `Accept-Encoding` check when it has a gzip variant).
//!
//! ```json
//! {"@app": {"headers": {"X-Powered-By": "sufast"},
//!           "cors": {"allow_origins": ["https://example.com"]},
//!           "compression": {"minimum_size": 500, "level": 6},
//!           "forwarded_allow_ips": ["127.0.0.1", "10.0.0.0/8"],
//!           "not_found_handler": 7, "method_not_allowed_handler": 8},
//!  "GET": {"/": "{}"}}
//! ```
//!
//! A request to a path no route has goes to `not_found_handler` as a
//! dynamic request with no parameters; one whose path has routes for
//! other methods goes to `method_not_allowed_handler` with one parameter,
//! the `Allow` value the 405 would carry. Without them the server answers
//! itself, with no handler involved.
//!
//! `compression` (or `null`, the default: off) gzips responses for the
//! clients that take it ([`crate::compression`]): `minimum_size`, the
//! smallest body compressed, in bytes (default 500); `level`, from 1 to 9
//! (default 6). `{}` is the defaults. A stored response is compressed
//! here, once, after the app-wide headers are merged into it.

use axum::http::{HeaderMap, HeaderValue};

use super::cors::Cors;
use super::forwarded::{Client, Trust};
use super::json::Json;
use super::spec::{self, StaticResponse};
use crate::compression::{self, Compression};

/// The table's key for the section: `@` cannot appear in an HTTP method.
pub const KEY: &str = "@app";

const FIELDS: &str = "headers, cors, compression, forwarded_allow_ips, not_found_handler, \
                      method_not_allowed_handler";

/// A validated app-wide section; the default adds nothing.
#[derive(Debug, Default)]
pub struct AppWide {
    /// Sent on every response that does not set the same name itself.
    headers: HeaderMap,
    cors: Option<Cors>,
    compression: Option<Compression>,
    trust: Trust,
    not_found: Option<u32>,
    method_not_allowed: Option<u32>,
}

impl AppWide {
    /// Parses the value of the table's `"@app"` key.
    pub fn parse(value: &Json) -> Result<Self, String> {
        let Json::Object(fields) = value else {
            return Err(format!(
                "must be an object with {FIELDS}, got {}",
                value.kind()
            ));
        };
        let mut app = AppWide::default();
        for (field, value) in spec::no_repeats(fields)? {
            match field.as_str() {
                "headers" => {
                    app.headers =
                        spec::parse_headers(value).map_err(|why| format!("headers: {why}"))?
                }
                "cors" => {
                    app.cors = match value {
                        Json::Null => None,
                        _ => Some(Cors::parse(value).map_err(|why| format!("cors: {why}"))?),
                    }
                }
                "compression" => {
                    app.compression =
                        parse_compression(value).map_err(|why| format!("compression: {why}"))?
                }
                "forwarded_allow_ips" => {
                    app.trust =
                        Trust::parse(value).map_err(|why| format!("forwarded_allow_ips: {why}"))?
                }
                "not_found_handler" => app.not_found = handler_id(field, value)?,
                "method_not_allowed_handler" => app.method_not_allowed = handler_id(field, value)?,
                _ => return Err(format!("unknown field {field:?}; expected one of {FIELDS}")),
            }
        }
        if app.cors.is_some() {
            if let Some(name) = app.headers.keys().find(|name| Cors::sets(name)) {
                return Err(format!(
                    "headers: {:?} is set by cors; configure it there",
                    name.as_str()
                ));
            }
        }
        Ok(app)
    }

    /// The compression settings, when responses are compressed.
    pub fn compression(&self) -> Option<&Compression> {
        self.compression.as_ref()
    }

    /// The handler that answers requests to paths no route has, if any.
    pub fn not_found_handler(&self) -> Option<u32> {
        self.not_found
    }

    /// The handler that answers requests whose method the path's routes
    /// do not take, if any.
    pub fn method_not_allowed_handler(&self) -> Option<u32> {
        self.method_not_allowed
    }

    /// Once per stored response, when the table is built: the app-wide
    /// headers it does not set itself, and the CORS headers that do not
    /// depend on the request.
    pub fn prepare(&self, headers: &mut HeaderMap) {
        self.add_headers(headers);
        if let Some(cors) = &self.cors {
            cors.prepare(headers);
        }
    }

    /// Per request: who the client is, from a trusted proxy's headers when
    /// the peer is one; the peer itself at once when none is trusted.
    pub fn client(&self, peer: Option<std::net::SocketAddr>, request: &HeaderMap) -> Client {
        if self.trust.is_empty() {
            return Client::direct(peer);
        }
        self.trust.client(peer, request)
    }

    /// Per request, before the request is handed on: the origin its
    /// response must name, if any. `None` at once without CORS.
    pub fn allowed_origin(&self, request: &HeaderMap) -> Option<HeaderValue> {
        self.cors.as_ref()?.allowed_origin(request)
    }

    /// Per request, to a response that `prepare` has seen: names the
    /// allowed origin.
    pub fn finish_prepared(&self, headers: &mut HeaderMap, origin: Option<HeaderValue>) {
        if let (Some(cors), Some(origin)) = (&self.cors, origin) {
            cors.allow(headers, origin);
        }
    }

    /// Per request, to a response made for that request alone (a handler's,
    /// a cached one, the server's own errors).
    pub fn finish(&self, headers: &mut HeaderMap, origin: Option<HeaderValue>) {
        self.prepare(headers);
        self.finish_prepared(headers, origin);
    }

    /// The server's own answer to a CORS preflight, app-wide headers
    /// included; `None` without CORS or when `request` is not a preflight.
    /// Only for OPTIONS requests.
    pub fn preflight(&self, request: &HeaderMap) -> Option<StaticResponse> {
        let mut response = self.cors.as_ref()?.preflight(request)?;
        self.add_headers(&mut response.headers);
        Some(response)
    }

    /// The app-wide headers `headers` lacks, each with all its values: a
    /// response's own header wins, repeats such as `Set-Cookie` included.
    fn add_headers(&self, headers: &mut HeaderMap) {
        for name in self.headers.keys() {
            if !headers.contains_key(name) {
                for value in self.headers.get_all(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
    }
}

const COMPRESSION_FIELDS: &str = "minimum_size, level";

/// The `compression` field: settings, or `null` for none.
fn parse_compression(value: &Json) -> Result<Option<Compression>, String> {
    let fields = match value {
        Json::Null => return Ok(None),
        Json::Object(fields) => fields,
        other => {
            return Err(format!(
                "must be an object with {COMPRESSION_FIELDS}, or null, got {}",
                other.kind()
            ))
        }
    };
    let mut minimum_size = compression::DEFAULT_MINIMUM_SIZE;
    let mut level = compression::DEFAULT_LEVEL;
    for (field, value) in spec::no_repeats(fields)? {
        match field.as_str() {
            "minimum_size" => {
                minimum_size = match value {
                    Json::Int(n) => u32::try_from(*n).ok().map(|n| n as usize),
                    _ => None,
                }
                .ok_or_else(|| {
                    format!(
                        "minimum_size must be an integer number of bytes from 0 to {}, got {}",
                        u32::MAX,
                        spec::describe(value)
                    )
                })?
            }
            "level" => {
                level = match value {
                    Json::Int(n @ 1..=9) => *n as u32,
                    _ => {
                        return Err(format!(
                            "level must be an integer from 1 to 9, got {}",
                            spec::describe(value)
                        ))
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown field {field:?}; expected one of {COMPRESSION_FIELDS}"
                ))
            }
        }
    }
    Compression::new(minimum_size, level).map(Some)
}

/// A handler id, or `null` for none.
fn handler_id(field: &str, value: &Json) -> Result<Option<u32>, String> {
    match value {
        Json::Null => Ok(None),
        Json::Int(n) if (0..=i128::from(u32::MAX)).contains(n) => Ok(Some(*n as u32)),
        other => Err(format!(
            "{field} must be a handler id (an integer from 0 to {}) or null, got {}",
            u32::MAX,
            other.kind()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Lookup, RouteTable, Serve};
    use axum::http::{header, Method};

    fn stored(table: &RouteTable, path: &str) -> HeaderMap {
        match table.lookup(&Method::GET, path) {
            Lookup::Found(route, _) => match &route.serve {
                Serve::Static(response, _) => response.headers.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stored_responses_get_the_headers_once_and_a_route_header_wins() {
        let table = RouteTable::from_json(
            br#"{"@app": {"headers": [["X-Powered-By", "sufast"], ["Set-Cookie", "a=1"],
                                      ["Set-Cookie", "b=2"], ["Cache-Control", "no-store"]]},
                 "GET": {"/": "{}",
                         "/own": {"headers": {"Cache-Control": "max-age=60", "Set-Cookie": "c=3"}},
                         "/d": {"kind": "dynamic", "handler": 1}}}"#,
        )
        .unwrap();
        let plain = stored(&table, "/");
        assert_eq!(plain["x-powered-by"], "sufast");
        assert_eq!(plain.get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!(plain[header::CONTENT_TYPE], "application/json");
        let own = stored(&table, "/own");
        assert_eq!(own["x-powered-by"], "sufast");
        let cookies: Vec<_> = own.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["c=3"]);
        assert_eq!(own[header::CACHE_CONTROL], "max-age=60");

        // A response made per request gets the same, also with nothing set.
        let mut made = HeaderMap::new();
        made.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
        table.app_wide().finish(&mut made, None);
        assert_eq!(made[header::CACHE_CONTROL], "private");
        assert_eq!(made["x-powered-by"], "sufast");
    }

    #[test]
    fn with_compression_stored_responses_get_their_gzip_variant_once() {
        let big = "x".repeat(600);
        let json = format!(
            r#"{{"@app": {{"cors": {{"allow_origins": ["https://a.example"]}},
                          "compression": {{"minimum_size": 100}}}},
                 "GET": {{"/big": {{"content_type": "text/plain", "body": "{big}"}},
                         "/small": {{"content_type": "text/plain", "body": "x"}},
                         "/png": {{"content_type": "image/png", "body": "{big}"}}}}}}"#
        );
        let table = RouteTable::from_json(json.as_bytes()).unwrap();
        assert_eq!(
            table.app_wide().compression(),
            Some(&Compression::new(100, compression::DEFAULT_LEVEL).unwrap())
        );
        let variant = |path| match table.lookup(&Method::GET, path) {
            Lookup::Found(route, _) => match &route.serve {
                Serve::Static(response, gzip) => (response.headers.clone(), gzip.clone()),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        let (plain, gzip) = variant("/big");
        let gzip = gzip.unwrap();
        assert_eq!(plain[header::VARY], "Origin, Accept-Encoding");
        assert_eq!(gzip.headers[header::VARY], "Origin, Accept-Encoding");
        assert_eq!(gzip.headers[header::CONTENT_ENCODING], "gzip");
        assert!(gzip.body.len() < 100);
        for path in ["/small", "/png"] {
            let (plain, gzip) = variant(path);
            assert!(gzip.is_none(), "{path}");
            assert_eq!(plain[header::VARY], "Origin", "{path}");
        }
        // Off by default; `{}` is the defaults, `null` off.
        let off = RouteTable::from_json(br#"{"@app": {"compression": null}}"#).unwrap();
        assert!(off.app_wide().compression().is_none());
        let on = RouteTable::from_json(br#"{"@app": {"compression": {}}}"#).unwrap();
        assert_eq!(on.app_wide().compression(), Some(&Compression::default()));
    }

    #[test]
    fn unmatched_requests_go_to_the_handlers_named() {
        let table = RouteTable::from_json(
            br#"{"@app": {"not_found_handler": 7, "method_not_allowed_handler": null}, "GET": {"/": "{}"}}"#,
        )
        .unwrap();
        assert_eq!(table.app_wide().not_found_handler(), Some(7));
        assert_eq!(table.app_wide().method_not_allowed_handler(), None);
        for bad in [r#""7""#, "-1", "4294967296", "1.5"] {
            let json = format!(r#"{{"@app": {{"not_found_handler": {bad}}}}}"#);
            let error = RouteTable::from_json(json.as_bytes()).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("not_found_handler must be a handler id"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn without_the_section_nothing_is_added() {
        let table = RouteTable::from_json(br#"{"GET": {"/": "{}"}}"#).unwrap();
        assert_eq!(stored(&table, "/").len(), 1);
        let app = table.app_wide();
        let mut made = HeaderMap::new();
        let request = HeaderMap::from_iter([(
            header::ORIGIN,
            HeaderValue::from_static("https://a.example"),
        )]);
        assert!(app.allowed_origin(&request).is_none());
        assert!(app.preflight(&request).is_none());
        app.finish(&mut made, None);
        assert!(made.is_empty());
    }

    #[test]
    fn a_preflight_carries_the_app_headers_but_keeps_its_own() {
        let app = AppWide::parse(
            &super::super::json::parse(
                br#"{"headers": {"X-Powered-By": "sufast", "Content-Type": "text/html"},
                     "cors": {"allow_origins": ["*"]}}"#,
            )
            .unwrap(),
        )
        .unwrap();
        let request = HeaderMap::from_iter([
            (
                header::ORIGIN,
                HeaderValue::from_static("https://a.example"),
            ),
            (
                header::ACCESS_CONTROL_REQUEST_METHOD,
                HeaderValue::from_static("GET"),
            ),
        ]);
        let response = app.preflight(&request).unwrap();
        assert_eq!(response.headers["x-powered-by"], "sufast");
        assert_eq!(
            response.headers[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn every_bad_section_names_the_problem() {
        let cases = [
            (
                r#"{"@app": []}"#,
                r#"app-wide section "@app": must be an object"#,
            ),
            (r#"{"@app": {}, "@app": {}}"#, "given twice"),
            (r#"{"@ap": {}}"#, r#"the app-wide section is "@app""#),
            (
                r#"{"@app": {"header": {}}}"#,
                r#"unknown field "header"; expected one of headers, cors"#,
            ),
            (r#"{"@app": {"headers": {}, "headers": {}}}"#, "given twice"),
            (
                r#"{"@app": {"headers": {"X A": "1"}}}"#,
                "headers: header name \"X A\" is not a valid",
            ),
            (r#"{"@app": {"headers": {"X-A": "1\n"}}}"#, "CR, LF"),
            (
                r#"{"@app": {"headers": {"Content-Length": "1"}}}"#,
                "set by the server",
            ),
            (r#"{"@app": {"headers": "X-A: 1"}}"#, "headers must be"),
            (
                r#"{"@app": {"headers": {"Access-Control-Allow-Origin": "*"}, "cors": {}}}"#,
                r#""access-control-allow-origin" is set by cors"#,
            ),
            (r#"{"@app": {"cors": []}}"#, "cors: must be an object"),
            (
                r#"{"@app": {"cors": {"max_age": "1"}}}"#,
                "cors: max_age must be",
            ),
            (
                r#"{"@app": {"compression": true}}"#,
                "compression: must be an object with minimum_size, level, or null, got a boolean",
            ),
            (
                r#"{"@app": {"compression": {"level": 0}}}"#,
                "compression: level must be an integer from 1 to 9, got 0",
            ),
            (
                r#"{"@app": {"compression": {"level": "6"}}}"#,
                r#"compression: level must be an integer from 1 to 9, got "6""#,
            ),
            (
                r#"{"@app": {"compression": {"minimum_size": -1}}}"#,
                "compression: minimum_size must be an integer number of bytes from 0 to 4294967295, got -1",
            ),
            (
                r#"{"@app": {"compression": {"min_size": 1}}}"#,
                r#"compression: unknown field "min_size"; expected one of minimum_size, level"#,
            ),
            (
                r#"{"@app": {"compression": {"level": 1, "level": 2}}}"#,
                "given twice",
            ),
        ];
        for (json, needle) in cases {
            let err = RouteTable::from_json(json.as_bytes()).unwrap_err();
            assert!(err.message.contains(needle), "{json}: {}", err.message);
            assert_eq!(
                err.code,
                crate::error::SufastErrorCode::InvalidRoutes,
                "{json}"
            );
        }
        // Without cors, the headers are the app's to set.
        RouteTable::from_json(
            br#"{"@app": {"headers": {"Access-Control-Allow-Origin": "*"}, "cors": null}}"#,
        )
        .unwrap();
    }
}
