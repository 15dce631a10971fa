"""Open-file handles of the mount: what each open file reads from and writes to.

* :class:`ReadHandle`: a result opened read-only; reads come from the backing file's
  descriptor, so a reader keeps a consistent version even if the result is replaced meanwhile.
* :class:`WriteHandle`: a result opened for writing; a private buffer that nothing outside
  sees until a commit point (``fsync``, the ``flush`` of a close with unwritten data, or
  ``release``) validates it and stores it through the store's locked atomic rename.
* :class:`ScratchHandle`: a scratch file (an editor's or rsync's temp file) in the staging
  area: plain pass-through to a real file.

The :class:`HandleTable` hands out the numbers the kernel uses (``fh``) and knows which write
handles are open on each path, so ``getattr`` can report the size a writer sees.
"""

from __future__ import annotations

import itertools
import os
import threading
from contextlib import suppress
from dataclasses import dataclass, field

from resultsfs.errors import ResultTooLargeError


@dataclass(eq=False)
class FileHandle:
    """An open file of our own: reads (and, for scratch files, writes) go to its descriptor."""

    path: str
    fd: int

    def read(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        os.close(self.fd)


class ReadHandle(FileHandle):
    """A result opened read-only: the descriptor of the version that was opened."""


class ScratchHandle(FileHandle):
    """A scratch file in the staging area: plain pass-through."""


@dataclass(eq=False)
class WriteHandle:
    """A result opened for writing: a private buffer and what its commit needs."""

    path: str
    buffer: bytearray
    #: Created by this open (``O_CREAT`` on a name that had no result).
    created: bool
    #: ``O_EXCL``: the first commit must not replace a result.
    exclusive: bool
    #: Mode and owner for a newly created result.
    mode: int
    owner: tuple[int, int] | None
    #: Written or truncated since the last commit.
    dirty: bool = False
    #: The result was unlinked while open: its writes go nowhere, as POSIX says.
    unlinked: bool = False
    #: ``utimens`` asked while the commit was pending: ``(atime_ns, mtime_ns)`` to apply after it.
    times: tuple[int, int] | None = None
    #: Opened with ``O_TRUNC``: a close with nothing written is a request to empty the result.
    truncated: bool = False
    #: errno of the last refused commit; repeated by later flushes until new data arrives.
    failure: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, size: int, offset: int) -> bytes:
        return bytes(self.buffer[offset : offset + size])

    def write(self, data: bytes, offset: int, limit: int) -> int:
        end = offset + len(data)
        if end > limit:
            raise ResultTooLargeError(f"{self.path}: a result may not be larger than {limit} bytes")
        if offset > len(self.buffer):
            self.buffer.extend(b"\0" * (offset - len(self.buffer)))
        self.buffer[offset:end] = data
        self.dirty = True
        self.failure = None
        return len(data)

    def truncate(self, length: int, limit: int) -> None:
        if length > limit:
            raise ResultTooLargeError(f"{self.path}: a result may not be larger than {limit} bytes")
        if length < len(self.buffer):
            del self.buffer[length:]
        else:
            self.buffer.extend(b"\0" * (length - len(self.buffer)))
        self.dirty = True
        self.failure = None

    def close(self) -> None:
        self.buffer = bytearray()


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
        writers = self._writers.get(path)
        if not writers:
            return None
        for handle in reversed(writers):
            if (handle.dirty or handle.created) and not handle.unlinked:
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
                and any(w.created and not w.unlinked for w in writers)
            ]

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
