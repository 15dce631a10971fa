"""Durable, atomic file replacement: unique temp file in the target directory, fsync, rename.

A crash at any point leaves either the old file or the new one, never a partial one: the
bytes go to a temp file beside the target, are fsynced, and ``rename`` puts them in place in
one step; the directory is fsynced so the rename itself survives a power loss. Temp names are
unique per writer (host, pid, random), start with ``.`` (so they are never result IDs) and
are short (so they fit next to the longest result name). A writer that dies leaves its temp
file behind; :func:`is_stale_temp` tells the store's cleanup which ones are safe to remove.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from contextlib import suppress

TEMP_PREFIX = ".resultsfs-tmp."

#: Temp files of writers on other hosts (whose pids we cannot check) count as abandoned after this.
STALE_AFTER_SECONDS = 3600.0

_HOST = socket.gethostname().replace("/", "_")[:64] or "host"

#: Called after the temp file is complete and before the rename. Tests of crash safety set it
#: in a child process (to ``os.kill(os.getpid(), SIGKILL)``); it is ``None`` otherwise.
before_rename: Callable[[], None] | None = None


def temp_name() -> str:
    """A fresh temp file name: ``.resultsfs-tmp.<host>.<pid>.<random>``."""
    return f"{TEMP_PREFIX}{_HOST}.{os.getpid()}.{secrets.token_hex(6)}"


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write fewer)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def replace_file(
    dir_fd: int,
    name: str,
    data: bytes,
    *,
    mode: int | None = None,
    owner: tuple[int, int] | None = None,
    times: tuple[int, int] | None = None,
    durable: bool = True,
) -> None:
    """Atomically make ``name`` in directory ``dir_fd`` hold ``data``.

    ``mode``, ``owner`` and ``times`` (``(atime_ns, mtime_ns)``, ``-1`` keeps one as created) are
    applied to the new file before it becomes visible (pass the old file's mode and owner to
    keep them across a replacement). With ``durable`` the file and the directory are
    fsynced. On any error the temp file is removed and the old ``name`` is untouched.
    """
    tmp = temp_name()
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666, dir_fd=dir_fd
    )
    try:
        try:
            write_all(fd, data)
            if mode is not None:
                os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, *owner)
            if times is not None:
                now = os.fstat(fd)
                atime = now.st_atime_ns if times[0] < 0 else times[0]
                mtime = now.st_mtime_ns if times[1] < 0 else times[1]
                os.utime(fd, ns=(atime, mtime))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if durable:
        os.fsync(dir_fd)


def is_temp_name(name: str) -> bool:
    """True for names made by :func:`temp_name`."""
    return name.startswith(TEMP_PREFIX)


def is_stale_temp(name: str, mtime: float, now: float) -> bool:
    """True if the temp file ``name`` was abandoned by a writer that is gone.

    A temp file of this host whose pid is no longer running is stale at once; any temp file is
    stale once older than :data:`STALE_AFTER_SECONDS`.
    """
    if now - mtime > STALE_AFTER_SECONDS:
        return True
    fields = name[len(TEMP_PREFIX) :].rsplit(".", 2)
    if len(fields) != 3 or fields[0] != _HOST:
        return False
    try:
        pid = int(fields[1])
    except ValueError:
        return False
    return pid != os.getpid() and not process_is_running(pid)


def process_is_running(pid: int) -> bool:
    """True if process ``pid`` of this host is running (a zombie is not: it has exited)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # "pid (comm) state ...": comm may hold spaces and parentheses; state follows the last ')'.
            return handle.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
