#!/usr/bin/env bash
# Installs what `make bench` needs on a fresh machine: wrk (Debian), the
# bare axum reference server (cargo) and a venv with the peer frameworks
# (PyPI). Safe to rerun: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv-bench

if ! command -v wrk >/dev/null 2>&1 || ! command -v taskset >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk util-linux
fi

cargo build --quiet --release --manifest-path bench/axum-ref/Cargo.toml

if [ ! -f "$VENV/.installed" ] || [ bench/requirements.txt -nt "$VENV/.installed" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r bench/requirements.txt
    touch "$VENV/.installed"
fi
