"""The store's contract (tests/contract.py) on every backend: a directory, SQLite, PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contract import MountContract, StoreContract
from pgserver import PostgresServer
from resultsfs import StoreURLError
from resultsfs.backends import open_backend, shown_url


class TestFileBackend(StoreContract):
    def make_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        return str(tmp_path / "store")


class TestSqliteBackend(StoreContract):
    def make_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        return f"sqlite://{tmp_path}/results.db"


class TestPostgresBackend(StoreContract):
    def make_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.url()


class TestMountOnFiles(MountContract):
    def make_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        return str(tmp_path / "store")


class TestMountOnSqlite(MountContract):
    def make_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        return f"sqlite://{tmp_path}/results.db"


class TestMountOnPostgres(MountContract):
    def make_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.url()


# ---------------------------------------------------------------- naming a store


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("postgresql://lab:s3cret@db.example/results", "postgresql://lab:***@db.example/results"),
        ("postgresql://lab:p%40ss@db.example:5433/r", "postgresql://lab:***@db.example:5433/r"),
        (
            "postgresql:///results?host=/run/postgresql&password=s3cret",
            "postgresql:///results?host=/run/postgresql&password=***",
        ),
        ("postgresql:///results?host=/run/postgresql", "postgresql:///results?host=/run/postgresql"),
        ("postgresql://lab@db.example/results", "postgresql://lab@db.example/results"),
        ("postgres://u:x@h?password=y&sslmode=require", "postgres://u:***@h?password=***&sslmode=require"),
        ("/data/results", "/data/results"),
    ],
)
def test_a_store_is_shown_without_its_password(typed: str, shown: str) -> None:
    assert shown_url(typed) == shown


@pytest.mark.parametrize(
    ("url", "reason"),
    [("sqlite://somehost/x.db", "no host is allowed"), ("file://", "no path"), ("sqlite:", "no path")],
)
def test_a_url_that_cannot_name_a_store_is_one_clear_line(url: str, reason: str) -> None:
    with pytest.raises(StoreURLError, match=reason):
        open_backend(url)
    done = subprocess.run(
        [sys.executable, "-m", "resultsfs", "ls", "--store", url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and reason in done.stderr
    assert "Traceback" not in done.stderr
