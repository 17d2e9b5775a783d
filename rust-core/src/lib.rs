//! sufast's HTTP server as a C library: a route table handed over as JSON,
//! served by axum on tokio from a thread of its own.
//!
//! # Layout
//! - `lib.rs`: the C exports only. Each checks its pointers, copies its
//!   input, calls a safe function and maps the error.
//! - [`ffi`]: the panic boundary and pointer helpers the exports share.
//! - [`error`]: the error type, its stable codes and the thread-local last
//!   error.
//! - [`routes`]: the route-table format, its validation and matching (pure).
//! - [`instance`]: the one `Instance`, the library's only static: table,
//!   running server, queue, limits, log settings.
//! - [`server`]: the service, start and graceful stop.
//! - [`listener`]: the accept loop: hyper's HTTP/1 builder,
//!   a permit per connection, accept errors logged, graceful drain.
//! - [`limits`]: the named limits and timeouts, with their defaults.
//! - [`deadlines`]: a connection's read deadlines (request head, idle
//!   keep-alive), kept by wrapping its socket.
//! - [`log`]: the event log and the access log, on stderr.
//! - [`tiers`]: how static, dynamic and cached routes answer.
//! - [`files`]: how files routes answer: a directory served by Rust.
//! - [`dispatch`]: the queue of requests for handlers outside Rust.
//! - [`stream`]: streamed answers, with a bounded buffer per stream.
//! - [`websocket`]: WebSocket connections joined to their handler's stream.
//! - [`wire`]: the byte layouts they cross in (request record, response),
//!   with a layout version.
//! - [`responses`]: every response the server makes itself.
//! - [`cache`]: the cached tier's store.
//! - [`compression`]: gzip of responses, negotiated by `Accept-Encoding`;
//!   stored ones compressed once.
//!
//! # Conventions of the C ABI
//! - A `bool` export returns `false` on failure; the reason is then readable
//!   with `sufast_last_error` (and `sufast_last_error_code`) on the same
//!   thread, until the next call of an export that can fail.
//! - Inputs are borrowed `(pointer, length)` pairs for the duration of the
//!   call only: the library copies what it keeps. Output text is copied into
//!   a buffer the caller owns. The library never hands out memory for the
//!   caller to free.
//! - No export unwinds: a panic inside is caught and reported as an error.
//! - Every export may be called from any thread.

pub mod cache;
pub mod compression;
pub mod deadlines;
pub mod dispatch;
pub mod error;
pub mod ffi;
pub mod files;
pub mod forms;
pub mod instance;
pub mod limits;
pub mod listener;
pub mod log;
pub mod responses;
pub mod routes;
pub mod server;
pub mod stream;
pub mod tiers;
pub mod websocket;
pub mod wire;

use std::os::raw::{c_char, c_int};
use std::time::Duration;

use error::SufastErrorCode;
use ffi::{borrow_bytes, borrow_str, boundary, guard};

/// Validates the route table `json` (`len` bytes of UTF-8 JSON, no NUL
/// needed) and swaps it in atomically, also while the server runs: a
/// request sees the old table or the new one, never a mix.
///
/// Returns `false` on any error, with the reason in the last error; the
/// previous table then stays in place. `json` is only read during the call.
///
/// # Safety
/// `json` must point to `len` readable bytes (or be NULL, an error).
#[no_mangle]
pub unsafe extern "C" fn set_routes(json: *const u8, len: usize) -> bool {
    boundary("set_routes", false, || {
        // SAFETY: the caller's contract above.
        let json = unsafe { borrow_bytes(json, len, "route table") }?;
        server::set_routes(json).map(|_| true)
    })
}

/// Validates the route table `json` as `set_routes` would, without
/// swapping it in. Returns `false` with the reason in the last error.
///
/// # Safety
/// As for `set_routes`.
#[no_mangle]
pub unsafe extern "C" fn sufast_check_routes(json: *const u8, len: usize) -> bool {
    boundary("sufast_check_routes", false, || {
        // SAFETY: the caller's contract above.
        let json = unsafe { borrow_bytes(json, len, "route table") }?;
        server::check_routes(json).map(|_| true)
    })
}

/// Starts the server on its own thread and returns once the socket is
/// bound. `production` binds 0.0.0.0 and logs only errors; otherwise it
/// binds 127.0.0.1 and logs one access line per request to stderr. Port 0
/// picks a free port (read it with `sufast_bound_port`).
///
/// Returns `false` at once if the port is busy or a server is running.
#[no_mangle]
pub extern "C" fn start_server(production: bool, port: u16) -> bool {
    boundary("start_server", false, || {
        let host = if production { "0.0.0.0" } else { "127.0.0.1" };
        server::start(host, port, production).map(|_| true)
    })
}

/// Like `start_server`, but binds the IP address `host` (`len` bytes of
/// UTF-8, e.g. "127.0.0.1", "::1", "0.0.0.0"); `production` then only
/// turns the access log off.
///
/// # Safety
/// `host` must point to `len` readable bytes (or be NULL, an error).
#[no_mangle]
pub unsafe extern "C" fn sufast_start_server_on(
    host: *const u8,
    len: usize,
    port: u16,
    production: bool,
) -> bool {
    boundary("sufast_start_server_on", false, || {
        // SAFETY: the caller's contract above.
        let host = unsafe { borrow_str(host, len, "host") }?;
        server::start(host, port, production).map(|_| true)
    })
}

/// Like `start_server`, but serves the TCP socket `fd` that the caller has
/// already bound and set listening, for example once before forking worker
/// processes that each serve it. `production` only turns the access log
/// off. `sufast_bound_port` reports the socket's port.
///
/// The library serves a duplicate of `fd` (close-on-exec) and never closes
/// `fd` itself: the caller keeps it and may close it as soon as this
/// returns. A stop closes only the duplicate: while `fd` stays open (here
/// or in a forked process), the socket stays bound and listening, and a
/// later start may serve it again. The duplicate shares the socket's file
/// status flags: `fd` becomes non-blocking too.
///
/// Returns `false` with `SUFAST_ERROR_CODE_INVALID_ARGUMENT` if `fd` is
/// negative, not open, not an IP socket, not TCP, not bound or not
/// listening, and fails as `start_server` does if a server is running.
/// Outside Unix this always fails with `SUFAST_ERROR_CODE_UNSUPPORTED`.
///
/// # Safety
/// No other thread may close `fd` during the call (it could be reused for
/// another file before the library duplicates it).
#[no_mangle]
pub unsafe extern "C" fn sufast_start_server_fd(fd: c_int, production: bool) -> bool {
    boundary("sufast_start_server_fd", false, || {
        #[cfg(unix)]
        {
            if fd < 0 {
                return Err(error::Error::new(
                    SufastErrorCode::InvalidArgument,
                    format!("fd {fd} is negative, not a file descriptor"),
                ));
            }
            // SAFETY: the caller keeps `fd` open during the call. A number
            // that names no open file is only passed to the duplication,
            // which then fails (EBADF); nothing reads or closes it.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            server::start_fd(fd, production).map(|_| true)
        }
        #[cfg(not(unix))]
        {
            let _ = (fd, production);
            Err(error::Error::new(
                SufastErrorCode::Unsupported,
                "sufast_start_server_fd is not supported on this platform; use start_server",
            ))
        }
    })
}

/// Stops the server gracefully: no new connections; a request head on its
/// way on an open connection gets 0.25 s to arrive, and requests in flight
/// get up to 5 seconds in all to finish, then their connections are
/// closed. Returns
/// once the port is released; the server can then be started again.
/// Returns `false` if no server is running.
#[no_mangle]
pub extern "C" fn sufast_stop_server() -> bool {
    boundary("sufast_stop_server", false, || {
        server::stop(server::DEFAULT_STOP_DEADLINE).map(|()| true)
    })
}

/// Like `sufast_stop_server` with a deadline of `timeout_ms` milliseconds
/// for requests in flight (0 closes them at once).
#[no_mangle]
pub extern "C" fn sufast_stop_server_within(timeout_ms: u32) -> bool {
    boundary("sufast_stop_server_within", false, || {
        server::stop(Duration::from_millis(timeout_ms.into())).map(|()| true)
    })
}

/// The TCP port the running server listens on, or 0 when none runs (or
/// it is stopping). Never waits for a start or stop in progress.
#[no_mangle]
pub extern "C" fn sufast_bound_port() -> u16 {
    guard("sufast_bound_port", 0, server::bound_port)
}

/// Copies the message of this thread's last error into `buf` (at most
/// `len - 1` bytes and a NUL, cut at a UTF-8 character boundary) and
/// returns the message's full length in bytes, without the NUL. Returns 0
/// when the last call succeeded. With `buf` NULL or `len` 0 nothing is
/// written, which asks for the length.
///
/// # Safety
/// `buf` must point to `len` writable bytes (or be NULL).
#[no_mangle]
pub unsafe extern "C" fn sufast_last_error(buf: *mut c_char, len: usize) -> usize {
    guard("sufast_last_error", 0, || {
        error::with_last(|last| {
            let message = last.map_or("", |e| e.message.as_str());
            // SAFETY: the caller's contract above.
            unsafe { ffi::copy_out(message, buf.cast::<u8>(), len) }
        })
    })
}

/// The code of this thread's last error (`SUFAST_ERROR_CODE_OK` after a
/// success). Codes are stable: a number never changes meaning.
#[no_mangle]
pub extern "C" fn sufast_last_error_code() -> SufastErrorCode {
    guard("sufast_last_error_code", SufastErrorCode::Panic, || {
        error::with_last(|last| last.map_or(SufastErrorCode::Ok, |e| e.code))
    })
}

/// What `sufast_take_requests` found. The numbers are part of the ABI.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SufastTake {
    /// Whole request records were written; `*len` is their total size.
    Requests = 0,
    /// No request arrived before the timeout.
    Timeout = 1,
    /// The next record alone is larger than the buffer; `*len` is its size.
    /// Call again with a buffer at least that large.
    TooSmall = 2,
    /// The server stopped (or never started): no request will come. A
    /// handler thread should exit.
    Closed = 3,
    /// An argument was invalid; the reason is in the last error.
    Failed = 4,
}

/// For handler threads (the Python package's, or a C program's): waits up
/// to `timeout_ms` for requests to dynamic and cached routes, copies whole
/// request records into `buf` (`cap` bytes, owned by the caller) and
/// stores the number of bytes written (or needed) in `*len`. Each record
/// must be answered with `sufast_respond`. The record layout is documented
/// in `rust-core/src/wire.rs` and the README.
///
/// Blocks the calling thread (never a server thread); call it without
/// holding locks other threads need (Python's ctypes releases the GIL).
/// A thread that took requests counts as busy until its next take: new
/// requests are left for it rather than waking another thread, and the
/// answers it gives meanwhile go out when it comes back (or after about a
/// millisecond, as another thread is woken when queued requests see no
/// take for that long). So take again as soon as a batch is answered.
///
/// # Safety
/// `buf` must point to `cap` writable bytes and `len` to a writable
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sufast_take_requests(
    buf: *mut u8,
    cap: usize,
    timeout_ms: u32,
    len: *mut usize,
) -> SufastTake {
    boundary("sufast_take_requests", SufastTake::Failed, || {
        if len.is_null() {
            return Err(error::Error::new(
                SufastErrorCode::NullPointer,
                "len is a NULL pointer",
            ));
        }
        // SAFETY: the caller's contract above.
        let buf = unsafe { ffi::borrow_bytes_mut(buf, cap, "buffer") }?;
        let timeout = Duration::from_millis(timeout_ms.into());
        let (taken, size) = match dispatch::take(buf, timeout) {
            dispatch::Taken::Records(n) => (SufastTake::Requests, n),
            dispatch::Taken::Timeout => (SufastTake::Timeout, 0),
            dispatch::Taken::TooSmall(n) => (SufastTake::TooSmall, n),
            dispatch::Taken::Closed => (SufastTake::Closed, 0),
        };
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { len.write(size) };
        Ok(taken)
    })
}

/// Answers the request `id` (from its record) with `len` bytes at
/// `response`: status, headers and body in the layout documented in
/// `rust-core/src/wire.rs`. The bytes are copied during the call.
///
/// Returns `false` if the response is malformed (a status outside 200-599,
/// an invalid header name, a header value with CR or LF, a header the
/// server owns such as Content-Length); the client then gets a 500 and the
/// reason is in the last error. Answering a request whose client has gone,
/// or that a stop already closed, succeeds and does nothing.
///
/// # Safety
/// `response` must point to `len` readable bytes (or be NULL, an error).
#[no_mangle]
pub unsafe extern "C" fn sufast_respond(id: u64, response: *const u8, len: usize) -> bool {
    boundary("sufast_respond", false, || {
        // SAFETY: the caller's contract above.
        let response = unsafe { borrow_bytes(response, len, "response") }?;
        dispatch::respond(id, response).map(|()| true)
    })
}

/// What a streamed answer's call did. The numbers are part of the ABI.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SufastSent {
    /// Taken: go on (send the next chunk, or end the stream).
    Ok = 0,
    /// `sufast_respond_chunk` only: the stream's buffer stayed full for
    /// `wait_ms`, and the chunk was not taken. Send it again later; the
    /// ready socket (`sufast_stream_ready_fd`) says when there is room.
    Full = 1,
    /// Nobody reads this stream any more: the client left, it read nothing
    /// for `send_timeout_ms`, the request's `request_timeout_ms` passed
    /// before the head, or the server stopped. Stop producing; the stream
    /// needs no end.
    Gone = 2,
    /// An argument was invalid (the reason is in the last error); after a
    /// head, the client got a 500.
    Failed = 3,
}

fn sent(sent: stream::Sent) -> SufastSent {
    match sent {
        stream::Sent::Ok => SufastSent::Ok,
        stream::Sent::Full => SufastSent::Full,
        stream::Sent::Gone => SufastSent::Gone,
    }
}

/// Answers the request `id` with a stream: `head` (`len` bytes) is a
/// response in the layout of `sufast_respond` whose body, if any, is the
/// first chunk (at most 1 MiB). The status and headers are sent at once,
/// with chunked transfer encoding; then each `sufast_respond_chunk` in
/// turn; then `sufast_respond_end`. The bytes are copied during the call.
///
/// Each stream buffers at most `stream_buffer` bytes (default 256 KiB)
/// plus the one chunk that crosses it, so its memory stays bounded
/// whatever its producer does. Streams are not compressed.
///
/// Returns `SUFAST_SENT_OK` (send chunks now), `SUFAST_SENT_GONE` (nobody
/// waits for this answer any more) or `SUFAST_SENT_FAILED` (a malformed
/// head, as for `sufast_respond`: the client got a 500).
///
/// # Safety
/// `head` must point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn sufast_respond_head(id: u64, head: *const u8, len: usize) -> SufastSent {
    boundary("sufast_respond_head", SufastSent::Failed, || {
        // SAFETY: the caller's contract above.
        let head = unsafe { borrow_bytes(head, len, "head") }?;
        Ok(match dispatch::respond_head(id, head)? {
            true => SufastSent::Ok,
            false => SufastSent::Gone,
        })
    })
}

/// Sends `len` bytes at `chunk` (at most 1 MiB; copied during the call)
/// on the stream of request `id`, waiting up to `wait_ms` while its
/// buffer is full. A thread may wait here (the GIL released); an event
/// loop passes 0 and waits for the ready socket instead. An empty chunk
/// sends nothing and reports the stream's state.
///
/// Returns `SUFAST_SENT_OK`, `SUFAST_SENT_FULL` (not taken: send it
/// again), `SUFAST_SENT_GONE` (stop producing) or `SUFAST_SENT_FAILED`.
///
/// # Safety
/// `chunk` must point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn sufast_respond_chunk(
    id: u64,
    chunk: *const u8,
    len: usize,
    wait_ms: u32,
) -> SufastSent {
    boundary("sufast_respond_chunk", SufastSent::Failed, || {
        // SAFETY: the caller's contract above.
        let chunk = unsafe { borrow_bytes(chunk, len, "chunk") }?;
        if chunk.len() > stream::MAX_CHUNK {
            return Err(error::Error::new(
                SufastErrorCode::InvalidArgument,
                format!(
                    "a chunk of {} bytes is larger than 1 MiB; send it in pieces",
                    chunk.len()
                ),
            ));
        }
        let wait = Duration::from_millis(wait_ms.into());
        Ok(sent(stream::send(id, chunk, wait)))
    })
}

/// Ends the stream of request `id`. With `complete`, the client gets the
/// buffered chunks and then the end of the response; without (the
/// producer failed midway), it gets the buffered chunks and then the
/// connection is cut, so that it can tell the response is incomplete.
///
/// Returns `SUFAST_SENT_OK`, or `SUFAST_SENT_GONE` if the stream was gone
/// already.
#[no_mangle]
pub extern "C" fn sufast_respond_end(id: u64, complete: bool) -> SufastSent {
    boundary("sufast_respond_end", SufastSent::Failed, || {
        Ok(sent(stream::end(id, complete)))
    })
}

/// Answers the request `id` with the file at `path` (`path_len` bytes, a
/// file-system path), which the server opens and sends itself, as a
/// files route sends its files: content type from the extension,
/// Content-Length, a weak ETag, Last-Modified, conditional GET (304) and
/// single Range requests (206, 416). `head` (`len` bytes, the layout of
/// `sufast_respond`, no body) gives the status for a 200 and headers that
/// replace the file's own (a Content-Type, a Content-Disposition). A path
/// that is not a file gets a 404. The bytes are copied during the call.
///
/// Returns `SUFAST_SENT_OK`, `SUFAST_SENT_GONE` (nobody waits for this
/// answer any more) or `SUFAST_SENT_FAILED` (a malformed head: the client
/// got a 500).
///
/// # Safety
/// `head` must point to `len` readable bytes, `path` to `path_len`.
#[no_mangle]
pub unsafe extern "C" fn sufast_respond_file(
    id: u64,
    head: *const u8,
    len: usize,
    path: *const u8,
    path_len: usize,
) -> SufastSent {
    boundary("sufast_respond_file", SufastSent::Failed, || {
        // SAFETY: the caller's contract above.
        let head = unsafe { borrow_bytes(head, len, "head") }?;
        // SAFETY: the caller's contract above.
        let path = unsafe { borrow_bytes(path, path_len, "path") }?;
        let path = {
            use std::os::unix::ffi::OsStrExt;
            std::path::PathBuf::from(std::ffi::OsStr::from_bytes(path))
        };
        Ok(match dispatch::respond_file(id, head, path)? {
            true => SufastSent::Ok,
            false => SufastSent::Gone,
        })
    })
}

/// What `sufast_stream_read` found. The numbers are part of the ABI.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SufastRead {
    /// A frame was copied; `*len` is its length.
    Frame = 0,
    /// None arrived within `wait_ms`; the ready socket says when one does.
    Empty = 1,
    /// None will come (the client closed, or the stream is gone).
    End = 2,
    /// The next frame is larger than `cap`; `*len` is its length.
    TooSmall = 3,
    /// An argument was invalid; the reason is in the last error.
    Failed = 4,
}

/// Reads the next frame the client sent on the stream of request `id`
/// into `buf` (`cap` bytes, owned by the caller), waiting up to `wait_ms`
/// for one, and stores its length in `*len`. On a route with `"stream":
/// true` the frames are the request body as it arrives (its record's
/// held length is `STREAMED_BODY`), and `SUFAST_READ_END` is its end; a
/// body that broke off is `SUFAST_READ_FAILED` with
/// `SUFAST_ERROR_CODE_GONE`, and the last error starts with the status to
/// answer it with (408, 413), or says the client left (or the request
/// was answered) before the body was read. On a WebSocket route the
/// frames are the client's messages, a kind byte and the payload (1
/// text, 2 binary, 8 close: a u16 code, little-endian, and the reason);
/// the close is the last frame. Frames wait in a buffer of
/// `stream_buffer` bytes (plus one message); while it is full the server
/// reads nothing more from the client.
///
/// # Safety
/// `buf` must point to `cap` writable bytes, `len` to a writable size_t.
#[no_mangle]
pub unsafe extern "C" fn sufast_stream_read(
    id: u64,
    buf: *mut u8,
    cap: usize,
    wait_ms: u32,
    len: *mut usize,
) -> SufastRead {
    boundary("sufast_stream_read", SufastRead::Failed, || {
        if len.is_null() {
            return Err(error::Error::new(
                SufastErrorCode::NullPointer,
                "len is a NULL pointer",
            ));
        }
        // SAFETY: the caller's contract above.
        let buf = unsafe { ffi::borrow_bytes_mut(buf, cap, "buffer") }?;
        let wait = Duration::from_millis(wait_ms.into());
        let (read, size) = match stream::read(id, buf, wait) {
            stream::Read::Frame(n) => (SufastRead::Frame, n),
            stream::Read::Empty => (SufastRead::Empty, 0),
            stream::Read::End => (SufastRead::End, 0),
            stream::Read::TooSmall(n) => (SufastRead::TooSmall, n),
            stream::Read::Failed(why) => {
                return Err(error::Error::new(SufastErrorCode::Gone, why));
            }
        };
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { len.write(size) };
        Ok(read)
    })
}

/// The descriptor of the ready socket, made on first call and owned by
/// the library (never close it): it becomes readable when a stream whose
/// `sufast_respond_chunk` returned `SUFAST_SENT_FULL` with `wait_ms` 0 has
/// room again, or is gone. An event loop watches it, then reads the ids
/// with `sufast_stream_ready`. Returns -1 if it cannot be made.
#[no_mangle]
pub extern "C" fn sufast_stream_ready_fd() -> i32 {
    boundary("sufast_stream_ready_fd", -1, || {
        stream::ready_fd().map_err(|why| {
            error::Error::new(
                SufastErrorCode::InvalidArgument,
                format!("the ready socket cannot be made: {why}"),
            )
        })
    })
}

/// Copies the request ids of the streams that became ready into `ids`
/// (room for `cap`; owned by the caller) and returns how many; the ready
/// socket stays readable while more are left. Send each its chunk again.
///
/// # Safety
/// `ids` must point to `cap` writable `uint64_t` (or be NULL with `cap` 0).
#[no_mangle]
pub unsafe extern "C" fn sufast_stream_ready(ids: *mut u64, cap: usize) -> usize {
    boundary("sufast_stream_ready", 0, || {
        if cap == 0 {
            return Ok(0);
        }
        if ids.is_null() {
            return Err(error::Error::new(
                SufastErrorCode::NullPointer,
                "ids is a NULL pointer",
            ));
        }
        // SAFETY: the caller's contract above.
        let out = unsafe { std::slice::from_raw_parts_mut(ids, cap) };
        Ok(stream::take_ready(out))
    })
}

/// Copies the body of request `id` that its record holds back (a body of
/// more than 64 KiB: the record's held length is not 0) into `buf`, which
/// must have exactly that many bytes, and frees the library's copy: the
/// body is copied once on its way to the handler. Call it at most once per
/// request, before answering it; a body not taken is freed by the answer.
///
/// Returns `false` with `SUFAST_ERROR_CODE_GONE` if the request is no
/// longer waiting (its client went away, or the server stopped: skip the
/// request), and with `SUFAST_ERROR_CODE_INVALID_ARGUMENT` if `cap` is not
/// the held length or no body is held.
///
/// # Safety
/// `buf` must point to `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn sufast_take_body(id: u64, buf: *mut u8, cap: usize) -> bool {
    boundary("sufast_take_body", false, || {
        // SAFETY: the caller's contract above.
        let buf = unsafe { ffi::borrow_bytes_mut(buf, cap, "buffer") }?;
        dispatch::take_body(id, buf).map(|()| true)
    })
}

/// Parses a form body the caller holds: `content_type` (the request's
/// Content-Type, `ct_len` bytes) says which kind, multipart/form-data or
/// application/x-www-form-urlencoded, and `body` has `len` bytes. The
/// result is a form record (its layout is in the header's description of
/// form routes, `"form": true`), held to `max_form_parts` and
/// `max_part_size` and to `max_body_size` in all; nothing is written to
/// disk. Routes that read forms get theirs parsed as they arrive; this is
/// for a handler that finds out late that it wants one.
///
/// Returns the record's length and writes it into `buf` if it has room
/// (`cap` bytes); with less room it writes nothing, and the caller calls
/// again with a buffer of the returned length. Returns 0 when the body is
/// refused: `status` (if not NULL) is set to the HTTP status to answer
/// with (400 malformed, 413 over a limit) and the last error has the detail.
///
/// # Safety
/// `content_type` must point to `ct_len` readable bytes, `body` to `len`
/// readable bytes, `buf` to `cap` writable bytes (NULL with `cap` 0 asks
/// for the length only), and `status` be NULL or point to a writable u16.
#[no_mangle]
pub unsafe extern "C" fn sufast_parse_form(
    content_type: *const u8,
    ct_len: usize,
    body: *const u8,
    len: usize,
    buf: *mut u8,
    cap: usize,
    status: *mut u16,
) -> usize {
    boundary("sufast_parse_form", 0, || {
        // SAFETY: the caller's contract above.
        let content_type = unsafe { borrow_bytes(content_type, ct_len, "content type") }?;
        // SAFETY: the caller's contract above.
        let body = unsafe { borrow_bytes(body, len, "body") }?;
        let max_body = instance::instance()
            .max_body
            .load(std::sync::atomic::Ordering::Relaxed);
        let refused = |code: u16, detail: String| {
            if !status.is_null() {
                // SAFETY: the caller's contract above.
                unsafe { status.write(code) };
            }
            error::Error::new(SufastErrorCode::InvalidArgument, detail)
        };
        if body.len() > max_body {
            return Err(refused(
                413,
                "Payload Too Large: the body is larger than max_body_size".into(),
            ));
        }
        let record = forms::parse(content_type, body, &limits::form_limits(max_body))
            .map_err(|(code, detail)| refused(code, detail))?;
        if record.len() <= cap {
            // SAFETY: the caller's contract above.
            let out = unsafe { ffi::borrow_bytes_mut(buf, cap, "buffer") }?;
            out[..record.len()].copy_from_slice(&record);
        }
        Ok(record.len())
    })
}

/// Sets limits for requests to handlers, effective at once:
/// `max_pending` requests may wait for or be inside handlers (more get a
/// 503 at once; default 1024), and a request body may have at most
/// `max_body_bytes` bytes (more get a 413; default 16 MiB). Both must be
/// at least 1.
#[no_mangle]
pub extern "C" fn sufast_set_limits(max_pending: u32, max_body_bytes: u64) -> bool {
    boundary("sufast_set_limits", false, || {
        if max_pending == 0 || max_body_bytes == 0 {
            return Err(error::Error::new(
                SufastErrorCode::InvalidArgument,
                format!(
                    "limits must be at least 1, got max_pending {max_pending} and max_body_bytes {max_body_bytes}"
                ),
            ));
        }
        dispatch::set_max_pending(max_pending as usize);
        tiers::set_max_body(usize::try_from(max_body_bytes).unwrap_or(usize::MAX));
        Ok(true)
    })
}

/// Sets the option `name` (`len` bytes of UTF-8) to `value`:
/// - `"log_level"`: a `SufastLogLevel`; server events below it are not
///   written. Effective at once; the default is `SUFAST_LOG_LEVEL_INFO`.
/// - `"access_log"`: a `SufastAccessLog`; effective from the next start.
///   The default, `SUFAST_ACCESS_LOG_AUTO`, logs in the common format
///   unless the server is started in production mode.
///
/// - `"header_timeout_ms"` (default 10000): a request head not complete
///   this long after the accept (a connection's first request) or after
///   its first byte (the others) gets a 408 and the connection closes.
/// - `"keepalive_timeout_ms"` (default 5000): a keep-alive connection
///   idle this long between requests is closed.
/// - `"max_header_size"` (bytes, default 65536, at least 1024): a larger
///   request line and headers get 431.
/// - `"max_connections"` (default 0: the open-files limit less an eighth,
///   at least 64 kept back): more clients wait until one closes.
/// - `"request_timeout_ms"` (default 60000): a request to a handler not
///   answered by then gets 504; the late answer is dropped and logged.
/// - `"body_timeout_ms"` (default 30000): a request body with a longer
///   pause between reads gets 408 and the connection closes.
/// - `"max_form_parts"` (default 1000): a form with more fields and files
///   gets 413.
/// - `"max_part_size"` (bytes, default 1048576): a form field (not a file)
///   that is larger gets 413.
/// - `"upload_spool_size"` (bytes, default 1048576): an uploaded file that
///   is larger is written to a temporary file as it arrives instead of
///   being kept in memory; the library deletes it once the request is
///   answered.
///
/// - `"handlers_saturated"` (0 or 1): set by the handler threads' owner
///   when none of them can take a request and no more can start; while it
///   is 1, requests to handlers get a 503 at once instead of waiting.
///   Cleared by a start.
///
/// The connection limits (`header_timeout_ms`, `keepalive_timeout_ms`,
/// `max_header_size`, `max_connections`) take effect from the next start, the others at
/// once. Events go to stderr as `sufast: <level>: <message>` lines, the
/// access log as one line per request. Returns `false` with
/// `SUFAST_ERROR_CODE_INVALID_ARGUMENT` for an unknown name or value.
///
/// # Safety
/// `name` must point to `len` readable bytes (or be NULL, an error).
#[no_mangle]
pub unsafe extern "C" fn sufast_set_option(name: *const u8, len: usize, value: i64) -> bool {
    boundary("sufast_set_option", false, || {
        // SAFETY: the caller's contract above.
        let name = unsafe { borrow_str(name, len, "option name") }?;
        let invalid = |what: &str| {
            error::Error::new(
                SufastErrorCode::InvalidArgument,
                format!("option {name:?}: {value} is not {what}"),
            )
        };
        match name {
            "log_level" => log::set_level(
                log::SufastLogLevel::from_number(value)
                    .ok_or_else(|| invalid("a log level (0 critical to 5 trace)"))?,
            ),
            "access_log" => log::set_access_log(
                log::SufastAccessLog::from_number(value)
                    .ok_or_else(|| invalid("an access log setting (0 auto to 3 json)"))?,
            ),
            "handlers_saturated" => dispatch::set_saturated(match value {
                0 => false,
                1 => true,
                _ => return Err(invalid("0 or 1")),
            }),
            _ => match limits::set(name, value) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(error::Error::new(
                        SufastErrorCode::InvalidArgument,
                        format!(
                            "unknown option {name:?}; expected log_level, access_log, handlers_saturated, {}",
                            limits::names()
                        ),
                    ))
                }
                Err(why) => {
                    return Err(error::Error::new(
                        SufastErrorCode::InvalidArgument,
                        format!("option {name:?}: {why}"),
                    ))
                }
            },
        }
        Ok(true)
    })
}

/// The version of the request-record and response layouts this library
/// speaks; a handler built against `SUFAST_LAYOUT_VERSION` should refuse
/// to run when the two differ.
#[no_mangle]
pub extern "C" fn sufast_layout_version() -> u32 {
    guard("sufast_layout_version", 0, || wire::SUFAST_LAYOUT_VERSION)
}

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as a static NUL-terminated string, e.g. "0.1.0". Owned
/// by the library: never free it.
#[no_mangle]
pub extern "C" fn sufast_version() -> *const c_char {
    guard("sufast_version", std::ptr::null(), || {
        VERSION.as_ptr().cast()
    })
}
