"""The one module that imports the FUSE binding (mfusepy, fusepy's maintained fork).

Everything else in :mod:`resultsfs.fs` imports the binding's names from here, so swapping or
patching the binding touches one file. Two gaps of mfusepy 3.1 with libfuse 3 are closed
here, in :class:`ResultsFUSE`:

* ``rename`` drops its ``flags`` argument, so ``mv`` (which asks for ``RENAME_NOREPLACE``
  when the target should not exist) could silently replace a result. We pass the flags on.
* ``truncate`` drops the file handle, so ``ftruncate`` on an open result could not reach
  that handle's private write buffer. We pass the handle on, as ``ftruncate`` already does.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import mfusepy

FuseOSError = mfusepy.FuseOSError
Operations = mfusepy.Operations
fuse_get_context = mfusepy.fuse_get_context
ENOATTR: int = mfusepy.ENOATTR

#: ``renameat2`` flags (linux/fs.h).
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


_thread = threading.local()


class ResultsFUSE(mfusepy.FUSE):  # type: ignore[misc]
    """mfusepy's FUSE with rename flags and truncate handles passed through."""

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        # A ctypes callback on a thread that libfuse created gets a Python thread state for
        # the call and loses it afterwards; making and destroying one per request is what
        # made the multi-threaded loop slow. Taking one extra reference per worker thread
        # (never released: libfuse keeps its workers) makes the state, and this flag, stay.
        if not getattr(_thread, "pinned", False):
            ctypes.pythonapi.PyGILState_Ensure()
            _thread.pinned = True
        return super()._wrapper(func, *args, **kwargs)

    def _decode(self, path: bytes | None) -> str | None:
        return None if path is None else path.decode(self.encoding, self.errors)

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        result: int = self.operations.rename(self._decode(old), self._decode(new), flags)
        return result

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        fi = fip.contents if fip else None
        result: int = self.operations.truncate(self._decode(path), length, fi)
        return result


def file_info_has(field: str) -> bool:
    """True if this libfuse's ``fuse_file_info`` has ``field`` (``noflush`` came in 3.11)."""
    return any(entry[0] == field for entry in mfusepy.fuse_file_info._fields_)


def current_fuse() -> int:
    """The ``struct fuse *`` of the running filesystem (valid from inside a request)."""
    return int(mfusepy._libfuse.fuse_get_context().contents.fuse or 0)


_libfuse = mfusepy._libfuse
_invalidate = getattr(_libfuse, "fuse_invalidate_path", None)
if _invalidate is not None:
    _invalidate.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    _invalidate.restype = ctypes.c_int


def invalidate_path(fuse: int, path: str) -> None:
    """Make the kernel forget cached attributes and data of ``path`` (libfuse 3.1+).

    libfuse warns that calling this inside a related request can deadlock; callers do it from
    their own thread.
    """
    if _invalidate is not None and fuse:
        _invalidate(fuse, path.encode("utf-8", "surrogateescape"))


def context() -> tuple[int, int, int]:
    """``(uid, gid, pid)`` of the process that made the current request."""
    uid, gid, pid = fuse_get_context()
    return int(uid), int(gid), int(pid)


__all__ = [
    "ENOATTR",
    "RENAME_EXCHANGE",
    "RENAME_NOREPLACE",
    "FuseOSError",
    "Operations",
    "ResultsFUSE",
    "context",
    "current_fuse",
    "file_info_has",
    "invalidate_path",
]
