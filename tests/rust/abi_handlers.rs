//! Dynamic and cached routes through the C ABI: a handler thread takes
//! request records with `sufast_take_requests` and answers them with
//! `sufast_respond`, as a C program (or the Python package) does.

#[path = "support/mod.rs"]
mod support;

use std::thread;
use std::time::Instant;

use sufast::error::SufastErrorCode;
use sufast::wire::encode_response as response;
use sufast::SufastTake;

use support::*;

/// One request record as a handler reads it.
struct Record {
    id: u64,
    handler: u32,
    method: String,
    path: String,
    query: String,
    params: Vec<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

fn parse(bytes: &[u8]) -> Vec<Record> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let end = at + 4 + u32_at(bytes, at);
        let id = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap());
        let handler = u32_at(bytes, at + 12) as u32;
        let count = u16::from_le_bytes([bytes[at + 18], bytes[at + 19]]) as usize;
        let lens: Vec<usize> = (0..8 + count)
            .map(|i| u32_at(bytes, at + 20 + 4 * i))
            .collect();
        let mut pos = at + 52 + 4 * count;
        let mut next = |n: usize| {
            let part = bytes[pos..pos + n].to_vec();
            pos += n;
            part
        };
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        let method = text(next(lens[0]));
        let path = text(next(lens[1]));
        let query = text(next(lens[2]));
        let _host = next(lens[3]);
        let scheme = text(next(lens[4]));
        assert_eq!(scheme, "http", "no proxy is trusted");
        let params = lens[8..].iter().map(|n| text(next(*n))).collect();
        let block = next(lens[5]);
        let mut body = next(lens[6]);
        if lens[7] > 0 {
            assert!(body.is_empty(), "a held body is not also in the record");
            body = vec![0; lens[7]];
            assert!(take_body(id, &mut body), "{}", last_error());
        }
        let mut headers = Vec::new();
        let mut h = 0;
        while h < block.len() {
            let (n, v) = (u32_at(&block, h), u32_at(&block, h + 4));
            let name = text(block[h + 8..h + 8 + n].to_vec());
            let value = text(block[h + 8 + n..h + 8 + n + v].to_vec());
            headers.push((name, value));
            h += 8 + n + v;
        }
        records.push(Record {
            id,
            handler,
            method,
            path,
            query,
            params,
            headers,
            body,
        });
        at = end;
    }
    records
}

fn take(buf: &mut [u8], timeout_ms: u32) -> (SufastTake, usize) {
    let mut len = 0usize;
    // SAFETY: `buf` and `len` are valid for the call.
    let taken =
        unsafe { sufast::sufast_take_requests(buf.as_mut_ptr(), buf.len(), timeout_ms, &mut len) };
    (taken, len)
}

fn take_body(id: u64, buf: &mut [u8]) -> bool {
    // SAFETY: `buf` is valid for the call.
    unsafe { sufast::sufast_take_body(id, buf.as_mut_ptr(), buf.len()) }
}

fn respond(id: u64, bytes: &[u8]) -> bool {
    // SAFETY: `bytes` is valid for the call.
    unsafe { sufast::sufast_respond(id, bytes.as_ptr(), bytes.len()) }
}

/// Answers every request the way `answer` says until the server stops.
fn handler_thread(answer: fn(&Record) -> Vec<u8>) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64];
        let mut answered = 0;
        loop {
            match take(&mut buf, 5000) {
                (SufastTake::Requests, n) => {
                    for record in parse(&buf[..n]) {
                        assert!(respond(record.id, &answer(&record)), "{}", last_error());
                        answered += 1;
                    }
                }
                (SufastTake::TooSmall, needed) => buf.resize(needed, 0),
                (SufastTake::Timeout, _) => {}
                (SufastTake::Closed, _) => return answered,
                (SufastTake::Failed, _) => panic!("take failed: {}", last_error()),
            }
        }
    })
}

fn echo(record: &Record) -> Vec<u8> {
    let tag = record
        .headers
        .iter()
        .filter(|(n, _)| n == "x-tag")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let text = format!(
        "{} {} {} {} params={:?} tags={tag} body={}",
        record.handler,
        record.method,
        record.path,
        record.query,
        record.params,
        String::from_utf8_lossy(&record.body)
    );
    response(
        201,
        &[
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ],
        text.as_bytes(),
    )
}

fn send(port: u16, raw: &str) -> Reply {
    use std::io::{BufReader, Write};
    let mut stream = connect(port);
    stream.write_all(raw.as_bytes()).unwrap();
    read_reply(&mut BufReader::new(stream), false)
}

#[test]
fn a_handler_thread_sees_the_request_and_its_response_goes_out() {
    let _serial = serial();
    set_ok(r#"{"POST": {"/u/{id:int}/{rest:path}": {"kind": "dynamic", "handler": 7}}}"#);
    let server = Server::start();
    let worker = handler_thread(echo);
    let reply = send(
        server.port,
        "POST /u/42/a%20b/c?x=1&x=2 HTTP/1.1\r\nHost: h\r\nX-Tag: one\r\nX-Tag: two\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(reply.status, 201);
    assert_eq!(reply.all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(
        reply.text(),
        r#"7 POST /u/42/a%20b/c x=1&x=2 params=["42", "a b/c"] tags=one,two body=hello"#
    );
    // A convertor that does not match never reaches the handler.
    assert_eq!(get(server.port, "/u/x/y").status, 404);
    drop(server);
    assert_eq!(
        worker.join().unwrap(),
        1,
        "the stop closes the queue and the thread exits"
    );
}

#[test]
fn a_malformed_response_is_refused_and_the_client_gets_500() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/bad": {"kind": "dynamic", "handler": 1}}}"#);
    let server = Server::start();
    let client = thread::spawn(move || get(server.port, "/bad").status);
    let mut buf = vec![0u8; 4096];
    let (taken, n) = take(&mut buf, 5000);
    assert_eq!(taken, SufastTake::Requests);
    let record = &parse(&buf[..n])[0];
    assert!(!respond(
        record.id,
        &response(200, &[("X-A", "1\r\nX-B: 2")], b"")
    ));
    assert_failed(
        SufastErrorCode::InvalidResponse,
        &["CR, LF", "500"],
        "bad header",
    );
    assert_eq!(client.join().unwrap(), 500);
    // Answering a request nobody waits for any more is no error.
    assert!(respond(record.id, &response(200, &[], b"late")));
}

#[test]
fn a_full_queue_answers_503_at_once() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/slow": {"kind": "dynamic", "handler": 1}}}"#);
    assert!(sufast::sufast_set_limits(1, 1024));
    let server = Server::start();
    let port = server.port;
    let first = thread::spawn(move || get(port, "/slow"));
    let mut buf = vec![0u8; 4096];
    let (taken, n) = take(&mut buf, 5000);
    assert_eq!(taken, SufastTake::Requests);
    let started = Instant::now();
    let second = get(port, "/slow");
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), Some("1"));
    assert!(started.elapsed() < AT_ONCE);
    let record = &parse(&buf[..n])[0];
    assert!(respond(record.id, &response(200, &[], b"done")));
    assert_eq!(first.join().unwrap().text(), "done");
    assert!(!sufast::sufast_set_limits(0, 1));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["at least 1"],
        "zero limit",
    );
    assert!(sufast::sufast_set_limits(1024, 16 * 1024 * 1024));
}

#[test]
fn take_reports_timeouts_small_buffers_and_a_closed_queue() {
    let _serial = serial();
    let mut buf = vec![0u8; 8];
    assert_eq!(
        take(&mut buf, 0).0,
        SufastTake::Closed,
        "no server, no requests"
    );
    set_ok(r#"{"GET": {"/d": {"kind": "dynamic", "handler": 1}}}"#);
    let server = Server::start();
    assert_eq!(take(&mut buf, 10).0, SufastTake::Timeout);
    let port = server.port;
    let client = thread::spawn(move || get(port, "/d").text().to_owned());
    let deadline = Instant::now() + IO_TIMEOUT;
    let needed = loop {
        match take(&mut buf, 100) {
            (SufastTake::TooSmall, needed) => break needed,
            (SufastTake::Timeout, _) if Instant::now() < deadline => continue,
            other => panic!("{other:?}"),
        }
    };
    buf.resize(needed, 0);
    let (taken, n) = take(&mut buf, 0);
    assert_eq!((taken, n), (SufastTake::Requests, needed));
    let record = &parse(&buf[..n])[0];
    assert!(respond(record.id, &response(200, &[], b"fits")));
    assert_eq!(client.join().unwrap(), "fits");
    // SAFETY: a NULL length pointer is reported, not written through.
    let failed = unsafe {
        sufast::sufast_take_requests(buf.as_mut_ptr(), buf.len(), 0, std::ptr::null_mut())
    };
    assert_eq!(failed, SufastTake::Failed);
    assert_failed(SufastErrorCode::NullPointer, &["len"], "null len");
}

#[test]
fn a_cached_route_asks_its_handler_once_per_ttl() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/c": {"kind": "cached", "handler": 3, "ttl_ms": 60000}}}"#);
    let server = Server::start();
    let worker = handler_thread(|r| response(200, &[], format!("query={}", r.query).as_bytes()));
    for _ in 0..3 {
        assert_eq!(body(server.port, "/c?k=1"), "query=k=1");
    }
    assert_eq!(body(server.port, "/c?k=2"), "query=k=2");
    drop(server);
    assert_eq!(worker.join().unwrap(), 2, "one render per key");
}

/// Takes until `count` records arrived, failing after `IO_TIMEOUT`.
fn take_records(buf: &mut [u8], count: usize) -> Vec<Record> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} records arrived",
            records.len()
        );
        if let (SufastTake::Requests, n) = take(buf, 100) {
            records.extend(parse(&buf[..n]));
        }
    }
    records
}

#[test]
fn an_answer_goes_out_while_its_thread_runs_a_slow_handler() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/d": {"kind": "dynamic", "handler": 1}}}"#);
    let server = Server::start();
    let port = server.port;
    let first = thread::spawn(move || get(port, "/d?1").text().to_owned());
    let second = thread::spawn(move || get(port, "/d?2").text().to_owned());
    let mut buf = vec![0u8; 4096];
    let records = take_records(&mut buf, 2);
    // Answer one, then "run" the other's handler: this thread does not come
    // back for more, yet the answer it gave must not wait for it.
    let (answered, slow) = (&records[0], &records[1]);
    assert!(respond(
        answered.id,
        &response(200, &[], answered.query.as_bytes())
    ));
    let started = Instant::now();
    let early = if answered.query == "1" { first } else { second };
    assert_eq!(early.join().unwrap(), answered.query);
    assert!(started.elapsed() < AT_ONCE);
    assert!(respond(slow.id, &response(200, &[], b"late")));
    drop(server);
}

#[test]
fn a_thread_inside_a_slow_handler_holds_no_queued_request_back() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/d": {"kind": "dynamic", "handler": 1}}}"#);
    let server = Server::start();
    let port = server.port;
    let slow = thread::spawn(move || get(port, "/d?slow").text().to_owned());
    let mut buf = vec![0u8; 4096];
    let held = take_records(&mut buf, 1);
    // This thread now counts as busy; a second one waits for requests.
    let worker = handler_thread(|r| response(200, &[], r.query.as_bytes()));
    let started = Instant::now();
    assert_eq!(get(port, "/d?fast").text(), "fast");
    assert!(started.elapsed() < AT_ONCE);
    assert!(respond(held[0].id, &response(200, &[], b"slow")));
    assert_eq!(slow.join().unwrap(), "slow");
    drop(server);
    assert_eq!(worker.join().unwrap(), 1);
}

#[test]
fn a_large_body_is_held_back_and_taken_once() {
    use std::io::{BufReader, Write};
    let _serial = serial();
    set_ok(r#"{"POST": {"/up": {"kind": "dynamic", "handler": 1}}}"#);
    let server = Server::start();
    let port = server.port;
    let body: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    let sent = body.clone();
    let client = thread::spawn(move || {
        let mut stream = connect(port);
        let head = format!(
            "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            sent.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&sent).unwrap();
        read_reply(&mut BufReader::new(stream), false)
    });
    let mut buf = vec![0u8; 4096];
    let (taken, n) = take(&mut buf, 5000);
    assert_eq!(taken, SufastTake::Requests);
    assert!(n < 4096, "the record does not carry the body");
    let id = u64::from_le_bytes(buf[4..12].try_into().unwrap());
    assert_eq!(u32_at(&buf, 20 + 4 * 6), 0, "no body bytes in the record");
    assert_eq!(u32_at(&buf, 20 + 4 * 7), body.len(), "the held length");

    let mut short = vec![0u8; 10];
    assert!(!take_body(id, &mut short));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["10 bytes", &body.len().to_string()],
        "a buffer of the wrong size",
    );
    let mut held = vec![0u8; body.len()];
    assert!(take_body(id, &mut held), "{}", last_error());
    assert!(held == body, "the body arrives whole and in order");
    assert!(!take_body(id, &mut held));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["taken already"],
        "a second take",
    );
    assert!(respond(id, &response(200, &[], b"stored")));
    assert_eq!(client.join().unwrap().text(), "stored");
    assert!(!take_body(id, &mut held));
    assert_failed(
        SufastErrorCode::Gone,
        &["no longer waiting"],
        "after the answer",
    );
}

#[test]
fn parse_form_fills_a_buffer_or_says_how_long_one_must_be() {
    let _guard = serial();
    let content_type = b"application/x-www-form-urlencoded";
    let body = b"a=1&b=x+y";
    let mut status = 0u16;
    // SAFETY: every pointer is to a live buffer of the given length.
    let needed = unsafe {
        sufast::sufast_parse_form(
            content_type.as_ptr(),
            content_type.len(),
            body.as_ptr(),
            body.len(),
            std::ptr::null_mut(),
            0,
            &mut status,
        )
    };
    // The count, then per part a kind byte, four lengths and the bytes.
    assert_eq!(needed, 4 + (17 + 1 + 1) + (17 + 1 + 3));
    let mut buf = vec![0u8; needed];
    // SAFETY: as above.
    let written = unsafe {
        sufast::sufast_parse_form(
            content_type.as_ptr(),
            content_type.len(),
            body.as_ptr(),
            body.len(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut status,
        )
    };
    assert_eq!((written, u32_at(&buf, 0)), (needed, 2));
    assert_eq!(&buf[needed - 3..], b"x y");

    let multipart = b"multipart/form-data; boundary=b";
    let broken = b"--b\r\nno end";
    // SAFETY: as above.
    let refused = unsafe {
        sufast::sufast_parse_form(
            multipart.as_ptr(),
            multipart.len(),
            broken.as_ptr(),
            broken.len(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut status,
        )
    };
    assert_eq!((refused, status), (0, 400));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["malformed"],
        "a broken multipart body",
    );
}
