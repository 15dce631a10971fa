# The README's first two commands, `make demo` and `make test`, must work on a fresh
# Debian machine as root: every target installs what it needs and is safe to run twice.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
# Debian packages: the FUSE 3 runtime the binding loads (libfuse3-3) and its fusermount3
# (fuse3), and the ordinary tools the demo and the tests drive the mount with. The tests
# also start a PostgreSQL server of their own (postgresql) for the PostgreSQL backend.
APT_PACKAGES := fuse3 libfuse3-3 attr jq rsync vim gcc libc6-dev tar
TEST_PACKAGES := postgresql
# make bench compiles a minimal C libfuse passthrough, the yardstick for the mount.
BENCH_PACKAGES := libfuse3-dev pkg-config

.PHONY: all apt sysdeps testdeps benchdeps venv demo test lint typecheck pytest bench stress clean

all: test

sysdeps:
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_PACKAGES)"

testdeps: sysdeps
	@$(MAKE) --no-print-directory apt PACKAGES="$(TEST_PACKAGES)"

benchdeps: sysdeps
	@$(MAKE) --no-print-directory apt PACKAGES="$(BENCH_PACKAGES)"

# Installs the Debian packages of $(PACKAGES) that are missing (and python3-venv if needed).
apt:
	@missing=""; \
	for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: sysdeps $(STAMP)

demo: venv
	bash examples/demo.sh

lint: venv
	$(BIN)/ruff check src tests bench examples

typecheck: venv
	$(BIN)/mypy

pytest: venv testdeps
	$(BIN)/python -m pytest

test: venv testdeps
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: venv benchdeps
	$(BIN)/python bench/run.py

# The long reliability runs (a few minutes); prints a table and fails if anything was lost.
stress: venv testdeps
	$(BIN)/python tests/stress.py --seconds 120 --crash-rounds 12 --escape-rounds 200
	RESULTSFS_FUZZ_EXAMPLES=300 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_mount_fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
