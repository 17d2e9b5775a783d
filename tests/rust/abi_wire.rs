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
    assert_eq!(reply.text(), r#"{"error": "Not found"}"#);
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
        assert_eq!(reply.text(), r#"{"error": "Not found"}"#, "{path}");
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
