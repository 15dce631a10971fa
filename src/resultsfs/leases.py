"""Lease locks on results (holder, acquisition time, expiration) and isolation levels.

A lease is a record file in ``.resultsfs/leases`` saying who holds a result and until when
(ISO 8601 UTC, computed with pendulum; no expiration means "until released"). It gives
transaction-style isolation across processes and hosts: writers other than the holder are
refused, and under ``SERIALIZABLE`` readers wait for the holder to finish.

Unlike Prefect's FileSystemRecordStore, which this follows in names and meaning:

* every change to a lease happens under the result's short file lock, and every record is
  written whole by an atomic rename, so two waiters never both take over an expired lease
  and nobody ever reads a half-written record;
* nothing is cached per instance: every question reads the record, so no process believes
  a stale answer;
* waiting uses monotonic time and a bounded back-off;
* an expired lease is free; a record that is empty or unreadable (a foreign writer killed
  mid-write, a disk error) is treated as expired, so it can never wedge a result forever.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pendulum

from resultsfs.atomic import replace_file
from resultsfs.errors import LockNotHeldError, LockTimeoutError
from resultsfs.locks import StripedLocks

#: Returns the current time; tests inject one that they move forward.
Clock = Callable[[], pendulum.DateTime]


def utc_now() -> pendulum.DateTime:
    """The real clock."""
    return pendulum.now("UTC")


class IsolationLevel(str, enum.Enum):
    """How reads and writes treat other holders' leases (Prefect's names)."""

    #: Writes by non-holders are refused; reads see the last committed result at once.
    READ_COMMITTED = "READ_COMMITTED"
    #: As READ_COMMITTED, and reads wait (bounded) until no other holder has a lease.
    SERIALIZABLE = "SERIALIZABLE"


def default_holder() -> str:
    """``"{hostname}:{pid}:{thread_id}"``: unique per thread of a process on a host."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass(frozen=True)
class Lease:
    """One lease record as read from disk."""

    result_id: str
    holder: str
    acquired: pendulum.DateTime | None
    expires: pendulum.DateTime | None
    #: True when the record could not be read; such a lease counts as expired.
    corrupt: bool = False

    def is_live(self, now: pendulum.DateTime) -> bool:
        """True while the lease binds others."""
        if self.corrupt:
            return False
        return self.expires is None or now < self.expires


def _parse_time(value: object) -> pendulum.DateTime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"not a timestamp: {value!r}")
    parsed = pendulum.parse(value)
    if not isinstance(parsed, pendulum.DateTime):
        raise TypeError(f"not a date and time: {value!r}")
    return parsed.in_timezone("UTC")


class LeaseTable:
    """The lease records of one store."""

    def __init__(self, directory: Path, locks: StripedLocks, clock: Clock = utc_now) -> None:
        self.directory = directory
        self.locks = locks
        self.clock = clock
        self._dir_fd: int | None = None

    def _fd(self) -> int:
        if self._dir_fd is None:
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._dir_fd

    def close(self) -> None:
        """Release the directory descriptor."""
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    @staticmethod
    def record_name(result_id: str) -> str:
        """The record file name of a normalised ID (hashed: IDs can be longer than a name)."""
        return hashlib.sha256(result_id.encode("utf-8")).hexdigest()[:40] + ".lease"

    def read(self, result_id: str) -> Lease | None:
        """The lease record of ``result_id``, expired or not, or ``None``."""
        try:
            fd = os.open(
                self.record_name(result_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd()
            )
        except FileNotFoundError:
            return None
        try:
            raw = os.read(fd, 65536)
        finally:
            os.close(fd)
        try:
            record = json.loads(raw)
            return Lease(
                result_id=str(record.get("result_id", result_id)),
                holder=str(record["holder"]),
                acquired=_parse_time(record.get("acquired")),
                expires=_parse_time(record.get("expiration")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return Lease(result_id, holder="", acquired=None, expires=None, corrupt=True)

    def current(self, result_id: str) -> Lease | None:
        """The live lease of ``result_id``, or ``None`` if it is free."""
        lease = self.read(result_id)
        if lease is None or not lease.is_live(self.clock()):
            return None
        return lease

    def is_locked(self, result_id: str) -> bool:
        """True while somebody holds a live lease."""
        return self.current(result_id) is not None

    def is_holder(self, result_id: str, holder: str) -> bool:
        """True while ``holder`` holds a live lease."""
        lease = self.current(result_id)
        return lease is not None and lease.holder == holder

    def blocking_lease(self, result_id: str, holder: str) -> Lease | None:
        """The live lease of another holder than ``holder``, if any."""
        lease = self.current(result_id)
        if lease is None or lease.holder == holder:
            return None
        return lease

    def _write(self, result_id: str, holder: str, hold_timeout: float | None) -> None:
        now = self.clock()
        expires = now.add(seconds=hold_timeout) if hold_timeout is not None else None
        record = {
            "result_id": result_id,
            "holder": holder,
            "acquired": now.to_iso8601_string(),
            "expiration": expires.to_iso8601_string() if expires is not None else None,
        }
        replace_file(self._fd(), self.record_name(result_id), json.dumps(record).encode(), durable=False)

    def try_acquire(self, result_id: str, holder: str, hold_timeout: float | None) -> bool:
        """Take the lease if it is free or already ours (which renews it); never waits."""
        with self.locks.hold(result_id):
            if self.blocking_lease(result_id, holder) is not None:
                return False
            self._write(result_id, holder, hold_timeout)
            return True

    def acquire(
        self,
        result_id: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take the lease, waiting up to ``acquire_timeout`` seconds (``None``: forever).

        Returns False if another holder still has it when the time is up.
        """
        if hold_timeout is not None and hold_timeout <= 0:
            raise ValueError(f"hold_timeout must be positive, not {hold_timeout!r}")
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        return any(self.try_acquire(result_id, holder, hold_timeout) for _ in _backoff(deadline))

    def release(self, result_id: str, holder: str) -> None:
        """Give the lease back; raises :class:`LockNotHeldError` unless ``holder`` holds it."""
        with self.locks.hold(result_id):
            lease = self.read(result_id)
            now = self.clock()
            if lease is None or lease.corrupt or lease.holder != holder:
                held_by = "nobody" if lease is None or lease.corrupt else repr(lease.holder)
                raise LockNotHeldError(
                    f"cannot release the lease on {result_id!r}: held by {held_by}, not {holder!r}",
                    result_id=result_id,
                )
            if not lease.is_live(now):
                self._remove(result_id)
                assert lease.expires is not None
                raise LockNotHeldError(
                    f"cannot release the lease on {result_id!r}: {holder!r}'s lease expired at "
                    f"{lease.expires.to_iso8601_string()}",
                    result_id=result_id,
                )
            self._remove(result_id)

    def _remove(self, result_id: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self.record_name(result_id), dir_fd=self._fd())

    def wait(self, result_id: str, timeout: float | None, holder: str | None = None) -> bool:
        """Wait until no one (but ``holder``) has a live lease; False if ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in _backoff(deadline):
            lease = self.current(result_id)
            if lease is None or (holder is not None and lease.holder == holder):
                return True
        return False

    def dead_records(self) -> list[tuple[str, str]]:
        """``(record name, result ID)`` of every expired or unreadable record (ID ``""`` if unknown)."""
        try:
            names = sorted(os.listdir(self._fd()))
        except FileNotFoundError:
            return []
        now = self.clock()
        dead = []
        for name in names:
            if not name.endswith(".lease"):
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd())
            except FileNotFoundError:
                continue
            try:
                raw = os.read(fd, 65536)
            finally:
                os.close(fd)
            try:
                result_id = str(json.loads(raw)["result_id"])
            except (ValueError, KeyError, TypeError):
                dead.append((name, ""))
                continue
            lease = self.read(result_id) if self.record_name(result_id) == name else None
            if lease is None or not lease.is_live(now):
                dead.append((name, result_id))
        return dead

    def remove_dead(self) -> list[str]:
        """Delete expired and unreadable records; return their IDs (or record names)."""
        removed = []
        for name, result_id in self.dead_records():
            with self.locks.hold(result_id or name):
                # Re-check under the lock: the lease may have been renewed or taken meanwhile.
                lease = self.read(result_id) if result_id and self.record_name(result_id) == name else None
                if lease is not None and lease.is_live(self.clock()):
                    continue
                try:
                    os.unlink(name, dir_fd=self._fd())
                except FileNotFoundError:
                    continue
                removed.append(result_id or name)
        return removed

    @contextmanager
    def hold(
        self,
        result_id: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> Iterator[None]:
        """Hold the lease for a block; raises :class:`LockTimeoutError` if it cannot be had."""
        if not self.acquire(result_id, holder, acquire_timeout, hold_timeout):
            raise LockTimeoutError(
                f"could not acquire the lease on {result_id!r} within {acquire_timeout}s", result_id=result_id
            )
        try:
            yield
        finally:
            self.release(result_id, holder)


def _backoff(deadline: float | None) -> Iterator[None]:
    """Yield at once, then after growing pauses (1 ms to 100 ms) until ``deadline`` passes."""
    pause = 0.001
    while True:
        yield
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(pause, left))
        else:
            time.sleep(pause)
        pause = min(pause * 2, 0.1)
