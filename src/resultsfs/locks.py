"""Short per-result file locks (``filelock``) that make check-then-write steps atomic.

A set under ``RAISE_IF_EXISTS``, a lease acquisition and a delete each look at the store and
then change it; the lock makes the look and the change one step for every process and, on a
shared filesystem with working ``flock``, every host. Lock files live in the store
(``.resultsfs/locks``), never in the system temp directory, which other hosts do not see.

IDs hash onto a fixed set of lock files (stripes), so the number of lock files is bounded
however many results the store holds, and lock files are never deleted (deleting a lock file
that another process is about to lock is the classic lock-file race). Two IDs sharing a
stripe only wait for each other's few milliseconds. Several IDs are locked in stripe order,
so two multi-ID operations cannot deadlock.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from resultsfs.errors import LockTimeoutError

#: How many lock files a store uses.
STRIPES = 1024

#: How long an operation waits for another's short lock before giving up.
DEFAULT_TIMEOUT = 30.0

_POLL_INTERVAL = 0.002


def stripe_of(key: str) -> int:
    """The stripe of a normalised ID (or any key), stable across processes and hosts."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "big") % STRIPES


class StripedLocks:
    """The short locks of one store."""

    def __init__(self, directory: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.directory = directory
        self.timeout = timeout
        self._locks: dict[int, FileLock] = {}
        self._guard = threading.Lock()

    def _lock(self, stripe: int) -> FileLock:
        with self._guard:
            lock = self._locks.get(stripe)
            if lock is None:
                # thread_local (the default): each thread holds the lock through its own open
                # file, so threads of one process exclude each other like processes do.
                lock = FileLock(self.directory / f"{stripe:04d}.lock")
                self._locks[stripe] = lock
            return lock

    @contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        """Hold the locks of every key in ``keys`` for the duration of the block."""
        stripes = sorted({stripe_of(key) for key in keys})
        with ExitStack() as stack:
            for stripe in stripes:
                lock = self._lock(stripe)
                try:
                    lock.acquire(timeout=self.timeout, poll_interval=_POLL_INTERVAL)
                except Timeout as exc:
                    raise LockTimeoutError(
                        f"waited {self.timeout:g}s for the short lock of {', '.join(keys)} "
                        f"({lock.lock_file}); another process holds it"
                    ) from exc
                stack.callback(lock.release)
            yield
