//! The CORS policy of a route table's app-wide section. Starlette's
//! `CORSMiddleware` is the reference for what goes on the wire; what does
//! not depend on the request is worked out once, when the table is built,
//! so that a request costs at most one `Origin` lookup in a short list.

use axum::body::Bytes;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::json::Json;
use super::spec::{self, StaticResponse};

const FIELDS: &str =
    "allow_origins, allow_methods, allow_headers, allow_credentials, expose_headers, max_age";

/// Request headers a browser may send without asking (CORS-safelisted):
/// a preflight always allows them, as Starlette does.
const SAFELISTED_HEADERS: [&str; 4] = [
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

/// How long a browser may keep a preflight's answer unless told otherwise.
const DEFAULT_MAX_AGE: u32 = 600;

/// A validated CORS policy.
#[derive(Debug)]
pub struct Cors {
    /// The allowed origins, lower case; `None` allows every origin.
    origins: Option<Vec<HeaderValue>>,
    /// Whether `Access-Control-Allow-Origin` names the request's origin
    /// (listed origins, or every origin with credentials, where `*` is not
    /// allowed) instead of `*`. Only then does a request cost any work.
    echo: bool,
    methods: Vec<Method>,
    /// The allowed request headers, safelisted ones included; `None`
    /// allows any.
    headers: Option<Vec<HeaderName>>,
    credentials: bool,
    expose: Option<HeaderValue>,
    /// The preflight answer's headers that do not depend on the request.
    preflight: HeaderMap,
}

impl Cors {
    /// Parses the `cors` object of the app-wide section.
    pub fn parse(value: &Json) -> Result<Self, String> {
        let Json::Object(fields) = value else {
            return Err(format!(
                "must be an object with {FIELDS}, got {}",
                value.kind()
            ));
        };
        let mut origins = Some(Vec::new());
        let mut methods = vec![Method::GET];
        let mut headers = Some(Vec::new());
        let mut credentials = false;
        let mut expose = Vec::new();
        let mut max_age = DEFAULT_MAX_AGE;
        for (field, value) in spec::no_repeats(fields)? {
            match field.as_str() {
                "allow_origins" => origins = all_or_listed(field, value, parse_origin)?,
                "allow_methods" => {
                    methods = all_or_listed(field, value, |name| {
                        spec::parse_method(name).map_err(|e| e.message)
                    })?
                    .unwrap_or_else(|| spec::METHODS.to_vec())
                }
                "allow_headers" => headers = all_or_listed(field, value, parse_header_name)?,
                "allow_credentials" => {
                    credentials = match value {
                        Json::Bool(allow) => *allow,
                        other => {
                            return Err(format!(
                                "allow_credentials must be true or false, got {}",
                                other.kind()
                            ))
                        }
                    }
                }
                "expose_headers" => {
                    expose = strings(field, value)?;
                    for name in &expose {
                        parse_header_name(name).map_err(|why| format!("{field}: {why}"))?;
                    }
                }
                "max_age" => {
                    max_age = match value {
                        Json::Int(n) => u32::try_from(*n).ok(),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        format!(
                            "max_age must be an integer from 0 to {}, got {}",
                            u32::MAX,
                            spec::describe(value)
                        )
                    })?
                }
                _ => return Err(format!("unknown field {field:?}; expected one of {FIELDS}")),
            }
        }
        let headers = headers.map(|listed| {
            let mut all: Vec<HeaderName> = SAFELISTED_HEADERS
                .iter()
                .map(|name| HeaderName::from_static(name))
                .chain(listed)
                .collect();
            all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            all.dedup();
            all
        });
        let expose = if expose.is_empty() {
            None
        } else {
            Some(joined(&expose)?)
        };
        let echo = origins.is_some() || credentials;
        let mut preflight = HeaderMap::new();
        preflight.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if echo {
            preflight.insert(VARY, HeaderValue::from_static("Origin"));
        } else {
            preflight.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        let method_names: Vec<&str> = methods.iter().map(Method::as_str).collect();
        preflight.insert(ACCESS_CONTROL_ALLOW_METHODS, joined(&method_names)?);
        preflight.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age));
        if let Some(all) = &headers {
            let names: Vec<&str> = all.iter().map(HeaderName::as_str).collect();
            preflight.insert(ACCESS_CONTROL_ALLOW_HEADERS, joined(&names)?);
        }
        if credentials {
            preflight.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Ok(Cors {
            origins,
            echo,
            methods,
            headers,
            credentials,
            expose,
            preflight,
        })
    }

    /// Whether the policy owns this response header, so that app-wide
    /// headers cannot set it beside the policy.
    pub fn sets(name: &HeaderName) -> bool {
        name.as_str().starts_with("access-control-")
    }

    /// What every response carries whatever the request: `*` (and the
    /// exposed headers) when every origin is allowed without credentials;
    /// otherwise `Vary: Origin`, since the answer then depends on the
    /// origin, also for a request that sends none (Fetch, "CORS protocol
    /// and HTTP caches").
    pub fn prepare(&self, headers: &mut HeaderMap) {
        if self.echo {
            vary_origin(headers);
        } else {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            if let Some(expose) = &self.expose {
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
            }
        }
    }

    /// The origin this request's response must name: `None` when `*`
    /// covers it, when it sends no `Origin` and when its origin is not
    /// allowed.
    pub fn allowed_origin(&self, request: &HeaderMap) -> Option<HeaderValue> {
        if !self.echo {
            return None;
        }
        let origin = request.get(ORIGIN)?;
        match &self.origins {
            None => Some(origin.clone()),
            Some(listed) => listed.iter().find(|allowed| *allowed == origin).cloned(),
        }
    }

    /// Names `origin` (one `allowed_origin` gave) in a prepared response.
    pub fn allow(&self, headers: &mut HeaderMap, origin: HeaderValue) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }

    /// The answer to a preflight (a request with `Origin` and
    /// `Access-Control-Request-Method`; the caller checks for OPTIONS):
    /// 200, or 400 naming what is not allowed. `None` for other requests.
    pub fn preflight(&self, request: &HeaderMap) -> Option<StaticResponse> {
        let origin = request.get(ORIGIN)?;
        let method = request.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut headers = self.preflight.clone();
        let mut failures = Vec::new();
        let origin_allowed = match &self.origins {
            None => true,
            Some(listed) => listed.iter().any(|allowed| allowed == origin),
        };
        if !origin_allowed {
            failures.push("origin");
        } else if self.echo {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        if !self
            .methods
            .iter()
            .any(|m| m.as_str().as_bytes() == method.as_bytes())
        {
            failures.push("method");
        }
        if let Some(requested) = request.get(ACCESS_CONTROL_REQUEST_HEADERS) {
            match &self.headers {
                // Any header: the answer repeats what was asked for.
                None => {
                    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
                }
                Some(allowed) => {
                    let all_allowed = requested
                        .as_bytes()
                        .split(|b| *b == b',')
                        .map(<[u8]>::trim_ascii)
                        .filter(|name| !name.is_empty())
                        .all(|name| {
                            allowed
                                .iter()
                                .any(|a| a.as_str().as_bytes().eq_ignore_ascii_case(name))
                        });
                    if !all_allowed {
                        failures.push("headers");
                    }
                }
            }
        }
        let (status, body) = if failures.is_empty() {
            (StatusCode::OK, Bytes::from_static(b"OK"))
        } else {
            (
                StatusCode::BAD_REQUEST,
                Bytes::from(format!("Disallowed CORS {}", failures.join(", "))),
            )
        };
        Some(StaticResponse {
            status,
            headers,
            body,
        })
    }
}

/// Adds `Vary: Origin` unless the response already varies on it (or on
/// everything).
fn vary_origin(headers: &mut HeaderMap) {
    let covered = headers.get_all(VARY).iter().any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|name| name == b"*" || name.eq_ignore_ascii_case(b"origin"))
    });
    if !covered {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}

/// A list of strings where `["*"]` means all (`None`), each other item
/// parsed by `parse`.
fn all_or_listed<T>(
    field: &str,
    value: &Json,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, String> {
    let items = strings(field, value)?;
    if items.iter().any(|item| item == "*") {
        if items.len() > 1 {
            return Err(format!(
                "{field}: give [\"*\"] alone, or a list without \"*\""
            ));
        }
        return Ok(None);
    }
    items
        .iter()
        .map(|item| parse(item).map_err(|why| format!("{field}: {why}")))
        .collect::<Result<_, _>>()
        .map(Some)
}

fn strings(field: &str, value: &Json) -> Result<Vec<String>, String> {
    let Json::Array(items) = value else {
        return Err(format!(
            "{field} must be a list of strings, got {}",
            value.kind()
        ));
    };
    items
        .iter()
        .map(|item| match item {
            Json::String(s) => Ok(s.clone()),
            other => Err(format!(
                "{field} must be a list of strings, got an item that is {}",
                other.kind()
            )),
        })
        .collect()
}

/// An origin as browsers send it: `scheme://host[:port]`, kept in lower
/// case (how browsers serialize it) so that `https://Example.com` matches.
fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let origin = text.to_ascii_lowercase();
    let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"/?#@\\".contains(&b))
    });
    if !well_formed {
        return Err(format!(
            "{text:?} is not an origin: give scheme://host[:port] in ASCII, \
             without a path or a trailing slash, e.g. \"https://example.com\""
        ));
    }
    HeaderValue::from_str(&origin).map_err(|_| format!("{text:?} is not a valid header value"))
}

fn parse_header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid HTTP header name"))
}

fn joined(items: &[impl AsRef<str>]) -> Result<HeaderValue, String> {
    let text = items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&text).map_err(|_| format!("{text:?} is not a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::COOKIE;

    fn policy(json: &str) -> Cors {
        Cors::parse(&super::super::json::parse(json.as_bytes()).unwrap()).unwrap()
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    fn prepared(cors: &Cors) -> HeaderMap {
        let mut headers = HeaderMap::new();
        cors.prepare(&mut headers);
        headers
    }

    #[test]
    fn defaults_follow_starlette() {
        let cors = policy("{}");
        assert_eq!(cors.origins.as_deref(), Some(&[][..]));
        assert_eq!(cors.methods, [Method::GET]);
        assert!(!cors.credentials);
        assert!(cors.expose.is_none());
        assert_eq!(cors.preflight[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(
            cors.preflight[ACCESS_CONTROL_ALLOW_HEADERS],
            "accept, accept-language, content-language, content-type"
        );
    }

    #[test]
    fn every_origin_without_credentials_is_a_star_on_every_response() {
        let cors = policy(r#"{"allow_origins": ["*"], "expose_headers": ["X-Total", "X-Page"]}"#);
        let headers = prepared(&cors);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(headers[ACCESS_CONTROL_EXPOSE_HEADERS], "X-Total, X-Page");
        assert!(!headers.contains_key(VARY));
        let from = request(&[("origin", "https://a.example"), ("cookie", "a=1")]);
        assert_eq!(cors.allowed_origin(&from), None, "nothing per request");
    }

    #[test]
    fn listed_origins_are_named_per_request_and_vary_always() {
        let cors = policy(
            r#"{"allow_origins": ["https://A.example", "http://b.example:8080"],
                "allow_credentials": true, "expose_headers": ["X-Total"]}"#,
        );
        let mut headers = prepared(&cors);
        assert_eq!(headers[VARY], "Origin");
        assert!(!headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert!(!headers.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));

        let allowed = request(&[("origin", "https://a.example")]);
        let origin = cors.allowed_origin(&allowed).unwrap();
        cors.allow(&mut headers, origin);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.example");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(headers[ACCESS_CONTROL_EXPOSE_HEADERS], "X-Total");

        for other in [
            request(&[("origin", "https://c.example")]),
            request(&[("origin", "http://b.example")]),
            request(&[]),
        ] {
            assert_eq!(cors.allowed_origin(&other), None, "{other:?}");
        }
    }

    #[test]
    fn every_origin_with_credentials_names_the_origin() {
        let cors = policy(r#"{"allow_origins": ["*"], "allow_credentials": true}"#);
        assert_eq!(prepared(&cors)[VARY], "Origin");
        let from = request(&[("origin", "https://any.example"), (COOKIE.as_str(), "a=1")]);
        assert_eq!(cors.allowed_origin(&from).unwrap(), "https://any.example");
    }

    #[test]
    fn vary_is_added_to_a_route_vary_once() {
        let cors = policy(r#"{"allow_origins": ["https://a.example"]}"#);
        for (own, expected) in [
            (&["Accept-Encoding"][..], &["Accept-Encoding", "Origin"][..]),
            (&["accept, origin"], &["accept, origin"]),
            (&["*"], &["*"]),
        ] {
            let mut headers = HeaderMap::new();
            for value in own {
                headers.append(VARY, HeaderValue::from_static(value));
            }
            cors.prepare(&mut headers);
            let got: Vec<_> = headers.get_all(VARY).iter().collect();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn a_preflight_is_answered_like_starlette() {
        let cors = policy(
            r#"{"allow_origins": ["https://a.example"], "allow_methods": ["GET", "POST"],
                "allow_headers": ["X-Token"], "max_age": 60}"#,
        );
        let ok = cors
            .preflight(&request(&[
                ("origin", "https://a.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-token, Content-Type"),
            ]))
            .unwrap();
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.body, "OK");
        let h = &ok.headers;
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(
            h[ACCESS_CONTROL_ALLOW_HEADERS],
            "accept, accept-language, content-language, content-type, x-token"
        );
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "60");
        assert_eq!(h[VARY], "Origin");
        assert_eq!(h[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));

        let denied = cors
            .preflight(&request(&[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "DELETE"),
                ("access-control-request-headers", "x-other"),
            ]))
            .unwrap();
        assert_eq!(denied.status, StatusCode::BAD_REQUEST);
        assert_eq!(denied.body, "Disallowed CORS origin, method, headers");
        assert!(!denied.headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));

        // Not a preflight: the request goes to the routes.
        assert!(cors
            .preflight(&request(&[("origin", "https://a.example")]))
            .is_none());
        assert!(cors
            .preflight(&request(&[("access-control-request-method", "GET")]))
            .is_none());
    }

    #[test]
    fn a_preflight_with_every_header_allowed_repeats_the_request() {
        let cors =
            policy(r#"{"allow_origins": ["*"], "allow_methods": ["*"], "allow_headers": ["*"]}"#);
        let ok = cors
            .preflight(&request(&[
                ("origin", "https://a.example"),
                ("access-control-request-method", "PATCH"),
                ("access-control-request-headers", "x-a, x-b"),
            ]))
            .unwrap();
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(ok.headers[ACCESS_CONTROL_ALLOW_HEADERS], "x-a, x-b");
        assert_eq!(
            ok.headers[ACCESS_CONTROL_ALLOW_METHODS],
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
        );
        assert!(!ok.headers.contains_key(VARY));
    }

    #[test]
    fn every_bad_value_names_the_problem() {
        let cases = [
            (r#"[]"#, "must be an object"),
            (r#"{"allow_origin": []}"#, "unknown field \"allow_origin\""),
            (r#"{"max_age": 1, "max_age": 2}"#, "given twice"),
            (
                r#"{"allow_origins": "https://a.example"}"#,
                "allow_origins must be a list of strings",
            ),
            (r#"{"allow_origins": [1]}"#, "an item that is a number"),
            (r#"{"allow_origins": ["*", "https://a.example"]}"#, "alone"),
            (
                r#"{"allow_origins": ["https://a.example/"]}"#,
                "not an origin",
            ),
            (r#"{"allow_origins": ["a.example"]}"#, "not an origin"),
            (r#"{"allow_origins": ["null"]}"#, "not an origin"),
            (
                r#"{"allow_origins": ["https://a.example\r\n"]}"#,
                "not an origin",
            ),
            (r#"{"allow_methods": ["get"]}"#, "upper case"),
            (
                r#"{"allow_methods": ["FETCH"]}"#,
                "unknown method \"FETCH\"",
            ),
            (
                r#"{"allow_headers": ["X Token"]}"#,
                "allow_headers: \"X Token\" is not a valid",
            ),
            (
                r#"{"expose_headers": ["a:b"]}"#,
                "expose_headers: \"a:b\" is not a valid",
            ),
            (r#"{"allow_credentials": "yes"}"#, "true or false"),
            (r#"{"max_age": -1}"#, "max_age must be an integer from 0"),
            (r#"{"max_age": 1.5}"#, "got a number"),
        ];
        for (json, needle) in cases {
            let err =
                Cors::parse(&super::super::json::parse(json.as_bytes()).unwrap()).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
