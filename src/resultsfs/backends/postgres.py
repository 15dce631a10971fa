"""The PostgreSQL backend: one store for workers on several machines, without a shared filesystem.

The tables are those of the other SQL backend (:mod:`resultsfs.backends.sql`), with
PostgreSQL's types: ``data`` is JSONB (query it with SQL), next to the exact bytes we return
(``resultsfs_meta.raw``, or the canonical envelope of the row); IDs compare by code point
(``COLLATE "C"``), so prefix ranges are exact and case-sensitive.

A change is one transaction at READ COMMITTED that first takes a transaction-scoped advisory
lock per ID it names (in a fixed order, so two never deadlock): a check and the write it
allows are one step for every client on every machine. Transactions that fail for a
transient reason (a serialization failure, a deadlock, a dropped connection) are run again.
Lease times come from the server's clock (``clock_timestamp()``), so clients whose clocks
disagree still agree on who holds a lease. Connections come from a pool (psycopg 3); a forked
child opens its own. A commit returns once PostgreSQL has made it durable, unless opened with
``durable=False`` (``synchronous_commit = off``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pendulum
import psycopg
import psycopg_pool

from resultsfs.backends import shown_url
from resultsfs.backends.base import Meta
from resultsfs.backends.sql import SqlBackend
from resultsfs.errors import LockTimeoutError, StoreNotFoundError
from resultsfs.locks import DEFAULT_TIMEOUT

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS results (
    id TEXT COLLATE "C" PRIMARY KEY,
    model_type TEXT NOT NULL,
    namespace TEXT NOT NULL,
    data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
)""",
    "CREATE INDEX IF NOT EXISTS results_model_type_namespace ON results (model_type, namespace)",
    """CREATE TABLE IF NOT EXISTS resultsfs_meta (
    id TEXT COLLATE "C" PRIMARY KEY, digest TEXT NOT NULL, raw BYTEA, mode INTEGER NOT NULL,
    uid BIGINT NOT NULL, gid BIGINT NOT NULL, atime_ns BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
    ctime_ns BIGINT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS resultsfs_dirs (
    path TEXT COLLATE "C" PRIMARY KEY, mode INTEGER NOT NULL, uid BIGINT NOT NULL, gid BIGINT NOT NULL,
    atime_ns BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, ctime_ns BIGINT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS resultsfs_leases (
    id TEXT COLLATE "C" PRIMARY KEY, holder TEXT NOT NULL, acquired TIMESTAMPTZ, expiration TIMESTAMPTZ,
    process TEXT
)""",
    """CREATE TABLE IF NOT EXISTS resultsfs_bindings (
    prefix TEXT COLLATE "C" PRIMARY KEY, model TEXT NOT NULL
)""",
)

#: The advisory lock that serialises creating the schema (any fixed number will do).
_SCHEMA_LOCK = 0x72657375


def _lock_key(rid: str) -> int:
    """The advisory lock of an ID: 64 bits of its hash, as PostgreSQL's signed bigint."""
    return int.from_bytes(hashlib.blake2b(rid.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


class PostgresBackend(SqlBackend):
    """Results in PostgreSQL: ``PostgresBackend("postgresql://user@host/db")``.

    ``dsn`` is any libpq connection string or URL. ``pool_size`` bounds the connections of
    this process.
    """

    placeholder = "%s"
    data_in = "::jsonb"
    data_out = "::text"
    foreign_writers = False
    data_keeps_order = False
    transient = (
        psycopg.errors.SerializationFailure,
        psycopg.errors.DeadlockDetected,
        psycopg.OperationalError,
    )

    def __init__(
        self,
        dsn: str,
        *,
        read_only: bool = False,
        lock_timeout: float = DEFAULT_TIMEOUT,
        durable: bool = True,
        pool_size: int = 8,
    ) -> None:
        self.dsn = dsn
        self._options: dict[str, Any] = {
            "read_only": read_only,
            "lock_timeout": lock_timeout,
            "durable": durable,
            "pool_size": pool_size,
        }
        self.read_only = read_only
        self.lock_timeout = lock_timeout
        self.durable = durable
        self.pool_size = pool_size
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._owner = (os.geteuid(), os.getegid())
        # One direct connection first: a wrong URL or a server that is down is reported at once,
        # not after the pool has retried for lock_timeout seconds.
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                if not read_only:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                        for statement in SCHEMA:
                            conn.execute(statement)
        except psycopg.OperationalError as exc:
            raise StoreNotFoundError(f"cannot connect to store {self.url}: {exc}".strip()) from exc

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (type(self), self.dsn, self._options))

    @property
    def url(self) -> str:
        return shown_url(self.dsn)

    # ------------------------------------------------------------ connections

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.autocommit = True
        conn.execute(f"SET lock_timeout = {int(self.lock_timeout * 1000)}")
        conn.execute("SET TIME ZONE 'UTC'")
        if not self.durable:
            conn.execute("SET synchronous_commit = off")
        if self.read_only:
            conn.execute("SET default_transaction_read_only = on")

    def _pool_now(self) -> psycopg_pool.ConnectionPool:
        """This process's pool (a forked child makes its own: connections cannot be shared)."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = psycopg_pool.ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    configure=self._configure,
                    open=True,
                    timeout=self.lock_timeout,
                    name=f"resultsfs-{os.getpid()}",
                )
                self._pool_pid = os.getpid()
            return self._pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool_now().connection() as conn:
            yield conn

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close()
            self._pool = None

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        with self._connection() as conn:
            yield conn

    @contextmanager
    def _writing(self, rids: Sequence[str]) -> Iterator[psycopg.Connection[Any]]:
        with self._connection() as conn, conn.transaction():
            try:
                for key in sorted(_lock_key(rid) for rid in rids):
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            except psycopg.errors.LockNotAvailable as exc:
                raise LockTimeoutError(
                    f"waited {self.lock_timeout:g}s for the lock of {', '.join(rids)} in {self.url}; "
                    "another client holds it"
                ) from exc
            yield conn

    # ------------------------------------------------------------ the dialect

    def _transaction_time(self, conn: Any) -> pendulum.DateTime:
        return _server_time(conn)

    def now(self) -> pendulum.DateTime:
        with self._connection() as conn:
            return _server_time(conn)

    def _time_param(self, moment: pendulum.DateTime | None) -> Any:
        return moment

    def _defaults(self) -> tuple[int, int, int]:
        return 0o644, *self._owner

    def _root_meta(self) -> Meta:
        uid, gid = self._owner
        return Meta(0, 0o755, uid, gid, 0, 0, 0, 1, ("dir", ""), 2)


def _server_time(conn: Any) -> pendulum.DateTime:
    (moment,) = conn.execute("SELECT clock_timestamp()").fetchone()
    found: pendulum.DateTime = pendulum.instance(moment).in_timezone("UTC")
    return found


def _reopen(cls: type[PostgresBackend], dsn: str, options: dict[str, Any]) -> PostgresBackend:
    return cls(dsn, **options)
