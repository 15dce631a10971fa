"""The directory backend: each result is one JSON envelope file, ``<store>/<id>.json``.

This is results_manager's ``FileBackend`` layout, so a directory written by either library
reads in the other. Writes are durable and atomic (:mod:`resultsfs.atomic`: unique temp file,
fsync, rename, fsync of the directory). A transaction holds the short per-ID file locks of
its IDs (:mod:`resultsfs.locks`), so it is atomic for every process and, on a shared
filesystem with working ``flock``, every host. Reads take no lock: a rename is atomic, so a
reader sees one whole version. Every path is resolved from a held descriptor of the store,
one component at a time, without following links (:mod:`resultsfs.tree`).

The store's own files live in ``<store>/.resultsfs/``: ``locks/`` (the lock stripes),
``leases/`` (one JSON record per leased ID, written whole by atomic rename) and, while
mounted, ``staging/`` (the mount's private scratch files). Temp files start with ``.``.
None of these is ever listed as a result.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import pendulum

from resultsfs import atomic, ids
from resultsfs.backends.base import (
    NO_CHANGE,
    OMIT,
    Finding,
    Listing,
    Meta,
    MetaChange,
    ResultsBackend,
    Transaction,
    Version,
)
from resultsfs.errors import (
    CorruptResultError,
    MetadataRefusedError,
    ReadOnlyStoreError,
    StoreNotFoundError,
    StoreReplacedError,
    UnsafePathError,
)
from resultsfs.leases import Clock, Lease, expiry, utc_now
from resultsfs.locks import DEFAULT_TIMEOUT, StripedLocks
from resultsfs.tree import BackingTree, read_all

T = TypeVar("T")

#: The directory, inside the store, of the store's own files.
META_DIR = ".resultsfs"
#: The directory bindings, in ``META_DIR``: ``{"bindings": {prefix: "namespace:Model"}}``.
_BINDINGS = "bindings.json"

# Writers retry when the directory they write into is removed under them (a concurrent
# delete pruning a directory it saw empty); each retry recreates it.
_DIRECTORY_RETRIES = 20


def _file_parts(rid: str) -> tuple[str, ...]:
    parts = rid.split("/")
    return (*parts[:-1], parts[-1] + ids.SUFFIX)


def _meta(st: os.stat_result) -> Meta:
    return Meta(
        size=st.st_size,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
        atime_ns=st.st_atime_ns,
        ctime_ns=st.st_ctime_ns,
        ino=st.st_ino,
        # ctime cannot be set back by a user (mtime can, with touch -d): an edit in place that
        # keeps the size and restores the mtime still changes the version.
        version=(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns),
        nlink=st.st_nlink,
    )


class FileVersion(Version):
    """A result version held open by its file descriptor."""

    def __init__(self, fd: int, meta: Meta, shown: Callable[[], str]) -> None:
        self.fd = fd
        self.meta = meta
        #: The file's path for messages, made only when one is needed.
        self._shown = shown

    def read(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def read_all(self, limit: int) -> bytes:
        if self.meta.size > limit:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), self._shown())
        try:
            return read_all(self.fd, self.meta.size, limit, "")
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self._shown()) from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileBackend(ResultsBackend):
    """Results as JSON envelope files in a directory, shared safely by processes and hosts.

    ``FileBackend(base_dir, create_if_missing=True, locks_dir=None)`` is results_manager's
    signature. ``locks_dir`` moves the lock stripes (by default inside the store, where every
    host that shares the store sees them).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        create_if_missing: bool = True,
        locks_dir: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        clock: Clock = utc_now,
        lock_timeout: float = DEFAULT_TIMEOUT,
        durable: bool = True,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self._args = (str(base_dir), create_if_missing, None if locks_dir is None else str(locks_dir))
        self._options: dict[str, Any] = {
            "read_only": read_only,
            "clock": clock,
            "lock_timeout": lock_timeout,
            "durable": durable,
        }
        if not self.base_dir.is_dir():
            if self.base_dir.exists():
                raise StoreNotFoundError(f"store {self.base_dir} is not a directory")
            if not create_if_missing or read_only:
                raise StoreNotFoundError(f"store {self.base_dir} does not exist")
            self.base_dir.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        self.durable = durable
        self.clock = clock
        meta = self.base_dir / META_DIR
        self.locks_dir = Path(locks_dir).absolute() if locks_dir is not None else meta / "locks"
        self.leases_dir = meta / "leases"
        if not read_only:
            self.locks_dir.mkdir(parents=True, exist_ok=True)
            self.leases_dir.mkdir(parents=True, exist_ok=True)
        self.tree = BackingTree(self.base_dir)
        base = os.fstat(self.tree.base_fd)
        self._identity = (base.st_dev, base.st_ino)
        self.locks = StripedLocks(self.locks_dir, timeout=lock_timeout)
        self._records = _LeaseRecords(self.leases_dir)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (type(self), self._args, self._options))

    def close(self) -> None:
        self.tree.close()
        self._records.close()

    @property
    def url(self) -> str:
        return str(self.base_dir)

    def location(self, rid: str) -> str:
        return str(self.tree.path(_file_parts(rid)))

    def path_for(self, rid: str) -> Path:
        """The file result ``rid`` is stored in."""
        return self.tree.path(_file_parts(rid))

    # ------------------------------------------------------------ reading

    def _stat(self, rid: str) -> os.stat_result | None:
        """The stat of the result file, or None; anything but a regular file is refused."""
        file_parts = _file_parts(rid)
        try:
            st = self.tree.lstat(file_parts)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(
                f"{self.tree.path(file_parts)}: is a symlink; the store never follows links", result_id=rid
            )
        if not stat.S_ISREG(st.st_mode):
            raise CorruptResultError(f"{self.tree.path(file_parts)}: not a regular file", result_id=rid)
        return st

    def meta(self, rid: str) -> Meta | None:
        st = self._stat(rid)
        return _meta(st) if st is not None else None

    def open(self, rid: str) -> FileVersion | None:
        file_parts = _file_parts(rid)
        try:
            fd = self.tree.open_file(file_parts)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CorruptResultError(f"{self.tree.path(file_parts)}: not a regular file", result_id=rid)
        except BaseException:
            os.close(fd)
            raise
        return FileVersion(fd, _meta(st), lambda: str(self.tree.path(file_parts)))

    def scan(self, parts: Sequence[str]) -> Iterator[str]:
        try:
            dir_fd = self.tree.open_dir(parts)
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            return iter(())
        found: list[str] = []
        try:
            _scan_into(found, dir_fd, "/".join(parts) + "/" if parts else "")
        finally:
            os.close(dir_fd)
        return iter(found)

    def listdir(self, parts: Sequence[str]) -> Listing | None:
        try:
            dir_fd = self.tree.open_dir(parts)
        except (FileNotFoundError, NotADirectoryError):
            return None
        listing = Listing()
        try:
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if ids.is_valid_part(name, is_last=False) and len(parts) < ids.MAX_DEPTH - 1:
                            listing.dirs.append(name)
                    elif entry.is_file(follow_symlinks=False):
                        part = ids.result_name_to_part(name)
                        if part is not None:
                            listing.results.append(part)
        finally:
            os.close(dir_fd)
        return listing

    def dir_meta(self, parts: Sequence[str]) -> Meta | None:
        try:
            st = self.tree.lstat(parts)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _meta(st) if stat.S_ISDIR(st.st_mode) else None

    def lease(self, rid: str) -> Lease | None:
        return self._records.read(rid)

    def leases(self) -> Iterator[Lease]:
        for name, lease in self._records.scan():
            if lease is not None:
                yield lease
            else:
                yield Lease(name, holder="", acquired=None, expires=None, corrupt=True)

    def now(self) -> pendulum.DateTime:
        return self.clock()

    # ------------------------------------------------------------ changing

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(f"store {self.base_dir} is open read-only")

    def atomically(self, rids: Iterable[str], operation: Callable[[Transaction], T]) -> T:
        self._check_writable()
        rids = list(rids)
        with self.locks.hold(*rids):
            return operation(_FileTransaction(self))

    def _write(self, rid: str, raw: bytes, change: MetaChange, keep_meta: bool) -> None:
        parts = _file_parts(rid)
        old = self._stat(rid) if keep_meta else None
        mode: int | None = stat.S_IMODE(old.st_mode) if old is not None else None
        owner = (old.st_uid, old.st_gid) if old is not None and os.geteuid() == 0 else None
        if change.mode is not None:
            mode = change.mode
        if change.owner is not None:
            owner = change.owner
        for attempt in range(_DIRECTORY_RETRIES):
            try:
                with self.tree.directory(parts[:-1], create=True) as dir_fd:
                    atomic.replace_file(
                        dir_fd,
                        parts[-1],
                        raw,
                        mode=mode,
                        owner=owner,
                        times=change.times,
                        durable=self.durable,
                    )
                return
            except FileNotFoundError:
                # A concurrent delete pruned our directory (or a parent) after we opened it.
                if attempt == _DIRECTORY_RETRIES - 1:
                    raise

    def _delete(self, rid: str, keep_parents: bool) -> bool:
        parts = _file_parts(rid)
        if self._stat(rid) is None:
            return False
        with self.tree.directory(parts[:-1]) as dir_fd:
            try:
                os.unlink(parts[-1], dir_fd=dir_fd)
            except FileNotFoundError:
                return False
            if self.durable:
                os.fsync(dir_fd)
        if not keep_parents and len(parts) > 1:
            self._prune(parts[:-1])
        return True

    def _prune(self, dir_parts: Sequence[str]) -> None:
        """Remove a directory and its parents while empty, after clearing stale temp files."""
        with suppress(FileNotFoundError, NotADirectoryError, UnsafePathError):
            self._remove_stale_temps(dir_parts)
        self.tree.remove_empty_dirs(dir_parts)

    def _remove_stale_temps(self, dir_parts: Sequence[str]) -> list[str]:
        removed = []
        now = time.time()
        with self.tree.directory(dir_parts) as dir_fd, os.scandir(dir_fd) as entries:
            for entry in entries:
                if not atomic.is_temp_name(entry.name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    if atomic.is_stale_temp(entry.name, st.st_mtime, now):
                        os.unlink(entry.name, dir_fd=dir_fd)
                        removed.append("/".join([*dir_parts, entry.name]))
                except FileNotFoundError:
                    continue
        return removed

    def _move(self, old: str, new: str) -> None:
        old_parts, new_parts = _file_parts(old), _file_parts(new)
        with (
            self.tree.directory(old_parts[:-1]) as src_fd,
            self.tree.directory(new_parts[:-1], create=True) as dst_fd,
        ):
            os.rename(old_parts[-1], new_parts[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            if self.durable:
                os.fsync(dst_fd)
                if old_parts[:-1] != new_parts[:-1]:
                    os.fsync(src_fd)

    def _move_dir(self, old: Sequence[str], new: Sequence[str]) -> None:
        with self.tree.directory(old[:-1]) as src_fd, self.tree.directory(new[:-1]) as dst_fd:
            # rename(2) replaces an empty directory and refuses a non-empty one (ENOTEMPTY).
            os.rename(old[-1], new[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            if self.durable:
                os.fsync(dst_fd)
                os.fsync(src_fd)

    def _set_meta(self, fd: int, change: MetaChange, shown: str) -> None:
        st = os.fstat(fd)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            raise MetadataRefusedError(
                f"{shown}: the file has {st.st_nlink} hard links; its metadata is not changed "
                "(it would change a file outside the store)"
            )
        if change.mode is not None:
            os.fchmod(fd, change.mode)
        if change.owner is not None:
            os.fchown(fd, *change.owner)
        if change.times is not None:
            atime, mtime = change.times
            os.utime(
                fd,
                ns=(st.st_atime_ns if atime == OMIT else atime, st.st_mtime_ns if mtime == OMIT else mtime),
            )

    def mkdir(self, parts: Sequence[str], change: MetaChange = NO_CHANGE) -> None:
        self._check_writable()
        with self.tree.directory(parts[:-1]) as dir_fd:
            os.mkdir(parts[-1], change.mode if change.mode is not None else 0o777, dir_fd=dir_fd)
            if change:
                # An explicit mode is exact: the process's umask is not applied on top of it.
                fd = os.open(
                    parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                )
                try:
                    self._set_meta(fd, change, self.url)
                finally:
                    os.close(fd)

    def rmdir(self, parts: Sequence[str]) -> None:
        self._check_writable()
        with self.tree.directory(parts[:-1]) as dir_fd:
            os.rmdir(parts[-1], dir_fd=dir_fd)

    def set_dir_meta(self, parts: Sequence[str], change: MetaChange) -> None:
        self._check_writable()
        # The descriptor comes from the safe walk: the change cannot reach outside the store
        # even if a parent is swapped for a symlink meanwhile (it would be applied to a path).
        fd = self.tree.open_dir(parts)
        try:
            self._set_meta(fd, change, str(self.tree.path(parts)))
        finally:
            os.close(fd)

    # ------------------------------------------------------------ bindings

    def bindings(self) -> dict[str, str]:
        try:
            fd = self.tree.open_file((META_DIR, _BINDINGS))
        except FileNotFoundError:
            return {}
        try:
            raw = b""
            while chunk := os.read(fd, 1 << 16):
                raw += chunk
        finally:
            os.close(fd)
        try:
            found = json.loads(raw)["bindings"]
            return {str(prefix): str(model) for prefix, model in found.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptResultError(
                f"{self.tree.path((META_DIR, _BINDINGS))}: the directory bindings are unreadable ({exc}); "
                "fix or remove the file"
            ) from exc

    def set_binding(self, prefix: str, model: str | None) -> None:
        self._check_writable()
        with self.locks.hold("\0bindings"):
            found = self.bindings()
            if model is None:
                found.pop(prefix, None)
            else:
                found[prefix] = model
            raw = (json.dumps({"bindings": dict(sorted(found.items()))}, indent=2) + "\n").encode()
            with self.tree.directory((META_DIR,), create=True) as meta_fd:
                atomic.replace_file(meta_fd, _BINDINGS, raw, durable=self.durable)

    # ------------------------------------------------------------ maintenance

    def inspect(self, fix: bool) -> Iterator[Finding]:
        fix = fix and not self.read_only
        yield from self._inspect_dir([], fix)
        yield from self._kept_by_mounts()
        for name, rid in self._records.dead(self.clock()):
            detail = f"expired lease on {rid!r}" if rid else "unreadable lease record"
            path = f"{META_DIR}/leases/{name}"
            if not fix:
                yield Finding("dead-lease", path, detail)
                continue
            with self.locks.hold(rid or name):
                if self._records.remove_if_dead(name, rid, self.clock()):
                    yield Finding("dead-lease", path, detail, fixed=True)
        if fix:
            with suppress(FileNotFoundError, NotADirectoryError, UnsafePathError):
                # Lease records are written through temp files too.
                for removed in self._remove_stale_temps([META_DIR, "leases"]):
                    yield Finding("stale-temp", removed, "temp file of a writer that is gone", fixed=True)

    def _kept_by_mounts(self) -> Iterator[Finding]:
        """Files a mount kept in ``.resultsfs/lost+found`` (they never became results)."""
        pending: list[tuple[str, ...]] = [(META_DIR, "lost+found")]
        while pending:
            parts = pending.pop()
            try:
                dir_fd = self.tree.open_dir(parts)
            except (OSError, UnsafePathError):
                continue  # none, or not ours to read (a daemon's private directory)
            try:
                with os.scandir(dir_fd) as entries:
                    for entry in sorted(entries, key=lambda e: e.name):
                        if entry.is_dir(follow_symlinks=False):
                            pending.append((*parts, entry.name))
                        elif entry.is_file(follow_symlinks=False):
                            size = entry.stat(follow_symlinks=False).st_size
                            yield Finding(
                                "lost-found",
                                "/".join((*parts, entry.name)),
                                f"{size} bytes written through a mount that never became a result",
                            )
            finally:
                os.close(dir_fd)

    def _inspect_dir(self, parts: list[str], fix: bool) -> Iterator[Finding]:
        try:
            dir_fd = self.tree.open_dir(parts)
        except UnsafePathError as exc:
            yield Finding("symlink", "/".join(parts), str(exc))
            return
        except (FileNotFoundError, NotADirectoryError):
            return
        subdirs = []
        now = time.time()
        try:
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    rel = "/".join([*parts, entry.name])
                    if not parts and entry.name == META_DIR:
                        continue
                    if entry.is_symlink():
                        yield Finding("symlink", rel, "symlinks are never followed or listed")
                    elif atomic.is_temp_name(entry.name):
                        with suppress(FileNotFoundError):
                            st = entry.stat(follow_symlinks=False)
                            if atomic.is_stale_temp(entry.name, st.st_mtime, now):
                                if fix:
                                    os.unlink(entry.name, dir_fd=dir_fd)
                                yield Finding(
                                    "stale-temp", rel, "temp file of a writer that is gone", fixed=fix
                                )
                    elif entry.is_dir(follow_symlinks=False):
                        if ids.is_valid_part(entry.name, is_last=False):
                            subdirs.append(entry.name)
                        else:
                            yield Finding("foreign", rel + "/", "directory that is not an ID prefix")
                    elif ids.result_name_to_part(entry.name) is None or not entry.is_file(
                        follow_symlinks=False
                    ):
                        yield Finding("foreign", rel, "file that is not a result")
        finally:
            os.close(dir_fd)
        for name in subdirs:
            yield from self._inspect_dir([*parts, name], fix)

    def check_alive(self) -> None:
        try:
            st = os.stat(self.base_dir)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._identity:
            raise StoreReplacedError(
                f"store {self.base_dir} was removed or replaced by another directory while open; "
                "open it again (for a mount: unmount and mount again)"
            )

    def scratch_dir(self) -> tuple[str, tuple[str, ...]] | None:
        return None if self.read_only else (str(self.base_dir), (META_DIR, "staging"))

    def statfs(self) -> dict[str, int] | None:
        sv = os.statvfs(self.tree.base_fd)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail")
        result = {key: int(getattr(sv, key)) for key in keys}
        result["f_namemax"] = min(sv.f_namemax, 255)
        return result


def _reopen(cls: type[FileBackend], args: tuple[Any, ...], options: dict[str, Any]) -> FileBackend:
    return cls(*args, **options)


class _FileTransaction(Transaction):
    """A transaction of the directory backend: the caller holds the IDs' short locks."""

    def __init__(self, backend: FileBackend) -> None:
        self._backend = backend
        self.now = backend.clock()

    def meta(self, rid: str) -> Meta | None:
        return self._backend.meta(rid)

    def read(self, rid: str, limit: int) -> bytes | None:
        found = self._backend.read(rid, limit)
        return found[0] if found is not None else None

    def write(self, rid: str, raw: bytes, change: MetaChange = NO_CHANGE, *, keep_meta: bool = True) -> None:
        self._backend._write(rid, raw, change, keep_meta)

    def delete(self, rid: str, *, keep_parents: bool) -> bool:
        return self._backend._delete(rid, keep_parents)

    def move(self, old: str, new: str) -> None:
        self._backend._move(old, new)

    def move_dir(self, old: Sequence[str], new: Sequence[str]) -> None:
        self._backend._move_dir(old, new)

    def set_meta(self, rid: str, change: MetaChange) -> None:
        backend = self._backend
        fd = backend.tree.open_file(_file_parts(rid))
        try:
            backend._set_meta(fd, change, backend.location(rid))
        finally:
            os.close(fd)

    def lease(self, rid: str) -> Lease | None:
        return self._backend._records.read(rid)

    def put_lease(self, rid: str, holder: str, ttl: float | None, process: str | None = None) -> Lease:
        lease = Lease(rid, holder, self.now, expiry(self.now, ttl), process=process)
        self._backend._records.write(lease)
        return lease

    def drop_lease(self, rid: str) -> None:
        self._backend._records.remove(rid)


class _LeaseRecords:
    """The lease record files of one store, ``.resultsfs/leases/<sha256 of the ID>.lease``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._dir_fd: int | None = None

    def _fd(self) -> int:
        if self._dir_fd is None:
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._dir_fd

    def close(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    @staticmethod
    def name(rid: str) -> str:
        """The record file name of an ID (hashed: IDs can be longer than a file name)."""
        return hashlib.sha256(rid.encode("utf-8")).hexdigest()[:40] + ".lease"

    def _read_named(self, name: str) -> bytes | None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._fd())
        except FileNotFoundError:
            return None
        try:
            return os.read(fd, 65536)
        finally:
            os.close(fd)

    def read(self, rid: str) -> Lease | None:
        try:
            raw = self._read_named(self.name(rid))
        except FileNotFoundError:  # no leases directory: a read-only store that never had one
            return None
        return None if raw is None else Lease.from_json(raw, rid)

    def write(self, lease: Lease) -> None:
        atomic.replace_file(self._fd(), self.name(lease.result_id), lease.to_json(), durable=False)

    def remove(self, rid: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self.name(rid), dir_fd=self._fd())

    def scan(self) -> Iterator[tuple[str, Lease | None]]:
        """``(record name, lease)`` for every record; the lease is ``None`` if unreadable."""
        try:
            names = sorted(os.listdir(self._fd()))
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(".lease"):
                continue
            raw = self._read_named(name)
            if raw is None:
                continue
            lease = Lease.from_json(raw, "")
            yield name, (None if lease.corrupt or self.name(lease.result_id) != name else lease)

    def dead(self, now: pendulum.DateTime) -> list[tuple[str, str]]:
        """``(record name, ID)`` of every expired or unreadable record (ID ``""`` if unknown)."""
        return [
            (name, lease.result_id if lease is not None else "")
            for name, lease in self.scan()
            if lease is None or not lease.is_live(now)
        ]

    def remove_if_dead(self, name: str, rid: str, now: pendulum.DateTime) -> bool:
        """Delete a record found dead, unless it was renewed or taken meanwhile (call under its lock)."""
        if rid:
            lease = self.read(rid)
            if lease is not None and lease.is_live(now):
                return False
        try:
            os.unlink(name, dir_fd=self._fd())
        except FileNotFoundError:
            return False
        return True


_SUBDIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_NAME = ids.MAX_PART_BYTES + len(ids.SUFFIX)


def _scan_into(found: list[str], dir_fd: int, prefix: str) -> None:
    """Append the ID of every result at or below directory ``dir_fd`` (named ``prefix``), sorted.

    Each subdirectory is opened relative to its parent's descriptor, never following a link.
    The walk goes in order: a subdirectory ``d`` takes the place of the key ``prefix + "d/"``
    among this directory's IDs, which is exactly where every ID below it sorts (no part holds
    a ``/``). So the list comes out sorted, and sorting it again (``list_ids`` does, for every
    backend) is one linear pass. Names are checked a directory at a time, without a Python
    statement per name for the usual ones: a store of 100,000 results lists at close to find(1).
    """
    with os.scandir(dir_fd) as listing:
        entries = list(listing)
    files = [entry.name for entry in entries if entry.is_file(follow_symlinks=False)]
    # The usual name, valid by construction (ids.PLAIN_RESULT_NAME, in str methods): printable
    # ASCII (a name never holds "/"), not hidden, ending in ".json", not too long.
    keys = [
        prefix + name[:-5]
        for name in files
        if name[-5:] == ".json"
        and name.isascii()
        and name.isprintable()
        and name[0] != "."
        and len(name) <= _MAX_NAME
    ]
    if len(keys) < len(files):  # hidden files, scratch files, or result names beyond ASCII
        for name in files:
            if name[0] == "." or (
                name[-5:] == ".json" and name.isascii() and name.isprintable() and len(name) <= _MAX_NAME
            ):
                continue  # hidden, or taken above
            part = ids.result_name_to_part(name)
            if part is not None:
                keys.append(prefix + part)
    subdirs = False
    if len(files) < len(entries):
        for entry in entries:
            name = entry.name
            if (
                name[0] != "."
                and entry.is_dir(follow_symlinks=False)
                and ids.is_valid_part(name, is_last=False)
            ):
                keys.append(prefix + name + "/")
                subdirs = True
    keys.sort()
    if not subdirs:
        found.extend(keys)
        return
    start = len(prefix)
    for key in keys:
        if key[-1] != "/":
            found.append(key)
            continue
        try:
            sub_fd = os.open(key[start:-1], _SUBDIR_FLAGS, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed meanwhile, or swapped for something that is not a directory
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                continue  # swapped for a symlink meanwhile: never followed
            raise
        try:
            _scan_into(found, sub_fd, key)
        finally:
            os.close(sub_fd)
