"""The FUSE operations: translate kernel requests into store calls, and store errors into errno.

This layer decides nothing about results: validation, set behaviours, leases and atomic
writes are the store's (:mod:`resultsfs.store`). It keeps what only a filesystem has: open
handles and their private write buffers (:mod:`.handles`), scratch files (:mod:`.staging`),
the computed extended attributes (:mod:`.xattrs`), and a cache of validation verdicts keyed
by the backing file's (device, inode, size, mtime), so reading an unchanged result again
costs no validation.

Every operation goes through :func:`_translate`: store errors become their errno through
one table (:data:`ERRNO`), ``OSError`` keeps its own, and anything unexpected is logged with
its traceback and becomes ``EIO`` (mfusepy would turn it into a silent ``EINVAL``).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import queue
import socket
import stat
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from resultsfs import envelope
from resultsfs.envelope import Envelope
from resultsfs.errors import (
    CorruptResultError,
    InvalidResultIdError,
    LockNotHeldError,
    LockTimeoutError,
    ModelConflictError,
    ModelLoadError,
    ModelNotRegisteredError,
    ReadOnlyStoreError,
    ResultExistsError,
    ResultLockedError,
    ResultNotFoundError,
    ResultsError,
    ResultTooLargeError,
    ResultValidationError,
    StoreNotFoundError,
    StoreReplacedError,
    UnsafePathError,
)
from resultsfs.fs import xattrs
from resultsfs.fs.binding import (
    ENOATTR,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    FuseOSError,
    Operations,
    context,
    current_fuse,
    file_info_has,
    invalidate_path,
)
from resultsfs.fs.handles import HandleTable, ReadHandle, ScratchHandle, WriteHandle
from resultsfs.fs.paths import Kind, Node, classify, join
from resultsfs.fs.staging import Staging
from resultsfs.leases import IsolationLevel
from resultsfs.store import ResultStore, SetBehavior, StoredResult
from resultsfs.tree import read_all

log = logging.getLogger(__name__)

#: Store errors and the errno a program sees for them. Reads turn validation errors into
#: ``EIO`` instead (see :meth:`ResultsOperations._open_read`).
ERRNO: dict[type[ResultsError], int] = {
    InvalidResultIdError: errno.EINVAL,
    ResultNotFoundError: errno.ENOENT,
    ResultExistsError: errno.EEXIST,
    ModelNotRegisteredError: errno.EINVAL,
    CorruptResultError: errno.EINVAL,
    ResultValidationError: errno.EINVAL,
    ResultTooLargeError: errno.EFBIG,
    ResultLockedError: errno.EBUSY,
    LockTimeoutError: errno.EBUSY,
    LockNotHeldError: errno.EPERM,
    UnsafePathError: errno.EACCES,
    ReadOnlyStoreError: errno.EROFS,
    StoreNotFoundError: errno.ENOENT,
    StoreReplacedError: errno.ESTALE,
    ModelConflictError: errno.EINVAL,
    ModelLoadError: errno.EINVAL,
}

_HAS_NOFLUSH = file_info_has("noflush")
#: How often the daemon checks that the store's path still names the directory it serves.
_BASE_CHECK_INTERVAL = 0.5
_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2
_JSON_HEAD = 4096
_VERDICT_CACHE_SIZE = 100_000

F = TypeVar("F", bound=Callable[..., Any])


def errno_of(exc: BaseException) -> int:
    """The errno a program sees for ``exc``."""
    if isinstance(exc, ResultsError):
        for cls in type(exc).__mro__:
            code = ERRNO.get(cls)
            if code is not None:
                return code
    if isinstance(exc, OSError) and exc.errno:
        return int(exc.errno)
    return errno.EIO


def _translate(method: F) -> F:
    """Turn every exception of an operation into an explicit errno."""

    @functools.wraps(method)
    def wrapper(self: ResultsOperations, *args: Any) -> Any:
        try:
            return method(self, *args)
        except FuseOSError:
            raise
        except (ResultsError, OSError) as exc:
            raise FuseOSError(errno_of(exc)) from exc
        except Exception:
            log.exception("unexpected error in %s%r", method.__name__, args)
            raise FuseOSError(errno.EIO) from None

    return wrapper  # type: ignore[return-value]


def _fail(code: int) -> FuseOSError:
    return FuseOSError(code)


@dataclass(frozen=True)
class MountOptions:
    """What a mount does beyond the store's defaults."""

    read_only: bool = False
    #: What a commit onto an existing result does (``>`` means overwrite).
    on_exists: SetBehavior = SetBehavior.OVERWRITE
    #: Serve results that fail validation instead of refusing to open them.
    lenient: bool = False
    #: How long a commit (or a SERIALIZABLE read) waits for another holder's lease.
    lock_wait: float = 0.0
    isolation: IsolationLevel = IsolationLevel.READ_COMMITTED


@dataclass
class Placeholder:
    """An empty file created in the mount (``touch``, ``mknod``, a create with no write).

    A result cannot be empty, so nothing is stored; the mount keeps the name visible (size 0)
    until content is committed to it, it is removed, or the mount ends.
    """

    mode: int
    owner: tuple[int, int] | None
    mtime_ns: int
    atime_ns: int


@dataclass(frozen=True)
class Verdict:
    """What validating one version of a result found."""

    envelope: Envelope | None
    error: str | None


def _attrs(st: os.stat_result) -> dict[str, int]:
    return {
        "st_mode": st.st_mode,
        "st_ino": st.st_ino,
        "st_nlink": st.st_nlink,
        "st_uid": st.st_uid,
        "st_gid": st.st_gid,
        "st_size": st.st_size,
        "st_blocks": st.st_blocks,
        "st_atime": st.st_atime_ns,
        "st_mtime": st.st_mtime_ns,
        "st_ctime": st.st_ctime_ns,
    }


def _version(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ResultsOperations(Operations):  # type: ignore[misc]
    """A results store as a filesystem."""

    use_ns = True

    def __init__(
        self, store: ResultStore, options: MountOptions, on_ready: Callable[[], None] | None = None
    ) -> None:
        self.store = store
        self.options = options
        self.on_ready = on_ready
        self.ready = False
        self.holder = f"resultsfs-mount:{socket.gethostname()}:{os.getpid()}"
        self.handles = HandleTable()
        self.staging = Staging(store.base_dir / ".resultsfs" / "staging") if not options.read_only else None
        self._verdicts: dict[tuple[int, int, int, int], Verdict] = {}
        #: Last rejected commit (or failed validation) per path, for ``user.results.error``.
        self._errors: dict[str, str] = {}
        self._placeholders: dict[str, Placeholder] = {}
        #: Set (to the reason) once the store's directory was replaced under the mount.
        self._replaced: str | None = None
        self._stopped = threading.Event()
        #: Paths whose kernel caches must be dropped (after commits); served by one thread.
        self._stale: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._fuse = 0
        self._is_root = os.geteuid() == 0

    # ---------------------------------------------------------------- lifecycle

    def init(self, path: str) -> None:
        log.info("mounted %s", self.store.base_dir)
        self.ready = True
        self._fuse = current_fuse()
        threading.Thread(target=self._watch_base, name="resultsfs-base-watch", daemon=True).start()
        threading.Thread(target=self._invalidate, name="resultsfs-invalidate", daemon=True).start()
        if not self.options.read_only:
            threading.Thread(target=self._clean_up, name="resultsfs-cleanup", daemon=True).start()
        if self.on_ready is not None:
            self.on_ready()

    def _watch_base(self) -> None:
        """Notice when the store's directory is replaced under a running mount (then: ESTALE)."""
        while not self._stopped.wait(_BASE_CHECK_INTERVAL):
            try:
                self.store.check_base()
            except StoreReplacedError as exc:
                if self._replaced is None:
                    log.error("%s", exc)  # noqa: TRY400 - the message says it all; no traceback
                self._replaced = str(exc)

    def _invalidate(self) -> None:
        """Drop the kernel's cached size and pages of paths whose content changed under a writer.

        After a commit the stored bytes are the canonical envelope (or, when refused, the old
        result), not what the writer wrote; the kernel must not go on serving the writer's
        size or pages. libfuse forbids doing this inside the request, hence this thread.
        """
        while (path := self._stale.get()) is not None:
            try:
                invalidate_path(self._fuse, path)
            except Exception:
                log.exception("%s: could not invalidate the kernel cache", path)

    def _clean_up(self) -> None:
        """Remove what writers killed before this mount left behind (temp files, dead leases)."""
        try:
            removed = self.store.cleanup()
        except Exception:
            log.exception("cleaning up %s failed", self.store.base_dir)
            return
        for what in removed:
            log.info("removed leftover %s", what)

    def destroy(self, path: str) -> None:
        self._stopped.set()
        self._stale.put(None)
        self.handles.close_all()
        if self.staging is not None:
            self.staging.close()
        log.info("unmounted %s", self.store.base_dir)

    # ---------------------------------------------------------------- helpers

    def _node(self, path: str | None) -> Node:
        if self._replaced is not None:
            raise _fail(errno.ESTALE)
        node = classify(path) if path is not None else None
        if node is None or node.kind is Kind.INVALID:
            raise _fail(errno.ENOENT)
        return node

    def _new_node(self, path: str) -> Node:
        """The node of a name about to be created; invalid names are refused with EINVAL."""
        node = classify(path)
        if node is not None and node.kind is Kind.INVALID:
            log.warning("%r: cannot create: %s", path, node.reason)
            raise _fail(errno.EINVAL)
        return self._node(path)

    def _writable(self) -> None:
        if self.options.read_only:
            raise _fail(errno.EROFS)
        self.store.check_base()

    def _staging(self) -> Staging:
        if self.staging is None:
            raise _fail(errno.EROFS)
        return self.staging

    def _new_owner(self) -> tuple[int, int] | None:
        """Owner for files this request creates: the caller's, when we run as root for others."""
        if not self._is_root:
            return None
        uid, gid, _ = context()
        return (uid, gid) if uid != 0 else None

    def _backing_stat(self, node: Node, is_kind: Callable[[int], bool]) -> os.stat_result | None:
        """The backing entry's stat if it exists and is of the kind asked (never a symlink)."""
        try:
            st = self.store.tree.lstat(node.parts)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st if is_kind(st.st_mode) else None

    def _result_stat(self, node: Node) -> os.stat_result | None:
        return self._backing_stat(node, stat.S_ISREG)

    def _dir_stat(self, node: Node) -> os.stat_result | None:
        return self._backing_stat(node, stat.S_ISDIR)

    def _record_error(self, path: str, what: str, exc: BaseException) -> None:
        message = f"{what}: {exc}"
        self._errors[path] = message
        log.warning("%s: %s", path, message)

    def _verdict(self, node: Node, raw: bytes, st: os.stat_result) -> Verdict:
        """Validate one version of a result and remember the verdict (callers look it up first)."""
        key = _version(st)
        try:
            stored = StoredResult(node.result_id, raw, envelope.decode(raw, f"result {node.result_id!r}"), st)
        except CorruptResultError as exc:
            verdict = Verdict(None, str(exc))
        else:
            try:
                self.store.validate(stored)
                verdict = Verdict(stored.envelope, None)
            except ResultsError as exc:
                verdict = Verdict(stored.envelope, str(exc))
        log.debug("%s: validated version %s: %s", node.path, key, verdict.error or "valid")
        if len(self._verdicts) >= _VERDICT_CACHE_SIZE:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        return verdict

    def _envelope_of(self, node: Node) -> Envelope | None:
        """The envelope of a stored result (from the verdict cache when unchanged)."""
        st = self._result_stat(node)
        if st is None:
            return None
        verdict = self._verdicts.get(_version(st))
        if verdict is None:
            try:
                raw, st = self.store.tree.read_file(node.parts, self.store.max_result_bytes)
            except (OSError, ResultsError):
                return None
            verdict = self._verdict(node, raw, st)
        return verdict.envelope

    def _stored_bytes(self, node: Node) -> bytes:
        """The bytes of a stored result as they are (valid or not; not decoded)."""
        return self.store.tree.read_file(node.parts, self.store.max_result_bytes)[0]

    # ---------------------------------------------------------------- metadata

    @_translate
    def getattr(self, path: str | None, fi: Any = None) -> dict[str, int]:
        if fi is not None:
            handle = self.handles.get(fi.fh)
            if isinstance(handle, WriteHandle):
                return self._pending_attrs(handle)
            if handle is not None:
                return _attrs(os.fstat(handle.fd))
        node = self._node(path)
        if node.kind is Kind.ROOT:
            return _attrs(os.fstat(self.store.tree.base_fd))
        if node.kind is Kind.RESULT:
            # Everyone sees the committed result (its size is what a reader reads); only a
            # result that does not exist yet shows the writer's pending size.
            st = self._result_stat(node)
            if st is not None:
                return _attrs(st)
            pending = self.handles.pending(node.path)
            if pending is not None:
                return self._pending_attrs(pending)
            placeholder = self._placeholders.get(node.path)
            if placeholder is None:
                raise _fail(errno.ENOENT)
            return self._placeholder_attrs(placeholder)
        if node.kind is Kind.DIR_OR_SCRATCH:
            st = self._dir_stat(node)
            if st is not None:
                return _attrs(st)
        scratch = self.staging.lstat(node.path) if self.staging is not None else None
        if scratch is None or not stat.S_ISREG(scratch.st_mode):
            raise _fail(errno.ENOENT)
        return _attrs(scratch)

    def _pending_attrs(self, handle: WriteHandle) -> dict[str, int]:
        node = classify(handle.path)
        st = self._result_stat(node) if node is not None and node.kind is Kind.RESULT else None
        now = time.time_ns()
        if st is not None:
            attrs = _attrs(st)
        else:
            uid, gid = handle.owner or (os.geteuid(), os.getegid())
            attrs = {"st_mode": stat.S_IFREG | handle.mode, "st_nlink": 1, "st_uid": uid, "st_gid": gid}
            attrs.update(st_atime=now, st_mtime=now, st_ctime=now)
        attrs["st_size"] = len(handle.buffer)
        attrs["st_blocks"] = (len(handle.buffer) + 511) // 512
        return attrs

    def _placeholder_attrs(self, placeholder: Placeholder) -> dict[str, int]:
        uid, gid = placeholder.owner or (os.geteuid(), os.getegid())
        return {
            "st_mode": stat.S_IFREG | placeholder.mode,
            "st_nlink": 1,
            "st_uid": uid,
            "st_gid": gid,
            "st_size": 0,
            "st_atime": placeholder.atime_ns,
            "st_mtime": placeholder.mtime_ns,
            "st_ctime": placeholder.mtime_ns,
        }

    def _placeholder_names(self, directory: str) -> list[str]:
        prefix = directory.rstrip("/") + "/"
        return [
            p[len(prefix) :]
            for p in list(self._placeholders)
            if p.startswith(prefix) and "/" not in p[len(prefix) :]
        ]

    @_translate
    def readdir(self, path: str, fh: int) -> list[tuple[str, int, int]]:
        node = self._node(path)
        if node.kind is Kind.RESULT or (node.kind is Kind.DIR_OR_SCRATCH and self._dir_stat(node) is None):
            raise _fail(errno.ENOTDIR)
        entries: list[tuple[str, int, int]] = [(".", stat.S_IFDIR, 0), ("..", stat.S_IFDIR, 0)]
        seen: set[str] = set()
        with self.store.tree.directory(node.parts) as dir_fd, os.scandir(dir_fd) as found:
            for entry in found:
                name = entry.name
                if name.startswith("."):
                    continue
                # Only what a lookup finds: valid prefixes and results (never symlinks or names
                # that could not be created through the mount).
                child = classify(join(path, name))
                if child is None:
                    continue
                if entry.is_dir(follow_symlinks=False) and child.kind is Kind.DIR_OR_SCRATCH:
                    entries.append((name, stat.S_IFDIR, 0))
                    seen.add(name)
                elif entry.is_file(follow_symlinks=False) and child.kind is Kind.RESULT:
                    entries.append((name, stat.S_IFREG, 0))
                    seen.add(name)
        extra = self.staging.names(path) if self.staging is not None else []
        for name in [*extra, *self.handles.pending_names(path), *self._placeholder_names(path)]:
            if name not in seen:
                entries.append((name, stat.S_IFREG, 0))
                seen.add(name)
        return entries

    @_translate
    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.store.tree.base_fd)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail")
        result = {key: getattr(sv, key) for key in keys}
        result["f_namemax"] = min(sv.f_namemax, 255)
        return result

    # ---------------------------------------------------------------- opening and reading

    @_translate
    def open(self, path: str, fi: Any) -> int:
        node = self._node(path)
        flags = int(fi.flags)
        if node.kind is Kind.RESULT:
            if flags & os.O_ACCMODE == os.O_RDONLY:
                fi.fh = self._open_read(node, fi)
            else:
                self._writable()
                fi.fh = self._open_write(node, flags, created=False, mode=0o644)
            return 0
        if node.kind is Kind.ROOT:
            raise _fail(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            self._writable()
        scratch = self._staging().path(node.path)
        fd = os.open(scratch, (flags & ~os.O_CREAT) | os.O_NOFOLLOW | os.O_CLOEXEC)
        fi.fh = self.handles.add(ScratchHandle(node.path, fd))
        return 0

    def _open_read(self, node: Node, fi: Any) -> int:
        if self.options.isolation is IsolationLevel.SERIALIZABLE and not self.store.leases.wait(
            node.result_id, self.options.lock_wait, self.holder
        ):
            self._record_error(
                node.path, "read", ResultLockedError("leased by another holder (serializable)")
            )
            raise _fail(errno.EBUSY)
        # Readers see the committed version, also while another program is writing a new one.
        with self.store.tree.directory(node.parent) as dir_fd:
            try:
                fd = os.open(node.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except FileNotFoundError:
                if node.path not in self._placeholders:
                    raise
                if not self.options.lenient:
                    self._errors[node.path] = "read: an empty placeholder is not a result yet"
                    raise _fail(errno.EIO) from None
                fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                return self.handles.add(ReadHandle(node.path, fd))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _fail(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL)
            key = _version(st)
            verdict = self._verdicts.get(key)
            if verdict is None:
                verdict = self._verdict(
                    node, read_all(fd, st.st_size, self.store.max_result_bytes, node.path), st
                )
            if verdict.error is not None and not self.options.lenient:
                self._errors[node.path] = f"read: {verdict.error}"
                log.warning("%s: refused to open: %s", node.path, verdict.error)
                raise _fail(errno.EIO)
            # Reads bypass the page cache: a writer's O_TRUNC and writes change the size the kernel
            # believes for every open of the path (its buffer is private to us, not to the
            # kernel), and a cached read is cut to that size. Direct reads come from this
            # version's descriptor, whole, whatever the kernel's size says.
            fi.direct_io = 1
            if _HAS_NOFLUSH:
                fi.noflush = 1  # nothing to commit on close: spare the kernel a FLUSH round trip
        except BaseException:
            os.close(fd)
            raise
        return self.handles.add(ReadHandle(node.path, fd))

    def _open_write(self, node: Node, flags: int, *, created: bool, mode: int) -> int:
        st = self._result_stat(node)
        placeholder = self._placeholders.get(node.path) if st is None else None
        if st is None and not created and placeholder is None:
            raise _fail(errno.ENOENT)
        # The current bytes as they are: opening a broken result for writing is how one repairs it.
        buffer = bytearray() if flags & os.O_TRUNC or st is None else bytearray(self._stored_bytes(node))
        if st is not None:
            new_mode, owner = stat.S_IMODE(st.st_mode), None
        elif placeholder is not None:
            new_mode, owner = placeholder.mode, placeholder.owner
        else:
            new_mode, owner = stat.S_IMODE(mode), self._new_owner()
        handle = WriteHandle(
            path=node.path,
            buffer=buffer,
            created=st is None,
            exclusive=bool(flags & os.O_EXCL),
            mode=new_mode,
            owner=owner,
            truncated=bool(flags & os.O_TRUNC) and st is not None,
        )
        return self.handles.add(handle)

    @_translate
    def create(self, path: str, mode: int, fi: Any) -> int:
        self._writable()
        node = self._new_node(path)
        flags = int(fi.flags)
        if node.kind is Kind.RESULT:
            if flags & os.O_EXCL and self._result_stat(node) is not None:
                raise _fail(errno.EEXIST)
            fi.fh = self._open_write(node, flags, created=True, mode=mode)
            return 0
        if node.kind is Kind.ROOT:
            raise _fail(errno.EISDIR)
        scratch = self._staging().prepare(node.path)
        fd = os.open(scratch, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, stat.S_IMODE(mode))
        owner = self._new_owner()
        if owner is not None:
            os.fchown(fd, *owner)
        fi.fh = self.handles.add(ScratchHandle(node.path, fd))
        return 0

    @_translate
    def read(self, path: str | None, size: int, offset: int, fi: Any) -> bytes:
        handle = self.handles.get(fi.fh)
        if handle is None:
            raise _fail(errno.EBADF)
        return handle.read(size, offset)

    # ---------------------------------------------------------------- writing

    @_translate
    def write(self, path: str | None, data: bytes, offset: int, fi: Any) -> int:
        handle = self.handles.get(fi.fh)
        if isinstance(handle, ScratchHandle):
            return os.pwrite(handle.fd, data, offset)
        if not isinstance(handle, WriteHandle):
            raise _fail(errno.EBADF)
        with handle.lock:
            if offset < _JSON_HEAD:
                head = bytes(handle.buffer[:offset]) + data[: _JSON_HEAD - offset]
                if not envelope.looks_like_json_object_start(head):
                    # What came before a refused write is not what the program meant to store.
                    handle.dirty, handle.failure = False, errno.EINVAL
                    self._record_error(
                        handle.path,
                        "write",
                        CorruptResultError("a result is a JSON object; these bytes cannot start one"),
                    )
                    raise _fail(errno.EINVAL)
            try:
                return handle.write(data, offset, self.store.max_result_bytes)
            except ResultTooLargeError as exc:
                handle.dirty, handle.failure = False, errno.EFBIG
                self._record_error(handle.path, "write", exc)
                raise

    @_translate
    def truncate(self, path: str | None, length: int, fi: Any = None) -> int:
        self._writable()
        handle = self.handles.get(fi.fh) if fi is not None else None
        if isinstance(handle, WriteHandle):
            with handle.lock:
                handle.truncate(length, self.store.max_result_bytes)
            return 0
        if isinstance(handle, ScratchHandle):
            os.ftruncate(handle.fd, length)
            return 0
        node = self._node(path)
        if node.kind is not Kind.RESULT:
            os.truncate(self._staging().path(node.path), length)
            return 0
        pending = self.handles.pending(node.path)
        if pending is not None:
            with pending.lock:
                pending.truncate(length, self.store.max_result_bytes)
            return 0
        # truncate(2) on a result with no open handle: a whole new content, committed now.
        raw = self._stored_bytes(node)
        content = raw[:length] + b"\0" * max(0, length - len(raw))
        try:
            self._commit_bytes(node, content, exclusive=False)
        finally:
            self._stale.put(node.path)
        return 0

    @_translate
    def flush(self, path: str | None, fi: Any) -> int:
        handle = self.handles.get(fi.fh)
        if isinstance(handle, WriteHandle):
            if handle.dirty:
                self._commit(handle)
            elif handle.failure is not None:
                raise _fail(handle.failure)  # the refused data is still what this file holds
        return 0

    @_translate
    def fsync(self, path: str | None, datasync: int, fi: Any) -> int:
        handle = self.handles.get(fi.fh)
        if isinstance(handle, WriteHandle):
            if handle.dirty:
                self._commit(handle)
            elif handle.failure is not None:
                raise _fail(handle.failure)
        elif isinstance(handle, ScratchHandle):
            os.fsync(handle.fd)
        return 0

    @_translate
    def release(self, path: str | None, fi: Any) -> int:
        # The handle stays in the table (so the pending file stays visible) until what follows
        # it (a stored result, a placeholder) exists: release runs alongside other requests.
        handle = self.handles.get(fi.fh)
        if handle is None:
            return 0
        try:
            if isinstance(handle, WriteHandle):
                if handle.dirty:
                    # A refusal is recorded in user.results.error and the log; nobody waits for release.
                    with suppress(FuseOSError):
                        self._commit(handle)
                elif (
                    handle.truncated and not handle.buffer and handle.failure is None and not handle.unlinked
                ):
                    self._record_error(
                        handle.path,
                        "truncate",
                        CorruptResultError(
                            "opened with O_TRUNC and closed without writing: "
                            "a result cannot be empty; left as it was"
                        ),
                    )
                    self._stale.put(handle.path)
                if handle.created and not handle.unlinked and handle.path not in self._placeholders:
                    node = classify(handle.path)
                    if node is not None and node.kind is Kind.RESULT and self._result_stat(node) is None:
                        self._placeholders[handle.path] = self._placeholder_from(handle)
        finally:
            self.handles.remove(fi.fh)
            handle.close()
        return 0

    def _placeholder_from(self, handle: WriteHandle) -> Placeholder:
        now = time.time_ns()
        atime, mtime = handle.times if handle.times is not None else (now, now)
        return Placeholder(
            handle.mode, handle.owner, mtime if mtime >= 0 else now, atime if atime >= 0 else now
        )

    def _commit(self, handle: WriteHandle) -> None:
        with handle.lock:
            handle.dirty = False
            node = classify(handle.path)
            if handle.unlinked or node is None or node.kind is not Kind.RESULT:
                return
            try:
                self._commit_bytes(
                    node,
                    bytes(handle.buffer),
                    exclusive=handle.exclusive and handle.created,
                    mode=handle.mode,
                    owner=handle.owner,
                )
            except FuseOSError as exc:
                handle.failure = exc.errno
                raise
            finally:
                self._stale.put(node.path)
            handle.created = False
            handle.exclusive = False
            if handle.times is not None:
                self._set_times(node, handle.times)

    def _commit_bytes(
        self,
        node: Node,
        raw: bytes,
        *,
        exclusive: bool,
        mode: int | None = None,
        owner: tuple[int, int] | None = None,
    ) -> bool:
        """Validate and store ``raw`` as the result at ``node``; errno and a recorded reason on refusal."""
        self._writable()
        try:
            written = self.store.set_bytes(
                node.result_id,
                raw,
                self.options.on_exists,
                self.holder,
                lock_wait=self.options.lock_wait,
                exclusive=exclusive,
                new_mode=mode,
                new_owner=owner,
            )
        except (ResultsError, OSError) as exc:
            self._record_error(
                node.path, "commit refused" if isinstance(exc, ResultsError) else "commit failed", exc
            )
            raise FuseOSError(errno_of(exc)) from exc
        self._errors.pop(node.path, None)
        self._placeholders.pop(node.path, None)
        if written:
            log.info("%s: committed as result %r (%d bytes written)", node.path, node.result_id, len(raw))
        else:
            log.info(
                "%s: a result exists; left as it was (--on-exists %s)",
                node.path,
                self.options.on_exists.value,
            )
        return written

    # ---------------------------------------------------------------- namespace changes

    @_translate
    def unlink(self, path: str) -> int:
        self._writable()
        node = self._node(path)
        if node.kind is Kind.RESULT:
            had_pending = any(w.created and not w.unlinked for w in self.handles.writers(node.path))
            had_pending |= self._placeholders.pop(node.path, None) is not None
            self.handles.mark_unlinked(node.path)
            deleted = self.store.delete(node.result_id, self.holder, prune=False)
            self._errors.pop(node.path, None)
            if not deleted and not had_pending:
                raise _fail(errno.ENOENT)
            return 0
        os.unlink(self._staging().path(node.path))
        return 0

    @_translate
    def mknod(self, path: str, mode: int, dev: int) -> int:
        """Regular files only (``tar`` makes files this way before writing them)."""
        self._writable()
        if not stat.S_ISREG(mode):
            raise _fail(errno.EPERM)
        node = self._new_node(path)
        if node.kind is Kind.RESULT:
            if self._exists(node):
                raise _fail(errno.EEXIST)
            now = time.time_ns()
            self._placeholders[node.path] = Placeholder(stat.S_IMODE(mode), self._new_owner(), now, now)
            return 0
        if node.kind is Kind.ROOT or self._exists(node):
            raise _fail(errno.EEXIST)
        fd = os.open(
            self._staging().prepare(node.path),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            stat.S_IMODE(mode),
        )
        os.close(fd)
        return 0

    @_translate
    def link(self, target: str, source: str) -> int:
        log.warning("%s: hard links are not supported (a result has exactly one name)", target)
        raise _fail(errno.EPERM)

    @_translate
    def symlink(self, target: str, source: str) -> int:
        log.warning("%s: symbolic links are not supported in a results store", target)
        raise _fail(errno.EPERM)

    @_translate
    def mkdir(self, path: str, mode: int) -> int:
        self._writable()
        node = self._new_node(path)
        if node.kind is not Kind.DIR_OR_SCRATCH:
            log.warning("%s: not a valid ID prefix; directories name parts of result IDs", path)
            raise _fail(errno.EINVAL)
        with self.store.tree.directory(node.parent) as dir_fd:
            os.mkdir(node.name, stat.S_IMODE(mode), dir_fd=dir_fd)
            owner = self._new_owner()
            if owner is not None:
                os.chown(node.name, *owner, dir_fd=dir_fd, follow_symlinks=False)
        return 0

    @_translate
    def rmdir(self, path: str) -> int:
        self._writable()
        node = self._node(path)
        if node.kind is not Kind.DIR_OR_SCRATCH or self._dir_stat(node) is None:
            raise _fail(errno.ENOTDIR if node.kind is not Kind.ROOT else errno.EBUSY)
        staging = self._staging()
        if (
            not staging.is_empty_dir(node.path)
            or self.handles.pending_names(node.path)
            or self._placeholder_names(node.path)
        ):
            raise _fail(errno.ENOTEMPTY)
        with self.store.tree.directory(node.parent) as dir_fd:
            os.rmdir(node.name, dir_fd=dir_fd)
        staging.remove_dir(node.path)
        return 0

    @_translate
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        self._writable()
        src, dst = self._node(old), self._new_node(new)
        if flags & RENAME_EXCHANGE or flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise _fail(errno.EINVAL)
        if src.kind is Kind.ROOT or dst.kind is Kind.ROOT:
            raise _fail(errno.EBUSY)
        if flags & RENAME_NOREPLACE and self._exists(dst):
            raise _fail(errno.EEXIST)
        src_is_dir = src.kind is Kind.DIR_OR_SCRATCH and self._dir_stat(src) is not None
        moved_placeholder = src.path in self._placeholders and self._result_stat(src) is None
        if src_is_dir:
            self._rename_dir(src, dst)
        elif moved_placeholder:
            self._rename_placeholder(src, dst)
        elif src.kind is Kind.RESULT and dst.kind is Kind.RESULT:
            behavior = (
                SetBehavior.OVERWRITE
                if self.options.on_exists is SetBehavior.OVERWRITE
                else SetBehavior.RAISE_IF_EXISTS
            )
            self.store.rename(src.result_id, dst.result_id, behavior, self.holder)
        elif dst.kind is Kind.RESULT:
            self._commit_scratch(src, dst, exclusive=bool(flags & RENAME_NOREPLACE))
        elif src.kind is Kind.RESULT:
            self._result_to_scratch(src, dst)
        else:
            if dst.kind is Kind.DIR_OR_SCRATCH and self._dir_stat(dst) is not None:
                raise _fail(errno.EISDIR)
            staging = self._staging()
            os.rename(staging.path(src.path), staging.prepare(dst.path))
        # Whatever was at the destination (a placeholder too) is replaced, unless the placeholder
        # is what moved there; nothing stays at the source.
        for path in (old, new):
            self._errors.pop(path, None)
        self._placeholders.pop(old, None)
        if not moved_placeholder:
            self._placeholders.pop(new, None)
        self.handles.move(old, new)
        return 0

    def _rename_placeholder(self, src: Node, dst: Node) -> None:
        if dst.kind is Kind.RESULT:
            if self._result_stat(dst) is not None:
                log.warning("%s: an empty file cannot replace result %r", src.path, dst.result_id)
                raise _fail(errno.EINVAL)
            self._placeholders[dst.path] = self._placeholders.pop(src.path)
            return
        placeholder = self._placeholders.pop(src.path)
        fd = os.open(
            self._staging().prepare(dst.path),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
            placeholder.mode,
        )
        os.close(fd)

    def _exists(self, node: Node) -> bool:
        if node.kind is Kind.RESULT:
            return (
                self._result_stat(node) is not None
                or self.handles.pending(node.path) is not None
                or node.path in self._placeholders
            )
        if node.kind is Kind.DIR_OR_SCRATCH and self._dir_stat(node) is not None:
            return True
        return self.staging is not None and self.staging.lstat(node.path) is not None

    def _commit_scratch(self, src: Node, dst: Node, *, exclusive: bool) -> None:
        """``mv tmp x.json``: the scratch file's bytes become the result, or the rename fails."""
        scratch = self._staging().path(src.path)
        fd = os.open(scratch, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            raw = read_all(fd, st.st_size, self.store.max_result_bytes, src.path)
        finally:
            os.close(fd)
        owner = (st.st_uid, st.st_gid) if self._is_root else None
        self._commit_bytes(dst, raw, exclusive=exclusive, mode=stat.S_IMODE(st.st_mode), owner=owner)
        os.unlink(scratch)

    def _result_to_scratch(self, src: Node, dst: Node) -> None:
        """``mv x.json x.json~`` (an editor's backup): the result leaves the store for the staging area."""
        stored = self.store.read(src.result_id)
        target = self._staging().prepare(dst.path)
        fd = os.open(
            target,
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            stat.S_IMODE(stored.stat.st_mode),
        )
        try:
            os.write(fd, stored.raw)
            os.utime(fd, ns=(stored.stat.st_atime_ns, stored.stat.st_mtime_ns))
        finally:
            os.close(fd)
        try:
            self.store.delete(src.result_id, self.holder, prune=False)
        except BaseException:
            os.unlink(target)
            raise

    def _rename_dir(self, src: Node, dst: Node) -> None:
        if dst.kind is not Kind.DIR_OR_SCRATCH:
            raise _fail(errno.EINVAL if dst.kind is not Kind.RESULT else errno.ENOTDIR)
        prefix = "/".join(src.parts)
        with self.store.locks.hold(*self.store.iter_ids(prefix)):
            for rid in self.store.iter_ids(prefix):
                blocking = self.store.leases.blocking_lease(rid, self.holder)
                if blocking is not None:
                    self._record_error(
                        src.path, "rename", ResultLockedError(f"{rid!r} is leased by {blocking.holder!r}")
                    )
                    raise _fail(errno.EBUSY)
            with (
                self.store.tree.directory(src.parent) as src_fd,
                self.store.tree.directory(dst.parent) as dst_fd,
            ):
                os.rename(src.name, dst.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        self._staging().move_dir(src.path, dst.path)

    # ---------------------------------------------------------------- attributes

    @_translate
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._writable()
        node = self._node(path)
        now = time.time_ns()
        for handle in self.handles.writers(node.path):
            if handle.dirty or handle.created:
                handle.times = _resolve_times(times, now, None)
        if node.kind is Kind.RESULT:
            placeholder = self._placeholders.get(node.path)
            if self._result_stat(node) is not None:
                self._set_times(node, _resolve_times(times, now, None))
            elif placeholder is not None:
                atime, mtime = _resolve_times(times, now, None)
                placeholder.atime_ns = atime if atime >= 0 else placeholder.atime_ns
                placeholder.mtime_ns = mtime if mtime >= 0 else placeholder.mtime_ns
            elif self.handles.pending(node.path) is None:
                raise _fail(errno.ENOENT)
            return 0
        target = self._other_path(node)
        current = os.lstat(target)
        os.utime(target, ns=_resolve_times(times, now, current), follow_symlinks=False)
        return 0

    def _open_for_metadata(self, node: Node) -> int:
        """A descriptor of a result's file whose metadata may be changed.

        A file with other hard links is refused: changing its mode, owner or times would
        change a file outside the store, or another store's result.
        """
        with self.store.tree.directory(node.parent) as dir_fd:
            fd = os.open(node.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        links = os.fstat(fd).st_nlink
        if links > 1:
            os.close(fd)
            self._record_error(
                node.path,
                "metadata",
                UnsafePathError(f"the file has {links} hard links; its metadata is not changed"),
            )
            raise _fail(errno.EPERM)
        return fd

    def _set_times(self, node: Node, times: tuple[int, int]) -> None:
        fd = self._open_for_metadata(node)
        try:
            current = os.fstat(fd)
            atime = current.st_atime_ns if times[0] < 0 else times[0]
            mtime = current.st_mtime_ns if times[1] < 0 else times[1]
            os.utime(fd, ns=(atime, mtime))
        finally:
            os.close(fd)

    def _other_path(self, node: Node) -> str:
        """The real path of a directory or scratch file (never a result)."""
        if node.kind is Kind.ROOT:
            return str(self.store.base_dir)
        if node.kind is Kind.DIR_OR_SCRATCH and self._dir_stat(node) is not None:
            self._unsafe_check(node)
            return str(self.store.tree.path(node.parts))
        return str(self._staging().path(node.path))

    def _unsafe_check(self, node: Node) -> None:
        # Walking the parents with O_NOFOLLOW refuses a planted symlink before we use the path.
        os.close(self.store.tree.open_dir(node.parts))

    @_translate
    def chmod(self, path: str, mode: int) -> int:
        self._writable()
        node = self._node(path)
        for handle in self.handles.writers(node.path):
            if handle.created:
                handle.mode = stat.S_IMODE(mode)
        if node.kind is Kind.RESULT:
            if self._result_stat(node) is None:
                placeholder = self._placeholders.get(node.path)
                if placeholder is not None:
                    placeholder.mode = stat.S_IMODE(mode)
                elif self.handles.pending(node.path) is None:
                    raise _fail(errno.ENOENT)
                return 0
            fd = self._open_for_metadata(node)
            try:
                os.fchmod(fd, stat.S_IMODE(mode))
            finally:
                os.close(fd)
            return 0
        os.chmod(self._other_path(node), stat.S_IMODE(mode))
        return 0

    @_translate
    def chown(self, path: str, uid: int, gid: int) -> int:
        self._writable()
        node = self._node(path)
        if node.kind is Kind.RESULT:
            st = self._result_stat(node)
            if st is None:
                owners: list[Any] = [*self.handles.writers(node.path)]
                if node.path in self._placeholders:
                    owners.append(self._placeholders[node.path])
                for holder in owners:
                    current = holder.owner or (os.geteuid(), os.getegid())
                    holder.owner = (current[0] if uid < 0 else uid, current[1] if gid < 0 else gid)
                return 0
            fd = self._open_for_metadata(node)
            try:
                os.fchown(fd, uid, gid)
            finally:
                os.close(fd)
            return 0
        os.chown(self._other_path(node), uid, gid, follow_symlinks=False)
        return 0

    @_translate
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        node = self._node(path)
        if node.kind is not Kind.RESULT:
            if node.kind is Kind.ROOT or self._dir_stat(node) is not None:
                raise _fail(ENOATTR)
            return os.getxattr(self._other_path(node), name, follow_symlinks=False)
        if not name.startswith(xattrs.PREFIX):
            raise _fail(ENOATTR)  # the fast answer to ls -l (security.selinux, POSIX ACLs) and write
        if self._result_stat(node) is None:
            # A placeholder (or a new result whose commit was refused) shows only its error.
            error = self._errors.get(node.path) if name == xattrs.ERROR else None
            if error is None:
                raise _fail(ENOATTR)
            return error.encode("utf-8")
        env = self._envelope_of(node) if xattrs.needs_envelope(name) else None
        lease = self.store.leases.current(node.result_id) if xattrs.needs_lease(name) else None
        found = xattrs.value(name, env, lease, self._errors.get(node.path))
        if found is None:
            raise _fail(ENOATTR)
        return found.encode("utf-8")

    @_translate
    def listxattr(self, path: str) -> list[str]:
        node = self._node(path)
        if node.kind is Kind.RESULT:
            if self._result_stat(node) is None:
                return [xattrs.ERROR] if node.path in self._errors else []
            env = self._envelope_of(node)
            lease = self.store.leases.current(node.result_id)
            return xattrs.names(env, lease, self._errors.get(node.path))
        if node.kind is Kind.ROOT or self._dir_stat(node) is not None:
            return []
        return os.listxattr(self._other_path(node), follow_symlinks=False)

    @_translate
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        self._writable()
        node = self._node(path)
        if node.kind is Kind.RESULT or node.kind is Kind.ROOT or self._dir_stat(node) is not None:
            if xattrs.is_ours(name):
                return 0  # computed attributes: copying them back in is accepted and changes nothing
            raise _fail(errno.ENOTSUP)
        os.setxattr(self._other_path(node), name, value, options, follow_symlinks=False)
        return 0

    @_translate
    def removexattr(self, path: str, name: str) -> int:
        self._writable()
        node = self._node(path)
        if node.kind is Kind.RESULT or node.kind is Kind.ROOT or self._dir_stat(node) is not None:
            if xattrs.is_ours(name):
                return 0
            raise _fail(ENOATTR)
        os.removexattr(self._other_path(node), name, follow_symlinks=False)
        return 0


def _resolve_times(
    times: tuple[int, int] | None, now: int, current: os.stat_result | None
) -> tuple[int, int]:
    """``utimens`` arguments as nanoseconds; ``UTIME_OMIT`` keeps ``current`` (or -1 if unknown)."""
    if times is None:
        return (now, now)
    resolved = []
    kept_times = (current.st_atime_ns, current.st_mtime_ns) if current else (-1, -1)
    for value, kept in zip(times, kept_times, strict=True):
        if value == _UTIME_NOW:
            resolved.append(now)
        elif value == _UTIME_OMIT:
            resolved.append(kept)
        else:
            resolved.append(int(value))
    return (resolved[0], resolved[1])
