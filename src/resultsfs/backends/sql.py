"""The engine both SQL backends share: results in a ``results`` table, our tables beside it.

The layout is results_manager's: ``results(id PRIMARY KEY, model_type, namespace, data,
created_at, updated_at)`` with ``data`` the JSON of the model's data. What a store keeps
besides lives in tables of our own, which results_manager never reads:

* ``resultsfs_meta``: per result, its mode, owner and times, and the exact bytes we return
  when they are not the canonical envelope of the row (a writer's own layout). ``digest`` is
  the sha256 of ``results.data`` when the row was written, so a row that another program
  changed since is recognised (its metadata is then the defaults, its bytes canonical);
* ``resultsfs_dirs``: directories made explicitly (``mkdir``) or kept after their last result
  went; other directories are implied by the IDs below them;
* ``resultsfs_leases``: one row per leased ID.

Every change is one database transaction over the IDs it names (:meth:`atomically`); a
dialect decides how a transaction excludes other writers of those IDs (SQLite: the database
write lock; PostgreSQL: advisory locks per ID) and what the clock is. Prefix listing is an
exact range on the primary key: ``a/b/`` to ``a/b0`` (``0`` follows ``/``), never ``LIKE``.
"""

from __future__ import annotations

import abc
import datetime
import errno
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pendulum

from resultsfs import envelope, ids
from resultsfs.backends.base import (
    NO_CHANGE,
    OMIT,
    BytesVersion,
    Finding,
    Listing,
    Meta,
    MetaChange,
    ResultsBackend,
    Transaction,
)
from resultsfs.errors import ReadOnlyStoreError
from resultsfs.leases import Lease, expiry, parse_time

T = TypeVar("T")

#: How often a transaction that failed for a transient reason is tried again.
TRANSIENT_RETRIES = 5

# Statements use ``?`` for parameters and DATA_IN / DATA_OUT where a dialect casts the data
# column; SqlBackend._sql turns them into the driver's form.
_ROW = (
    "SELECT r.model_type, r.namespace, r.data DATA_OUT, r.updated_at, m.digest, m.raw, m.mode, m.uid, "
    "m.gid, m.atime_ns, m.mtime_ns, m.ctime_ns FROM results r LEFT JOIN resultsfs_meta m ON m.id = r.id "
    "WHERE r.id = ?"
)
_DATA_OF = (
    "SELECT r.data DATA_OUT, m.digest, m.raw FROM results r LEFT JOIN resultsfs_meta m ON m.id = r.id "
    "WHERE r.id = ?"
)
_UPDATE_RESULT = (
    "UPDATE results SET model_type = ?, namespace = ?, data = ? DATA_IN, updated_at = CURRENT_TIMESTAMP "
    "WHERE id = ?"
)
_INSERT_RESULT = "INSERT INTO results (id, model_type, namespace, data) VALUES (?, ?, ?, ? DATA_IN)"
_PUT_META = (
    "INSERT INTO resultsfs_meta (id, digest, raw, mode, uid, gid, atime_ns, mtime_ns, ctime_ns) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, "
    "raw = excluded.raw, mode = excluded.mode, uid = excluded.uid, gid = excluded.gid, "
    "atime_ns = excluded.atime_ns, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns"
)
_PUT_DIR = (
    "INSERT INTO resultsfs_dirs (path, mode, uid, gid, atime_ns, mtime_ns, ctime_ns) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO "
)
_PUT_DIR_REPLACING = _PUT_DIR + (
    "UPDATE SET mode = excluded.mode, uid = excluded.uid, gid = excluded.gid, atime_ns = excluded.atime_ns, "
    "mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns"
)
_PUT_DIR_KEEPING = _PUT_DIR + "NOTHING"
_PUT_LEASE = (
    "INSERT INTO resultsfs_leases (id, holder, acquired, expiration, process) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, acquired = excluded.acquired, "
    "expiration = excluded.expiration, process = excluded.process"
)
#: Renaming every ID (and directory) below a directory, table by table.
_MOVE_BELOW = tuple(
    f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE {column} >= ? AND {column} < ?"  # noqa: S608 - fixed names
    for table, column in (("results", "id"), ("resultsfs_meta", "id"), ("resultsfs_dirs", "path"))
)


def digest(text: str) -> str:
    """The sha256 of a ``data`` column's text (how a row changed by another program is noticed)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ino_of(key: str) -> int:
    """A stable inode number for an ID or a directory path (63 bits of its hash)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def bounds(parts: Sequence[str]) -> tuple[str, str] | None:
    """The key range of every ID strictly below directory ``parts`` (``None``: everything)."""
    if not parts:
        return None
    prefix = "/".join(parts)
    return prefix + "/", prefix + "0"


def is_valid_id(rid: object) -> bool:
    """True if a stored ``id`` is a valid, normalised result ID (rows of other programs may not be)."""
    if not isinstance(rid, str):
        return False
    try:
        return ids.normalize_id(rid) == rid
    except ValueError:
        return False


def time_ns(value: Any) -> int:
    """A stored timestamp (SQLite's ``CURRENT_TIMESTAMP`` text, or a datetime) in nanoseconds.

    0 if unreadable.
    """
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)
        return int(moment.timestamp() * 1_000_000_000)
    try:
        parsed = pendulum.parse(str(value), tz="UTC")
    except (ValueError, TypeError):
        return 0
    return int(parsed.timestamp() * 1_000_000_000) if isinstance(parsed, pendulum.DateTime) else 0


def canonical_bytes(model_type: str, namespace: str, data_text: str) -> bytes:
    """The envelope bytes of a row; a row whose data is not JSON gives bytes that are not JSON either."""
    try:
        return envelope.encode(model_type, namespace, json.loads(data_text))
    except ValueError:
        head = json.dumps({"model_type": model_type, "namespace": namespace}, indent=2)[:-2]
        return f'{head},\n  "data": {data_text}\n}}\n'.encode("utf-8", "replace")


def lease_from_row(rid: str, row: Sequence[Any]) -> Lease:
    """A lease from ``(holder, acquired, expiration, process)``; unreadable means corrupt (expired)."""
    holder, acquired, expiration, process = row

    def when(value: Any) -> pendulum.DateTime | None:
        if isinstance(value, datetime.datetime):
            return pendulum.instance(value).in_timezone("UTC")
        return parse_time(value)

    try:
        return Lease(rid, str(holder), when(acquired), when(expiration), process=process)
    except (ValueError, TypeError):
        return Lease(rid, holder="", acquired=None, expires=None, corrupt=True)


def merged(current: Meta, change: MetaChange) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """``(mode, owner, times)``: ``change`` with what it leaves out taken from ``current``."""
    atime, mtime = change.times if change.times is not None else (OMIT, OMIT)
    return (
        change.mode if change.mode is not None else current.mode,
        change.owner if change.owner is not None else (current.uid, current.gid),
        (current.atime_ns if atime == OMIT else atime, current.mtime_ns if mtime == OMIT else mtime),
    )


class SqlBackend(ResultsBackend):
    """What the SQLite and PostgreSQL backends share; a dialect subclass supplies the connections."""

    #: The parameter placeholder of the driver (``?`` or ``%s``); statements here use ``?``.
    placeholder = "?"
    #: What casts the ``data`` parameter of an insert (``::jsonb``) and column of a select (``::text``).
    data_in = ""
    data_out = ""
    #: True if other programs write the results table (results_manager does, on SQLite):
    #: every row's metadata is then checked against a digest of its data.
    foreign_writers = True
    #: False if the data column does not keep the written text (JSONB orders keys its own way):
    #: then the exact bytes of every result are kept beside it.
    data_keeps_order = True
    #: Exceptions after which a transaction is tried again.
    transient: tuple[type[BaseException], ...] = ()

    # ------------------------------------------------------------ the dialect

    @abc.abstractmethod
    def _reading(self) -> AbstractContextManager[Any]:
        """A connection for reads outside any write transaction."""

    @abc.abstractmethod
    def _writing(self, rids: Sequence[str]) -> AbstractContextManager[Any]:
        """A connection inside a write transaction in which no other writer changes ``rids``;
        committed when the block ends, rolled back if it raises."""

    @abc.abstractmethod
    def _transaction_time(self, conn: Any) -> pendulum.DateTime:
        """The time leases are judged by in a transaction on ``conn``."""

    @abc.abstractmethod
    def _time_param(self, moment: pendulum.DateTime | None) -> Any:
        """A lease time as the driver stores it."""

    @abc.abstractmethod
    def _defaults(self) -> tuple[int, int, int]:
        """Mode, uid and gid of a result or directory with no metadata of ours."""

    @abc.abstractmethod
    def _root_meta(self) -> Meta:
        """The root directory's metadata."""

    # ------------------------------------------------------------ plumbing

    def _sql(self, statement: str) -> str:
        statement = statement.replace("DATA_IN", self.data_in).replace("DATA_OUT", self.data_out)
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _run(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(statement), tuple(params))

    def _all(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._reading() as conn:
            return list(self._run(conn, statement, params).fetchall())

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(f"store {self.url} is open read-only")

    def location(self, rid: str) -> str:
        return f"{self.url}#{rid}"

    # ------------------------------------------------------------ rows

    def _row(self, conn: Any, rid: str) -> tuple[bytes, Meta] | None:
        found = self._run(conn, _ROW, (rid,)).fetchone()
        if found is None:
            return None
        model_type, namespace, data, updated_at, stored_digest, raw, *meta = found
        data_text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        current = stored_digest is not None and (
            not self.foreign_writers or stored_digest == digest(data_text)
        )
        if current and raw is not None:
            content = bytes(raw)
        else:
            content = canonical_bytes(str(model_type or ""), str(namespace or ""), data_text)
        if current:
            mode, uid, gid, atime_ns, mtime_ns, ctime_ns = meta
        else:
            mode, uid, gid = self._defaults()
            atime_ns = mtime_ns = ctime_ns = time_ns(updated_at)
        return content, Meta(
            size=len(content),
            mode=mode,
            uid=uid,
            gid=gid,
            mtime_ns=mtime_ns,
            atime_ns=atime_ns,
            ctime_ns=ctime_ns,
            ino=ino_of(rid),
            version=("sql", hashlib.sha256(content).hexdigest()),
        )

    def _children(self, conn: Any, parts: Sequence[str]) -> tuple[set[str], set[str], bool]:
        """``(result names, subdirectory names, anything below at all)`` of directory ``parts``."""
        span = bounds(parts)
        skip = len("/".join(parts)) + 1 if parts else 0
        if span is None:
            found = self._run(conn, "SELECT id FROM results").fetchall()
            made = self._run(conn, "SELECT path FROM resultsfs_dirs").fetchall()
        else:
            found = self._run(conn, "SELECT id FROM results WHERE id >= ? AND id < ?", span).fetchall()
            made = self._run(
                conn, "SELECT path FROM resultsfs_dirs WHERE path >= ? AND path < ?", span
            ).fetchall()
        results: set[str] = set()
        dirs: set[str] = set()
        for (rid,) in found:
            if is_valid_id(rid):
                head, sep, _ = rid[skip:].partition("/")
                (dirs if sep else results).add(head)
        for (path,) in made:
            dirs.add(path[skip:].partition("/")[0])
        return results, dirs, bool(found or made)

    def _dir_meta(self, conn: Any, parts: Sequence[str]) -> Meta | None:
        if not parts:
            return self._root_meta()
        path = "/".join(parts)
        row = self._run(
            conn,
            "SELECT mode, uid, gid, atime_ns, mtime_ns, ctime_ns FROM resultsfs_dirs WHERE path = ?",
            (path,),
        ).fetchone()
        if row is not None:
            mode, uid, gid, atime_ns, mtime_ns, ctime_ns = row
            return Meta(0, mode, uid, gid, mtime_ns, atime_ns, ctime_ns, ino_of(path + "/"), ("dir", path), 2)
        span = bounds(parts)
        assert span is not None
        if self._run(conn, "SELECT 1 FROM results WHERE id >= ? AND id < ? LIMIT 1", span).fetchone() is None:
            return None
        root = self._root_meta()
        return Meta(
            0,
            root.mode,
            root.uid,
            root.gid,
            root.mtime_ns,
            root.atime_ns,
            root.ctime_ns,
            ino_of(path + "/"),
            ("dir", path),
            2,
        )

    # ------------------------------------------------------------ reading

    def meta(self, rid: str) -> Meta | None:
        with self._reading() as conn:
            found = self._row(conn, rid)
        return found[1] if found is not None else None

    def has(self, rid: str) -> bool:
        return bool(self._all("SELECT 1 FROM results WHERE id = ?", (rid,)))

    def open(self, rid: str) -> BytesVersion | None:
        with self._reading() as conn:
            found = self._row(conn, rid)
        return BytesVersion(*found) if found is not None else None

    def scan(self, parts: Sequence[str]) -> Iterator[str]:
        span = bounds(parts)
        if span is None:
            rows = self._all("SELECT id FROM results")
        else:
            rows = self._all("SELECT id FROM results WHERE id >= ? AND id < ?", span)
        return (rid for (rid,) in rows if is_valid_id(rid))

    def listdir(self, parts: Sequence[str]) -> Listing | None:
        with self._reading() as conn:
            if parts and self._dir_meta(conn, parts) is None:
                return None
            results, dirs, _ = self._children(conn, parts)
        if len(parts) >= ids.MAX_DEPTH - 1:
            dirs = set()
        return Listing(sorted(results), sorted(d for d in dirs if ids.is_valid_part(d, is_last=False)))

    def dir_meta(self, parts: Sequence[str]) -> Meta | None:
        with self._reading() as conn:
            return self._dir_meta(conn, parts)

    def lease(self, rid: str) -> Lease | None:
        rows = self._all(
            "SELECT holder, acquired, expiration, process FROM resultsfs_leases WHERE id = ?", (rid,)
        )
        return lease_from_row(rid, rows[0]) if rows else None

    def leases(self) -> Iterator[Lease]:
        rows = self._all("SELECT id, holder, acquired, expiration, process FROM resultsfs_leases")
        return (lease_from_row(rid, row) for rid, *row in rows)

    # ------------------------------------------------------------ changing

    def atomically(self, rids: Iterable[str], operation: Callable[[Transaction], T]) -> T:
        self._check_writable()
        names = sorted(set(rids))
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                with self._writing(names) as conn:
                    return operation(_SqlTransaction(self, conn))
            except self.transient:
                if attempt == TRANSIENT_RETRIES:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def mkdir(self, parts: Sequence[str], change: MetaChange = NO_CHANGE) -> None:
        self._check_writable()
        path = "/".join(parts)

        def make(txn: Transaction) -> None:
            assert isinstance(txn, _SqlTransaction)
            if self._dir_meta(txn.conn, parts) is not None:
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
            if len(parts) > 1 and self._dir_meta(txn.conn, parts[:-1]) is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/".join(parts[:-1]))
            txn.put_dir(path, change)

        self.atomically((), make)

    def rmdir(self, parts: Sequence[str]) -> None:
        self._check_writable()
        path = "/".join(parts)

        def remove(txn: Transaction) -> None:
            assert isinstance(txn, _SqlTransaction)
            if self._dir_meta(txn.conn, parts) is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            if self._children(txn.conn, parts)[2]:
                raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY), path)
            self._run(txn.conn, "DELETE FROM resultsfs_dirs WHERE path = ?", (path,))

        self.atomically((), remove)

    def set_dir_meta(self, parts: Sequence[str], change: MetaChange) -> None:
        self._check_writable()
        path = "/".join(parts)
        if not parts:
            raise OSError(errno.EPERM, f"the root of {self.url} has the metadata of the store itself")

        def apply(txn: Transaction) -> None:
            assert isinstance(txn, _SqlTransaction)
            current = self._dir_meta(txn.conn, parts)
            if current is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            mode, owner, times = merged(current, change)
            txn.put_dir(path, MetaChange(mode=mode, owner=owner, times=times), replace=True)

        self.atomically((), apply)

    # ------------------------------------------------------------ bindings

    def bindings(self) -> dict[str, str]:
        return {
            str(prefix): str(model)
            for prefix, model in self._all("SELECT prefix, model FROM resultsfs_bindings")
        }

    def set_binding(self, prefix: str, model: str | None) -> None:
        self._check_writable()

        def apply(txn: Transaction) -> None:
            assert isinstance(txn, _SqlTransaction)
            self._run(txn.conn, "DELETE FROM resultsfs_bindings WHERE prefix = ?", (prefix,))
            if model is not None:
                self._run(
                    txn.conn, "INSERT INTO resultsfs_bindings (prefix, model) VALUES (?, ?)", (prefix, model)
                )

        self.atomically((), apply)

    # ------------------------------------------------------------ maintenance

    def inspect(self, fix: bool) -> Iterator[Finding]:
        fix = fix and not self.read_only
        for (rid,) in self._all("SELECT id FROM results"):
            if not is_valid_id(rid):
                yield Finding(
                    "foreign", self.location(rid), "row whose id is not a valid result ID (not listed)"
                )
        now = self.now()
        for lease in list(self.leases()):
            if lease.is_live(now):
                continue
            detail = (
                f"expired lease on {lease.result_id!r}" if not lease.corrupt else "unreadable lease record"
            )
            if fix:
                self.atomically([lease.result_id], functools.partial(_drop_if_dead, rid=lease.result_id))
            yield Finding("dead-lease", f"resultsfs_leases#{lease.result_id}", detail, fixed=fix)
        orphans = self._all(
            "SELECT m.id FROM resultsfs_meta m LEFT JOIN results r ON r.id = m.id WHERE r.id IS NULL"
        )
        for (rid,) in orphans:
            if fix:
                self.atomically([rid], functools.partial(_drop_orphan_meta, rid=rid))
            yield Finding(
                "stale-meta", f"resultsfs_meta#{rid}", "metadata of a result that is gone", fixed=fix
            )


def _drop_if_dead(txn: Transaction, *, rid: str) -> None:
    lease = txn.lease(rid)
    if lease is not None and not lease.is_live(txn.now):
        txn.drop_lease(rid)


def _drop_orphan_meta(txn: Transaction, *, rid: str) -> None:
    if txn.meta(rid) is None:
        assert isinstance(txn, _SqlTransaction)
        txn.backend._run(txn.conn, "DELETE FROM resultsfs_meta WHERE id = ?", (rid,))


class _SqlTransaction(Transaction):
    """A transaction of a SQL backend: every statement runs on the transaction's connection."""

    def __init__(self, backend: SqlBackend, conn: Any) -> None:
        self.backend = backend
        self.conn = conn
        self.now = backend._transaction_time(conn)
        #: Rows read in this transaction (a check and the change it allows read the same row):
        #: one SELECT each, forgotten when the transaction changes anything.
        self._rows: dict[str, tuple[bytes, Meta] | None] = {}

    def _run(self, statement: str, params: Sequence[Any] = ()) -> Any:
        if not statement.startswith("SELECT"):
            self._rows.clear()
        return self.backend._run(self.conn, statement, params)

    def _row(self, rid: str) -> tuple[bytes, Meta] | None:
        if rid not in self._rows:
            self._rows[rid] = self.backend._row(self.conn, rid)
        return self._rows[rid]

    def meta(self, rid: str) -> Meta | None:
        found = self._row(rid)
        return found[1] if found is not None else None

    def read(self, rid: str, limit: int) -> bytes | None:
        found = self._row(rid)
        if found is None:
            return None
        if len(found[0]) > limit:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), self.backend.location(rid))
        return found[0]

    def write(self, rid: str, raw: bytes, change: MetaChange = NO_CHANGE, *, keep_meta: bool = True) -> None:
        env = envelope.decode(raw, f"result {rid!r}")
        data_text = json.dumps(env.data)  # results_manager's form of the data column
        old = self.meta(rid)
        if old is not None and keep_meta:
            mode, owner = old.mode, (old.uid, old.gid)
        else:
            mode, owner = 0o644, (os.geteuid(), os.getegid())
        now = time.time_ns()
        atime, mtime = change.times if change.times is not None else (OMIT, OMIT)
        updated = self._run(_UPDATE_RESULT, (env.model_type, env.namespace, data_text, rid))
        if updated.rowcount == 0:
            self._run(_INSERT_RESULT, (rid, env.model_type, env.namespace, data_text))
        canonical = envelope.encode(env.model_type, env.namespace, env.data)
        # The bytes are kept beside the data when they are not the data's canonical envelope,
        # and always where the data column does not keep key order (PostgreSQL's JSONB).
        keep = raw != canonical or not self.backend.data_keeps_order
        self._put_meta(
            rid,
            data_text,
            raw if keep else None,
            change.mode if change.mode is not None else mode,
            change.owner if change.owner is not None else owner,
            (now if atime == OMIT else atime, now if mtime == OMIT else mtime),
        )

    def _put_meta(
        self,
        rid: str,
        data_text: str,
        raw: bytes | None,
        mode: int,
        owner: tuple[int, int],
        times: tuple[int, int],
    ) -> None:
        self._run(
            _PUT_META,
            (rid, digest(data_text), raw, mode, owner[0], owner[1], times[0], times[1], time.time_ns()),
        )

    def put_dir(self, path: str, change: MetaChange, *, replace: bool = False) -> None:
        """Record directory ``path``, its metadata ``change`` filled in from the defaults."""
        now = time.time_ns()
        atime, mtime = change.times if change.times is not None else (OMIT, OMIT)
        owner = change.owner or (os.geteuid(), os.getegid())
        self._run(
            _PUT_DIR_REPLACING if replace else _PUT_DIR_KEEPING,
            (
                path,
                change.mode if change.mode is not None else 0o755,
                owner[0],
                owner[1],
                now if atime == OMIT else atime,
                now if mtime == OMIT else mtime,
                now,
            ),
        )

    def delete(self, rid: str, *, keep_parents: bool) -> bool:
        gone = bool(self._run("DELETE FROM results WHERE id = ?", (rid,)).rowcount)
        self._run("DELETE FROM resultsfs_meta WHERE id = ?", (rid,))
        parents = rid.split("/")[:-1]
        if gone and keep_parents:
            # Directories stay, as on a filesystem: those implied only by this result are
            # recorded explicitly.
            for depth in range(1, len(parents) + 1):
                self.put_dir("/".join(parents[:depth]), NO_CHANGE)
        elif gone:
            # results_manager's delete prunes the directories it emptied; so does this one.
            for depth in range(len(parents), 0, -1):
                if self.backend._children(self.conn, parents[:depth])[2]:
                    break
                self._run("DELETE FROM resultsfs_dirs WHERE path = ?", ("/".join(parents[:depth]),))
        return gone

    def move(self, old: str, new: str) -> None:
        self._run("DELETE FROM results WHERE id = ?", (new,))
        self._run("DELETE FROM resultsfs_meta WHERE id = ?", (new,))
        self._run("UPDATE results SET id = ? WHERE id = ?", (new, old))
        self._run("UPDATE resultsfs_meta SET id = ? WHERE id = ?", (new, old))

    def move_dir(self, old: Sequence[str], new: Sequence[str]) -> None:
        if self.backend._dir_meta(self.conn, new) is not None and self.backend._children(self.conn, new)[2]:
            raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY), "/".join(new))
        old_path, new_path = "/".join(old), "/".join(new)
        span = bounds(old)
        assert span is not None
        self._run("DELETE FROM resultsfs_dirs WHERE path = ?", (new_path,))
        for statement in _MOVE_BELOW:
            self._run(statement, (new_path + "/", len(old_path) + 2, *span))
        moved = self._run("UPDATE resultsfs_dirs SET path = ? WHERE path = ?", (new_path, old_path))
        if not moved.rowcount:
            self.put_dir(new_path, NO_CHANGE)

    def set_meta(self, rid: str, change: MetaChange) -> None:
        current = self.meta(rid)
        row = self._run(_DATA_OF, (rid,)).fetchone()
        if current is None or row is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), rid)
        data, stored_digest, raw = row
        data_text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        current_raw = stored_digest is not None and (
            not self.backend.foreign_writers or stored_digest == digest(data_text)
        )
        mode, owner, times = merged(current, change)
        self._put_meta(
            rid, data_text, bytes(raw) if current_raw and raw is not None else None, mode, owner, times
        )

    def lease(self, rid: str) -> Lease | None:
        row = self._run(
            "SELECT holder, acquired, expiration, process FROM resultsfs_leases WHERE id = ?", (rid,)
        ).fetchone()
        return lease_from_row(rid, row) if row is not None else None

    def put_lease(self, rid: str, holder: str, ttl: float | None, process: str | None = None) -> Lease:
        lease = Lease(rid, holder, self.now, expiry(self.now, ttl), process=process)
        time_param = self.backend._time_param
        self._run(_PUT_LEASE, (rid, holder, time_param(lease.acquired), time_param(lease.expires), process))
        return lease

    def drop_lease(self, rid: str) -> None:
        self._run("DELETE FROM resultsfs_leases WHERE id = ?", (rid,))
