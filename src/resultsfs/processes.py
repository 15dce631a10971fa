"""Which process holds a lease: identities that survive PID reuse, and process trees.

``resultsfs lock ID -- COMMAND`` records its own identity in the lease it takes
(:attr:`resultsfs.leases.Lease.process`), so that a mount lets COMMAND and every process it
starts write as the lease's holder. An identity is ``host:pid:start``, where ``start`` is
the process's start time in clock ticks since boot (``/proc/PID/stat``, field 22): a PID
the kernel gives to a new process after the holder exits has another start time, so it is
never taken for the holder.
"""

from __future__ import annotations

import os
import socket

_HOST = socket.gethostname()


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state is index 0), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
    return raw.rpartition(b")")[2].split()


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or ``None`` if it is gone."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def parent_of(pid: int) -> int | None:
    """The parent of process ``pid``, or ``None``."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None and len(fields) > 1 else None


def identity(pid: int | None = None) -> str:
    """``host:pid:start`` of process ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    started = start_time(pid)
    if started is None:
        raise ProcessLookupError(f"process {pid} is not running")
    return f"{_HOST}:{pid}:{started}"


def _parse(process: str) -> tuple[str, int, int] | None:
    host, _, rest = process.rpartition(":")
    host, _, pid = host.rpartition(":")
    try:
        return host, int(pid), int(rest)
    except ValueError:
        return None


def is_running(process: str) -> bool:
    """True if the process of identity ``process`` runs on this host now.

    ``False`` for another host's process too: this host cannot tell.
    """
    parsed = _parse(process)
    return parsed is not None and parsed[0] == _HOST and start_time(parsed[1]) == parsed[2]


def in_tree(process: str, pid: int) -> bool:
    """True if process ``pid`` is the process of identity ``process`` or one of its descendants."""
    parsed = _parse(process)
    if parsed is None or parsed[0] != _HOST or pid <= 0:
        return False
    _, root, started = parsed
    seen = set()
    while pid > 1 and pid not in seen:
        if pid == root:
            return start_time(pid) == started
        seen.add(pid)
        parent = parent_of(pid)
        if parent is None:
            return False
        pid = parent
    return False
