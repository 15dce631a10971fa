"""The store's contract (tests/contract.py) on every backend: a directory, SQLite, PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import MountContract, StoreContract
from pgserver import PostgresServer


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
