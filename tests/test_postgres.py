"""What only the PostgreSQL backend has: JSONB data, the server's clock, clients on one database."""

from __future__ import annotations

import datetime
import time

import psycopg
import pytest

from models import Counter, Metrics
from pgserver import PostgresServer
from resultsfs import ResultStore, StoreNotFoundError, open_backend
from resultsfs.backends.postgres import PostgresBackend


def _connect(server: PostgresServer, url: str) -> psycopg.Connection:  # type: ignore[type-arg]
    return psycopg.connect(url.replace("postgresql://", "postgresql://", 1), autocommit=True)


def test_data_is_jsonb_that_sql_can_query(postgres: PostgresServer) -> None:
    url = postgres.url()
    store = ResultStore(url)
    store.set("runs/a", Metrics(loss=0.25, accuracy=0.9, step=3))
    store.set("runs/b", Metrics(loss=0.75, accuracy=0.5, step=4))
    with _connect(postgres, url) as conn:
        rows = conn.execute(
            "SELECT id, (data->>'loss')::float FROM results WHERE (data->>'accuracy')::float > 0.6"
        ).fetchall()
        kind = conn.execute("SELECT pg_typeof(data)::text FROM results LIMIT 1").fetchone()
    assert rows == [("runs/a", 0.25)]
    assert kind == ("jsonb",)


def test_lease_times_come_from_the_servers_clock(postgres: PostgresServer) -> None:
    url = postgres.url()
    store = ResultStore(url)
    store.acquire_lock("r", holder="h", hold_timeout=90)
    lease = store.lease("r")
    assert lease is not None and lease.acquired is not None and lease.expires is not None
    with _connect(postgres, url) as conn:
        (server_now,) = conn.execute("SELECT clock_timestamp()").fetchone()
        (expires,) = conn.execute("SELECT expiration FROM resultsfs_leases WHERE id = 'r'").fetchone()
    assert (lease.expires - lease.acquired).total_seconds() == pytest.approx(90, abs=0.01)
    assert abs((server_now - lease.acquired).total_seconds()) < 5
    assert expires.astimezone(datetime.timezone.utc) == lease.expires


def test_two_clients_on_one_database_are_one_store(postgres: PostgresServer) -> None:
    """Two backends (as on two machines) see each other's results and leases at once."""
    url = postgres.url()
    first, second = ResultStore(PostgresBackend(url)), ResultStore(PostgresBackend(url))
    first.set("shared", Counter(writer="first", value=1))
    assert second.get("shared") == Counter(writer="first", value=1)
    second.acquire_lock("shared", holder="second", hold_timeout=30)
    assert first.lease("shared").holder == "second"  # type: ignore[union-attr]
    assert first.acquire_lock("shared", holder="first", acquire_timeout=0) is False


def test_an_unreachable_server_is_a_clear_error(tmp_path: object) -> None:
    started = time.monotonic()
    with pytest.raises(StoreNotFoundError, match="cannot connect to store postgresql://"):
        open_backend("postgresql:///nodb?host=/nonexistent-socket-dir&connect_timeout=2")
    assert time.monotonic() - started < 30
