"""Hold a lease while a command runs, as ``flock(1)`` holds a lock: ``resultsfs lock ID -- CMD``.

The lease is taken before COMMAND starts and released when it ends, however it ends. While
it runs, a heartbeat renews the lease every third of its lifetime, so a short lifetime frees
the result soon after a crash (of this process, or of the machine) and yet never lets the
lease expire under a long job. The lease records this process's identity
(:mod:`resultsfs.processes`), so a mount lets COMMAND and every process it starts write as
the holder. COMMAND also finds the holder in its environment (:data:`HOLDER_ENV`), which
``resultsfs put`` and ``resultsfs rm`` take as their default ``--holder``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from resultsfs import processes
from resultsfs.errors import LockNotHeldError, ResultsError
from resultsfs.ids import ResultId, normalize_id
from resultsfs.leases import check_timeout, default_holder
from resultsfs.store import ResultStore

#: The exit status when the lease could not be had in time: sysexits' EX_TEMPFAIL ("try again").
CONFLICT_EXIT = 75
#: The environment variable that tells COMMAND (and every program it starts) the lease's holder.
HOLDER_ENV = "RESULTSFS_HOLDER"
#: The lease's lifetime unless told otherwise, renewed every third of it while COMMAND runs.
DEFAULT_TTL = 60.0


def run_holding(
    store: ResultStore,
    result_id: ResultId,
    command: Sequence[str],
    *,
    holder: str | None = None,
    ttl: float = DEFAULT_TTL,
    wait: float | None = 0.0,
    say: Callable[[str], None] = print,
) -> int:
    """Take the lease on ``result_id``, run ``command``, release the lease; return its status.

    ``wait``: seconds to wait for the lease (``None``: forever); if it cannot be had, ``say``
    who holds it and return :data:`CONFLICT_EXIT` without running ``command``. The status of
    a command killed by a signal is ``128 + signal``, as a shell reports it; 127 if it cannot
    be found, 126 if it cannot be run. SIGINT and SIGQUIT from the terminal reach the
    command (its process group) and are not what ends this process; SIGTERM and SIGHUP sent
    to this process are passed on to the command.
    """
    rid = normalize_id(result_id)
    check_timeout("ttl", ttl, allow_none=False, allow_zero=False)
    holder = holder or default_holder()
    me = processes.identity()
    if not store.acquire_lock(rid, holder, wait, ttl, process=me):
        lease = store.lease(rid)
        by = lease.describe() if lease is not None else "another holder"
        say(f"cannot lock {rid!r}: leased by {by}; not running {command[0]}")
        return CONFLICT_EXIT
    stop = threading.Event()
    heartbeat = threading.Thread(
        target=_renew, args=(store, rid, holder, ttl, stop, say), name="resultsfs-heartbeat", daemon=True
    )
    heartbeat.start()
    try:
        return _run(command, say, {**os.environ, HOLDER_ENV: holder})
    finally:
        stop.set()
        heartbeat.join()
        try:
            store.release_lock(rid, holder)
        except LockNotHeldError as exc:
            say(f"the lease on {rid!r} was lost while {command[0]} ran: {exc}")


def _run(command: Sequence[str], say: Callable[[str], None], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(list(command), env=env)
    except FileNotFoundError:
        say(f"cannot run {command[0]!r}: command not found")
        return 127
    except OSError as exc:
        say(f"cannot run {command[0]!r}: {exc.strerror}")
        return 126

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    kept = {
        sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)
    }
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGHUP, pass_on)
    try:
        status = child.wait()
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)
    return status if status >= 0 else 128 - status


def _renew(
    store: ResultStore,
    rid: str,
    holder: str,
    ttl: float,
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """Renew the lease every ``ttl / 3`` seconds until ``stop``; say so if it was lost."""
    while not stop.wait(ttl / 3):
        try:
            if not store.renew_lock(rid, holder, ttl):
                lease = store.lease(rid)
                by = lease.describe() if lease is not None else "another holder"
                say(f"lost the lease on {rid!r}: it is now leased by {by}")
                return
        except ResultsError as exc:  # a store that is briefly unreachable: try again next beat
            say(f"could not renew the lease on {rid!r}: {exc}")
