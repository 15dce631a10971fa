"""Leases: who holds a result and until when, isolation levels, holders, and waiting.

A lease says "holder H has result R until time T" (no expiration: until released). It gives
transaction-style isolation across processes and hosts: writers other than the holder are
refused, and under ``SERIALIZABLE`` readers wait for the holder to finish. Names and meaning
follow Prefect's record stores. Backends keep the records (:mod:`resultsfs.backends`); the
store decides with them (:mod:`resultsfs.store`). This module holds what both share: the
record, its liveness, the default holder, the timeouts' validation and the wait loop.

Liveness is judged against the clock of the backend that keeps the record: the wall clock of
the host that asks, for the directory and SQLite backends (hosts sharing a store must keep
their clocks in step, see docs/store.md), and the server's clock for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import math
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pendulum

#: Returns the current time; tests inject one that they move forward.
Clock = Callable[[], pendulum.DateTime]

#: The longest timeout accepted anywhere (about 31 years): larger values are a mistake, and
#: would overflow date arithmetic.
MAX_TIMEOUT = 1e9


def utc_now() -> pendulum.DateTime:
    """The real clock."""
    return pendulum.now("UTC")


class IsolationLevel(str, enum.Enum):
    """How reads and writes treat other holders' leases (Prefect's names)."""

    #: Writes by non-holders are refused; reads see the last committed result at once.
    READ_COMMITTED = "READ_COMMITTED"
    #: As READ_COMMITTED, and reads wait (bounded) until no other holder has a lease.
    SERIALIZABLE = "SERIALIZABLE"


_task_names: weakref.WeakKeyDictionary[asyncio.Task[Any], str] = weakref.WeakKeyDictionary()
_task_numbers = itertools.count(1)
_task_lock = threading.Lock()


def default_holder() -> str:
    """``"{hostname}:{pid}:{thread id}"``, or ``"{hostname}:{pid}:task-{n}"`` inside an asyncio task.

    Each thread, and each asyncio task, is a holder of its own: a lease taken in one does not
    let another write. Tasks are told apart even when they share a thread (in Prefect, issue
    18600, subtasks that shared a thread-based holder waited for each other forever).
    """
    prefix = f"{socket.gethostname()}:{os.getpid()}:"
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is None:
        return f"{prefix}{threading.get_ident()}"
    with _task_lock:
        name = _task_names.get(task)
        if name is None:
            name = _task_names[task] = f"task-{next(_task_numbers)}"
    return prefix + name


def check_timeout(
    name: str, value: float | None, *, allow_none: bool = True, allow_zero: bool = True
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a usable number of seconds.

    NaN, infinities, negative numbers and values above :data:`MAX_TIMEOUT` are refused (a NaN
    deadline never passes; an infinite one cannot be added to a date). ``None`` means "no
    limit" where ``allow_none``.
    """
    if value is None:
        if allow_none:
            return
        raise TypeError(f"{name} must be a number of seconds, not None")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        wanted = "positive" if not allow_zero else "zero or positive"
        raise ValueError(f"{name} must be {wanted}, not {value!r}")
    if value > MAX_TIMEOUT:
        raise ValueError(f"{name} must be at most {MAX_TIMEOUT:g} seconds, not {value!r}")


@dataclass(frozen=True)
class Lease:
    """One lease record."""

    result_id: str
    holder: str
    acquired: pendulum.DateTime | None
    expires: pendulum.DateTime | None
    #: True when the record could not be read; such a lease counts as expired.
    corrupt: bool = False
    #: The process that holds it for ``resultsfs lock ... -- COMMAND`` (``host:pid:start``),
    #: so that a mount lets that process tree write as the holder; ``None`` otherwise.
    process: str | None = None

    def is_live(self, now: pendulum.DateTime) -> bool:
        """True while the lease binds others."""
        if self.corrupt:
            return False
        return self.expires is None or now < self.expires

    def describe(self) -> str:
        """``'HOLDER' until TIME`` (or ``until it is released``), for messages."""
        until = self.expires.to_iso8601_string() if self.expires is not None else "it is released"
        return f"{self.holder!r} until {until}"

    def to_json(self) -> bytes:
        """The record as stored by the directory backend (also readable by humans)."""
        record: dict[str, Any] = {
            "result_id": self.result_id,
            "holder": self.holder,
            "acquired": self.acquired.to_iso8601_string() if self.acquired is not None else None,
            "expiration": self.expires.to_iso8601_string() if self.expires is not None else None,
        }
        if self.process is not None:
            record["process"] = self.process
        return json.dumps(record).encode()

    @classmethod
    def from_json(cls, raw: bytes, result_id: str) -> Lease:
        """Parse a stored record; anything unreadable is a corrupt (hence expired) lease."""
        try:
            record = json.loads(raw)
            process = record.get("process")
            return cls(
                result_id=str(record.get("result_id", result_id)),
                holder=str(record["holder"]),
                acquired=parse_time(record.get("acquired")),
                expires=parse_time(record.get("expiration")),
                process=str(process) if process is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls(result_id, holder="", acquired=None, expires=None, corrupt=True)


def parse_time(value: object) -> pendulum.DateTime | None:
    """An ISO 8601 timestamp (or ``None``) as a UTC pendulum time; ``TypeError``/``ValueError`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"not a timestamp: {value!r}")
    parsed = pendulum.parse(value)
    if not isinstance(parsed, pendulum.DateTime):
        raise TypeError(f"not a date and time: {value!r}")
    return parsed.in_timezone("UTC")


def expiry(now: pendulum.DateTime, ttl: float | None) -> pendulum.DateTime | None:
    """When a lease taken at ``now`` for ``ttl`` seconds expires (``None``: never)."""
    return now.add(microseconds=round(ttl * 1_000_000)) if ttl is not None else None


def backoff(deadline: float | None) -> Iterator[None]:
    """Yield at once, then after growing pauses (1 ms to 100 ms) until ``deadline`` passes.

    ``deadline`` is a :func:`time.monotonic` time, or ``None`` to go on forever.
    """
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


def deadline_after(timeout: float | None) -> float | None:
    """The monotonic deadline ``timeout`` seconds from now (``None``: none)."""
    return None if timeout is None else time.monotonic() + timeout
