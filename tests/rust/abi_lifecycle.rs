//! Starting and stopping the server through the C exports: ports, second
//! starts, graceful stops with deadlines, restarts, and serving a
//! listening socket the caller bound.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::ptr;
use std::time::{Duration, Instant};

use sufast::error::SufastErrorCode;

use support::*;

// ---------------------------------------------------------------------------
// Starting and stopping.
// ---------------------------------------------------------------------------

#[test]
fn start_on_port_zero_binds_a_free_port_and_serves() {
    let _serial = serial();
    assert_eq!(sufast::sufast_bound_port(), 0, "no server before the start");
    set_ok(r#"{"GET": {"/": "{\"hello\":\"world\"}"}}"#);
    let server = Server::start();
    assert_eq!(sufast::sufast_last_error_code(), SufastErrorCode::Ok);
    let reply = get(server.port, "/");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.text(), r#"{"hello":"world"}"#);
}

#[test]
fn a_second_start_fails_at_once_with_already_running() {
    let (_serial, server) = serving_kept();

    let started = Instant::now();
    assert!(!sufast::start_server(false, 0));
    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    let port = server.port.to_string();
    assert_failed(SufastErrorCode::AlreadyRunning, &[&port], "start_server");

    assert!(!start_on(b"127.0.0.1"));
    assert_failed(SufastErrorCode::AlreadyRunning, &[&port], "start_on");

    // The first server is untouched.
    assert_eq!(sufast::sufast_bound_port(), server.port);
    assert_eq!(body(server.port, "/x"), r#""kept""#);
}

#[test]
fn a_busy_port_fails_at_once_with_bind() {
    let _serial = serial();
    let _stop = StopOnDrop;
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
    let port = taken.local_addr().unwrap().port();

    let started = Instant::now();
    assert!(!sufast::start_server(false, port));
    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    assert_failed(SufastErrorCode::Bind, &[&port.to_string()], "busy port");
    assert_eq!(sufast::sufast_bound_port(), 0);
}

#[test]
fn start_server_on_rejects_bad_hosts_and_binds_a_good_one() {
    let _serial = serial();
    let _stop = StopOnDrop;

    // SAFETY: NULL is the case under test.
    assert!(!unsafe { sufast::sufast_start_server_on(ptr::null(), 9, 0, false) });
    assert_failed(SufastErrorCode::NullPointer, &["NULL", "host"], "NULL host");
    assert!(!start_on(b"127.0.0.\xff"));
    assert_failed(SufastErrorCode::InvalidUtf8, &["host"], "non-UTF-8 host");
    assert!(!start_on(b"not-an-ip"));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["not-an-ip"],
        "not an IP",
    );
    assert_eq!(sufast::sufast_bound_port(), 0, "no failure starts a server");

    set_ok(KEPT);
    let server = Server::adopt(start_on(b"127.0.0.1"));
    assert_eq!(body(server.port, "/x"), r#""kept""#);
}

#[test]
fn stop_without_a_server_is_not_running() {
    let _serial = serial();
    assert!(!sufast::sufast_stop_server());
    assert_failed(SufastErrorCode::NotRunning, &[], "stop");
    assert!(!sufast::sufast_stop_server_within(0));
    assert_failed(SufastErrorCode::NotRunning, &[], "stop_within");
}

#[test]
fn stop_releases_the_port_and_a_restart_serves() {
    let _serial = serial();
    set_ok(KEPT);
    let first = Server::start();
    assert_eq!(body(first.port, "/x"), r#""kept""#);

    assert!(sufast::sufast_stop_server(), "{}", last_error());
    assert_eq!(sufast::sufast_bound_port(), 0);
    // Only a released port can be bound again (Linux refuses a second
    // listener on a port even with SO_REUSEADDR).
    drop(TcpListener::bind((Ipv4Addr::LOCALHOST, first.port)).expect("the old port is free"));
    assert!(!sufast::sufast_stop_server());
    assert_eq!(last_code(), SufastErrorCode::NotRunning);

    let second = Server::start();
    assert_eq!(body(second.port, "/x"), r#""kept""#);
}

#[test]
fn stop_with_a_deadline_closes_a_half_sent_request() {
    let (_serial, server) = serving_kept();

    // A full request and its response first: only then is the connection
    // surely accepted and owned by the server, without sleeping for it.
    let (mut stream, mut reader, reply) = kept_alive(server.port, "/x");
    assert_eq!(reply.status, 200);
    stream.write_all(b"GET /x HTTP/1.1\r\nHost: 127").unwrap();

    // The deadline is only an upper bound here: a head still arriving may
    // count as an idle connection and be closed at once. What matters is
    // that the stop never waits for the client to finish.
    let started = Instant::now();
    assert!(sufast::sufast_stop_server_within(300), "{}", last_error());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    assert_eq!(sufast::sufast_bound_port(), 0);
    // Whatever the server says last, the connection ends.
    let _ = read_until_closed(&mut reader);
}

#[test]
fn stop_with_a_deadline_cuts_off_a_response_still_being_written() {
    let _serial = serial();
    // Far more than loopback socket buffers hold: while the client does
    // not read, the server cannot finish writing, so the request stays in
    // flight and only the deadline can end it.
    let big = "x".repeat(16 << 20);
    set_ok(
        &serde_json::json!({"GET": {"/big": {"content_type": "text/plain", "body": big}}})
            .to_string(),
    );
    let server = Server::start();

    let mut stream = connect(server.port);
    stream
        .write_all(request_head("GET", "/big", true).as_bytes())
        .unwrap();
    // The response has begun: the request is surely in flight.
    let mut first = [0_u8; 12];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let started = Instant::now();
    assert!(sufast::sufast_stop_server_within(300), "{}", last_error());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "the request in flight was not given its deadline: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    let received = read_until_closed(&mut stream).map_or(0, |rest| rest.len());
    assert!(
        received < big.len(),
        "the response was cut off at the deadline"
    );
}

#[test]
fn an_idle_keep_alive_connection_does_not_delay_a_stop() {
    let (_serial, server) = serving_kept();

    let (_stream, mut reader, reply) = kept_alive(server.port, "/x");
    assert_eq!(reply.text(), r#""kept""#);
    assert_ne!(reply.header("connection"), Some("close"), "kept alive");

    // The default deadline is 5 s; an idle connection must not use it up.
    let started = Instant::now();
    assert!(sufast::sufast_stop_server(), "{}", last_error());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    let rest = read_until_closed(&mut reader);
    assert!(
        rest.as_ref().map_or(true, Vec::is_empty),
        "{rest:?} after the stop"
    );
}

#[test]
fn a_request_on_a_connection_accepted_before_a_stop_is_answered() {
    let (_serial, server) = serving_kept();
    let port = server.port;
    let mut early = connect(port);
    // Accepted in order: once a later connection is served, `early` was
    // accepted too, though it has sent nothing yet.
    assert_eq!(body(port, "/x"), r#""kept""#);
    let started = Instant::now();
    let stopping = std::thread::spawn(|| sufast::sufast_stop_server());
    // The stop has begun once new connections are refused.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(started.elapsed() < IO_TIMEOUT, "the listener never closed");
    }
    early
        .write_all(request_head("GET", "/x", false).as_bytes())
        .unwrap();
    let mut reader = std::io::BufReader::new(early);
    let reply = read_reply(&mut reader, false);
    assert_eq!(reply.text(), r#""kept""#, "the request that was on its way");
    let rest = read_until_closed(&mut reader);
    assert!(
        rest.as_ref().map_or(true, Vec::is_empty),
        "{rest:?}: then the connection closes"
    );
    assert!(stopping.join().unwrap(), "{}", last_error());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
}

// ---------------------------------------------------------------------------
// Serving a listening socket the caller bound (sufast_start_server_fd).
// ---------------------------------------------------------------------------

#[cfg(unix)]
fn start_fd(fd: std::os::raw::c_int) -> bool {
    // SAFETY: nothing closes `fd` during the call.
    unsafe { sufast::sufast_start_server_fd(fd, false) }
}

#[cfg(unix)]
#[test]
fn start_server_fd_serves_a_copy_and_the_caller_keeps_its_socket() {
    use std::io::BufReader;
    use std::os::fd::AsRawFd;

    let _serial = serial();
    set_ok(KEPT);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
    let port = listener.local_addr().unwrap().port();

    let first = Server::adopt(start_fd(listener.as_raw_fd()));
    assert_eq!(first.port, port, "the bound port is the socket's");
    assert_eq!(body(port, "/x"), r#""kept""#);
    assert!(!start_fd(listener.as_raw_fd()));
    assert_failed(
        SufastErrorCode::AlreadyRunning,
        &[&port.to_string()],
        "second start",
    );

    // A stop closes only the library's copy: the caller's socket keeps
    // listening, so a client that connects in between waits in the
    // backlog and the next server answers it.
    assert!(sufast::sufast_stop_server(), "{}", last_error());
    assert_eq!(sufast::sufast_bound_port(), 0);
    let mut waiting = connect(port);
    waiting
        .write_all(request_head("GET", "/x", true).as_bytes())
        .unwrap();
    let second = Server::adopt(start_fd(listener.as_raw_fd()));
    assert_eq!(second.port, port);
    let reply = read_reply(&mut BufReader::new(waiting), false);
    assert_eq!(reply.text(), r#""kept""#);

    // The caller may close its descriptor while the copy serves.
    drop(listener);
    assert_eq!(body(port, "/x"), r#""kept""#);
    assert!(sufast::sufast_stop_server(), "{}", last_error());
    drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("both closed: the port is free"));
}

#[cfg(unix)]
#[test]
fn start_server_fd_rejects_what_is_not_a_listening_tcp_socket_at_once() {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::net::UnixListener;

    let _serial = serial();
    let _stop = StopOnDrop;
    let started = Instant::now();

    assert!(!start_fd(-1));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["fd -1", "negative"],
        "negative",
    );
    // Far above any descriptor limit, so surely not open.
    assert!(!start_fd(i32::MAX));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["not an open file descriptor"],
        "closed",
    );

    let file = std::fs::File::open("/dev/null").expect("open /dev/null");
    assert!(!start_fd(file.as_raw_fd()));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &[
            &format!("fd {}", file.as_raw_fd()),
            "not a listening TCP socket",
        ],
        "a file",
    );
    file.metadata()
        .expect("the caller's descriptor is still open");

    let path = std::env::temp_dir().join(format!("sufast-abi-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let unix = UnixListener::bind(&path).expect("bind a Unix socket");
    let refused = start_fd(unix.as_raw_fd());
    let _ = std::fs::remove_file(&path);
    assert!(!refused);
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["not a listening TCP socket"],
        "a Unix socket",
    );

    let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP socket");
    assert!(!start_fd(udp.as_raw_fd()));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["is not a TCP socket", "not a stream socket"],
        "a UDP socket",
    );

    // Bound, never listening: std cannot make one, libc can.
    // SAFETY: plain socket calls on a descriptor this test owns.
    let bound = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len),
            0
        );
        std::os::fd::OwnedFd::from_raw_fd(fd)
    };
    assert!(!start_fd(bound.as_raw_fd()));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &[
            "is a TCP socket bound to 127.0.0.1:",
            "not listening",
            "listen()",
        ],
        "bound, not listening",
    );

    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    assert_eq!(sufast::sufast_bound_port(), 0, "no failure starts a server");
}

#[cfg(not(unix))]
#[test]
fn start_server_fd_is_unsupported_outside_unix() {
    let _serial = serial();
    // SAFETY: the descriptor is never used outside Unix.
    assert!(!unsafe { sufast::sufast_start_server_fd(3, false) });
    assert_failed(
        SufastErrorCode::Unsupported,
        &["not supported"],
        "outside Unix",
    );
}

// ---------------------------------------------------------------------------
// Options.
// ---------------------------------------------------------------------------

fn set_option(name: &str, value: i64) -> bool {
    // SAFETY: a live slice for the duration of the call.
    unsafe { sufast::sufast_set_option(name.as_ptr(), name.len(), value) }
}

#[test]
fn set_option_takes_known_names_and_values_only() {
    let _serial = serial();
    use sufast::log::{SufastAccessLog, SufastLogLevel};
    assert!(set_option("log_level", SufastLogLevel::Trace as i64));
    assert!(set_option("log_level", SufastLogLevel::Info as i64));
    assert!(set_option("access_log", SufastAccessLog::Json as i64));
    assert!(set_option("access_log", SufastAccessLog::Auto as i64));

    assert!(!set_option("log_level", 6));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["log_level", "6"],
        "bad level",
    );
    assert!(!set_option("access_log", -1));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["access_log", "-1"],
        "bad format",
    );
    assert!(!set_option("handlers_saturated", 2));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["handlers_saturated", "0 or 1"],
        "bad flag",
    );
    assert!(set_option("handlers_saturated", 0));
    assert!(!set_option("header_timeout_ms", 0));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["header_timeout_ms", "out of range"],
        "a zero timeout",
    );
    assert!(!set_option("max_everything", 1));
    assert_failed(
        SufastErrorCode::InvalidArgument,
        &["unknown option", "max_everything", "log_level"],
        "unknown name",
    );
    // SAFETY: NULL is refused before it is read.
    assert!(!unsafe { sufast::sufast_set_option(ptr::null(), 3, 1) });
    assert_failed(SufastErrorCode::NullPointer, &["option name"], "NULL name");
}
