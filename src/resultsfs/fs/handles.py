"""Open-file handles of the mount: what each open file reads from and writes to.

* :class:`ReadHandle`: a result opened read-only; reads come from the version that was
  opened (:class:`~resultsfs.backends.base.Version`), so a reader keeps one consistent
  version even if the result is replaced meanwhile.
* :class:`WriteHandle`: a result opened for writing. Its content is a private
  :class:`WriteBuffer` that no other handle sees (the handle reads back exactly what it
  wrote), until a commit point validates it and stores it through the store.
* :class:`ScratchHandle`: a scratch file in the staging area: plain pass-through.

Write buffers are bounded: each keeps up to :data:`MEMORY_PER_BUFFER` bytes in memory and
all of them together up to the :class:`BufferBudget`'s memory; beyond that a buffer spills to
an unnamed private file in the staging area, and past the budget's disk limit writes are
refused with ``ENOSPC``. Closing a handle returns its memory.

The :class:`HandleTable` hands out the numbers the kernel uses (``fh``) and knows which write
handles are open on each path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import itertools
import os
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from resultsfs.backends.base import Version
from resultsfs.errors import ResultTooLargeError
from resultsfs.fs import DEFAULT_MEMORY_BUDGET, DEFAULT_PENDING_LIMIT

#: A write buffer keeps at most this much in memory before it spills to disk.
MEMORY_PER_BUFFER = 256 * 1024

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _malloc_trim: Callable[[int], int] | None = _libc.malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None


class BufferBudget:
    """How much all write buffers of a mount may hold, in memory and in all."""

    def __init__(self, memory: int = DEFAULT_MEMORY_BUDGET, pending: int = DEFAULT_PENDING_LIMIT) -> None:
        self.memory_limit = memory
        self.pending_limit = pending
        self.in_memory = 0
        self.pending = 0
        self._released = 0
        self._lock = threading.Lock()

    def grow(self, in_memory: int, pending: int) -> bool:
        """Account for growth; False (nothing accounted) if memory would pass its limit.

        Raises ``OSError(ENOSPC)`` if the pending total would pass its limit.
        """
        with self._lock:
            if pending > 0 and self.pending + pending > self.pending_limit:
                raise OSError(
                    errno.ENOSPC,
                    f"the mount holds {self.pending} bytes of uncommitted writes, its limit is "
                    f"{self.pending_limit} (--max-pending-bytes)",
                )
            if in_memory > 0 and self.in_memory + in_memory > self.memory_limit:
                return False
            self.in_memory += in_memory
            self.pending += pending
            return True

    def shrink(self, in_memory: int, pending: int) -> None:
        """Account for memory and pending bytes given back."""
        with self._lock:
            self.in_memory -= in_memory
            self.pending -= pending
            self._released += in_memory
            trim = self._released > 16 * 1024 * 1024 or (self.in_memory == 0 and self._released > 0)
            if trim:
                self._released = 0
        if trim and _malloc_trim is not None:
            _malloc_trim(0)  # hand freed buffer memory back to the system, not only to malloc


class WriteBuffer:
    """A write handle's private content: in memory while small, in a private unnamed file beyond."""

    def __init__(self, budget: BufferBudget, spill: Callable[[], int], limit: int) -> None:
        self._budget = budget
        self._spill = spill
        self._limit = limit
        self._memory = bytearray()
        self._fd = -1
        self.size = 0

    def _resize(self, new_size: int) -> None:
        """Account for growing to ``new_size``, spilling to disk when memory would be too much."""
        if new_size > self._limit:
            raise ResultTooLargeError(f"a result may not be larger than {self._limit} bytes")
        grow = new_size - self.size
        if (
            self._fd < 0
            and new_size <= MEMORY_PER_BUFFER
            and self._budget.grow(new_size - len(self._memory), grow)
        ):
            return
        self._budget.grow(0, grow)
        if self._fd < 0:
            try:
                self._to_disk()
            except BaseException:
                self._budget.shrink(0, grow)
                raise

    def _to_disk(self) -> None:
        fd = self._spill()
        try:
            view = memoryview(self._memory)
            offset = 0
            while offset < len(view):
                offset += os.pwrite(fd, view[offset:], offset)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        released = len(self._memory)
        self._memory = bytearray()
        self._budget.shrink(released, 0)

    def read(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        if self._fd >= 0:
            return os.pread(self._fd, end - offset, offset)
        return bytes(self._memory[offset:end])

    def write(self, data: bytes, offset: int) -> int:
        end = offset + len(data)
        if end > self.size:
            self._resize(end)
        if self._fd >= 0:
            if offset > self.size:
                os.ftruncate(self._fd, offset)  # the gap reads as NUL bytes, as in a sparse file
            done = 0
            while done < len(data):
                done += os.pwrite(self._fd, data[done:], offset + done)
        else:
            if offset > len(self._memory):
                self._memory.extend(b"\0" * (offset - len(self._memory)))
            self._memory[offset:end] = data
        self.size = max(self.size, end)
        return len(data)

    def truncate(self, length: int) -> None:
        if length > self.size:
            self._resize(length)
        if self._fd >= 0:
            os.ftruncate(self._fd, length)
        elif length < len(self._memory):
            released = len(self._memory) - length
            del self._memory[length:]
            self._budget.shrink(released, 0)
        else:
            self._memory.extend(b"\0" * (length - len(self._memory)))
        if length < self.size:
            self._budget.shrink(0, self.size - length)
        self.size = length

    def getvalue(self) -> bytes:
        """The whole content (what a commit validates)."""
        return self.read(self.size, 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._budget.shrink(len(self._memory), self.size)
        self._memory = bytearray()
        self.size = 0


class ReadHandle:
    """A result opened read-only: the version that was opened."""

    def __init__(self, path: str, version: Version | None) -> None:
        self.path = path
        #: ``None`` for an empty placeholder read with ``--lenient``.
        self.version = version

    def read(self, size: int, offset: int) -> bytes:
        return self.version.read(size, offset) if self.version is not None else b""

    def close(self) -> None:
        if self.version is not None:
            self.version.close()


@dataclass(eq=False)
class ScratchHandle:
    """A scratch file in the staging area: plain pass-through to its descriptor."""

    path: str
    fd: int

    def read(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        os.close(self.fd)


@dataclass(eq=False)
class WriteHandle:
    """A result opened for writing: a private buffer and what its commit needs."""

    path: str
    buffer: WriteBuffer
    #: Created by this open (``O_CREAT`` on a name that had no result).
    created: bool
    #: ``O_EXCL``: the first commit must not replace a result.
    exclusive: bool
    #: Mode and owner for a newly created result.
    mode: int
    owner: tuple[int, int] | None
    #: ``O_APPEND``: every write goes to the end of this handle's content, whatever the offset
    #: the kernel computed from the size it believed.
    append: bool = False
    #: The process (thread group) that opened it: closes by other processes do not commit.
    opener: int = 0
    #: Written or truncated since the last commit.
    dirty: bool = False
    #: The result was unlinked while open: its writes go nowhere, as POSIX says.
    unlinked: bool = False
    #: Why this handle's file is no longer the result at its path (it was replaced by a rename,
    #: or moved to a name that is not a result): its commits are refused with ``ESTALE``.
    detached: str | None = None
    #: ``utimens`` asked while the commit was pending: ``(atime_ns, mtime_ns)`` to apply after it.
    times: tuple[int, int] | None = None
    #: Opened with ``O_TRUNC``: a close with nothing written is a request to empty the result.
    truncated: bool = False
    #: errno of the last refused commit; repeated by later flushes until new data arrives.
    failure: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, size: int, offset: int) -> bytes:
        with self.lock:
            return self.buffer.read(size, offset)

    def write(self, data: bytes, offset: int) -> int:
        if self.append:
            offset = self.buffer.size
        written = self.buffer.write(data, offset)
        self.dirty = True
        self.failure = None
        return written

    def truncate(self, length: int) -> None:
        self.buffer.truncate(length)
        self.dirty = True
        self.failure = None

    def close(self) -> None:
        self.buffer.close()


Handle = ReadHandle | WriteHandle | ScratchHandle


class HandleTable:
    """Open handles by number, and open write handles by path."""

    def __init__(self) -> None:
        self._handles: dict[int, Handle] = {}
        self._writers: dict[str, list[WriteHandle]] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, handle: Handle) -> int:
        with self._lock:
            number = next(self._numbers)
            self._handles[number] = handle
            if isinstance(handle, WriteHandle):
                self._writers.setdefault(handle.path, []).append(handle)
            return number

    def get(self, number: int) -> Handle | None:
        return self._handles.get(number)

    def remove(self, number: int) -> Handle | None:
        with self._lock:
            handle = self._handles.pop(number, None)
            if isinstance(handle, WriteHandle):
                self._forget_writer(handle)
            return handle

    def _forget_writer(self, handle: WriteHandle) -> None:
        writers = self._writers.get(handle.path)
        if writers is not None:
            writers[:] = [w for w in writers if w is not handle]
            if not writers:
                del self._writers[handle.path]

    def writers(self, path: str) -> list[WriteHandle]:
        """Open write handles on ``path`` (a copy)."""
        with self._lock:
            return list(self._writers.get(path, ()))

    def pending(self, path: str) -> WriteHandle | None:
        """The newest write handle on ``path`` whose content is not stored yet, if any."""
        with self._lock:
            writers = list(self._writers.get(path, ()))
        for handle in reversed(writers):
            if (handle.dirty or handle.created) and not handle.unlinked and handle.detached is None:
                return handle
        return None

    def pending_names(self, directory: str) -> list[str]:
        """Names of pending (created, not yet stored) results directly in ``directory``."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            return [
                path[len(prefix) :]
                for path, writers in self._writers.items()
                if path.startswith(prefix)
                and "/" not in path[len(prefix) :]
                and any(w.created and not w.unlinked and w.detached is None for w in writers)
            ]

    def has_pending_below(self, directory: str) -> bool:
        """True if a new result is being written at or below ``directory``."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            return any(
                path.startswith(prefix) and any(w.created and not w.unlinked for w in writers)
                for path, writers in self._writers.items()
            )

    def move(self, old: str, new: str) -> None:
        """Follow a rename: handles opened on ``old`` (or below it) now belong to ``new``."""
        with self._lock:
            for path in [p for p in self._writers if p == old or p.startswith(old + "/")]:
                moved = self._writers.pop(path)
                target = new + path[len(old) :]
                for handle in moved:
                    handle.path = target
                self._writers.setdefault(target, []).extend(moved)
            for other in self._handles.values():
                if not isinstance(other, WriteHandle) and (
                    other.path == old or other.path.startswith(old + "/")
                ):
                    other.path = new + other.path[len(old) :]

    def detach(self, path: str, reason: str) -> None:
        """Writers on ``path`` no longer write the result there: their commits are refused."""
        with self._lock:
            for handle in self._writers.get(path, ()):
                handle.detached = reason

    def mark_unlinked(self, path: str) -> None:
        """Writers on a path that was unlinked commit nothing."""
        with self._lock:
            for handle in self._writers.get(path, ()):
                handle.unlinked = True

    def close_all(self) -> None:
        with self._lock:
            for open_handle in self._handles.values():
                with suppress(OSError):
                    open_handle.close()
            self._handles.clear()
            self._writers.clear()
