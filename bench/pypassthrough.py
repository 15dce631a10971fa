"""A minimal passthrough in Python on resultsfs's own FUSE binding: the floor of the binding.

What: ``bench/passthrough.c`` written again on the binding resultsfs runs on (mfusepy's
path-based ``Operations`` through :class:`resultsfs.fs.binding.ResultsFUSE`, with
``raw_fi=True`` as resultsfs uses it), with libfuse's default options, as the C passthrough
has them. Each callback is one system call on a descriptor, nothing more.

Why: the C passthrough is what FUSE costs with C doing the work. This one is what any
daemon written on this binding costs before it does anything of its own (ctypes callbacks,
mfusepy's wrappers, the GIL). resultsfs against it is what resultsfs's own code costs; it
against the C passthrough is what the binding costs. A target that this side misses cannot be
met by any daemon on this binding, however little its callbacks do.

Run: ``python bench/pypassthrough.py BACKING MOUNTPOINT [-o debug]`` (foreground).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import Any

from resultsfs.fs.binding import FuseOSError, Operations, ResultsFUSE


class Passthrough(Operations):  # type: ignore[misc]
    """Every path relative to the backing directory's descriptor; every file by its descriptor."""

    use_ns = True

    def __init__(self, backing: str) -> None:
        self.base = os.open(backing, os.O_RDONLY | os.O_DIRECTORY)

    @staticmethod
    def _rel(path: str) -> str:
        return path[1:] or "."

    def getattr(self, path: str | None, fi: Any = None) -> dict[str, int]:
        if fi is not None:
            st = os.fstat(fi.fh)
        else:
            assert path is not None
            st = os.stat(self._rel(path), dir_fd=self.base, follow_symlinks=False)
        return {
            "st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink,
            "st_uid": st.st_uid, "st_gid": st.st_gid, "st_size": st.st_size,
            "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns,
        }  # fmt: skip

    def readdir(self, path: str, fh: Any) -> list[tuple[str, int, int]]:
        fd = os.open(self._rel(path), os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.base)
        entries = [(".", stat.S_IFDIR, 0), ("..", stat.S_IFDIR, 0)]
        with os.scandir(fd) as found:
            entries += [(e.name, stat.S_IFDIR if e.is_dir() else stat.S_IFREG, 0) for e in found]
        os.close(fd)
        return entries

    def open(self, path: str, fi: Any) -> int:
        fi.fh = os.open(self._rel(path), fi.flags, dir_fd=self.base)
        return 0

    def create(self, path: str, mode: int, fi: Any) -> int:
        fi.fh = os.open(self._rel(path), fi.flags, mode, dir_fd=self.base)
        return 0

    def read(self, path: str | None, size: int, offset: int, fi: Any) -> bytes:
        return os.pread(fi.fh, size, offset)

    def write(self, path: str | None, data: bytes, offset: int, fi: Any) -> int:
        return os.pwrite(fi.fh, data, offset)

    def release(self, path: str | None, fi: Any) -> int:
        os.close(fi.fh)
        return 0

    def unlink(self, path: str) -> None:
        os.unlink(self._rel(path), dir_fd=self.base)

    def rmdir(self, path: str) -> None:
        os.rmdir(self._rel(path), dir_fd=self.base)

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._rel(path), mode, dir_fd=self.base)

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        if flags:
            raise FuseOSError(errno.EINVAL)
        os.rename(self._rel(old), self._rel(new), src_dir_fd=self.base, dst_dir_fd=self.base)

    def truncate(self, path: str | None, length: int, fi: Any = None) -> None:
        if fi is not None:
            os.ftruncate(fi.fh, length)
            return
        assert path is not None
        fd = os.open(self._rel(path), os.O_WRONLY, dir_fd=self.base)
        try:
            os.ftruncate(fd, length)
        finally:
            os.close(fd)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if times is None:
            os.utime(self._rel(path), dir_fd=self.base, follow_symlinks=False)
        else:
            os.utime(self._rel(path), ns=times, dir_fd=self.base, follow_symlinks=False)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._rel(path), mode, dir_fd=self.base)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._rel(path), uid, gid, dir_fd=self.base, follow_symlinks=False)

    def statfs(self, path: str) -> dict[str, int]:
        st = os.fstatvfs(self.base)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_namemax")
        return {key: getattr(st, key) for key in keys}

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        raise FuseOSError(errno.ENODATA)

    def listxattr(self, path: str) -> list[str]:
        return []


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: pypassthrough.py BACKING MOUNTPOINT [-o debug]", file=sys.stderr)
        return 2
    backing, mountpoint = argv[0], argv[1]
    debug = argv[2:] == ["-o", "debug"]
    # The kernel has applied the caller's umask to the modes it sends.
    os.umask(0)
    ResultsFUSE(Passthrough(backing), mountpoint, raw_fi=True, foreground=True, debug=debug)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
