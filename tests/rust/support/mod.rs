//! Helpers shared by the ABI tests: the one-server lock, calls of the
//! exports with (pointer, length) pairs, and a minimal HTTP/1.1 client.
//!
//! The server and the route table are process-wide while cargo runs tests
//! on parallel threads, so every test that touches either holds [`serial`].
#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::ptr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sufast::error::SufastErrorCode;

// ---------------------------------------------------------------------------
// The one server: a lock, and a guard that always stops it.
// ---------------------------------------------------------------------------

pub static SERVER_LOCK: Mutex<()> = Mutex::new(());

/// Held by every test that touches the route table or the server. A failed
/// test poisons the lock; the next one must still run, so poison is ignored.
pub fn serial() -> MutexGuard<'static, ()> {
    SERVER_LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops whatever server runs when dropped, so that a failed assertion never
/// leaves one running for the next test. Harmless when none runs.
pub struct StopOnDrop;

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        sufast::sufast_stop_server_within(0);
    }
}

/// A server started by a test, stopped when the value drops.
pub struct Server {
    pub port: u16,
    pub _stop: StopOnDrop,
}

impl Server {
    /// Starts on 127.0.0.1 and a port the OS picks.
    pub fn start() -> Server {
        Server::adopt(sufast::start_server(false, 0))
    }

    /// Takes charge of a server that an export has just started (`started`
    /// is what it returned).
    pub fn adopt(started: bool) -> Server {
        let stop = StopOnDrop;
        assert!(started, "start failed: {}", last_error());
        let port = sufast::sufast_bound_port();
        assert_ne!(port, 0, "a running server reports its port");
        Server { port, _stop: stop }
    }
}

// ---------------------------------------------------------------------------
// Calling the exports with (pointer, length) pairs.
// ---------------------------------------------------------------------------

pub fn set_routes(json: &[u8]) -> bool {
    // SAFETY: `json` is a live slice for the whole call.
    unsafe { sufast::set_routes(json.as_ptr(), json.len()) }
}

/// Sets a table that must be valid; the failure message says why not.
pub fn set_ok(json: &str) {
    assert!(set_routes(json.as_bytes()), "{json}: {}", last_error());
}

pub fn check_routes(json: &[u8]) -> bool {
    // SAFETY: `json` is a live slice for the whole call.
    unsafe { sufast::sufast_check_routes(json.as_ptr(), json.len()) }
}

pub fn start_on(host: &[u8]) -> bool {
    // SAFETY: `host` is a live slice for the whole call.
    unsafe { sufast::sufast_start_server_on(host.as_ptr(), host.len(), 0, false) }
}

pub fn last_code() -> SufastErrorCode {
    sufast::sufast_last_error_code()
}

/// Reads the last error the way a C caller must: ask for the length with
/// NULL, then copy into a buffer one byte longer for the NUL.
pub fn last_error() -> String {
    // SAFETY: NULL with length 0 asks for the length and writes nothing.
    let len = unsafe { sufast::sufast_last_error(ptr::null_mut(), 0) };
    let mut buf = vec![0xAA_u8; len + 1];
    // SAFETY: `buf` has `buf.len()` writable bytes.
    let again = unsafe { sufast::sufast_last_error(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(again, len, "both calls report the same length");
    assert_eq!(buf[len], 0, "the copy is NUL-terminated");
    buf.truncate(len);
    String::from_utf8(buf).expect("the last error is UTF-8")
}

/// Copies the last error into a buffer of exactly `len` bytes (pre-filled
/// with 0xAA to show what was written) and returns (result, buffer).
pub fn last_error_into(len: usize) -> (usize, Vec<u8>) {
    let mut buf = vec![0xAA_u8; len];
    // SAFETY: `buf` has `len` writable bytes.
    let full = unsafe { sufast::sufast_last_error(buf.as_mut_ptr().cast(), len) };
    (full, buf)
}

/// Asserts that the last call failed with `code` and a message containing
/// every one of `needles`.
pub fn assert_failed(code: SufastErrorCode, needles: &[&str], context: &str) {
    let message = last_error();
    assert_eq!(last_code(), code, "{context}: {message}");
    for needle in needles {
        assert!(
            message.contains(needle),
            "{context}: {message:?} lacks {needle:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client.
// ---------------------------------------------------------------------------

/// No test should ever wait this long; it turns a hang into a failure.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Well under a second: what "fails at once" must mean.
pub const AT_ONCE: Duration = Duration::from_millis(500);

pub struct Reply {
    pub status: u16,
    /// Names in lower case, in wire order, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// A keep-alive connection on which one GET of `target` has been answered,
/// so the server has surely accepted it; returns the stream, a reader on
/// it and that reply.
pub fn kept_alive(port: u16, target: &str) -> (TcpStream, BufReader<TcpStream>, Reply) {
    let mut stream = connect(port);
    stream
        .write_all(request_head("GET", target, false).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let reply = read_reply(&mut reader, false);
    (stream, reader, reply)
}

/// One line without its CRLF; `None` at end of stream.
pub fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).expect("read a line") == 0 {
        return None;
    }
    let line = line
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("line {line:?} does not end in CRLF"));
    Some(line.to_owned())
}

/// Reads one response: status line, headers, then exactly Content-Length
/// body bytes (none for a HEAD request, whatever Content-Length says).
pub fn read_reply(reader: &mut impl BufRead, head: bool) -> Reply {
    let status_line = read_line(reader).expect("a response before the connection closed");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line:?}");
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader).expect("the end of the headers");
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("header line {line:?}"));
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if !head {
        let len: usize = reply
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("a Content-Length (static bodies have a known size)");
        reply.body = vec![0; len];
        reader.read_exact(&mut reply.body).expect("the whole body");
    }
    reply
}

pub fn request_head(method: &str, target: &str, close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{connection}\r\n")
}

/// Sends one request with `Connection: close` and reads the response. Also
/// proves that nothing follows the response before the server closes.
pub fn fetch(port: u16, method: &str, target: &str) -> Reply {
    fetch_with(port, method, target, &[])
}

/// `fetch` with more request headers.
pub fn fetch_with(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut head = request_head(method, target, true);
    // Reopen the head (drop its closing blank line) to add the headers.
    head.truncate(head.len() - 2);
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = connect(port);
    stream.write_all(head.as_bytes()).expect("send the request");
    let mut reader = BufReader::new(stream);
    let reply = read_reply(&mut reader, method == "HEAD");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("the server closes");
    assert!(
        rest.is_empty(),
        "{method} {target}: {} stray bytes after the response: {rest:?}",
        rest.len()
    );
    reply
}

pub fn get(port: u16, target: &str) -> Reply {
    fetch(port, "GET", target)
}

/// GET that must succeed; returns the body as text.
pub fn body(port: u16, target: &str) -> String {
    let reply = get(port, target);
    assert_eq!(reply.status, 200, "GET {target}: {}", reply.text());
    reply.text().to_owned()
}

/// Reads until the peer closes. Returns what arrived, or the error if the
/// connection was reset. Panics if the peer kept it open past IO_TIMEOUT.
pub fn read_until_closed(stream: &mut impl Read) -> Result<Vec<u8>, ErrorKind> {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => Ok(rest),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the connection is still open after {IO_TIMEOUT:?}")
        }
        Err(e) => Err(e.kind()),
    }
}

/// The table the failure tests keep live: a failed swap must leave it.
pub const KEPT: &str = r#"{"GET": {"/x": "\"kept\""}}"#;

/// The usual start of a test: the lock held, the KEPT table live and a
/// server serving it. Bind as `let (_serial, server)`: the server then
/// stops before the lock is released.
pub fn serving_kept() -> (MutexGuard<'static, ()>, Server) {
    let serial = serial();
    set_ok(KEPT);
    (serial, Server::start())
}

/// After a failed swap, the old table still serves and nothing of the
/// rejected one (which may define `/new`) leaked in.
pub fn assert_kept(port: u16, context: &str) {
    assert_eq!(body(port, "/x"), r#""kept""#, "{context}");
    assert_eq!(get(port, "/new").status, 404, "{context}");
}
