//! The route-table JSON format and its validation. Every rule broken is an
//! error that names the route, so that a caller can fix the table.
//!
//! ```json
//! {"GET": {"/": "{\"hello\":\"world\"}",
//!          "/page": {"status": 200, "content_type": "text/html",
//!                    "headers": [["Cache-Control", "no-store"]],
//!                    "body": "<h1>hi</h1>"},
//!          "/users/{id:int}": {"kind": "dynamic", "handler": 1},
//!          "/stats": {"kind": "cached", "handler": 2, "ttl_ms": 5000}},
//!  "POST": {"/upload": {"kind": "dynamic", "handler": 3, "form": true}}}
//! ```
//!
//! `"form": true` marks a handler that reads a form: a form body is parsed
//! before it is asked, and it gets a form record ([`crate::forms`]).
//!
//! `{"kind": "files", "directory": "/abs/dir", "html": true}`, a GET route
//! whose path ends with a `{name:path}` segment, serves a directory
//! ([`crate::files`]).
//!
//! Beside the methods, the key `"@app"` holds the app-wide section
//! ([`super::app_wide`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use base64::Engine;

use super::app_wide::{self, AppWide};
use super::json::{self, Json};
use super::pattern::{self, Pattern};
use crate::error::{Error, SufastErrorCode};

/// The methods a route table may name, in the order `Allow` lists them.
pub const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

const FIELDS: &str =
    "status, content_type, headers, body, body_base64, kind, handler, ttl_ms, max_entries";

/// Fields that describe a stored response; a handler's route has none.
const RESPONSE_FIELDS: [&str; 5] = ["status", "content_type", "headers", "body", "body_base64"];

/// How many keys a cached route keeps unless told otherwise.
pub const DEFAULT_CACHE_ENTRIES: usize = 1024;

/// Headers the server owns: a route that sets them would corrupt framing.
const MANAGED_HEADERS: [HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
];

/// Whether the server owns this header (framing, connection management).
pub fn is_managed_header(name: &HeaderName) -> bool {
    MANAGED_HEADERS.contains(name)
}

/// A response stored in full, served without running any handler.
#[derive(Clone, Debug)]
pub struct StaticResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How a dynamic route's handler gets the request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Read whole, in the record (or held for `sufast_take_body`).
    Whole,
    /// Parsed as a form as it arrives (`"form": true`).
    Form,
    /// Handed over as it arrives, read with `sufast_stream_read`
    /// (`"stream": true`).
    Stream,
}

/// What the server does for a route.
#[derive(Clone, Debug)]
pub enum Action {
    /// Send the stored response.
    Static(StaticResponse),
    /// Ask the handler with this id for every request.
    /// `form`: the handler reads a form, parsed before it is asked.
    Dynamic { handler: u32, body: BodyKind },
    /// Take WebSocket connections for the handler with this id (see
    /// [`crate::websocket`]).
    WebSocket { handler: u32 },
    /// Ask the handler, then keep its response per path and query for
    /// `ttl`, at most `max_entries` of them.
    Cached {
        handler: u32,
        ttl: Duration,
        /// The oldest copy sent while it is re-rendered (2 x `ttl` unless
        /// the route says otherwise).
        stale: Duration,
        max_entries: usize,
    },
    /// Serve the files of `directory` (canonical), under the route's last
    /// parameter; `html`: as Starlette's `StaticFiles(html=True)`.
    Files { directory: PathBuf, html: bool },
}

/// One validated route from the table.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub method: Method,
    pub pattern: Pattern,
    pub action: Action,
}

impl RouteSpec {
    /// `GET /users/{id}`: how messages name a route.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.pattern.source)
    }
}

/// A whole route table as parsed: its routes and its app-wide section.
#[derive(Debug)]
pub struct TableSpec {
    pub routes: Vec<RouteSpec>,
    pub app: AppWide,
}

/// Parses and validates a whole route table.
pub fn parse_table(bytes: &[u8]) -> Result<TableSpec, Error> {
    let doc = json::parse(bytes).map_err(|e| {
        Error::new(
            SufastErrorCode::InvalidJson,
            format!("route table is not valid JSON: {e}"),
        )
    })?;
    let Json::Object(methods) = doc else {
        return Err(Error::routes(format!(
            "route table must be a JSON object mapping methods to {{path: route}}, got {}",
            doc.kind()
        )));
    };
    let mut specs = Vec::new();
    let mut app = None;
    for (method_name, paths) in methods {
        if method_name == app_wide::KEY {
            if app.is_some() {
                return Err(Error::routes(format!(
                    "the app-wide section {:?} is given twice",
                    app_wide::KEY
                )));
            }
            app = Some(AppWide::parse(&paths).map_err(|why| {
                Error::routes(format!("app-wide section {:?}: {why}", app_wide::KEY))
            })?);
            continue;
        }
        if method_name.starts_with('@') {
            return Err(Error::routes(format!(
                "unknown key {method_name:?}; the app-wide section is {:?}",
                app_wide::KEY
            )));
        }
        let method = parse_method(&method_name)?;
        let Json::Object(paths) = paths else {
            return Err(Error::routes(format!(
                "routes for {method} must be an object mapping paths to routes, got {}",
                paths.kind()
            )));
        };
        for (path, route) in paths {
            let name = format!("{method} {path}");
            let pattern = pattern::parse(&path)
                .map_err(|why| Error::routes(format!("route {name}: path {why}")))?;
            let action = parse_action(&route)
                .and_then(|action| fits(&method, &pattern, action))
                .map_err(|why| Error::routes(format!("route {name}: {why}")))?;
            specs.push(RouteSpec {
                method: method.clone(),
                pattern,
                action,
            });
        }
    }
    Ok(TableSpec {
        routes: specs,
        app: app.unwrap_or_default(),
    })
}

/// Checks what a route's kind asks of its method and path.
fn fits(method: &Method, pattern: &Pattern, action: Action) -> Result<Action, String> {
    if let Action::Files { .. } = action {
        if *method != Method::GET {
            return Err(format!(
                "a files route is a GET route (HEAD is answered with it), not {method}"
            ));
        }
        let last_only = match pattern.params.as_slice() {
            [param] => {
                param.convertor == pattern::Convertor::Path
                    && pattern
                        .source
                        .ends_with(&format!("/{{{}:path}}", param.name))
            }
            _ => false,
        };
        if !last_only {
            return Err(format!(
                "a files route's path must end with a {{name:path}} segment, its only parameter \
                 (\"/static/{{path:path}}\"), got {:?}",
                pattern.source
            ));
        }
    }
    Ok(action)
}

pub(super) fn parse_method(name: &str) -> Result<Method, Error> {
    if let Some(method) = METHODS.iter().find(|m| m.as_str() == name) {
        return Ok(method.clone());
    }
    let known: Vec<&str> = METHODS.iter().map(Method::as_str).collect();
    let hint = if METHODS
        .iter()
        .any(|m| m.as_str() == name.to_ascii_uppercase())
    {
        " (methods are upper case)"
    } else {
        ""
    };
    Err(Error::routes(format!(
        "unknown method {name:?}{hint}; expected one of {}",
        known.join(", ")
    )))
}

fn parse_action(route: &Json) -> Result<Action, String> {
    let json = HeaderValue::from_static("application/json");
    match route {
        Json::String(body) => Ok(Action::Static(StaticResponse {
            status: StatusCode::OK,
            headers: HeaderMap::from_iter([(header::CONTENT_TYPE, json)]),
            body: Bytes::from(body.clone()),
        })),
        Json::Object(fields) => match no_repeats(fields)?.iter().find(|(f, _)| f == "kind") {
            None => parse_rich(fields).map(Action::Static),
            Some((_, Json::String(kind))) if kind == "static" => {
                parse_rich(fields).map(Action::Static)
            }
            Some((_, Json::String(kind))) if kind == "files" => parse_files(fields),
            Some((_, kind)) => parse_handler(kind, fields),
        },
        other => Err(format!(
            "must be a string (the JSON body) or an object with {FIELDS}; got {}",
            other.kind()
        )),
    }
}

/// The fields of a route object, each given once.
pub(super) fn no_repeats(fields: &[(String, Json)]) -> Result<&[(String, Json)], String> {
    for (i, (field, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(f, _)| f == field) {
            return Err(format!("field {field:?} is given twice"));
        }
    }
    Ok(fields)
}

fn parse_rich(fields: &[(String, Json)]) -> Result<StaticResponse, String> {
    let mut status = StatusCode::OK;
    let mut content_type: Option<Option<HeaderValue>> = None;
    let mut headers = HeaderMap::new();
    let mut body: Option<Bytes> = None;
    let mut binary = false;
    for (field, value) in fields {
        match field.as_str() {
            // Only ever "static" here: the caller dispatched on it.
            "kind" => {}
            "status" => status = parse_status(value)?,
            "content_type" => {
                content_type = Some(match value {
                    Json::Null => None,
                    Json::String(s) => Some(header_value("content_type", s)?),
                    other => {
                        return Err(format!(
                            "content_type must be a string or null, got {}",
                            other.kind()
                        ))
                    }
                })
            }
            "headers" => headers = parse_headers(value)?,
            "body" | "body_base64" => {
                if body.is_some() {
                    return Err("give either body or body_base64, not both".into());
                }
                let Json::String(text) = value else {
                    return Err(format!("{field} must be a string, got {}", value.kind()));
                };
                binary = field == "body_base64";
                body = Some(if binary {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| format!("body_base64 is not valid base64: {e}"))?
                        .into()
                } else {
                    Bytes::from(text.clone())
                });
            }
            _ => return Err(format!("unknown field {field:?}; expected one of {FIELDS}")),
        }
    }
    let body = body.unwrap_or_default();
    if matches!(status.as_u16(), 204 | 304) && !body.is_empty() {
        return Err(format!("status {} cannot carry a body", status.as_u16()));
    }
    match content_type {
        Some(_) if headers.contains_key(header::CONTENT_TYPE) => {
            return Err("content type is given both as content_type and in headers".into())
        }
        Some(Some(value)) => {
            headers.insert(header::CONTENT_TYPE, value);
        }
        Some(None) => {}
        None if headers.contains_key(header::CONTENT_TYPE) => {}
        None => {
            let default = if binary {
                "application/octet-stream"
            } else {
                "application/json"
            };
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(default));
        }
    }
    Ok(StaticResponse {
        status,
        headers,
        body,
    })
}

/// A directory served by the server: `{"kind": "files", "directory":
/// "/abs/dir", "html": false}`. The directory must exist now.
fn parse_files(fields: &[(String, Json)]) -> Result<Action, String> {
    let mut directory = None;
    let mut html = false;
    for (field, value) in fields {
        match (field.as_str(), value) {
            ("kind", _) => {}
            ("directory", Json::String(path)) => directory = Some(path.as_str()),
            ("directory", other) => {
                return Err(format!(
                    "directory must be a string (an absolute path), got {}",
                    other.kind()
                ))
            }
            ("html", Json::Bool(on)) => html = *on,
            ("html", other) => {
                return Err(format!(
                    "html must be true or false, got {}",
                    describe(other)
                ))
            }
            (f, _) if RESPONSE_FIELDS.contains(&f) => {
                return Err(format!(
                    "field {f:?} is not allowed on a route of kind \"files\": the files make the response"
                ))
            }
            (f, _) => {
                return Err(format!(
                    "unknown field {f:?} for kind \"files\"; expected directory, html"
                ))
            }
        }
    }
    let given = directory.ok_or("kind \"files\" needs a directory")?;
    let path = Path::new(given);
    if !path.is_absolute() {
        return Err(format!("directory {given:?} must be an absolute path"));
    }
    let directory = std::fs::canonicalize(path)
        .map_err(|why| format!("directory {given:?} cannot be served: {why}"))?;
    if !directory.is_dir() {
        return Err(format!("directory {given:?} is not a directory"));
    }
    Ok(Action::Files { directory, html })
}

/// A route served by a handler: `{"kind": "dynamic", "handler": 1}` or
/// `{"kind": "cached", "handler": 1, "ttl_ms": 5000, "max_entries": 100}`.
fn parse_handler(kind: &Json, fields: &[(String, Json)]) -> Result<Action, String> {
    let (cached, websocket) = match kind {
        Json::String(k) if k == "dynamic" => (false, false),
        Json::String(k) if k == "cached" => (true, false),
        Json::String(k) if k == "websocket" => (false, true),
        other => {
            return Err(format!(
            "kind must be \"static\", \"dynamic\", \"cached\", \"files\" or \"websocket\", got {}",
            describe(other)
        ))
        }
    };
    let mut handler = None;
    let mut ttl = None;
    let mut stale = None;
    let mut max_entries = None;
    let mut form = false;
    let mut stream = false;
    for (field, value) in fields {
        let number = |limit: i128| match value {
            Json::Int(n) if (0..=limit).contains(n) => Ok(*n),
            _ => Err(format!(
                "{field} must be an integer from 0 to {limit}, got {}",
                describe(value)
            )),
        };
        match field.as_str() {
            "kind" => {}
            "handler" => handler = Some(number(u32::MAX.into())? as u32),
            "stream" if !cached && !websocket => match value {
                Json::Bool(b) => stream = *b,
                other => {
                    return Err(format!(
                        "stream must be true or false, got {}",
                        describe(other)
                    ))
                }
            },
            "form" if !cached && !websocket => match value {
                Json::Bool(b) => form = *b,
                other => {
                    return Err(format!(
                        "form must be true or false, got {}",
                        describe(other)
                    ))
                }
            },
            "ttl_ms" if cached => {
                ttl = Some(Duration::from_millis(number(u32::MAX.into())? as u64))
            }
            "stale_ttl_ms" if cached => {
                stale = Some(Duration::from_millis(number(u32::MAX.into())? as u64))
            }
            "max_entries" if cached => match number(u32::MAX.into())? {
                0 => return Err("max_entries must be at least 1".into()),
                n => max_entries = Some(n as usize),
            },
            f if RESPONSE_FIELDS.contains(&f) => {
                let kind = describe(kind);
                return Err(format!(
                    "field {f:?} is not allowed on a route of kind {kind}: its handler makes the response"
                ));
            }
            _ => {
                return Err(format!(
                    "unknown field {field:?} for kind {}; expected handler{}",
                    describe(kind),
                    if cached {
                        ", ttl_ms, stale_ttl_ms, max_entries"
                    } else if websocket {
                        ""
                    } else {
                        ", form, stream"
                    }
                ))
            }
        }
    }
    let handler = handler.ok_or_else(|| format!("kind {} needs a handler id", describe(kind)))?;
    if websocket {
        return Ok(Action::WebSocket { handler });
    }
    if !cached {
        let body = match (form, stream) {
            (true, true) => {
                return Err("a route reads its body as a form or as a stream, not both".into())
            }
            (true, false) => BodyKind::Form,
            (false, true) => BodyKind::Stream,
            (false, false) => BodyKind::Whole,
        };
        return Ok(Action::Dynamic { handler, body });
    }
    let ttl = ttl.ok_or("kind \"cached\" needs ttl_ms")?;
    if ttl.is_zero() {
        return Err("ttl_ms must be at least 1".into());
    }
    let stale = stale.unwrap_or(ttl.saturating_mul(2));
    if stale < ttl {
        return Err("stale_ttl_ms must be at least ttl_ms".into());
    }
    Ok(Action::Cached {
        handler,
        ttl,
        stale,
        max_entries: max_entries.unwrap_or(DEFAULT_CACHE_ENTRIES),
    })
}

pub(super) fn describe(value: &Json) -> String {
    match value {
        Json::String(s) => format!("{s:?}"),
        Json::Int(n) => n.to_string(),
        other => other.kind().to_owned(),
    }
}

fn parse_status(value: &Json) -> Result<StatusCode, String> {
    match value {
        Json::Int(code @ 200..=599) => {
            StatusCode::from_u16(*code as u16).map_err(|e| format!("status {code}: {e}"))
        }
        Json::Int(code) => Err(format!("status must be between 200 and 599, got {code}")),
        other => Err(format!("status must be an integer, got {}", other.kind())),
    }
}

pub(super) fn parse_headers(value: &Json) -> Result<HeaderMap, String> {
    let pairs: Vec<(&str, &str)> = match value {
        Json::Object(members) => members
            .iter()
            .map(|(name, value)| match value {
                Json::String(v) => Ok((name.as_str(), v.as_str())),
                other => Err(format!(
                    "header {name:?} must have a string value, got {}",
                    other.kind()
                )),
            })
            .collect::<Result<_, _>>()?,
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::Array(pair) => match pair.as_slice() {
                    [Json::String(n), Json::String(v)] => Ok((n.as_str(), v.as_str())),
                    _ => Err("each header must be a [name, value] pair of strings".to_owned()),
                },
                other => Err(format!(
                    "each header must be a [name, value] pair, got {}",
                    other.kind()
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "headers must be an object or a list of [name, value] pairs, got {}",
                other.kind()
            ))
        }
    };
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
        if is_managed_header(&parsed) {
            return Err(format!(
                "header {name:?} is set by the server and cannot be given"
            ));
        }
        headers.append(parsed, header_value(name, value)?);
    }
    Ok(headers)
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        format!("header {name:?} has a value with CR, LF or another control character")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> StaticResponse {
        let mut specs = parse_table(json.as_bytes()).unwrap().routes;
        assert_eq!(specs.len(), 1);
        match specs.remove(0).action {
            Action::Static(response) => response,
            other => panic!("not static: {other:?}"),
        }
    }

    fn error(json: &str) -> Error {
        parse_table(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn seed_format_is_json_200() {
        let r = one(r#"{"GET": {"/": "{\"hello\":\"world\"}"}}"#);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.body, Bytes::from_static(br#"{"hello":"world"}"#));
    }

    #[test]
    fn bodies_are_kept_byte_exact() {
        let body = r#"{"n": 123456789012345678901234567890, "s": "héllo ✓ 😀", "f": 1.10}"#;
        let table = serde_json::json!({"GET": {"/": body}}).to_string();
        assert_eq!(one(&table).body, body.as_bytes());
    }

    #[test]
    fn rich_form_sets_status_type_headers_and_bytes() {
        let r = one(
            r#"{"POST": {"/x": {"status": 201, "content_type": "text/plain; charset=utf-8",
                "headers": [["Set-Cookie", "a=1"], ["set-cookie", "b=2"], ["X-Tag", "t"]],
                "body_base64": "AAH/"}}}"#,
        );
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        let cookies: Vec<_> = r.headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(r.headers["x-tag"], "t");
        assert_eq!(r.body, Bytes::from_static(&[0, 1, 255]));
    }

    #[test]
    fn rich_form_defaults() {
        let r = one(r#"{"GET": {"/": {}}}"#);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
        assert!(r.body.is_empty());
        let r = one(r#"{"GET": {"/": {"body_base64": ""}}}"#);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/octet-stream");
        let r = one(r#"{"GET": {"/": {"content_type": null, "body": "x"}}}"#);
        assert!(!r.headers.contains_key(header::CONTENT_TYPE));
        let r = one(r#"{"GET": {"/": {"headers": {"Content-Type": "text/csv"}}}}"#);
        assert_eq!(r.headers[header::CONTENT_TYPE], "text/csv");
    }

    #[test]
    fn handler_routes_name_their_handler_and_cache() {
        let specs = parse_table(
            br#"{"GET": {"/d": {"kind": "dynamic", "handler": 7},
                         "/c": {"kind": "cached", "handler": 8, "ttl_ms": 250},
                         "/b": {"kind": "cached", "handler": 9, "ttl_ms": 1, "max_entries": 3},
                         "/s": {"kind": "static", "body": "x"}}}"#,
        )
        .unwrap()
        .routes;
        let actions: Vec<String> = specs.iter().map(|s| format!("{:?}", s.action)).collect();
        assert_eq!(actions[0], "Dynamic { handler: 7, body: Whole }");
        let form =
            parse_table(br#"{"POST": {"/f": {"kind": "dynamic", "handler": 3, "form": true}}}"#)
                .unwrap()
                .routes;
        assert_eq!(
            format!("{:?}", form[0].action),
            "Dynamic { handler: 3, body: Form }"
        );
        assert_eq!(
            actions[1],
            "Cached { handler: 8, ttl: 250ms, stale: 500ms, max_entries: 1024 }"
        );
        assert_eq!(
            actions[2],
            "Cached { handler: 9, ttl: 1ms, stale: 2ms, max_entries: 3 }"
        );
        assert!(matches!(&specs[3].action, Action::Static(r) if r.body == "x"));
    }

    #[test]
    fn files_routes_name_an_existing_directory_under_a_path_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "a").unwrap();
        let given = dir.path().to_str().unwrap();
        let table = |route: &str, entry: serde_json::Value| {
            serde_json::json!({"GET": {route: entry}}).to_string()
        };
        let entry = serde_json::json!({"kind": "files", "directory": given, "html": true});
        let specs = parse_table(table("/static/{path:path}", entry).as_bytes())
            .unwrap()
            .routes;
        match &specs[0].action {
            Action::Files { directory, html } => {
                assert_eq!(*directory, dir.path().canonicalize().unwrap());
                assert!(*html);
            }
            other => panic!("{other:?}"),
        }
        let plain = serde_json::json!({"kind": "files", "directory": given});
        let specs = parse_table(table("/{rest:path}", plain.clone()).as_bytes())
            .unwrap()
            .routes;
        assert!(matches!(specs[0].action, Action::Files { html: false, .. }));

        let cases = [
            (
                table("/s/{p:path}", serde_json::json!({"kind": "files"})),
                "needs a directory".to_owned(),
            ),
            (
                table(
                    "/s/{p:path}",
                    serde_json::json!({"kind": "files", "directory": "static"}),
                ),
                r#"route GET /s/{p:path}: directory "static" must be an absolute path"#.to_owned(),
            ),
            (
                table(
                    "/s/{p:path}",
                    serde_json::json!({"kind": "files", "directory": "/no/such/sufast/dir"}),
                ),
                r#"directory "/no/such/sufast/dir" cannot be served"#.to_owned(),
            ),
            (
                table(
                    "/s/{p:path}",
                    serde_json::json!({"kind": "files", "directory": file}),
                ),
                "is not a directory".to_owned(),
            ),
            (
                table(
                    "/s/{p:path}",
                    serde_json::json!({"kind": "files", "directory": 1}),
                ),
                "directory must be a string".to_owned(),
            ),
            (
                table(
                    "/s/{p:path}",
                    serde_json::json!({"kind": "files", "directory": given, "html": 1}),
                ),
                "html must be true or false".to_owned(),
            ),
            (
                table(
                    "/s/{p:path}",
                    serde_json::json!({"kind": "files", "directory": given, "body": "x"}),
                ),
                "the files make the response".to_owned(),
            ),
            (
                table(
                    "/s/{p:path}",
                    serde_json::json!({"kind": "files", "directory": given, "handler": 1}),
                ),
                "unknown field \"handler\" for kind \"files\"".to_owned(),
            ),
            (
                table("/s", plain.clone()),
                "must end with a {name:path} segment".to_owned(),
            ),
            (
                table("/s/{p}", plain.clone()),
                "must end with a {name:path} segment".to_owned(),
            ),
            (
                table("/u/{id}/{p:path}", plain.clone()),
                "its only parameter".to_owned(),
            ),
            (
                serde_json::json!({"POST": {"/s/{p:path}": plain}}).to_string(),
                "route POST /s/{p:path}: a files route is a GET route".to_owned(),
            ),
        ];
        for (json, needle) in cases {
            let err = error(&json);
            assert!(err.message.contains(&needle), "{json}: {}", err.message);
            assert_eq!(err.code, SufastErrorCode::InvalidRoutes, "{json}");
        }
    }

    #[test]
    fn every_bad_input_names_the_problem() {
        let cases = [
            (
                "[]",
                "must be a JSON object",
                SufastErrorCode::InvalidRoutes,
            ),
            ("{", "not valid JSON", SufastErrorCode::InvalidJson),
            (
                r#"{"FETCH": {}}"#,
                "unknown method \"FETCH\"",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"get": {}}"#,
                "upper case",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": []}"#,
                "routes for GET must be an object",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"x": ""}}"#,
                "route GET x: path must start",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": 5}}"#,
                "route GET /: must be a string",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"stauts": 200}}}"#,
                "unknown field \"stauts\"",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"status": "200"}}}"#,
                "status must be an integer",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"status": 99}}}"#,
                "between 200 and 599",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"status": 204, "body": "x"}}}"#,
                "cannot carry a body",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"body": 1}}}"#,
                "body must be a string",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"body": "", "body_base64": ""}}}"#,
                "not both",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"body_base64": "!!"}}}"#,
                "not valid base64",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"headers": [["X-A", "1\r\nX-B: 2"]]}}}"#,
                "CR, LF",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"headers": {"X A": "1"}}}}"#,
                "not a valid HTTP header name",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"headers": {"Content-Length": "1"}}}}"#,
                "set by the server",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"headers": [["X-A"]]}}}"#,
                "[name, value] pair",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"headers": "X-A: 1"}}}"#,
                "headers must be",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"content_type": "a\nb"}}}"#,
                "CR, LF",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"content_type": "a/b", "headers": {"content-type": "c/d"}}}}"#,
                "both",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"status": 200, "status": 201}}}"#,
                "given twice",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "static", "kind": "dynamic", "handler": 1}}}"#,
                "given twice",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "lazy"}}}"#,
                "kind must be",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "dynamic"}}}"#,
                "needs a handler id",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "dynamic", "handler": -1}}}"#,
                "handler must be an integer",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "dynamic", "handler": 1, "body": "x"}}}"#,
                "its handler makes the response",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "dynamic", "handler": 1, "ttl_ms": 5}}}"#,
                "unknown field \"ttl_ms\"",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "dynamic", "handler": 1, "form": 1}}}"#,
                "form must be true or false",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "cached", "handler": 1, "ttl_ms": 5, "form": true}}}"#,
                "unknown field \"form\"",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "cached", "handler": 1}}}"#,
                "needs ttl_ms",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "cached", "handler": 1, "ttl_ms": 0}}}"#,
                "at least 1",
                SufastErrorCode::InvalidRoutes,
            ),
            (
                r#"{"GET": {"/": {"kind": "cached", "handler": 1, "ttl_ms": 9, "max_entries": 0}}}"#,
                "max_entries must be at least 1",
                SufastErrorCode::InvalidRoutes,
            ),
        ];
        for (json, needle, code) in cases {
            let err = error(json);
            assert!(err.message.contains(needle), "{json}: {}", err.message);
            assert_eq!(err.code, code, "{json}");
        }
    }
}
