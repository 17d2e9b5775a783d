"""``StaticFiles``: a directory that ``app.mount`` hands to the Rust
server, which serves it with no Python per request (the files tier).

>>> app.mount("/static", StaticFiles(directory="static", html=True))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any, Dict, Union

__all__ = ["StaticFiles"]

PathLike = Union[str, "os.PathLike[str]"]


class StaticFiles:
    """The files of ``directory`` (and its subdirectories), served as
    Starlette's ``StaticFiles`` serves them: content types from the
    extension, ``Last-Modified`` and ``ETag`` with conditional requests
    (304), single ``Range`` requests (206), precompressed ``.gz`` and
    ``.br`` siblings for clients that accept them, and a 404 for anything
    missing or outside the directory (``..``, escaped slashes, symlinks
    that lead out).

    ``directory`` is made absolute now, against the current directory.
    ``html=True`` answers a directory with its ``index.html`` (redirecting
    ``/dir`` to ``/dir/``) and a missing file with the directory's
    ``404.html``, if it has one. ``check_dir`` raises ``RuntimeError`` now
    when the directory does not exist; without it the check happens when
    the app starts serving.
    """

    def __init__(self, *, directory: PathLike, html: bool = False, check_dir: bool = True) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"StaticFiles: directory must be a path, got {directory!r}")
        for name, value in (("html", html), ("check_dir", check_dir)):
            if not isinstance(value, bool):
                raise TypeError(f"StaticFiles: {name} must be True or False, got {value!r}")
        #: The directory served, absolute.
        self.directory = os.path.abspath(os.fspath(directory))
        self.html = html
        self.check_dir = check_dir
        if check_dir and not os.path.isdir(self.directory):
            raise RuntimeError(f"Directory '{directory}' does not exist")

    def table_entry(self) -> Dict[str, Any]:
        """The route-table entry of this directory (see the README)."""
        return {"kind": "files", "directory": self.directory, "html": self.html}

    def __repr__(self) -> str:
        return f"StaticFiles(directory={self.directory!r}, html={self.html!r})"
