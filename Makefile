# The README's first two commands, `make demo` and `make test`, must work on a fresh
# Debian machine as root: every target installs what it needs and is safe to run twice.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
# Debian packages: the FUSE 3 runtime the binding loads (libfuse3-3) and its fusermount3
# (fuse3), and the ordinary tools the demo and the tests drive the mount with. The tests
# also start a PostgreSQL server of their own (postgresql) for the PostgreSQL backend.
RUNTIME_PACKAGES := fuse3 libfuse3-3
APT_PACKAGES := $(RUNTIME_PACKAGES) attr jq rsync vim gcc libc6-dev tar
TEST_PACKAGES := postgresql
# make bench compiles a minimal C libfuse passthrough, the yardstick for the mount, and
# measures the PostgreSQL backend on a server of its own.
BENCH_PACKAGES := libfuse3-dev pkg-config postgresql

# make install (see docs/deployment.md): a virtual environment of its own in $(LIBDIR), built
# with a regular (not editable) pip install, and $(BINDIR)/resultsfs linked to its command; the
# fstab mount helper in $(SBINDIR), where mount(8) looks; the systemd unit in $(SYSTEMDDIR).
# The helper and the unit are rewritten to run $(BINDIR)/resultsfs. A venv records its own
# absolute path, so it cannot be built in one place and moved: DESTDIR is refused.
PREFIX      ?= /usr/local
BINDIR      = $(PREFIX)/bin
LIBDIR      = $(PREFIX)/lib/resultsfs
SBINDIR     ?= /sbin
SYSTEMDDIR  ?= /etc/systemd/system
# The venv's interpreter must be one every user may run: Debian's, not a pyenv or conda
# Python under /root (a venv links to its interpreter, it does not copy it).
INSTALL_PYTHON ?= /usr/bin/python3
# What install puts in place besides $(LIBDIR), and so what uninstall removes.
INSTALLED   = $(BINDIR)/resultsfs $(SBINDIR)/mount.fuse.resultsfs $(SBINDIR)/mount.resultsfs \
              $(SYSTEMDDIR)/resultsfs@.service

.PHONY: all apt sysdeps testdeps benchdeps installdeps venv demo test lint typecheck pytest docs bench stress \
        install uninstall clean

all: test

sysdeps:
	@$(MAKE) --no-print-directory apt PACKAGES="$(APT_PACKAGES)"

testdeps: sysdeps
	@$(MAKE) --no-print-directory apt PACKAGES="$(TEST_PACKAGES)"

benchdeps: sysdeps
	@$(MAKE) --no-print-directory apt PACKAGES="$(BENCH_PACKAGES)"

# What an installed resultsfs needs at run time: the FUSE runtime, and a venv-capable
# $(INSTALL_PYTHON) (the apt target adds python3-venv, and with it python3, if needed).
installdeps:
	@$(MAKE) --no-print-directory apt PACKAGES="$(RUNTIME_PACKAGES)" PYTHON="$(INSTALL_PYTHON)"

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
	$(MAKE) --no-print-directory docs
	$(BIN)/python -m pytest

# The documentation site (mkdocs.yml, docs/) in build/site. --strict fails the build on a broken
# link or anchor, a page missing from the nav, an API object mkdocstrings cannot find, or a
# snippet file that is not there. It needs no network. NO_MKDOCS_2_WARNING quiets the banner
# mkdocs-material prints about MkDocs 2.0 on every build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

bench: venv benchdeps
	$(BIN)/python bench/run.py

# The long reliability runs (a few minutes); prints a table and fails if anything was lost.
stress: venv testdeps
	$(BIN)/python tests/stress.py --seconds 120 --crash-rounds 12 --escape-rounds 200
	RESULTSFS_FUZZ_EXAMPLES=300 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_mount_fuzz.py

# The venv is made again only if it is missing or was not made by $(INSTALL_PYTHON) (as after an
# upgrade of Debian's Python). pip always reinstalls a project given as a directory; it builds a
# copy, so that the build leaves nothing (build/, *.egg-info) in this tree. umask 022 and chmod
# make everything readable by every user, whatever root's umask is. At the end the command is
# run as nobody: every user must be able to run it, not only root.
install: installdeps
	@$(call check_install_paths)
	umask 022; \
	if [ "$$(readlink -f $(LIBDIR)/bin/python)" != "$$(readlink -f $(INSTALL_PYTHON))" ] \
	    || ! $(LIBDIR)/bin/python -c 'import pip' 2>/dev/null; then \
	  $(INSTALL_PYTHON) -m venv --clear $(LIBDIR) || exit 1; \
	fi; \
	copy=$$(mktemp -d) && trap 'rm -rf "$$copy"' EXIT && \
	tar -cf - --exclude=__pycache__ --exclude='*.egg-info' pyproject.toml README.md src | tar -xf - -C "$$copy" && \
	$(LIBDIR)/bin/python -m pip install -q --disable-pip-version-check --no-warn-script-location "$$copy"
	chmod -R a+rX,go-w $(LIBDIR)
	umask 022 && install -d $(BINDIR)
	ln -sfn $(LIBDIR)/bin/resultsfs $(BINDIR)/resultsfs
	umask 022 && install -D -m755 mountscripts/mount.resultsfs $(SBINDIR)/mount.fuse.resultsfs
	sed -i 's|/usr/local/bin/resultsfs|$(BINDIR)/resultsfs|g' $(SBINDIR)/mount.fuse.resultsfs
	ln -sfn mount.fuse.resultsfs $(SBINDIR)/mount.resultsfs
	umask 022 && install -D -m644 mountscripts/resultsfs@.service $(SYSTEMDDIR)/resultsfs@.service
	sed -i 's|/usr/local/bin/resultsfs|$(BINDIR)/resultsfs|g' $(SYSTEMDDIR)/resultsfs@.service
	@if [ -d /run/systemd/system ]; then echo systemctl daemon-reload; systemctl daemon-reload; fi
	@if [ "$$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then \
	  cd / && setpriv --reuid=nobody --regid="$$(id -g nobody)" --clear-groups $(BINDIR)/resultsfs --version \
	    || { echo "$(BINDIR)/resultsfs does not run for other users; can everyone run $(INSTALL_PYTHON)?" >&2; exit 1; }; \
	else \
	  $(BINDIR)/resultsfs --version; \
	fi

uninstall:
	@$(call check_install_paths)
	rm -f $(INSTALLED)
	rm -rf $(LIBDIR)
	@if [ -d /run/systemd/system ]; then echo systemctl daemon-reload; systemctl daemon-reload; fi
	@enabled=$$(ls $(SYSTEMDDIR)/*.wants/resultsfs@*.service 2>/dev/null); \
	if [ -n "$$enabled" ]; then \
	  echo "still enabled (disable them with systemctl disable resultsfs@NAME):" $$enabled >&2; \
	fi

# PREFIX must be absolute (a venv needs its absolute path), and the paths are written into the
# helper and the unit with sed, so they are kept to characters that need no quoting.
define check_install_paths
if [ -n "$(DESTDIR)" ]; then \
  echo "DESTDIR is not supported: a venv cannot be moved once made; set PREFIX instead" >&2; exit 1; \
fi; \
case "$(PREFIX)" in /*) ;; *) echo "PREFIX must be an absolute path, not '$(PREFIX)'" >&2; exit 1 ;; esac; \
case "$(PREFIX)$(SBINDIR)$(SYSTEMDDIR)" in \
  *[!A-Za-z0-9/._+-]*) echo "PREFIX, SBINDIR and SYSTEMDDIR may only hold letters, digits and / . _ + -" >&2; exit 1 ;; \
esac
endef

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
