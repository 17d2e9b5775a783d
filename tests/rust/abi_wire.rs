//! What the server puts on the wire for a table set through the C ABI,
//! and swapping tables while requests run.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::thread::{self, JoinHandle};

use base64::Engine;

use support::*;

// ---------------------------------------------------------------------------
// What goes on the wire.
// ---------------------------------------------------------------------------

#[test]
fn bodies_arrive_byte_exact() {
    let _serial = serial();
    let big = r#"{"n": 123456789012345678901234567890}"#;
    let text = "héllo ✓ 😀";
    let table = serde_json::json!({"GET": {"/big": big, "/text": text}}).to_string();
    set_ok(&table);
    // JSON escapes in the table decode to the same UTF-8 bytes.
    let escaped = r#"{"GET": {"/escaped": "h\u00e9llo \u2713 \ud83d\ude00"}}"#;
    let server = Server::start();

    assert_eq!(get(server.port, "/big").body, big.as_bytes());
    assert_eq!(get(server.port, "/text").body, text.as_bytes());
    set_ok(escaped);
    assert_eq!(get(server.port, "/escaped").body, text.as_bytes());
}

#[test]
fn a_base64_body_arrives_as_octet_stream_bytes() {
    let _serial = serial();
    let bytes: Vec<u8> = (0..=255).chain([0, 255, 0]).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    set_ok(&serde_json::json!({"GET": {"/bin": {"body_base64": encoded}}}).to_string());
    let server = Server::start();

    let reply = get(server.port, "/bin");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(reply.body, bytes);
}

#[test]
fn a_rich_route_sends_its_status_type_and_repeated_headers() {
    let _serial = serial();
    set_ok(
        r#"{"POST": {"/made": {"status": 201, "content_type": "text/plain; charset=utf-8",
            "headers": [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"], ["X-Tag", "t"]],
            "body": "made"}}}"#,
    );
    let server = Server::start();

    let reply = fetch(server.port, "POST", "/made");
    assert_eq!(reply.status, 201);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(reply.header("x-tag"), Some("t"));
    assert_eq!(reply.text(), "made");
}

#[test]
fn an_unknown_path_is_a_json_404() {
    let (_serial, server) = serving_kept();

    let reply = get(server.port, "/nowhere");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.text(), r#"{"detail": "Not Found"}"#);
}

#[test]
fn another_method_on_a_known_path_is_405_with_allow() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/a": "\"g\""}, "POST": {"/a": "\"p\""}}"#);
    let server = Server::start();

    let reply = fetch(server.port, "DELETE", "/a");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD, POST"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[test]
fn head_sends_the_get_headers_and_no_body() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/page": "{\"size\": \"eighteen\"}"}}"#);
    let server = Server::start();

    let got = get(server.port, "/page");
    // `fetch` reads a HEAD reply's headers only, then proves that no byte
    // follows them before the server closes.
    let head = fetch(server.port, "HEAD", "/page");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
    assert_eq!(head.header("content-type"), got.header("content-type"));
}

#[test]
fn a_percent_encoded_path_matches_the_decoded_route() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/café": "\"cafe\""}}"#);
    let server = Server::start();

    assert_eq!(body(server.port, "/caf%C3%A9"), r#""cafe""#);
    assert_eq!(body(server.port, "/caf%c3%a9"), r#""cafe""#);
    // An escape that does not decode to UTF-8 is the client's error.
    assert_eq!(get(server.port, "/caf%FF").status, 400);
}

#[test]
fn the_query_string_does_not_affect_matching() {
    let (_serial, server) = serving_kept();

    assert_eq!(body(server.port, "/x?a=1&b=%FF"), r#""kept""#);
    assert_eq!(get(server.port, "/nowhere?x").status, 404);
}

#[test]
fn an_int_parameter_matches_digits_only() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/n/{id:int}": "\"n\""}}"#);
    let server = Server::start();

    assert_eq!(body(server.port, "/n/12"), r#""n""#);
    for path in ["/n/ab", "/n/-1", "/n/1.5"] {
        let reply = get(server.port, path);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.text(), r#"{"detail": "Not Found"}"#, "{path}");
    }
}

#[test]
fn a_malformed_request_does_not_stop_the_server() {
    let (_serial, server) = serving_kept();

    let mut stream = connect(server.port);
    stream.write_all(b"GARBAGE\r\n\r\n").unwrap();
    // A 4xx or a bare close (or reset) are all fine; a success is not.
    if let Ok(raw) = read_until_closed(&mut stream) {
        assert!(
            raw.is_empty() || raw.starts_with(b"HTTP/1.1 4"),
            "{:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    assert_eq!(body(server.port, "/x"), r#""kept""#);
}

// ---------------------------------------------------------------------------
// The app-wide section: headers on every response, and CORS.
// ---------------------------------------------------------------------------

const APP_WIDE: &str = r#"{
    "@app": {"headers": {"X-Powered-By": "sufast", "Cache-Control": "no-store"},
             "cors": {"allow_origins": ["https://a.example"], "allow_methods": ["GET", "POST"],
                      "allow_headers": ["X-Token"], "allow_credentials": true,
                      "expose_headers": ["X-Total"], "max_age": 60}},
    "GET": {"/": "{}", "/own": {"headers": {"Cache-Control": "max-age=9"}, "body": "own"}},
    "POST": {"/": "{}"}
}"#;

#[test]
fn app_wide_headers_reach_every_response_and_a_route_header_wins() {
    let _serial = serial();
    set_ok(APP_WIDE);
    let server = Server::start();

    let replies = [
        ("GET", "/", 200),
        ("HEAD", "/", 200),
        ("GET", "/nowhere", 404),
        ("DELETE", "/", 405),
        ("GET", "/caf%FF", 400),
    ];
    for (method, target, status) in replies {
        let reply = fetch(server.port, method, target);
        assert_eq!(reply.status, status, "{method} {target}");
        assert_eq!(
            reply.header("x-powered-by"),
            Some("sufast"),
            "{method} {target}"
        );
        assert_eq!(
            reply.all("cache-control"),
            ["no-store"],
            "{method} {target}"
        );
        // Listed origins: every response varies on Origin, and only an
        // allowed origin is named.
        assert_eq!(reply.all("vary"), ["Origin"], "{method} {target}");
        assert_eq!(reply.header("access-control-allow-origin"), None);
    }
    let own = get(server.port, "/own");
    assert_eq!(own.all("cache-control"), ["max-age=9"]);
    assert_eq!(own.header("x-powered-by"), Some("sufast"));
}

#[test]
fn an_allowed_origin_is_named_and_others_get_no_cors_headers() {
    let _serial = serial();
    set_ok(APP_WIDE);
    let server = Server::start();

    for (method, target) in [("GET", "/"), ("HEAD", "/"), ("GET", "/nowhere")] {
        let reply = fetch_with(
            server.port,
            method,
            target,
            &[("Origin", "https://a.example")],
        );
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some("https://a.example"),
            "{method} {target}"
        );
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            reply.header("access-control-expose-headers"),
            Some("X-Total")
        );
        assert_eq!(reply.all("vary"), ["Origin"]);
    }
    let other = fetch_with(server.port, "GET", "/", &[("Origin", "https://b.example")]);
    assert_eq!(other.status, 200);
    assert!(
        other
            .headers
            .iter()
            .all(|(n, _)| !n.starts_with("access-control-")),
        "{:?}",
        other.headers
    );
}

#[test]
fn the_server_answers_a_preflight_itself() {
    let _serial = serial();
    set_ok(APP_WIDE);
    let server = Server::start();
    let preflight = |origin: &str, method: &str, headers: &str| {
        fetch_with(
            server.port,
            "OPTIONS",
            "/",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", headers),
            ],
        )
    };

    let ok = preflight("https://a.example", "POST", "x-token");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text(), "OK");
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://a.example")
    );
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(ok.header("access-control-max-age"), Some("60"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("x-powered-by"), Some("sufast"));

    let denied = preflight("https://a.example", "PUT", "x-other");
    assert_eq!(denied.status, 400);
    assert_eq!(denied.text(), "Disallowed CORS method, headers");
    assert_eq!(preflight("https://b.example", "GET", "").status, 400);

    // An OPTIONS request that is no preflight goes to the routes: none here.
    let plain = fetch_with(
        server.port,
        "OPTIONS",
        "/",
        &[("Origin", "https://a.example")],
    );
    assert_eq!(plain.status, 405);
}

#[test]
fn the_app_wide_section_swaps_with_the_table() {
    let _serial = serial();
    set_ok(APP_WIDE);
    let server = Server::start();
    assert_eq!(get(server.port, "/").header("x-powered-by"), Some("sufast"));

    // A rejected table leaves the section in place with its routes.
    let bad = r#"{"@app": {"headers": {"X-A": "1"}, "cors": {"allow_origins": ["nope"]}}, "GET": {"/new": "{}"}}"#;
    assert!(!set_routes(bad.as_bytes()));
    assert_failed(
        sufast::error::SufastErrorCode::InvalidRoutes,
        &[
            "app-wide section \"@app\": cors: allow_origins",
            "not an origin",
        ],
        "bad origin",
    );
    assert_eq!(get(server.port, "/").header("x-powered-by"), Some("sufast"));
    assert_eq!(get(server.port, "/new").status, 404);

    set_ok(r#"{"@app": {"cors": {"allow_origins": ["*"]}}, "GET": {"/": "{}"}}"#);
    let reply = get(server.port, "/");
    assert_eq!(reply.header("x-powered-by"), None);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.header("vary"), None);
    assert_eq!(
        get(server.port, "/nowhere").header("access-control-allow-origin"),
        Some("*")
    );

    set_ok(r#"{"GET": {"/": "{}"}}"#);
    let reply = fetch_with(server.port, "GET", "/", &[("Origin", "https://a.example")]);
    let mut names: Vec<&str> = reply.headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["connection", "content-length", "content-type", "date"]
    );
}

// ---------------------------------------------------------------------------
// Swapping the table while requests run.
// ---------------------------------------------------------------------------

#[test]
fn swapping_under_load_never_leaves_a_gap() {
    const CLIENTS: usize = 4;
    const REQUESTS: usize = 200;
    let table_a = r#"{"GET": {"/x": "\"A\"", "/y": "\"A\""}}"#;
    let table_b = r#"{"GET": {"/x": "\"B\"", "/y": "\"B\""}}"#;

    let _serial = serial();
    set_ok(table_a);
    let server = Server::start();
    let port = server.port;

    let clients: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|client| {
            thread::spawn(move || {
                for i in 0..REQUESTS {
                    let path = ["/x", "/y"][i % 2];
                    let reply = get(port, path);
                    assert_eq!(reply.status, 200, "client {client}, request {i}");
                    let text = reply.text();
                    assert!(
                        text == r#""A""# || text == r#""B""#,
                        "client {client}, request {i}: {text:?}"
                    );
                }
            })
        })
        .collect();

    // Swap for as long as any client runs; the clients bound the loop.
    let mut swaps = 0_usize;
    while !clients.iter().all(JoinHandle::is_finished) {
        set_ok([table_b, table_a][swaps % 2]);
        swaps += 1;
    }
    for client in clients {
        if let Err(panic) = client.join() {
            std::panic::resume_unwind(panic);
        }
    }
    assert!(swaps > 0, "the table was swapped while requests ran");
}
