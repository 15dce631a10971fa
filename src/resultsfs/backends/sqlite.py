"""The SQLite backend: results_manager's ``SqliteBackend`` schema, done safely.

A database written by results_manager opens unchanged, and results_manager reads what we
write: results live in its table ``results(id TEXT PRIMARY KEY, model_type, namespace, data
TEXT, created_at, updated_at)``; what it lacks lives in tables of our own beside it (see
:mod:`resultsfs.backends.sql`).

Where results_manager's backend is wrong, this one is right: the database runs in WAL mode
with a busy timeout; every change is one ``BEGIN IMMEDIATE`` transaction, so a check and the
write it allows (``RAISE_IF_EXISTS``, a lease) are one step and exactly one of several racing
processes wins; prefix listing is an exact, case-sensitive range on the primary key (its
``LIKE`` took ``_`` and ``%`` as wildcards and ignored case); ``created_at`` survives an
overwrite (it used ``INSERT OR REPLACE``). Durability matches the directory store: a change
is on disk when the call returns (``synchronous=FULL``), unless opened with ``durable=False``.

SQLite locks a database for the processes of one machine; it is not safe on a network
filesystem. Workers on several machines need PostgreSQL.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pendulum

from resultsfs.backends.base import Meta
from resultsfs.backends.sql import SqlBackend
from resultsfs.errors import LockTimeoutError, StoreNotFoundError, StoreReplacedError
from resultsfs.leases import Clock, utc_now
from resultsfs.locks import DEFAULT_TIMEOUT

#: results_manager's schema, statement for statement (it ran these on every open).
RESULTS_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY,
    model_type TEXT NOT NULL,
    namespace TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)""",
    "CREATE INDEX IF NOT EXISTS idx_results_model_type_namespace ON results (model_type, namespace)",
    "CREATE INDEX IF NOT EXISTS idx_results_id ON results (id)",
)

#: Our own tables beside it.
OWN_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS resultsfs_meta (
    id TEXT PRIMARY KEY, digest TEXT NOT NULL, raw BLOB, mode INTEGER NOT NULL, uid INTEGER NOT NULL,
    gid INTEGER NOT NULL, atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS resultsfs_dirs (
    path TEXT PRIMARY KEY, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
    atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS resultsfs_leases (
    id TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired TEXT, expiration TEXT, process TEXT
)""",
    "CREATE TABLE IF NOT EXISTS resultsfs_bindings (prefix TEXT PRIMARY KEY, model TEXT NOT NULL)",
)


class SqliteBackend(SqlBackend):
    """Results in an SQLite database, in results_manager's schema.

    ``SqliteBackend(db_path, create_if_missing=True)`` is results_manager's signature: the
    database (and its directory) is created if missing, unless ``create_if_missing`` is false.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        create_if_missing: bool = True,
        *,
        read_only: bool = False,
        clock: Clock = utc_now,
        lock_timeout: float = DEFAULT_TIMEOUT,
        durable: bool = True,
    ) -> None:
        self.db_path = Path(db_path).absolute()
        self._args = (str(db_path), create_if_missing)
        self._options: dict[str, Any] = {
            "read_only": read_only,
            "clock": clock,
            "lock_timeout": lock_timeout,
            "durable": durable,
        }
        if not self.db_path.exists():
            if read_only or not create_if_missing:
                raise StoreNotFoundError(f"store {self.url} does not exist")
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.db_path.is_file():
            raise StoreNotFoundError(f"store {self.url}: {self.db_path} is not a file")
        self.read_only = read_only
        self.durable = durable
        self.clock = clock
        self.lock_timeout = lock_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._pid = os.getpid()
        if not read_only:
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in (*RESULTS_SCHEMA, *OWN_SCHEMA):
                conn.execute(statement)
        st = os.stat(self.db_path)
        self._identity = (st.st_dev, st.st_ino)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (type(self), self._args, self._options))

    @property
    def url(self) -> str:
        return f"sqlite://{self.db_path}"

    # ------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (a forked child opens its own: SQLite forbids sharing)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._local = threading.local()
            self._connections = []
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            target = f"file:{self.db_path}?mode=ro" if self.read_only else str(self.db_path)
            conn = sqlite3.connect(
                target,
                uri=self.read_only,
                timeout=self.lock_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.lock_timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            if self.read_only:
                # A database that lacks tables (one results_manager never wrote to, or one without
                # ours) reads as having them empty.
                for statement in (*RESULTS_SCHEMA[:1], *OWN_SCHEMA):
                    table = statement.split("EXISTS ")[1].split()[0]
                    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
                        conn.execute(statement.replace("CREATE TABLE", "CREATE TEMP TABLE"))
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        yield self._conn()

    @contextmanager
    def _writing(self, rids: Sequence[str]) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")  # the database's write lock: every other writer waits
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise LockTimeoutError(
                    f"waited {self.lock_timeout:g}s for the write lock of {self.url}; "
                    "another process holds it"
                ) from exc
            raise
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # ------------------------------------------------------------ the dialect

    def _transaction_time(self, conn: Any) -> pendulum.DateTime:
        return self.clock()

    def now(self) -> pendulum.DateTime:
        return self.clock()

    def _time_param(self, moment: pendulum.DateTime | None) -> Any:
        return moment.to_iso8601_string() if moment is not None else None

    def _defaults(self) -> tuple[int, int, int]:
        st = os.stat(self.db_path)
        return stat.S_IMODE(st.st_mode) & 0o666, st.st_uid, st.st_gid

    def _root_meta(self) -> Meta:
        st = os.stat(self.db_path)
        file_mode = stat.S_IMODE(st.st_mode)
        mode = file_mode | ((file_mode & 0o444) >> 2)  # a directory may be entered where the file may be read
        return Meta(
            0, mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns, st.st_ctime_ns, 1, ("dir", ""), 2
        )

    # ------------------------------------------------------------ maintenance

    def check_alive(self) -> None:
        try:
            st = os.stat(self.db_path)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._identity:
            raise StoreReplacedError(
                f"store {self.url} was removed or replaced by another file while open; open it again "
                "(for a mount: unmount and mount again)"
            )

    def statfs(self) -> dict[str, int] | None:
        sv = os.statvfs(self.db_path.parent)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail")
        found = {key: int(getattr(sv, key)) for key in keys}
        found["f_namemax"] = 255
        return found


def _reopen(cls: type[SqliteBackend], args: tuple[Any, ...], options: dict[str, Any]) -> SqliteBackend:
    return cls(*args, **options)
