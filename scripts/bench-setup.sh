#!/usr/bin/env bash
# Installs what `make bench` needs on a fresh machine: wrk and nginx
# (Debian), the bare axum reference server (cargo) and a venv with the peer
# frameworks (PyPI). Safe to rerun: each step is skipped when already done.
# The bench runs nginx itself with a config of its own (bench/servers.py).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv-bench

has_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }

if ! command -v wrk >/dev/null 2>&1 || ! command -v taskset >/dev/null 2>&1 || ! has_nginx; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk util-linux nginx
fi

cargo build --quiet --release --manifest-path bench/axum-ref/Cargo.toml

if [ ! -f "$VENV/.installed" ] || [ bench/requirements.txt -nt "$VENV/.installed" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r bench/requirements.txt
    touch "$VENV/.installed"
fi
