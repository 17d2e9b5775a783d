//! set_routes, sufast_check_routes, sufast_last_error and sufast_version,
//! called as a C program would.

#[path = "support/mod.rs"]
mod support;

use std::ffi::CStr;
use std::ptr;
use std::thread::{self};

use sufast::error::SufastErrorCode;

use support::*;

// ---------------------------------------------------------------------------
// set_routes: every failure is reported and leaves the live table alone.
// ---------------------------------------------------------------------------

#[test]
fn set_routes_rejects_a_null_pointer() {
    let (_serial, server) = serving_kept();
    for len in [0, 5] {
        // SAFETY: NULL is the case under test; the library must not read it.
        assert!(!unsafe { sufast::set_routes(ptr::null(), len) });
        assert_failed(SufastErrorCode::NullPointer, &["NULL"], "NULL table");
        assert_kept(server.port, "NULL table");
    }
}

#[test]
fn set_routes_rejects_a_length_no_buffer_can_have() {
    let (_serial, server) = serving_kept();
    // The library must refuse before reading: no slice can be this long.
    // SAFETY: the length check comes before any read of `json`.
    assert!(!unsafe { sufast::set_routes(b"{}".as_ptr(), usize::MAX) });
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["too large"],
        "len usize::MAX",
    );
    assert_kept(server.port, "len usize::MAX");
}

#[test]
fn set_routes_rejects_bytes_that_are_not_json() {
    let (_serial, server) = serving_kept();
    let cases: [&[u8]; 6] = [
        b"",
        b"{",
        b"\xff\xfe{}",
        // Invalid UTF-8 inside an otherwise well-formed string.
        b"{\"GET\": {\"/new\": \"\xff\"}}",
        b"{\"GET\": {\"/new\": \"1\"}} trailing",
        b"{\"GET\": {\"/new\": '1'}}",
    ];
    for json in cases {
        let context = String::from_utf8_lossy(json);
        assert!(!set_routes(json), "{context}");
        assert_failed(SufastErrorCode::InvalidJson, &["not valid JSON"], &context);
        assert_kept(server.port, &context);
    }
}

#[test]
fn set_routes_rejects_wrong_shapes_naming_the_route() {
    let (_serial, server) = serving_kept();
    // A valid `/new` first in some tables: a rejected table must not be
    // applied in part.
    let cases: [(&str, &[&str]); 8] = [
        ("[]", &["must be a JSON object"]),
        (r#"{"GET": "/x"}"#, &["routes for GET", "object"]),
        (r#"{"GET": {"/new": "1", "/x": 5}}"#, &["route GET /x"]),
        (
            r#"{"GET": {"/x": {"body": "1", "colour": "red"}}}"#,
            &["route GET /x", "unknown field \"colour\""],
        ),
        (r#"{"FETCH": {"/x": "1"}}"#, &["unknown method \"FETCH\""]),
        (
            r#"{"GET": {"/new": "1"}, "POST": {"/x": {"headers": [["X-A", "1\r\nX-B: 2"]]}}}"#,
            &["route POST /x", "CR, LF"],
        ),
        (
            r#"{"GET": {"/x": {"headers": {"X-A": "1\nX-B: 2"}}}}"#,
            &["route GET /x", "CR, LF"],
        ),
        (r#"{"GET": {"/x": "1", "/x": "2"}}"#, &["GET /x"]),
    ];
    for (json, needles) in cases {
        assert!(!set_routes(json.as_bytes()), "{json}");
        assert_failed(SufastErrorCode::InvalidRoutes, needles, json);
        assert_kept(server.port, json);
    }
}

#[test]
fn a_successful_call_clears_the_last_error() {
    let _serial = serial();
    assert!(!set_routes(b"{"));
    assert_ne!(last_error(), "");

    set_ok(KEPT);
    assert_eq!(last_code(), SufastErrorCode::Ok);
    let (full, buf) = last_error_into(4);
    assert_eq!(full, 0, "no message after a success");
    assert_eq!(buf[0], 0, "an empty message is still NUL-terminated");
}

#[test]
fn check_routes_validates_without_swapping() {
    let _serial = serial();
    set_ok(r#"{"GET": {"/x": "\"live\""}}"#);
    let server = Server::start();

    assert!(check_routes(br#"{"GET": {"/x": "\"checked\""}}"#));
    assert_eq!(last_code(), SufastErrorCode::Ok);
    assert_eq!(body(server.port, "/x"), r#""live""#);

    assert!(!check_routes(br#"{"GET": {"/x": 1}}"#));
    assert_failed(SufastErrorCode::InvalidRoutes, &["route GET /x"], "check");
    assert!(!check_routes(b"nope"));
    assert_failed(SufastErrorCode::InvalidJson, &[], "check");
    // SAFETY: NULL is the case under test.
    assert!(!unsafe { sufast::sufast_check_routes(ptr::null(), 1) });
    assert_failed(SufastErrorCode::NullPointer, &["NULL"], "check");
    assert_eq!(body(server.port, "/x"), r#""live""#);
}

// ---------------------------------------------------------------------------
// sufast_last_error and sufast_version. Only sufast_check_routes is used to
// make errors here: it leaves the route table alone, so no lock is needed.
// ---------------------------------------------------------------------------

#[test]
fn last_error_truncates_to_the_buffer_and_returns_the_full_length() {
    // SAFETY: NULL is the case under test.
    assert!(!unsafe { sufast::sufast_check_routes(ptr::null(), 0) });
    let message = last_error();
    assert!(message.len() > 8, "{message:?}");

    let (full, buf) = last_error_into(8);
    assert_eq!(full, message.len());
    assert_eq!(&buf[..7], &message.as_bytes()[..7]);
    assert_eq!(buf[7], 0);

    let (full, buf) = last_error_into(1);
    assert_eq!(full, message.len());
    assert_eq!(buf, [0], "room for the NUL only");

    // Length 0 with a real buffer asks for the length and writes nothing.
    let mut buf = [0xAA_u8; 8];
    // SAFETY: length 0 promises nothing is written to `buf`.
    let full = unsafe { sufast::sufast_last_error(buf.as_mut_ptr().cast(), 0) };
    assert_eq!(full, message.len());
    assert_eq!(buf, [0xAA; 8]);

    // Reading the error does not clear it.
    assert_eq!(last_code(), SufastErrorCode::NullPointer);
    assert_eq!(last_error(), message);
}

#[test]
fn last_error_cuts_a_multibyte_message_on_a_char_boundary() {
    // The space makes the path invalid; the message quotes the path, é and
    // all.
    assert!(!check_routes(r#"{"GET": {"/é ✓": "1"}}"#.as_bytes()));
    let message = last_error();
    let e_acute = message.find('é').expect("the message quotes the path");

    // Room for the first byte of é only: the copy must stop before it.
    let (_, buf) = last_error_into(e_acute + 2);
    assert_eq!(buf[e_acute], 0);
    assert_eq!(&buf[..e_acute], &message.as_bytes()[..e_acute]);

    // Every buffer size yields the longest valid UTF-8 prefix that fits.
    for len in 1..=message.len() + 1 {
        let (full, buf) = last_error_into(len);
        assert_eq!(full, message.len());
        let nul = buf
            .iter()
            .position(|&b| b == 0)
            .expect("a NUL in the buffer");
        let copied = std::str::from_utf8(&buf[..nul])
            .unwrap_or_else(|e| panic!("len {len}: copy is not UTF-8: {e}"));
        let longest = (0..len)
            .rev()
            .find(|&n| message.is_char_boundary(n))
            .unwrap_or(0);
        assert_eq!(copied, &message[..longest], "len {len}");
    }
}

#[test]
fn the_last_error_belongs_to_the_calling_thread() {
    assert!(!check_routes(b"{"));
    let mine = last_error();
    thread::spawn(|| {
        assert_eq!(
            last_code(),
            SufastErrorCode::Ok,
            "a new thread starts clean"
        );
        // SAFETY: NULL is the case under test.
        assert!(!unsafe { sufast::sufast_check_routes(ptr::null(), 0) });
        assert_eq!(last_code(), SufastErrorCode::NullPointer);
    })
    .join()
    .unwrap();
    assert_eq!(last_code(), SufastErrorCode::InvalidJson);
    assert_eq!(last_error(), mine);
}

#[test]
fn version_is_the_crate_version_nul_terminated() {
    let version = sufast::sufast_version();
    assert!(!version.is_null());
    // SAFETY: the library promises a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(version) };
    assert_eq!(text.to_str(), Ok(env!("CARGO_PKG_VERSION")));
    assert_eq!(sufast::sufast_version(), version, "one static string");
}

#[test]
fn the_layout_version_is_the_headers() {
    assert_eq!(
        sufast::sufast_layout_version(),
        sufast::wire::SUFAST_LAYOUT_VERSION
    );
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/sufast.h"))
            .expect("read include/sufast.h");
    assert!(header.contains(&format!(
        "#define SUFAST_LAYOUT_VERSION {}",
        sufast::wire::SUFAST_LAYOUT_VERSION
    )));
}
