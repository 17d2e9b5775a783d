"""The only module that touches ctypes: loads the native library and wraps
each export in a Python function that raises ``SufastError`` on failure.

The library is looked up at ``$SUFAST_LIB`` or next to this file under the
platform's name, loaded on first use, and refused if its version differs
from the package's.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from ctypes import POINTER, c_bool, c_char, c_char_p, c_int, c_int32, c_size_t, c_uint16, c_uint32, c_uint64, c_void_p
from pathlib import Path
from typing import Callable, Optional, Tuple

from ._version import __version__ as PACKAGE_VERSION
from .exceptions import SufastError

__all__ = [
    "Inbox",
    "bound_port",
    "check_routes",
    "library_path",
    "responder",
    "set_limits",
    "set_option",
    "set_routes",
    "start",
    "start_fd",
    "stop",
    "streamer",
    "version",
]

# (name, argtypes, restype) for every export; see include/sufast.h.
_SYMBOLS = (
    ("set_routes", (c_char_p, c_size_t), c_bool),
    ("sufast_check_routes", (c_char_p, c_size_t), c_bool),
    ("start_server", (c_bool, c_uint16), c_bool),
    ("sufast_start_server_on", (c_char_p, c_size_t, c_uint16, c_bool), c_bool),
    ("sufast_start_server_fd", (c_int, c_bool), c_bool),
    ("sufast_stop_server", (), c_bool),
    ("sufast_stop_server_within", (c_uint32,), c_bool),
    ("sufast_bound_port", (), c_uint16),
    ("sufast_last_error", (POINTER(c_char), c_size_t), c_size_t),
    ("sufast_last_error_code", (), c_int32),
    ("sufast_take_requests", (POINTER(c_char), c_size_t, c_uint32, POINTER(c_size_t)), c_int32),
    ("sufast_respond", (c_uint64, c_char_p, c_size_t), c_bool),
    ("sufast_take_body", (c_uint64, c_void_p, c_size_t), c_bool),
    ("sufast_respond_head", (c_uint64, c_char_p, c_size_t), c_int32),
    ("sufast_respond_chunk", (c_uint64, c_char_p, c_size_t, c_uint32), c_int32),
    ("sufast_respond_end", (c_uint64, c_bool), c_int32),
    ("sufast_respond_file", (c_uint64, c_char_p, c_size_t, c_char_p, c_size_t), c_int32),
    ("sufast_stream_ready_fd", (), c_int32),
    ("sufast_stream_read", (c_uint64, POINTER(c_char), c_size_t, c_uint32, POINTER(c_size_t)), c_int32),
    ("sufast_stream_ready", (POINTER(c_uint64), c_size_t), c_size_t),
    ("sufast_parse_form", (c_char_p, c_size_t, c_char_p, c_size_t, c_void_p, c_size_t, POINTER(ctypes.c_uint16)), c_size_t),
    ("sufast_set_limits", (c_uint32, ctypes.c_uint64), c_bool),
    ("sufast_set_option", (c_char_p, c_size_t, ctypes.c_int64), c_bool),
    ("sufast_layout_version", (), c_uint32),
    # A static string owned by the library: read with string_at, never freed.
    ("sufast_version", (), c_void_p),
)

#: The request-record and response layout ``requests.decode_records`` and
#: ``responses`` speak (SUFAST_LAYOUT_VERSION in include/sufast.h).
LAYOUT_VERSION = 4

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


def library_name() -> str:
    """The file name of the native library on this platform."""
    if sys.platform == "win32":
        return "sufast.dll"
    if sys.platform == "darwin":
        return "libsufast.dylib"
    return "libsufast.so"


def library_path() -> Path:
    """Where the library is looked for: ``$SUFAST_LIB`` or inside the package."""
    override = os.environ.get("SUFAST_LIB")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / library_name()


def _load() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        path = library_path()
        if not path.is_file():
            raise SufastError(
                f"the sufast native library was not found at {path}; reinstall sufast "
                "with pip (cargo is needed to build it from source), run `make build` "
                "in a clone of the repository, or point SUFAST_LIB at the library"
            )
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise SufastError(f"cannot load the sufast native library at {path}: {exc}") from exc
        for name, argtypes, restype in _SYMBOLS:
            try:
                function = getattr(lib, name)
            except AttributeError:
                raise SufastError(
                    f"the library at {path} has no symbol {name}; rebuild it with `make build`"
                ) from None
            function.argtypes = argtypes
            function.restype = restype
        found = ctypes.string_at(lib.sufast_version()).decode("utf-8", "replace")
        if found != PACKAGE_VERSION:
            raise SufastError(
                f"the library at {path} is version {found}, but the sufast package is "
                f"{PACKAGE_VERSION}; rebuild it with `make build`"
            )
        layout = lib.sufast_layout_version()
        if layout != LAYOUT_VERSION:
            raise SufastError(
                f"the library at {path} speaks request-record layout {layout}, but the sufast "
                f"package reads layout {LAYOUT_VERSION}; rebuild or reinstall it"
            )
        _lib = lib
        return lib


def _last_error(lib: ctypes.CDLL) -> SufastError:
    code = lib.sufast_last_error_code()
    size = lib.sufast_last_error(None, 0)
    buffer = ctypes.create_string_buffer(size + 1)
    lib.sufast_last_error(buffer, size + 1)
    message = buffer.value.decode("utf-8", "replace") or "unknown error"
    return SufastError(message, code)


def _check(lib: ctypes.CDLL, ok: bool) -> None:
    # The last error is thread-local: read it on this thread, right away.
    if not ok:
        raise _last_error(lib)


def set_routes(table: bytes) -> None:
    """Validates the route-table JSON and swaps it in atomically."""
    lib = _load()
    _check(lib, lib.set_routes(table, len(table)))


def parse_form(content_type: bytes, body: bytes) -> Tuple[bytes, int, str]:
    """A form body parsed by the library: ``(record, 0, "")``, or
    ``(b"", status, detail)`` when it is refused (400 malformed, 413 over
    a limit)."""
    lib = _load()
    status = ctypes.c_uint16(0)
    cap = len(body) + 4096
    while True:
        buffer = ctypes.create_string_buffer(cap)
        size = lib.sufast_parse_form(content_type, len(content_type), body, len(body), buffer, cap, ctypes.byref(status))
        if size == 0:
            error = _last_error(lib)
            return b"", status.value or 400, error.message
        if size <= cap:
            return buffer.raw[:size], 0, ""
        cap = size


def check_routes(table: bytes) -> None:
    """Validates the route-table JSON without swapping it in."""
    lib = _load()
    _check(lib, lib.sufast_check_routes(table, len(table)))


def start(port: int, production: bool, host: Optional[str] = None) -> int:
    """Starts the server; returns the bound port once it listens."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
    lib = _load()
    if host is None:
        _check(lib, lib.start_server(production, port))
    else:
        encoded = host.encode("utf-8")
        _check(lib, lib.sufast_start_server_on(encoded, len(encoded), port, production))
    return lib.sufast_bound_port()


def start_fd(fd: int, production: bool) -> int:
    """Starts the server on a copy of the listening socket ``fd``, which the
    caller keeps (and closes); returns its port."""
    lib = _load()
    _check(lib, lib.sufast_start_server_fd(fd, production))
    return lib.sufast_bound_port()


def stop(timeout: float = 5.0) -> None:
    """Stops the server; in-flight requests get ``timeout`` seconds to finish."""
    if not 0 <= timeout <= 4_000_000:
        raise ValueError(f"timeout must be between 0 and 4000000 seconds, got {timeout!r}")
    lib = _load()
    _check(lib, lib.sufast_stop_server_within(int(timeout * 1000)))


def bound_port() -> int:
    """The port the server listens on, or 0 when it is not running."""
    lib = _load()
    return lib.sufast_bound_port()


def version() -> str:
    """The native library's version."""
    lib = _load()
    return ctypes.string_at(lib.sufast_version()).decode("utf-8")


def set_limits(max_pending: int, max_body_size: int) -> None:
    """Sets how many requests may wait for handlers and the largest body."""
    lib = _load()
    _check(lib, lib.sufast_set_limits(max_pending, max_body_size))


# SufastLogLevel and SufastAccessLog in include/sufast.h.
LOG_LEVELS = {"critical": 0, "error": 1, "warning": 2, "info": 3, "debug": 4, "trace": 5}
ACCESS_LOGS = {"auto": 0, "off": 1, "common": 2, "json": 3}


def set_option(name: str, value: int) -> None:
    """Sets a library option (``log_level``, ``access_log``) to a number
    from ``LOG_LEVELS`` or ``ACCESS_LOGS``."""
    lib = _load()
    encoded = name.encode("utf-8")
    _check(lib, lib.sufast_set_option(encoded, len(encoded), value))


# What sufast_take_requests returns (SufastTake in include/sufast.h).
_TAKE_REQUESTS, _TAKE_TIMEOUT, _TAKE_TOO_SMALL, _TAKE_CLOSED = 0, 1, 2, 3
# SUFAST_ERROR_CODE_GONE: the request is no longer waiting.
_GONE = 14


def _bytes_filler() -> Optional[Callable[[int], Tuple[bytes, int]]]:
    """A function giving a new, unfilled ``bytes`` of n bytes and the
    address of its contents, so that a body is copied straight into the
    object the handler gets; ``None`` where the interpreter offers no such
    call (a body then takes one more copy, through a bytearray)."""
    try:
        api = ctypes.pythonapi
        new = api.PyBytes_FromStringAndSize
        contents = api.PyBytes_AsString
    except (AttributeError, ValueError):
        return None
    new.argtypes = (c_void_p, ctypes.c_ssize_t)
    new.restype = ctypes.py_object
    contents.argtypes = (ctypes.py_object,)
    contents.restype = c_void_p

    def make(size: int) -> Tuple[bytes, int]:
        # Nothing else holds the object yet, so filling it is safe.
        data = new(None, size)
        return data, contents(data)

    return make


_new_bytes = _bytes_filler()


class Inbox:
    """One handler thread's end of the native request queue, with a buffer
    of its own that grows when a request does not fit."""

    def __init__(self, size: int = 256 * 1024) -> None:
        self._lib = _load()
        self._take = self._lib.sufast_take_requests
        self._size = size
        self._buffer = ctypes.create_string_buffer(size)
        # Copying out through a view costs a quarter of ctypes.string_at.
        self._view = memoryview(self._buffer).cast("B")
        self._length = c_size_t()
        self._length_ref = ctypes.byref(self._length)

    def take(self, timeout_ms: int) -> Optional[bytes]:
        """Request records, ``b""`` on timeout, ``None`` once the server
        stopped. Releases the GIL while it waits."""
        while True:
            code = self._take(self._buffer, self._size, timeout_ms, self._length_ref)
            if code == _TAKE_REQUESTS:
                return self._view[: self._length.value].tobytes()
            if code == _TAKE_TIMEOUT:
                return b""
            if code == _TAKE_CLOSED:
                return None
            if code == _TAKE_TOO_SMALL:
                # This one request is large; the next ones rarely are.
                needed = self._length.value
                buffer = ctypes.create_string_buffer(needed)
                code = self._take(buffer, needed, 0, self._length_ref)
                if code == _TAKE_REQUESTS:
                    return ctypes.string_at(buffer, self._length.value)
                continue
            raise _last_error(self._lib)

    def take_body(self, request_id: int, size: int) -> Optional[bytes]:
        """The body the record of ``request_id`` held back (``size``
        bytes), copied once out of the library, which then frees its copy;
        ``None`` if the request is no longer waiting (its client left).
        Releases the GIL while it copies."""
        if _new_bytes is not None:
            data, address = _new_bytes(size)
        else:
            data = bytearray(size)
            address = ctypes.addressof((ctypes.c_char * size).from_buffer(data))
        if not self._lib.sufast_take_body(request_id, address, size):
            error = _last_error(self._lib)
            if error.code == _GONE:
                return None
            raise error
        return data if isinstance(data, bytes) else bytes(data)


def responder() -> Callable[[int, bytes], Optional[str]]:
    """A function that answers request ``id`` with an encoded response and
    returns ``None``, or the reason the library refused the response (the
    client then got a 500)."""
    lib = _load()
    # sufast_respond never blocks (a short lock, a copy), so it is called
    # through PyDLL, which keeps the GIL: releasing and taking it back per
    # response would cost more than the call, and under load it would queue
    # this thread behind the others for the GIL.
    respond = ctypes.PyDLL(str(library_path()), handle=lib._handle).sufast_respond
    respond.argtypes = (c_uint64, c_char_p, c_size_t)
    respond.restype = c_bool

    def send(request_id: int, data: bytes) -> Optional[str]:
        if respond(request_id, data, len(data)):
            return None
        return _last_error(lib).message

    return send


# What the stream exports return (SufastSent in include/sufast.h).
SENT_OK, SENT_FULL, SENT_GONE, SENT_FAILED = 0, 1, 2, 3
# What sufast_stream_read returns (SufastRead).
READ_FRAME, READ_EMPTY, READ_END, READ_TOO_SMALL, READ_FAILED = 0, 1, 2, 3, 4


class Streamer:
    """Answers requests with streams and files (``sufast_respond_head``,
    ``_chunk``, ``_end``, ``_file``). Each call returns a ``SENT_*`` code;
    ``error()`` is the reason for ``SENT_FAILED``, read on the same thread."""

    def __init__(self) -> None:
        lib = self._lib = _load()
        self._head = lib.sufast_respond_head
        self._chunk = lib.sufast_respond_chunk
        self._end = lib.sufast_respond_end
        self._file = lib.sufast_respond_file
        self._ready = lib.sufast_stream_ready
        self._ids = (c_uint64 * 256)()

    def head(self, request_id: int, head: bytes) -> int:
        """Sends the head (its body the first chunk)."""
        return self._head(request_id, head, len(head))

    def chunk(self, request_id: int, data: bytes, wait_ms: int) -> int:
        """Sends a chunk of at most 1 MiB, waiting up to ``wait_ms`` for
        room (the GIL released)."""
        return self._chunk(request_id, data, len(data), wait_ms)

    def end(self, request_id: int, complete: bool) -> int:
        """Ends the stream; ``complete=False`` cuts the response short."""
        return self._end(request_id, complete)

    def file(self, request_id: int, head: bytes, path: bytes) -> int:
        """Answers with ``head`` and the file at ``path``, sent by the library."""
        return self._file(request_id, head, len(head), path, len(path))

    def read(self, request_id: int, buffer: "ctypes.Array[ctypes.c_char]", length: c_size_t, wait_ms: int = 0) -> int:
        """Reads the next frame the client sent into ``buffer``, waiting up
        to ``wait_ms`` (the GIL released); its length goes into ``length``."""
        return self._lib.sufast_stream_read(request_id, buffer, len(buffer), wait_ms, ctypes.byref(length))

    def ready_fd(self) -> int:
        """The ready socket's descriptor (owned by the library)."""
        fd = self._lib.sufast_stream_ready_fd()
        if fd < 0:
            raise _last_error(self._lib)
        return fd

    def ready(self) -> "list[int]":
        """The ids of the streams that have room again (or are gone)."""
        ids = self._ids
        found: "list[int]" = []
        while True:
            count = self._ready(ids, len(ids))
            found.extend(ids[:count])
            if count < len(ids):
                return found

    def error(self) -> str:
        """The reason for the last ``SENT_FAILED`` on this thread."""
        return _last_error(self._lib).message


def streamer() -> Streamer:
    """The stream and file exports."""
    return Streamer()
