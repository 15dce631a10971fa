"""Verdicts that outlive a mount: a remount does not validate again what it validated before.

A mount validates each version of a result once and remembers the verdict in memory
(:meth:`resultsfs.store.ResultStore.verdict`). :class:`VerdictLog` keeps the verdicts in a
small SQLite file of the host, so the next mount of the store starts with them. Each verdict is
keyed by a digest of the result's ID and *version* (for a directory store: device, inode,
size, modification and change times; for SQL stores: a digest of the bytes), so a changed
result is never served on an old verdict.

A verdict also depends on the models. The file is named by the registry's *fingerprint*
(:func:`fingerprint`): the models' JSON Schemas, the source files that define them, and the
versions of pydantic and resultsfs. New models, or an edited models file, start an empty log
(older logs are removed). A validator that calls code in another module, changed without any
of those changing, is not noticed: mount with ``--revalidate`` after such a change (and
``resultsfs check`` always validates).

Losing the file loses nothing but time: it is written without fsync, from a background
thread, in batches.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import logging
import queue
import sqlite3
import threading
from contextlib import suppress
from pathlib import Path

import pydantic

from resultsfs import registry

log = logging.getLogger(__name__)

#: How many verdicts a batch writes at most, and how often the writer wakes.
_BATCH = 2000
_FLUSH_SECONDS = 0.5


def fingerprint() -> str:
    """A digest of what validation depends on: the registered models, their source files, and
    the versions of pydantic and resultsfs."""
    try:
        ours = importlib.metadata.version("resultsfs")
    except importlib.metadata.PackageNotFoundError:
        ours = "unknown"
    digest = hashlib.sha256(f"pydantic {pydantic.VERSION}; resultsfs {ours}\n".encode())
    sources: set[str] = set()
    for namespace, name, cls in registry.all_models():
        schema = json.dumps(cls.model_json_schema(mode="validation"), sort_keys=True, default=str)
        digest.update(f"{namespace}\0{name}\0{cls.__module__}.{cls.__qualname__}\0{schema}\n".encode())
        with suppress(TypeError, OSError):
            source = inspect.getsourcefile(cls)
            if source is not None:
                sources.add(source)
    for source in sorted(sources):
        with suppress(OSError):
            digest.update(source.encode() + b"\0" + Path(source).read_bytes())
    return digest.hexdigest()


class VerdictLog:
    """The verdicts of one store for one registry fingerprint, in ``directory``.

    ``get`` is a lookup in the file; ``put`` queues a verdict for the background writer.
    """

    def __init__(self, directory: Path, fingerprint: str, *, fresh: bool = False) -> None:
        """``fresh``: forget what the file holds (``--revalidate``), and keep new verdicts."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"verdicts-{fingerprint[:32]}.sqlite"
        for old in directory.glob("verdicts-*.sqlite*"):
            if fresh or not old.name.startswith(name):
                with suppress(OSError):
                    old.unlink()  # verdicts of other models: never valid again
        self.path = directory / name
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (key BLOB PRIMARY KEY, model TEXT, error TEXT) WITHOUT ROWID"
        )
        self._lock = threading.Lock()
        self._pending: queue.SimpleQueue[tuple[bytes, str | None, str | None] | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write, name="resultsfs-verdicts", daemon=True)
        self._writer.start()

    def load(self, limit: int) -> tuple[list[tuple[bytes, tuple[str, str] | None, str | None]], bool]:
        """Up to ``limit`` verdicts at once, and whether that is all of them.

        A mount loads them when it starts: a lookup in memory per open, instead of a query.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, model, error FROM verdicts LIMIT ?", (limit + 1,)
            ).fetchall()
        found = [(bytes(key), _model(model), error) for key, model, error in rows[:limit]]
        return found, len(rows) <= limit

    def get(self, key: bytes) -> tuple[tuple[str, str] | None, str | None] | None:
        """``(model, error)`` remembered for ``key``, or ``None``."""
        with self._lock:
            row = self._conn.execute("SELECT model, error FROM verdicts WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        model, error = row
        return _model(model), error

    def put(self, key: bytes, model: tuple[str, str] | None, error: str | None) -> None:
        """Remember a verdict (written soon, in the background)."""
        self._pending.put((key, registry.model_ref(*model) if model is not None else None, error))

    def _write(self) -> None:
        """Write queued verdicts in batches: wait for the first, gather for a while, write once."""
        done = False
        while not done:
            first = self._pending.get()
            batch = []
            if first is None:
                done = True
            else:
                batch.append(first)
                self._stopping.wait(_FLUSH_SECONDS)  # let a burst of reads gather into one write
            while len(batch) < _BATCH:
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batch.append(item)
            if batch:
                try:
                    with self._lock, self._conn:  # one transaction per batch, not one per verdict
                        self._conn.execute("BEGIN")
                        self._conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?)", batch)
                except sqlite3.Error:
                    log.exception("could not keep %d verdicts in %s", len(batch), self.path)

    def close(self) -> None:
        """Write what is queued, then close the file."""
        self._stopping.set()
        self._pending.put(None)
        self._writer.join(timeout=30)
        with self._lock:
            self._conn.close()


def _model(ref: str | None) -> tuple[str, str] | None:
    """``"namespace:Model"`` as ``(namespace, model_type)``."""
    if ref is None:
        return None
    namespace, _, name = ref.rpartition(":")
    return namespace, name
