//! The panic boundary every export goes through, and helpers that turn raw
//! `(pointer, length)` arguments into safe borrows or clear errors.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{self, Error, SufastErrorCode};

/// Runs `body` for the export `name`: clears the last error, records the
/// error of a failure, and turns a panic into an error so that it never
/// unwinds into the caller (which would abort a Python process).
pub fn boundary<T>(name: &str, fail: T, body: impl FnOnce() -> Result<T, Error>) -> T {
    error::clear_last();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            error::set_last(err);
            fail
        }
        Err(payload) => {
            error::set_last(panicked(name, payload.as_ref()));
            fail
        }
    }
}

/// Like [`boundary`] for exports that cannot fail, such as reading the last
/// error (which must not clear it): only a panic is caught and recorded.
pub fn guard<T>(name: &str, fail: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            error::set_last(panicked(name, payload.as_ref()));
            fail
        }
    }
}

fn panicked(name: &str, payload: &(dyn Any + Send)) -> Error {
    Error::new(
        SufastErrorCode::Panic,
        format!("internal error in {name}: {}", panic_message(payload)),
    )
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "panic"
    }
}

/// Borrows `len` bytes at `ptr` for the duration of a call.
///
/// # Safety
/// If `ptr` is not NULL it must point to `len` readable bytes that stay
/// valid and unmodified for the lifetime `'a`.
pub unsafe fn borrow_bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], Error> {
    if ptr.is_null() {
        return Err(Error::new(
            SufastErrorCode::NullPointer,
            format!("{what} is a NULL pointer"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Error::new(
            SufastErrorCode::InvalidArgument,
            format!("{what} length {len} is too large"),
        ));
    }
    // SAFETY: non-null and bounded above; the caller guarantees the rest.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows `len` writable bytes at `ptr` for the duration of a call.
///
/// # Safety
/// If `ptr` is not NULL it must point to `len` writable bytes that nothing
/// else reads or writes for the lifetime `'a`.
pub unsafe fn borrow_bytes_mut<'a>(
    ptr: *mut u8,
    len: usize,
    what: &str,
) -> Result<&'a mut [u8], Error> {
    // SAFETY: forwarded to the caller's guarantee; the checks are shared.
    unsafe { borrow_bytes(ptr, len, what)? };
    // SAFETY: non-null and bounded (checked above); the caller guarantees
    // exclusive, writable access.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Borrows `len` bytes at `ptr` as UTF-8 text.
///
/// # Safety
/// As for [`borrow_bytes`].
pub unsafe fn borrow_str<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a str, Error> {
    // SAFETY: forwarded to the caller's guarantee.
    let bytes = unsafe { borrow_bytes(ptr, len, what)? };
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            SufastErrorCode::InvalidUtf8,
            format!("{what} is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// Copies `text` into the caller's buffer as a NUL-terminated string,
/// truncated to fit, and returns the full length of `text` in bytes.
///
/// # Safety
/// If `buf` is not NULL it must point to `len` writable bytes.
pub unsafe fn copy_out(text: &str, buf: *mut u8, len: usize) -> usize {
    if !buf.is_null() && len > 0 {
        let mut n = text.len().min(len - 1);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: `buf` has `len` writable bytes and `n + 1 <= len`.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf, n);
            *buf.add(n) = 0;
        }
    }
    text.len()
}
