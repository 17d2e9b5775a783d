"""Build overrides that pyproject.toml cannot express; everything else is
configured there.

- The library is installed as ``sufast/libsufast.so`` (``.dylib`` on macOS,
  ``sufast.dll`` on Windows), the name ``sufast._native`` loads, instead of
  the CPython extension name (``libsufast.cpython-311-x86_64-linux-gnu.so``)
  setuptools-rust would give it.
- cargo builds into ``rust-core/target/pip`` unless ``CARGO_TARGET_DIR``
  says otherwise: setuptools-rust builds with other flags than ``make
  build``, and one target directory for both would rebuild the library from
  scratch each time one follows the other.
- The wheel is tagged ``py3-none-<platform>``: the library is loaded with
  ctypes and never touches the Python C API, so one wheel serves every
  Python 3 on its platform.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools_rust import build_rust

ROOT = os.path.dirname(os.path.abspath(__file__))


def library_name() -> str:
    """The file name of the native library on this platform, as
    ``sufast._native.library_name`` spells it."""
    if sys.platform == "win32":
        return "sufast.dll"
    if sys.platform == "darwin":
        return "libsufast.dylib"
    return "libsufast.so"


class build_native_library(build_rust):
    """Builds the cdylib in a target directory of its own and puts it into
    the package under its plain platform name."""

    def run(self) -> None:
        if not (os.environ.get("CARGO_TARGET_DIR") or os.environ.get("CARGO_BUILD_TARGET_DIR")):
            os.environ["CARGO_TARGET_DIR"] = os.path.join(ROOT, "rust-core", "target", "pip")
        super().run()

    def get_dylib_ext_path(self, ext, target_fname: str) -> str:
        path = super().get_dylib_ext_path(ext, target_fname)
        return os.path.join(os.path.dirname(path), library_name())


class bdist_wheel_any_python(bdist_wheel):
    """Tags the wheel for any Python 3 on the platform it was built for."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"build_rust": build_native_library, "bdist_wheel": bdist_wheel_any_python})
