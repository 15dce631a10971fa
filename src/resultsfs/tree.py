"""Access to the backing directory that can never leave it.

Every path is resolved from a file descriptor of the store's base directory without following
a link: a symlink planted anywhere in the store (pointing outside, or looping) is refused with
:class:`UnsafePathError` instead of being followed, and replacing or renaming the base
directory while a store is open cannot redirect it. The final component is opened or stat'ed
without following links too. Where the kernel has ``openat2`` (Linux 5.6), a path is resolved
in one call with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``; otherwise, and to create what is
missing, one component at a time with ``O_NOFOLLOW``. IDs are validated before they get here
(:mod:`resultsfs.ids`); this module is the second wall.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from resultsfs.errors import UnsafePathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)
_CREATE_RETRIES = 20


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


_SYS_OPENAT2 = 437  # the same number on every architecture (the generic syscall table)
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08
_RESOLVE = _RESOLVE_NO_MAGICLINKS | _RESOLVE_NO_SYMLINKS | _RESOLVE_BENEATH
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
#: Cleared when the kernel (or a seccomp filter) answers ENOSYS: then every path is walked.
_has_openat2 = sys.platform == "linux"


def _openat2(dir_fd: int, parts: Sequence[str], flags: int) -> int | None:
    """``openat2`` of ``parts`` below ``dir_fd``, never following a link; ``None`` if the
    kernel cannot (the caller walks the path instead). Raises ``OSError``: ``ELOOP`` for a link
    anywhere on the path, ``ENOTDIR``, ``ENOENT``."""
    global _has_openat2  # noqa: PLW0603 - set once, when the kernel says it has no openat2
    if not _has_openat2:
        return None
    how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE)
    path = "/".join(parts).encode("utf-8", "surrogateescape")
    fd = int(_syscall(_SYS_OPENAT2, dir_fd, path, ctypes.byref(how), ctypes.sizeof(how)))
    if fd >= 0:
        return fd
    code = ctypes.get_errno()
    if code == errno.ENOSYS:
        _has_openat2 = False
        return None
    if code in (errno.EAGAIN, errno.EXDEV, errno.EINVAL):
        return None  # a concurrent rename (EAGAIN), or flags it does not take: walk instead
    raise OSError(code, os.strerror(code), "/".join(parts))


class BackingTree:
    """A directory held open (the store's base), and safe relative access below it.

    ``fd``: an already open descriptor of ``base`` to take over (``base`` is then only used in
    messages). ``dir_mode``: the mode of directories it creates.
    """

    def __init__(self, base: Path, fd: int | None = None, dir_mode: int = 0o777) -> None:
        self.base = base
        self.base_fd = fd if fd is not None else os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dir_mode = dir_mode

    def close(self) -> None:
        """Release the directory descriptor."""
        if self.base_fd >= 0:
            os.close(self.base_fd)
            self.base_fd = -1

    def _unsafe(self, parts: Sequence[str], index: int) -> UnsafePathError:
        shown = "/".join(parts[: index + 1])
        return UnsafePathError(
            f"{self.base / shown}: is a symlink or not a directory; the store never follows links"
        )

    def open_dir(self, parts: Sequence[str], *, create: bool = False) -> int:
        """A new descriptor of directory ``parts`` (the caller closes it).

        Missing directories raise ``FileNotFoundError`` or, with ``create``, are made.
        """
        if parts and not create:
            try:
                found = _openat2(self.base_fd, parts, _DIR_FLAGS)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise self._unsafe(parts, len(parts) - 1) from exc
                raise
            if found is not None:
                return found
        fd = os.dup(self.base_fd)
        try:
            for index in range(len(parts)):
                child = self._open_child(fd, parts, index, create)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_child(self, fd: int, parts: Sequence[str], index: int, create: bool) -> int:
        part = parts[index]
        for _ in range(_CREATE_RETRIES):
            try:
                return os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise self._unsafe(parts, index) from exc
                raise
            # Another process may remove the new directory (pruning it as empty) before we
            # open it; then we make it again.
            with suppress(FileExistsError):
                os.mkdir(part, self.dir_mode, dir_fd=fd)
        raise FileNotFoundError(errno.ENOENT, "directory keeps vanishing", str(self.path(parts[: index + 1])))

    @contextmanager
    def directory(self, parts: Sequence[str], *, create: bool = False) -> Iterator[int]:
        """:meth:`open_dir` as a context manager; the base itself costs no syscall."""
        if not parts:
            yield self.base_fd
            return
        fd = self.open_dir(parts, create=create)
        try:
            yield fd
        finally:
            os.close(fd)

    def lstat(self, parts: Sequence[str]) -> os.stat_result:
        """``lstat`` of ``parts`` (any kind of entry); ``FileNotFoundError`` if missing."""
        if not parts:
            return os.fstat(self.base_fd)
        try:
            fd = _openat2(self.base_fd, parts, os.O_PATH | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and len(parts) > 1:
                # A link or a file where a directory should be: the walk says which.
                with self.directory(parts[:-1]) as dir_fd:
                    return os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            raise
        if fd is not None:
            try:
                return os.fstat(fd)  # an O_PATH|O_NOFOLLOW descriptor of a link stats the link
            finally:
                os.close(fd)
        with self.directory(parts[:-1]) as dir_fd:
            return os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)

    def open_file(self, parts: Sequence[str], flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
        """A new descriptor of the entry ``parts`` (never a symlink: :class:`UnsafePathError`).

        Opened for reading, the file's access time is left alone (``O_NOATIME``, where this
        process may ask for it): the store reading a result is not a user reading it.
        """
        if not flags & os.O_CREAT:
            fast = self._open_beneath(parts, flags)
            if fast is not None:
                return fast
        with self.directory(parts[:-1]) as dir_fd:
            try:
                if flags & os.O_ACCMODE == os.O_RDONLY and not flags & os.O_PATH:
                    try:
                        return os.open(parts[-1], flags | _READ_FLAGS, mode, dir_fd=dir_fd)
                    except PermissionError:
                        pass  # O_NOATIME needs ownership (or CAP_FOWNER); read without it
                return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self._unsafe(parts, len(parts) - 1) from exc
                raise

    def _open_beneath(self, parts: Sequence[str], flags: int) -> int | None:
        """:meth:`open_file` in one ``openat2`` call; ``None`` if the kernel cannot."""
        try:
            if flags & os.O_ACCMODE == os.O_RDONLY and not flags & os.O_PATH:
                try:
                    return _openat2(self.base_fd, parts, flags | _READ_FLAGS)
                except PermissionError:
                    pass  # O_NOATIME needs ownership (or CAP_FOWNER); read without it
            return _openat2(self.base_fd, parts, flags | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._unsafe(parts, len(parts) - 1) from exc
            if exc.errno == errno.ENOTDIR and len(parts) > 1:
                return None  # a file where a directory should be: the walk says which
            raise

    def read_file(self, parts: Sequence[str], limit: int) -> tuple[bytes, os.stat_result]:
        """The content and stat of regular file ``parts``, read in full.

        A file larger than ``limit`` bytes raises ``EFBIG`` before any of it is read; a
        symlink raises :class:`UnsafePathError`; a non-regular file ``EISDIR``/``EINVAL``.
        """
        fd = self.open_file(parts)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL
                raise OSError(code, os.strerror(code), str(self.base.joinpath(*parts)))
            return read_all(fd, st.st_size, limit, str(self.base.joinpath(*parts))), st
        finally:
            os.close(fd)

    def remove_empty_dirs(self, parts: Sequence[str]) -> None:
        """Remove directory ``parts`` and then its parents while they are empty.

        ``rmdir`` is atomic and fails on a non-empty directory, so a concurrent writer that has
        created a file in one of them keeps it; writers retry when their directory vanished
        between ``mkdir`` and creating their temp file (see :meth:`ResultStore.set`).
        """
        parts = list(parts)
        while parts:
            try:
                with self.directory(parts[:-1]) as dir_fd:
                    os.rmdir(parts[-1], dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.EBUSY, errno.ENOTDIR):
                    return
                raise
            parts.pop()

    def path(self, parts: Sequence[str]) -> Path:
        """The path of ``parts`` for messages (never for I/O)."""
        return self.base.joinpath(*parts)


def remove_tree(dir_fd: int, name: str) -> None:
    """Remove ``name`` in directory ``dir_fd`` and everything below it, never following a link.

    ``shutil.rmtree(dir_fd=...)`` does this from Python 3.11; this works on 3.10 too.
    """
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            with suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
            return
        if exc.errno == errno.ENOENT:
            return
        raise
    try:
        for entry in list(os.scandir(fd)):
            if entry.is_dir(follow_symlinks=False):
                remove_tree(fd, entry.name)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    with suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=dir_fd)


def read_all(fd: int, size: int, limit: int, shown: str) -> bytes:
    """Every byte of open file ``fd`` (whose size was ``size``); ``EFBIG`` past ``limit`` bytes."""
    if size > limit:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), shown)
    chunks = []
    total = 0
    # Ask for one byte more than the size: a file that grew meanwhile is read in full. A read
    # of a regular file that returns less than asked has reached the end: no second read.
    while True:
        want = max(size + 1 - total, 65536)
        chunk = os.pread(fd, want, total)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), shown)
        if len(chunk) < want:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
