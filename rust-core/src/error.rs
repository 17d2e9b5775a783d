//! The one error channel of the C ABI: an error type, its stable numeric
//! codes, and the thread-local "last error" that `sufast_last_error` reads.

use std::cell::RefCell;
use std::fmt;

/// Why the last call on this thread failed. The numbers are part of the ABI:
/// a retired code is never reused for another meaning.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SufastErrorCode {
    /// The last call on this thread succeeded.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// A text argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// The route table was not well-formed JSON.
    InvalidJson = 3,
    /// The route table was JSON but broke a rule (the message names the route).
    InvalidRoutes = 4,
    /// `start_server` was called while a server is running.
    AlreadyRunning = 5,
    /// A stop was requested but no server is running.
    NotRunning = 6,
    /// The listening socket could not be bound (busy port, bad address, ...).
    Bind = 7,
    /// The async runtime or server thread could not be started.
    Runtime = 8,
    /// A bug inside the library was caught at the ABI boundary.
    Panic = 9,
    /// An argument was out of range (a length too large, an unknown host).
    InvalidArgument = 10,
    /// A handler's response was malformed (bad status, header or framing);
    /// its client got a 500.
    InvalidResponse = 11,
    /// The call is not available on this platform.
    Unsupported = 12,
    /// The server was started by another process, which this one was
    /// forked from: only that process can use or stop it.
    OtherProcess = 13,
    /// The request is no longer waiting for an answer: it was answered, its
    /// client went away, or the server stopped.
    Gone = 14,
}

/// A failure with its code and a message meant for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: SufastErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: SufastErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    pub fn routes(message: impl Into<String>) -> Self {
        Error::new(SufastErrorCode::InvalidRoutes, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

thread_local! {
    static LAST_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Records `error` as this thread's last error.
pub fn set_last(error: Error) {
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(error));
}

/// Forgets this thread's last error; every fallible export starts with this.
pub fn clear_last() {
    LAST_ERROR.with(|slot| *slot.borrow_mut() = None);
}

/// Runs `f` with this thread's last error, if any.
pub fn with_last<R>(f: impl FnOnce(Option<&Error>) -> R) -> R {
    LAST_ERROR.with(|slot| f(slot.borrow().as_ref()))
}
