"""The package as a user gets it: one version for crate and package, and
`pip install`, `pip wheel`, `pip install -e` and the sdist of a clean copy
of the repository; each install is served over real HTTP from a fresh venv,
from a directory outside the copy, with no PYTHONPATH and no SUFAST_LIB.

The clean copy holds the files git sees in the working tree: the tracked
ones with their uncommitted edits and new ones not yet added, but nothing
git ignores (no target/, no built library, no venvs), so it is what a
clone would be once the work is committed. Every build shares one
cargo target directory: the first compiles the library, the others reuse it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import pytest
from conftest import ROOT, read_until, request

from sufast._native import library_name

# One pip build compiles the release library (fat LTO) when its cache is cold.
BUILD_TIMEOUT = 600

# Imports the installed package, serves one route on port 0 and waits for
# its stdin to close.
SERVE = """
import sys
import sufast
from sufast import _native

app = sufast.App()

@app.get("/")
def where():
    return {"version": sufast.__version__}

port = app.start(port=0)
print("package", sufast.__file__, flush=True)
print("library", _native.library_path(), flush=True)
print("serving", port, flush=True)
sys.stdin.readline()
app.stop()
"""


def crate_version() -> str:
    manifest = (ROOT / "rust-core" / "Cargo.toml").read_text()
    package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", manifest, re.M | re.S)
    assert package, "rust-core/Cargo.toml has no [package] table"
    version = re.search(r'^version\s*=\s*"([^"]+)"', package.group(1), re.M)
    assert version, "rust-core/Cargo.toml's [package] has no version"
    return version.group(1)


def package_version() -> str:
    source = (ROOT / "python" / "sufast" / "_version.py").read_text()
    version = re.search(r'^__version__\s*=\s*"([^"]+)"', source, re.M)
    assert version, "python/sufast/_version.py has no __version__"
    return version.group(1)


def test_crate_and_package_have_one_version():
    assert crate_version() == package_version()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "sufast._version.__version__" }' in pyproject


# The slow tests below build with pip and cargo in fresh venvs.


class Served(NamedTuple):
    package: Path
    library: Path
    status: int
    body: str


def clean_env(path: Optional[str] = None) -> Dict[str, str]:
    """This process's environment without anything that would let a child
    find sufast other than through its venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SUFAST_LIB", "VIRTUAL_ENV")}
    if path is not None:
        env["PATH"] = path
    return env


def run(command: List[object], env: Dict[str, str], cwd: Optional[Path] = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout[-6000:]}"
    return done.stdout


def pip(python: Path, command: str, *args: object, env: Dict[str, str]) -> str:
    """``python -m pip COMMAND --quiet ARGS``."""
    return run([python, "-m", "pip", command, "--quiet", "--disable-pip-version-check", *args], env=env)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """A directory for the copy, the venvs and the shared cargo target
    directory, removed after the session (the target is large)."""
    path = tmp_path_factory.mktemp("packaging")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def source(workspace) -> Path:
    """The working tree's tracked and new files, without ignored ones, copied."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout to know which files are the project's")
    files = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(files, cwd=ROOT, stdout=subprocess.PIPE, check=True, timeout=60).stdout
    copy = workspace / "source"
    for name in filter(None, listed.decode().split("\0")):
        origin = ROOT / name
        if not origin.is_file():  # deleted in the working tree
            continue
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, target, follow_symlinks=False)
    return copy


@pytest.fixture(scope="session")
def build_env(workspace) -> Dict[str, str]:
    """The environment for pip builds: cargo on PATH, one target directory."""
    assert shutil.which("cargo"), "cargo must be on PATH to build sufast from source"
    env = clean_env()
    env["CARGO_TARGET_DIR"] = str(workspace / "cargo-target")
    return env


def make_venv(path: Path) -> Path:
    """A fresh venv at ``path`` with pip; returns its python."""
    run([sys.executable, "-m", "venv", path], env=clean_env())
    return path / "bin" / "python"


def serve_installed(python: Path, cwd: Path, env: Dict[str, str]) -> Served:
    """Runs SERVE with ``python`` in ``cwd`` and GETs its route over HTTP."""
    errors = cwd / "serve.stderr"
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(python), "-c", SERVE], cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        try:
            seen = read_until(proc, r"serving (\d+)\n", timeout=30)
            reply = request(int(seen.group(1)), "GET", "/")
            proc.stdin.close()
            assert proc.wait(timeout=15) == 0
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstderr: {errors.read_text(errors='replace')[-3000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    package = re.search(r"^package (.+)$", seen.string, re.M).group(1)
    library = re.search(r"^library (.+)$", seen.string, re.M).group(1)
    return Served(Path(package).resolve(), Path(library).resolve(), reply.status, reply.text)


def site_packages(python: Path) -> Path:
    return python.parent.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def path_without_cargo(venv_bin: Path) -> str:
    """A PATH of the venv and the system's directories, none with cargo or rustc."""
    system = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
    kept = [d for d in system if Path(d).is_dir() and not any(shutil.which(t, path=d) for t in ("cargo", "rustc"))]
    path = os.pathsep.join([str(venv_bin), *kept])
    assert shutil.which("cargo", path=path) is None and shutil.which("rustc", path=path) is None
    return path


@pytest.mark.slow
def test_pip_install_of_a_clean_copy_serves_from_anywhere(source, build_env, workspace):
    python = make_venv(workspace / "venv-install")
    pip(python, "install", source, env=build_env)
    elsewhere = workspace / "elsewhere-install"
    elsewhere.mkdir()

    served = serve_installed(python, elsewhere, clean_env())

    installed = site_packages(python).resolve() / "sufast"
    assert served.package == installed / "__init__.py"
    assert served.library == installed / library_name() and served.library.is_file()
    assert (installed / "py.typed").is_file()
    assert (served.status, served.body) == (200, f'{{"version":"{package_version()}"}}')
    shown = run([python, "-m", "pip", "show", "sufast"], env=clean_env())
    assert f"Version: {package_version()}" in shown and "License" in shown
    # The console script is installed beside the venv's python and runs.
    assert "sufast" in run([python.parent / "sufast", "--help"], env=clean_env(), cwd=elsewhere).lower()


@pytest.mark.slow
def test_wheel_is_py3_none_platform_and_serves_without_cargo(source, build_env, workspace):
    wheels = workspace / "wheels"
    pip(Path(sys.executable), "wheel", "--no-deps", "--wheel-dir", wheels, source, env=build_env)
    (wheel,) = wheels.glob("sufast-*.whl")
    name, version, python_tag, abi_tag, platform_tag = wheel.stem.split("-")
    assert (name, version, python_tag, abi_tag) == ("sufast", package_version(), "py3", "none")
    assert platform_tag != "any"
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    assert {f"sufast/{library_name()}", "sufast/py.typed", "sufast/__init__.py"} <= files
    assert not [f for f in files if "cpython" in f or f.endswith(("~", ".tmp"))], files

    python = make_venv(workspace / "venv-wheel")
    no_cargo = clean_env(path_without_cargo(python.parent))
    no_cargo.pop("CARGO_TARGET_DIR", None)
    pip(python, "install", "--no-index", wheel, env=no_cargo)
    elsewhere = workspace / "elsewhere-wheel"
    elsewhere.mkdir()

    served = serve_installed(python, elsewhere, no_cargo)

    assert served.package == site_packages(python).resolve() / "sufast" / "__init__.py"
    assert (served.status, served.body) == (200, f'{{"version":"{package_version()}"}}')


@pytest.mark.slow
def test_editable_install_builds_the_library_in_place(source, build_env, workspace):
    python = make_venv(workspace / "venv-editable")
    pip(python, "install", "--editable", source, env=build_env)
    elsewhere = workspace / "elsewhere-editable"
    elsewhere.mkdir()

    served = serve_installed(python, elsewhere, clean_env())

    in_place = source.resolve() / "python" / "sufast"
    assert served.package == in_place / "__init__.py"
    assert served.library == in_place / library_name() and served.library.is_file()
    assert (served.status, served.body) == (200, f'{{"version":"{package_version()}"}}')


@pytest.mark.slow
def test_sdist_carries_the_crate_and_builds_a_wheel(source, build_env, workspace):
    python = make_venv(workspace / "venv-sdist")
    pip(python, "install", "build", env=clean_env())
    sdists = workspace / "sdists"
    run([python, "-m", "build", "--sdist", "--outdir", sdists, source], env=build_env)
    (sdist,) = sdists.glob("sufast-*.tar.gz")
    with tarfile.open(sdist) as archive:
        top = f"sufast-{package_version()}/"
        files = {member.name[len(top) :] for member in archive.getmembers() if member.isfile()}
    needed = {"pyproject.toml", "setup.py", "README.md", "LICENSE", "include/sufast.h", "python/sufast/py.typed"}
    needed |= {f"rust-core/{name}" for name in ("Cargo.toml", "Cargo.lock", "cbindgen.toml", "src/lib.rs")}
    assert needed <= files, needed - files
    # Every test file the crate's manifest names, so `cargo test` parses it too.
    manifest = (source / "rust-core" / "Cargo.toml").read_text()
    named = re.findall(r'^path\s*=\s*"\.\./(tests/rust/[^"]+)"', manifest, re.M)
    assert named and set(named) <= files
    assert not [f for f in files if f.startswith("rust-core/target/") or f.endswith((".so", ".dylib", ".dll"))]

    # What pip does with an sdist from an index: build it elsewhere.
    wheels = workspace / "sdist-wheels"
    pip(python, "wheel", "--no-deps", "--wheel-dir", wheels, sdist, env=build_env)
    (wheel,) = wheels.glob("sufast-*-py3-none-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.getinfo(f"sufast/{library_name()}").file_size > 0
