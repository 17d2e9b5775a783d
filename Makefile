# sufast: `make run` serves examples/hello.py, `make test` runs every check.

PYTHON ?= python3
CARGO ?= cargo
CORE := rust-core
MANIFEST := --manifest-path $(CORE)/Cargo.toml
TEST_VENV := .venv-test
EXTRAS_VENV := .venv-test-extras
EXTRAS_TESTS := tests/test_models.py tests/test_optional_models.py tests/test_testclient.py tests/test_openapi_models.py \
  tests/test_json.py tests/test_handlers.py tests/test_websockets.py tests/test_streams.py tests/test_sse.py \
  tests/test_middleware.py tests/test_lifespan.py
PORT ?= 8000
BENCH_ENV := $(if $(BASELINE),BENCH_BASELINE=$(CURDIR)/.bench-baseline)

# The library file name per platform, as cargo builds it and ctypes loads it.
UNAME_S := $(shell uname -s 2>/dev/null || echo Windows)
ifeq ($(UNAME_S),Darwin)
  LIB := libsufast.dylib
else ifneq (,$(filter Windows MINGW% MSYS% CYGWIN%,$(UNAME_S)))
  LIB := sufast.dll
else
  LIB := libsufast.so
endif

.PHONY: build header run wheel test lint check-header test-rust test-python bench clean

## build: the release library, copied into the Python package
build:
	$(CARGO) build --release $(MANIFEST)
	@# A rename, not an overwrite: a process that has the library loaded
	@# keeps its copy intact.
	cp $(CORE)/target/release/$(LIB) python/sufast/$(LIB).tmp
	mv -f python/sufast/$(LIB).tmp python/sufast/$(LIB)

## header: regenerate include/sufast.h from the exports
header:
	$(CARGO) run --quiet $(MANIFEST) --example header

## run: serve examples/hello.py on http://127.0.0.1:$(PORT) (make run PORT=9000)
run: build
	PYTHONPATH=python $(PYTHON) -m sufast run hello:app --app-dir examples --port $(PORT)

## wheel: a wheel for this platform, built by pip as `pip install .` would, into dist/
wheel:
	$(PYTHON) -m pip wheel --no-deps --wheel-dir dist .

## test: formatting, lints, header, Rust tests, C program and pytest
test: lint check-header test-rust test-python

lint:
	cd $(CORE) && $(CARGO) fmt --check
	cd $(CORE) && $(CARGO) clippy --all-targets -- -D warnings

check-header:
	$(CARGO) run --quiet $(MANIFEST) --example header -- --check

test-rust:
	$(CARGO) test $(MANIFEST)

test-python: build $(TEST_VENV)/.installed $(EXTRAS_VENV)/.installed
	$(TEST_VENV)/bin/python -m pytest -q tests
	$(EXTRAS_VENV)/bin/python -m pytest -q $(EXTRAS_TESTS)

# The optional packages (pydantic, msgspec, orjson, uvloop) in a venv of their own: the
# model tests run with them there and without them in $(TEST_VENV).
$(EXTRAS_VENV)/.installed: tests/requirements.txt tests/requirements-extras.txt
	$(PYTHON) -m venv $(EXTRAS_VENV)
	$(EXTRAS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EXTRAS_VENV)/bin/python -m pip install --quiet -r tests/requirements-extras.txt
	touch $@

$(TEST_VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TEST_VENV)/bin/python -m pip install --quiet -r tests/requirements.txt
	touch $@

## bench: side-by-side benchmark against bare axum and peers (QUICK=1: about 3 minutes;
##        BASELINE=<git rev>: that revision measured beside this tree in the same rounds;
##        TFB=1: the TechEmpower-style suite instead, bench/tfb.py, which checks its own servers)
bench: build
	scripts/bench-setup.sh
	$(if $(BASELINE),scripts/bench-baseline.sh $(BASELINE))
	$(if $(TFB),,$(BENCH_ENV) .venv-bench/bin/python bench/check_servers.py)
	$(BENCH_ENV) .venv-bench/bin/python bench/run.py $(if $(QUICK),--quick) $(if $(TFB),--tfb)

clean:
	$(CARGO) clean $(MANIFEST)
	rm -rf $(TEST_VENV) $(EXTRAS_VENV) .venv-bench python/sufast/$(LIB) .pytest_cache build dist python/*.egg-info
	$(CARGO) clean --manifest-path bench/axum-ref/Cargo.toml
	if [ -d .bench-baseline ]; then git worktree remove --force .bench-baseline; fi
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
