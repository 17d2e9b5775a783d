"""Forms and uploads: ``FormData`` and ``UploadFile``, read from the form
record the library parses a form into (its layout is in
``rust-core/src/forms.rs``). A file larger than ``upload_spool_size``
arrives in a temporary file, which the library deletes once the request is
answered: it is opened when first read, so a form of many files holds no
descriptors it does not use, and must be read before the answer (as
FastAPI closes uploads after its response)."""

from __future__ import annotations

import io
import os
import struct
from typing import IO, Any, Iterator, List, Optional, Tuple, Union

from .datastructures import Headers, MultiDict

__all__ = ["FormData", "UploadFile", "decode_form", "is_form"]

_PART = struct.Struct("<BIIII")
_COUNT = struct.Struct("<I")

_FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")


def is_form(content_type: Optional[str]) -> bool:
    """Whether a Content-Type names a form, by the library's rule: up to
    the first ``;``, without surrounding spaces, in any case."""
    if not content_type:
        return False
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence in ("multipart/form-data", "application/x-www-form-urlencoded")


class _Done:
    """An awaitable that is already done, so that ``await file.seek(0)``
    works in ``async def`` code and a plain call works elsewhere."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Iterator[Any]:
        return self.value
        yield  # pragma: no cover - makes this a generator


class UploadFile:
    """An uploaded file of a form: ``filename``, ``content_type``, ``size``
    (bytes), ``headers`` and ``file``, the open binary file (in memory, or
    the temporary file a large upload was written to).

    In an ``async def`` handler ``read``, ``seek`` and ``close`` are
    awaited (``await file.read()``), as FastAPI's are; in a plain ``def``
    handler ``read`` returns the bytes directly. A spooled file is read
    from disk on the calling thread."""

    __slots__ = ("filename", "content_type", "size", "headers", "_file", "_path", "_awaitable")

    def __init__(
        self,
        file: Optional[IO[bytes]] = None,
        *,
        path: Optional[str] = None,
        filename: Optional[str] = None,
        content_type: Optional[str] = None,
        size: Optional[int] = None,
        headers: Optional[Headers] = None,
    ) -> None:
        if file is None and path is None:
            raise TypeError("UploadFile needs a file or a path")
        self._file = file
        self._path = path
        #: The name the client gave, as sent (never use it as a path as is).
        self.filename = filename
        #: The part's Content-Type, ``None`` if it had none.
        self.content_type = content_type
        self.size = size
        self.headers = headers if headers is not None else Headers([("content-type", content_type)] if content_type else [])
        self._awaitable = False

    @property
    def file(self) -> IO[bytes]:
        """The open binary file; a spooled upload is opened on first use."""
        if self._file is None:
            try:
                self._file = open(self._path, "rb")  # type: ignore[arg-type]
            except FileNotFoundError:
                raise RuntimeError(
                    f"the upload {self.filename!r} was deleted when its request was answered; read it in the handler"
                ) from None
        return self._file

    def _give(self, value: Any) -> Any:
        return _Done(value) if self._awaitable else value

    def read(self, size: int = -1) -> Any:
        """Up to ``size`` bytes (all that is left by default)."""
        return self._give(self.file.read(size))

    def seek(self, offset: int) -> Any:
        """Moves to byte ``offset``."""
        return self._give(self.file.seek(offset))

    def close(self) -> Any:
        """Closes the file (the form closes its files after the response)."""
        if self._file is not None:
            self._file.close()
        return self._give(None)

    def __repr__(self) -> str:
        return f"UploadFile(filename={self.filename!r}, size={self.size!r}, content_type={self.content_type!r})"


FormValue = Union[str, UploadFile]


class FormData(MultiDict):
    """A form's fields (``str``) and files (``UploadFile``) by name; a name
    may repeat. ``form["name"]`` is the last value, ``getlist`` gives them
    all in order."""

    __slots__ = ()

    def close(self) -> _Done:
        """Closes every file (awaitable too, as Starlette's)."""
        for _, value in self._items:
            if isinstance(value, UploadFile) and value._file is not None:
                value._file.close()
        return _Done(None)

    def __repr__(self) -> str:
        return f"FormData({self._items!r})"


def decode_form(record: bytes) -> Tuple[FormData, bool]:
    """The form in a form record, and whether it opened files on disk
    (which its owner closes after the response)."""
    view = memoryview(record)
    (count,) = _COUNT.unpack_from(view, 0)
    at = _COUNT.size
    items: List[Tuple[str, FormValue]] = []
    on_disk = False
    for _ in range(count):
        kind, n_name, n_file, n_type, n_data = _PART.unpack_from(view, at)
        at += _PART.size
        name = bytes(view[at : at + n_name]).decode("utf-8", "replace")
        at += n_name
        filename = bytes(view[at : at + n_file]).decode("utf-8", "replace")
        at += n_file
        content_type = bytes(view[at : at + n_type]).decode("latin-1") or None
        at += n_type
        data = bytes(view[at : at + n_data])
        at += n_data
        if kind == 0:
            items.append((name, data.decode("utf-8", "replace")))
            continue
        if kind == 2:
            path = os.fsdecode(data)
            upload = UploadFile(path=path, filename=filename, content_type=content_type, size=os.stat(path).st_size)
            on_disk = True
        else:
            upload = UploadFile(io.BytesIO(data), filename=filename, content_type=content_type, size=len(data))
        items.append((name, upload))
    return FormData(items), on_disk
