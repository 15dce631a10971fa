"""The FUSE operations: translate kernel requests into store calls, and store errors into errno.

This layer decides nothing about results and never touches a backend's storage: validation,
set behaviours, leases, atomic writes, moves and metadata changes are the store's
(:mod:`resultsfs.store`), which works the same over every backend. What only a filesystem has
lives here: open handles and their private write buffers (:mod:`.handles`), scratch files
(:mod:`.staging`), placeholders for empty new files, the computed extended attributes
(:mod:`.xattrs`), and the reasons of refused writes.

Every operation goes through :func:`_translate`: store errors become their errno through one
table (:mod:`.errnos`), ``OSError`` keeps its own, and anything unexpected is logged with its
traceback and becomes ``EIO`` (mfusepy would turn it into a silent ``EINVAL``).
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

from resultsfs import envelope, processes
from resultsfs.backends.base import NO_CHANGE, OMIT, BytesVersion, Meta, MetaChange
from resultsfs.errors import CorruptResultError, ResultsError, StoreReplacedError, UnsafePathError
from resultsfs.fs import DEFAULT_MEMORY_BUDGET, DEFAULT_PENDING_LIMIT, xattrs
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
from resultsfs.fs.errnos import errno_of
from resultsfs.fs.handles import (
    BufferBudget,
    HandleTable,
    ReadHandle,
    ScratchHandle,
    WriteBuffer,
    WriteHandle,
)
from resultsfs.fs.paths import SCHEMAS_DIR, Kind, Node, classify, join
from resultsfs.fs.processes import thread_group
from resultsfs.fs.schemas_dir import SchemasTree
from resultsfs.fs.staging import Staging, scratch_location
from resultsfs.leases import IsolationLevel
from resultsfs.store import ResultStore, SetBehavior

log = logging.getLogger(__name__)

_HAS_NOFLUSH = file_info_has("noflush")
#: How often the daemon checks that the store still is where it was mounted from.
_BASE_CHECK_INTERVAL = 0.5
_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2
_JSON_HEAD = 4096
#: Reasons kept per path for ``user.results.error``.
_ERRORS_KEPT = 8

F = TypeVar("F", bound=Callable[..., Any])


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
    #: Memory all write buffers may use together before they spill to disk.
    buffer_memory: int = DEFAULT_MEMORY_BUDGET
    #: Bytes all uncommitted writes may hold together (memory and disk); then ENOSPC.
    max_pending_bytes: int = DEFAULT_PENDING_LIMIT


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


def _meta_attrs(meta: Meta, kind: int) -> dict[str, int]:
    return {
        "st_mode": kind | meta.mode,
        "st_ino": meta.ino,
        "st_nlink": meta.nlink,
        "st_uid": meta.uid,
        "st_gid": meta.gid,
        "st_size": meta.size,
        "st_blocks": (meta.size + 511) // 512,
        "st_atime": meta.atime_ns,
        "st_mtime": meta.mtime_ns,
        "st_ctime": meta.ctime_ns,
    }


def _stat_attrs(st: os.stat_result) -> dict[str, int]:
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
        self.budget = BufferBudget(options.buffer_memory, options.max_pending_bytes)
        self.staging: Staging | None = None
        if not options.read_only:
            self.staging = Staging(*scratch_location(store.backend.scratch_dir(), store.backend.url))
        #: Reasons of the last refused writes, commits or reads per path (newest last).
        self._errors: dict[str, list[str]] = {}
        self._placeholders: dict[str, Placeholder] = {}
        #: Set (to the reason) once the store's storage moved away under the mount.
        self._replaced: str | None = None
        self._stopped = threading.Event()
        #: Paths whose kernel caches must be dropped (after commits); served by one thread.
        self._stale: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._fuse = 0
        self._is_root = os.geteuid() == 0
        self.schemas = SchemasTree()

    # ---------------------------------------------------------------- lifecycle

    def init(self, path: str) -> None:
        log.info("mounted %s", self.store.backend.url)
        self.ready = True
        self._fuse = current_fuse()
        threading.Thread(target=self._watch_base, name="resultsfs-base-watch", daemon=True).start()
        threading.Thread(target=self._invalidate, name="resultsfs-invalidate", daemon=True).start()
        if not self.options.read_only:
            threading.Thread(target=self._clean_up, name="resultsfs-cleanup", daemon=True).start()
        if self.on_ready is not None:
            self.on_ready()

    def _watch_base(self) -> None:
        """Notice when the store's storage is replaced under a running mount (then: ESTALE)."""
        while not self._stopped.wait(_BASE_CHECK_INTERVAL):
            try:
                self.store.check_alive()
            except StoreReplacedError as exc:
                if self._replaced is None:
                    log.error("%s", exc)  # noqa: TRY400 - the message says it all; no traceback
                self._replaced = str(exc)
            except Exception:
                log.exception("checking the store failed")

    def _invalidate(self) -> None:
        """Drop the kernel's cached size and pages of paths whose content changed under a writer.

        libfuse forbids doing this inside the request, hence this thread.
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
            log.exception("cleaning up %s failed", self.store.backend.url)
            return
        for what in removed:
            log.info("removed leftover %s", what)

    def destroy(self, path: str) -> None:
        self._stopped.set()
        self._stale.put(None)
        for handles in [self.handles.writers(p) for p in list(self.handles._writers)]:
            for handle in handles:
                if handle.dirty and not handle.unlinked:
                    log.warning(
                        "%s: unmounted with uncommitted writes (%d bytes) that were lost",
                        handle.path,
                        handle.buffer.size,
                    )
        self.handles.close_all()
        if self.staging is not None:
            self.staging.close()
        for placeholder_path in self._placeholders:
            log.info("%s: empty placeholder gone at unmount (it was never written)", placeholder_path)
        log.info("unmounted %s", self.store.backend.url)

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
        return self._changing(path)

    def _changing(self, path: str) -> Node:
        """The node of a path about to change; the generated ``/.schemas`` never does (EROFS)."""
        node = self._node(path)
        if node.kind is Kind.SCHEMAS:
            raise _fail(errno.EROFS)
        return node

    def _writable(self) -> None:
        if self.options.read_only:
            raise _fail(errno.EROFS)
        self.store.check_alive()

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

    def _holder_for(self, rid: str, tid: int | None = None) -> str:
        """Whom a change of ``rid`` through the mount acts for.

        The holder of the lease on ``rid`` when the lease was taken by ``resultsfs lock ID --
        COMMAND`` and the caller (thread ``tid``, default: this request's) is COMMAND or one of
        its descendants: the lease then lets the command's pipeline write. The mount itself
        otherwise, which holds no lease, so another holder's live lease refuses the change.
        """
        lease = self.store.lease(rid)
        if lease is None or lease.process is None:
            return self.holder
        caller = thread_group(context()[2] if tid is None else tid)
        return lease.holder if processes.in_tree(lease.process, caller) else self.holder

    def _rename_holder(self, src: str, dst: str) -> str:
        """Whom a rename of result ``src`` onto ``dst`` acts for: a lease holder on either side."""
        found = self._holder_for(src)
        return found if found != self.holder else self._holder_for(dst)

    def _result_meta(self, node: Node) -> Meta | None:
        """The stored result's metadata; a planted symlink or a non-file is no result (hidden)."""
        try:
            return self.store.meta(node.result_id)
        except (UnsafePathError, CorruptResultError):
            return None

    def _dir_meta(self, node: Node) -> Meta | None:
        if node.kind is Kind.ROOT:
            return self.store.dir_meta(())
        if node.kind is not Kind.DIR_OR_SCRATCH:
            return None
        return self.store.dir_meta(node.parts)

    def _is_scratch(self, node: Node) -> bool:
        return self.staging is not None and self.staging.is_file(node.path)

    def _record_error(self, path: str, what: str, exc: BaseException | str, *, logged_as: str = "") -> None:
        """Keep the reason for ``user.results.error`` and log it (as ``logged_as``, if given)."""
        message = f"{what}: {exc}"
        kept = self._errors.setdefault(path, [])
        kept.append(message)
        del kept[:-_ERRORS_KEPT]
        log.warning("%s: %s", path, f"{logged_as}: {exc}" if logged_as else message)

    def _error_of(self, path: str) -> str | None:
        """``user.results.error``: the reasons recorded for ``path``, newest first."""
        kept = self._errors.get(path)
        return "\n".join(reversed(kept)) if kept else None

    # ---------------------------------------------------------------- metadata

    @_translate
    def getattr(self, path: str | None, fi: Any = None) -> dict[str, int]:
        if fi is not None:
            handle = self.handles.get(fi.fh)
            if isinstance(handle, WriteHandle):
                return self._pending_attrs(handle)
            if isinstance(handle, ReadHandle) and handle.version is not None:
                return _meta_attrs(handle.version.meta, stat.S_IFREG)
            if isinstance(handle, ScratchHandle):
                return _stat_attrs(os.fstat(handle.fd))
        node = self._node(path)
        if node.kind is Kind.SCHEMAS:
            attrs = self.schemas.attrs(node.path)
            if attrs is None:
                raise _fail(errno.ENOENT)
            return attrs
        if node.kind is Kind.ROOT:
            meta = self.store.dir_meta(())
            if meta is None:
                raise _fail(errno.ESTALE)
            return _meta_attrs(meta, stat.S_IFDIR)
        if node.kind is Kind.RESULT:
            # Everyone sees the committed result (its size is what a reader reads); only a
            # result that does not exist yet shows the writer's pending size.
            meta = self._result_meta(node)
            own = self._callers_writer(node.path) if meta is not None else None
            if own is not None:
                # fstat by a writer (the kernel sends it without the file handle): it sees the
                # size of what it wrote, as on any filesystem.
                return self._pending_attrs(own)
            if meta is not None:
                return _meta_attrs(meta, stat.S_IFREG)
            pending = self.handles.pending(node.path)
            if pending is not None:
                if pending.failure is not None and not pending.dirty:
                    # Its content was refused: until its release makes it a placeholder, it
                    # already looks like one (the size of what was refused is nobody's).
                    return self._placeholder_attrs(self._placeholder_from(pending))
                return self._pending_attrs(pending)
            placeholder = self._placeholders.get(node.path)
            if placeholder is None:
                raise _fail(errno.ENOENT)
            return self._placeholder_attrs(placeholder)
        if node.kind is Kind.DIR_OR_SCRATCH:
            meta = self._dir_meta(node)
            if meta is not None:
                return _meta_attrs(meta, stat.S_IFDIR)
        scratch = self.staging.lstat(node.path) if self.staging is not None else None
        if scratch is None or not stat.S_ISREG(scratch.st_mode):
            raise _fail(errno.ENOENT)
        return _stat_attrs(scratch)

    def _callers_writer(self, path: str) -> WriteHandle | None:
        """The newest write handle on ``path`` with uncommitted changes, opened by the process
        making this request (after a commit, the stored result is what its file holds)."""
        writers = [w for w in self.handles.writers(path) if w.dirty and not w.unlinked and w.detached is None]
        if not writers:
            return None
        caller = thread_group(context()[2])
        mine = [w for w in writers if w.opener == caller]
        return mine[-1] if mine else None

    def _pending_attrs(self, handle: WriteHandle) -> dict[str, int]:
        node = classify(handle.path)
        meta = self._result_meta(node) if node is not None and node.kind is Kind.RESULT else None
        now = time.time_ns()
        if meta is not None:
            attrs = _meta_attrs(meta, stat.S_IFREG)
        else:
            uid, gid = handle.owner or (os.geteuid(), os.getegid())
            attrs = {"st_mode": stat.S_IFREG | handle.mode, "st_nlink": 1, "st_uid": uid, "st_gid": gid}
            attrs.update(st_atime=now, st_mtime=now, st_ctime=now)
        attrs["st_size"] = handle.buffer.size
        attrs["st_blocks"] = (handle.buffer.size + 511) // 512
        if meta is not None and meta.size != handle.buffer.size:
            # The kernel keeps one size per file: do not let this writer's size stand for others.
            self._stale.put(handle.path)
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

    def _has_placeholder_below(self, directory: str) -> bool:
        prefix = directory.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in list(self._placeholders))

    @_translate
    def readdir(self, path: str, fh: int) -> list[tuple[str, int, int]]:
        node = self._node(path)
        if node.kind is Kind.RESULT:
            raise _fail(errno.ENOTDIR)
        if node.kind is Kind.SCHEMAS:
            names = self.schemas.listing(node.path)
            if names is None:
                raise _fail(errno.ENOTDIR if self.schemas.file(node.path) is not None else errno.ENOENT)
            kind = stat.S_IFDIR if node.path.strip("/") == SCHEMAS_DIR else stat.S_IFREG
            return [(".", stat.S_IFDIR, 0), ("..", stat.S_IFDIR, 0), *((n, kind, 0) for n in names)]
        listing = self.store.listdir(node.parts) if node.kind is not Kind.SCRATCH else None
        if listing is None:
            raise _fail(errno.ENOTDIR if node.kind is not Kind.ROOT else errno.ESTALE)
        entries: list[tuple[str, int, int]] = [(".", stat.S_IFDIR, 0), ("..", stat.S_IFDIR, 0)]
        seen: set[str] = set()
        for name in listing.dirs:
            entries.append((name, stat.S_IFDIR, 0))
            seen.add(name)
        for part in listing.results:
            name = part + ".json"
            child = classify(join(path, name))
            if child is not None and child.kind is Kind.RESULT:
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
        found = self.store.backend.statfs()
        if found is not None:
            return found
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    # ---------------------------------------------------------------- opening and reading

    @_translate
    def open(self, path: str, fi: Any) -> int:
        node = self._node(path)
        flags = int(fi.flags)
        if node.kind is Kind.SCHEMAS:
            raw = self.schemas.file(node.path)
            if raw is None:
                raise _fail(errno.EISDIR if self.schemas.listing(node.path) is not None else errno.ENOENT)
            if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
                raise _fail(errno.EROFS)
            fi.fh = self.handles.add(ReadHandle(node.path, BytesVersion(raw, self.schemas.meta(raw))))
            return 0
        if node.kind is Kind.RESULT:
            if flags & os.O_ACCMODE == os.O_RDONLY:
                fi.fh = self._open_read(node, fi)
            else:
                self._writable()
                fi.fh = self._open_write(node, flags, created=False, mode=0o644, fi=fi)
            return 0
        if node.kind is Kind.ROOT or self._dir_meta(node) is not None:
            raise _fail(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            self._writable()
        fd = self._staging().open(node.path, flags & ~os.O_CREAT)
        fi.fh = self.handles.add(ScratchHandle(node.path, fd))
        return 0

    def _open_read(self, node: Node, fi: Any) -> int:
        if self.options.isolation is IsolationLevel.SERIALIZABLE and not self.store.wait_for_leases(
            node.result_id, self.options.lock_wait, self._holder_for(node.result_id)
        ):
            lease = self.store.lease(node.result_id)
            self._record_error(
                node.path,
                "read",
                f"leased by {lease.describe() if lease else 'another holder'} (serializable)",
            )
            raise _fail(errno.EBUSY)
        # Readers see the committed version, also while another program is writing a new one.
        try:
            version = self.store.open(node.result_id)
        except (UnsafePathError, CorruptResultError):
            version = None
        if version is None:
            if node.path not in self._placeholders:
                raise _fail(errno.ENOENT)
            if not self.options.lenient:
                self._record_error(node.path, "read", "an empty placeholder is not a result yet")
                raise _fail(errno.EIO)
            return self.handles.add(ReadHandle(node.path, None))
        try:
            verdict = self.store.verdict(node.result_id, version)
            if verdict.error is not None and not self.options.lenient:
                self._record_error(node.path, "read", verdict.error, logged_as="refused to open")
                raise _fail(errno.EIO)
            # Reads bypass the page cache: a writer's O_TRUNC and writes change the size the
            # kernel believes for every open of the path, and a cached read is cut to that
            # size. Direct reads come whole from this version, whatever the kernel's size says.
            fi.direct_io = 1
            if _HAS_NOFLUSH:
                fi.noflush = 1  # nothing to commit on close: spare the kernel a FLUSH round trip
        except BaseException:
            version.close()
            raise
        return self.handles.add(ReadHandle(node.path, version))

    def _open_write(self, node: Node, flags: int, *, created: bool, mode: int, fi: Any) -> int:
        meta = self._result_meta(node)
        placeholder = self._placeholders.get(node.path) if meta is None else None
        if meta is None and not created and placeholder is None:
            raise _fail(errno.ENOENT)
        buffer = WriteBuffer(self.budget, self._staging().tmpfile, self.store.max_result_bytes)
        try:
            if meta is not None and not flags & os.O_TRUNC:
                # The current bytes as they are: opening a broken result for writing is how one repairs it.
                version = self.store.open(node.result_id)
                if version is not None:
                    with version:
                        buffer.write(version.read_all(self.store.max_result_bytes), 0)
        except BaseException:
            buffer.close()
            raise
        if meta is not None:
            new_mode, owner = meta.mode, None
        elif placeholder is not None:
            new_mode, owner = placeholder.mode, placeholder.owner
        else:
            new_mode, owner = stat.S_IMODE(mode), self._new_owner()
        handle = WriteHandle(
            path=node.path,
            buffer=buffer,
            created=meta is None,
            exclusive=bool(flags & os.O_EXCL),
            mode=new_mode,
            owner=owner,
            append=bool(flags & os.O_APPEND),
            opener=thread_group(context()[2]),
            truncated=bool(flags & os.O_TRUNC) and meta is not None,
        )
        # Each writer reads back its own bytes, and nobody else's: its I/O bypasses the page
        # cache, which every open of the path shares.
        fi.direct_io = 1
        return self.handles.add(handle)

    @_translate
    def create(self, path: str, mode: int, fi: Any) -> int:
        self._writable()
        node = self._new_node(path)
        flags = int(fi.flags)
        if node.kind is Kind.RESULT:
            if flags & os.O_EXCL and self._result_meta(node) is not None:
                raise _fail(errno.EEXIST)
            fi.fh = self._open_write(node, flags, created=True, mode=mode, fi=fi)
            return 0
        if node.kind is Kind.ROOT or self._dir_meta(node) is not None:
            raise _fail(errno.EISDIR)
        fd = self._staging().open(node.path, flags | os.O_CREAT, stat.S_IMODE(mode))
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
            start = handle.buffer.size if handle.append else offset
            if start < _JSON_HEAD:
                head = handle.buffer.read(start, 0) + data[: _JSON_HEAD - start]
                if not envelope.looks_like_json_object_start(head):
                    # What came before a refused write is not what the program meant to store.
                    handle.dirty, handle.failure = False, errno.EINVAL
                    self._record_error(
                        handle.path, "write", "a result is a JSON object; these bytes cannot start one"
                    )
                    raise _fail(errno.EINVAL)
            try:
                return handle.write(data, offset)
            except (ResultsError, OSError) as exc:
                handle.dirty, handle.failure = False, errno_of(exc)
                self._record_error(handle.path, "write", exc)
                raise

    @_translate
    def truncate(self, path: str | None, length: int, fi: Any = None) -> int:
        self._writable()
        handle = self.handles.get(fi.fh) if fi is not None else None
        if isinstance(handle, WriteHandle):
            self._truncate_handle(handle, length)
            return 0
        if isinstance(handle, ScratchHandle):
            os.ftruncate(handle.fd, length)
            return 0
        if path is None:
            raise _fail(errno.ENOENT)
        node = self._changing(path)
        if node.kind is not Kind.RESULT:
            fd = self._staging().open(node.path, os.O_WRONLY)
            try:
                os.ftruncate(fd, length)
            finally:
                os.close(fd)
            return 0
        pending = self.handles.pending(node.path)
        if pending is not None:
            self._truncate_handle(pending, length)
            return 0
        # truncate(2) on a result with no open handle: a whole new content, committed now.
        stored = self.store.read(node.result_id).raw
        content = stored[:length] + b"\0" * max(0, length - len(stored))
        try:
            self._commit_bytes(node, content, exclusive=False)
        finally:
            self._stale.put(node.path)
        return 0

    def _truncate_handle(self, handle: WriteHandle, length: int) -> None:
        with handle.lock:
            try:
                handle.truncate(length)
            except (ResultsError, OSError) as exc:
                handle.dirty, handle.failure = False, errno_of(exc)
                self._record_error(handle.path, "truncate", exc)
                raise

    @_translate
    def flush(self, path: str | None, fi: Any) -> int:
        handle = self.handles.get(fi.fh)
        if isinstance(handle, WriteHandle):
            if handle.dirty:
                if handle.opener and thread_group(context()[2]) != handle.opener:
                    # Another process closing its copy of the descriptor (each command of
                    # `(cat a; cat b) > x.json`): the opener's close, or the last one, commits.
                    log.debug(
                        "%s: close by a process that did not open it (%s, opened by %s); commit deferred",
                        handle.path,
                        context(),
                        handle.opener,
                    )
                    return 0
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
                self._release_write(handle)
        finally:
            self.handles.remove(fi.fh)
            handle.close()
        return 0

    def _release_write(self, handle: WriteHandle) -> None:
        if handle.dirty:
            # A refusal is recorded in user.results.error and the log; nobody waits for release.
            with suppress(FuseOSError):
                self._commit(handle)
        elif handle.truncated and not handle.buffer.size and handle.failure is None and not handle.unlinked:
            self._record_error(
                handle.path,
                "truncate",
                "opened with O_TRUNC and closed without writing: a result cannot be empty; left as it was",
            )
            self._stale.put(handle.path)
        if (
            handle.created
            and not handle.unlinked
            and handle.detached is None
            and handle.path not in self._placeholders
        ):
            node = classify(handle.path)
            if node is not None and node.kind is Kind.RESULT and self._result_meta(node) is None:
                self._placeholders[handle.path] = self._placeholder_from(handle)

    def _placeholder_from(self, handle: WriteHandle) -> Placeholder:
        now = time.time_ns()
        atime, mtime = handle.times if handle.times is not None else (now, now)
        return Placeholder(
            handle.mode, handle.owner, mtime if mtime >= 0 else now, atime if atime >= 0 else now
        )

    def _commit(self, handle: WriteHandle) -> None:
        with handle.lock:
            handle.dirty = False
            if handle.unlinked:
                return
            if handle.detached is not None:
                handle.failure = errno.ESTALE
                self._record_error(handle.path, "commit refused", handle.detached)
                raise _fail(errno.ESTALE)
            node = classify(handle.path)
            if node is None or node.kind is not Kind.RESULT:
                return
            change = MetaChange(mode=handle.mode, owner=handle.owner) if handle.created else MetaChange()
            try:
                self._commit_bytes(
                    node,
                    handle.buffer.getvalue(),
                    exclusive=handle.exclusive and handle.created,
                    change=change,
                    writer=handle.opener,
                )
            except FuseOSError as exc:
                handle.failure = exc.errno
                raise
            finally:
                self._stale.put(node.path)
            handle.created = False
            handle.exclusive = False
            if handle.times is not None:
                self.store.set_meta(node.result_id, MetaChange(times=handle.times))

    def _commit_bytes(
        self,
        node: Node,
        raw: bytes,
        *,
        exclusive: bool,
        change: MetaChange = NO_CHANGE,
        replace_meta: bool = False,
        writer: int | None = None,
    ) -> bool:
        """Validate and store ``raw`` as the result at ``node``; errno and a recorded reason on refusal.

        ``writer``: the process that wrote the bytes (default: the one making this request).
        """
        self._writable()
        try:
            written = self.store.set_bytes(
                node.result_id,
                raw,
                self.options.on_exists,
                self._holder_for(node.result_id, writer),
                lock_wait=self.options.lock_wait,
                exclusive=exclusive,
                change=change,
                replace_meta=replace_meta,
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
        node = self._changing(path)
        if node.kind is Kind.RESULT:
            had_pending = any(w.created and not w.unlinked for w in self.handles.writers(node.path))
            had_pending |= self._placeholders.pop(node.path, None) is not None
            deleted = self.store.delete(
                node.result_id,
                self._holder_for(node.result_id),
                prune=False,
                lock_wait=self.options.lock_wait,
            )
            self.handles.mark_unlinked(node.path)
            self._errors.pop(node.path, None)
            if not deleted and not had_pending:
                raise _fail(errno.ENOENT)
            return 0
        if node.kind is Kind.DIR_OR_SCRATCH and self._dir_meta(node) is not None:
            raise _fail(errno.EISDIR)
        self._staging().unlink(node.path)
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
        fd = self._staging().open(node.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(mode))
        try:
            owner = self._new_owner()
            if owner is not None:
                os.fchown(fd, *owner)
        finally:
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
        if self._is_scratch(node):
            raise _fail(errno.EEXIST)
        # The kernel has applied the caller's umask to ``mode``; nothing else is applied.
        self.store.mkdir(node.parts, MetaChange(mode=stat.S_IMODE(mode), owner=self._new_owner()))
        return 0

    @_translate
    def rmdir(self, path: str) -> int:
        self._writable()
        node = self._changing(path)
        if node.kind is Kind.ROOT:
            raise _fail(errno.EBUSY)
        if node.kind is not Kind.DIR_OR_SCRATCH or self._dir_meta(node) is None:
            raise _fail(errno.ENOTDIR if self._exists(node) else errno.ENOENT)
        if self._holds_mount_entries(node.path):
            raise _fail(errno.ENOTEMPTY)
        self.store.rmdir(node.parts)
        if self.staging is not None:
            self.staging.remove_dir(node.path)
        return 0

    def _holds_mount_entries(self, directory: str) -> bool:
        """True if scratch files, placeholders or new results being written live at or below ``directory``."""
        return bool(
            (self.staging is not None and self.staging.has_files(directory))
            or self.handles.has_pending_below(directory)
            or self._has_placeholder_below(directory)
        )

    def _exists(self, node: Node) -> bool:
        if node.kind is Kind.ROOT:
            return True
        if node.kind is Kind.RESULT:
            return (
                self._result_meta(node) is not None
                or self.handles.pending(node.path) is not None
                or node.path in self._placeholders
            )
        if node.kind is Kind.DIR_OR_SCRATCH and self._dir_meta(node) is not None:
            return True
        return self._is_scratch(node)

    @_translate
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        self._writable()
        src, dst = self._changing(old), self._new_node(new)
        if flags & RENAME_EXCHANGE or flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise _fail(errno.EINVAL)
        if src.kind is Kind.ROOT or dst.kind is Kind.ROOT:
            raise _fail(errno.EBUSY)
        if not self._exists(src):
            raise _fail(errno.ENOENT)
        if flags & RENAME_NOREPLACE and self._exists(dst):
            raise _fail(errno.EEXIST)
        if src.path == dst.path:
            return 0
        src_is_dir = self._dir_meta(src) is not None
        moved_placeholder = src.path in self._placeholders and self._result_meta(src) is None
        if src_is_dir:
            self._rename_dir(src, dst)
        elif self._dir_meta(dst) is not None:
            raise _fail(errno.EISDIR)
        elif moved_placeholder:
            self._rename_placeholder(src, dst)
        elif src.kind is Kind.RESULT and dst.kind is Kind.RESULT:
            behavior = (
                SetBehavior.OVERWRITE
                if self.options.on_exists is SetBehavior.OVERWRITE
                else SetBehavior.RAISE_IF_EXISTS
            )
            self.store.rename(
                src.result_id,
                dst.result_id,
                behavior,
                self._rename_holder(src.result_id, dst.result_id),
                lock_wait=self.options.lock_wait,
            )
        elif dst.kind is Kind.RESULT:
            self._commit_scratch(src, dst, exclusive=bool(flags & RENAME_NOREPLACE))
        elif src.kind is Kind.RESULT:
            self._result_to_scratch(src, dst)
        else:
            self._refuse_keeping(src, dst)
        # Whatever was at the destination (a placeholder too) is replaced, unless the placeholder
        # is what moved there; nothing stays at the source. Writers of the replaced destination
        # no longer write the result there: the descriptor follows the replaced file, not the name.
        self.handles.detach(
            dst.path,
            f"{dst.path} was replaced by a rename of {src.path} while this file was open for writing",
        )
        for path in (old, new):
            self._errors.pop(path, None)
        self._placeholders.pop(old, None)
        if not moved_placeholder:
            self._placeholders.pop(new, None)
        self.handles.move(old, new)
        if dst.kind is not Kind.RESULT:
            self.handles.detach(
                dst.path,
                f"the result was renamed to {dst.path}, which is not a result name, while open for writing",
            )
        return 0

    def _rename_placeholder(self, src: Node, dst: Node) -> None:
        if dst.kind is Kind.RESULT:
            if self._result_meta(dst) is not None:
                log.warning("%s: an empty file cannot replace result %r", src.path, dst.result_id)
                raise _fail(errno.EINVAL)
            self._placeholders[dst.path] = self._placeholders.pop(src.path)
            return
        placeholder = self._placeholders.pop(src.path)
        self._staging().write_new(
            dst.path, b"", placeholder.mode, (placeholder.atime_ns, placeholder.mtime_ns)
        )

    def _commit_scratch(self, src: Node, dst: Node, *, exclusive: bool) -> None:
        """``mv tmp x.json``: the scratch file's bytes become the result, or the rename fails.

        The new result takes the scratch file's mode and, as root, its owner, as a rename on a
        local filesystem gives the replaced name the file that moved there. A rename that
        stores nothing (``--on-exists skip`` onto a result) is refused and keeps its source.
        """
        staging = self._staging()
        fd = staging.open(src.path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if st.st_size > self.store.max_result_bytes:
                raise _fail(errno.EFBIG)
            raw = b""
            while chunk := os.pread(fd, self.store.max_result_bytes + 1 - len(raw), len(raw)):
                raw += chunk
                if len(raw) > self.store.max_result_bytes:
                    raise _fail(errno.EFBIG)
        finally:
            os.close(fd)
        owner = (st.st_uid, st.st_gid) if self._is_root else None
        # The scratch file's times too: rsync sets them before its rename, and compares them next time.
        change = MetaChange(
            mode=stat.S_IMODE(st.st_mode), owner=owner, times=(st.st_atime_ns, st.st_mtime_ns)
        )
        try:
            written = self._commit_bytes(dst, raw, exclusive=exclusive, change=change, replace_meta=True)
        except FuseOSError:
            # The scratch file stays for the writer to fix: it carries the reason too, also when
            # the destination is a new name that shows no attribute.
            reason = self._error_of(dst.path)
            if reason is not None:
                self._record_error(src.path, "rename refused", f"{dst.path}: {reason.splitlines()[0]}")
            raise
        if not written and self.options.on_exists is SetBehavior.SKIP_IF_EXISTS:
            self._record_error(
                dst.path,
                "rename refused",
                f"a result exists and --on-exists skip keeps it; {src.path} was not stored and is kept",
            )
            raise _fail(errno.EEXIST)
        staging.unlink(src.path)

    def _refuse_keeping(self, src: Node, dst: Node) -> None:
        """A scratch file may not be renamed to a name that is not a result: EPERM.

        That rename is how a program puts a file in its final place (rsync, ``install``): the
        file would look kept but is not. Refusing it tells the program at once (rsync reports
        the file and exits 23) instead of the file vanishing later.
        """
        self._record_error(
            src.path,
            "rename refused",
            f"{dst.name!r} is not a result name (results end in .json), and the mount keeps only "
            f"results; {src.path} stays a scratch file",
        )
        raise _fail(errno.EPERM)

    def _result_to_scratch(self, src: Node, dst: Node) -> None:
        """``mv x.json x.json~`` (an editor's backup): the result leaves the store for a scratch file.

        The store hands over the bytes and deletes the result in one transaction, after the
        scratch file is written: no commit lands in between, and nothing is lost if writing fails.
        """
        staging = self._staging()

        def keep(raw: bytes, meta: Meta) -> None:
            staging.write_new(dst.path, raw, meta.mode, (meta.atime_ns, meta.mtime_ns))

        self.store.take(
            src.result_id, keep, self._holder_for(src.result_id), lock_wait=self.options.lock_wait
        )

    def _rename_dir(self, src: Node, dst: Node) -> None:
        if dst.kind is not Kind.DIR_OR_SCRATCH:
            raise _fail(errno.EINVAL if dst.kind is not Kind.RESULT else errno.ENOTDIR)
        if self._is_scratch(dst):
            raise _fail(errno.ENOTDIR)
        if self._dir_meta(dst) is not None and self._holds_mount_entries(dst.path):
            # Scratch files, placeholders and pending writes are entries of the target: POSIX
            # refuses to replace a directory that is not empty.
            raise _fail(errno.ENOTEMPTY)
        self.store.rename_dir(src.parts, dst.parts, self.holder)
        if self.staging is not None:
            self.staging.move_dir(src.path, dst.path)
        prefix = src.path.rstrip("/") + "/"
        for path in [p for p in list(self._placeholders) if p.startswith(prefix)]:
            self._placeholders[dst.path + path[len(src.path) :]] = self._placeholders.pop(path)

    # ---------------------------------------------------------------- attributes

    def _metadata_target(self, node: Node, change: MetaChange) -> None:
        """Apply a metadata change to whatever ``node`` is; every path goes through a descriptor."""
        if node.kind is Kind.ROOT or self._dir_meta(node) is not None:
            try:
                self.store.set_dir_meta(node.parts, change)
            except ResultsError as exc:
                self._record_error(node.path, "metadata", exc)
                raise
            return
        if node.kind is Kind.RESULT:
            for handle in self.handles.writers(node.path):
                if handle.created:
                    handle.mode = change.mode if change.mode is not None else handle.mode
                    if change.owner is not None:
                        current = handle.owner or (os.geteuid(), os.getegid())
                        handle.owner = (
                            current[0] if change.owner[0] < 0 else change.owner[0],
                            current[1] if change.owner[1] < 0 else change.owner[1],
                        )
                if change.times is not None and (handle.dirty or handle.created):
                    handle.times = change.times
            if self._result_meta(node) is not None:
                try:
                    self.store.set_meta(node.result_id, change)
                except ResultsError as exc:
                    self._record_error(node.path, "metadata", exc)
                    raise
                return
            placeholder = self._placeholders.get(node.path)
            if placeholder is not None:
                self._change_placeholder(placeholder, change)
            elif self.handles.pending(node.path) is None:
                raise _fail(errno.ENOENT)
            return
        self._staging().set_meta(node.path, change)

    @staticmethod
    def _change_placeholder(placeholder: Placeholder, change: MetaChange) -> None:
        if change.mode is not None:
            placeholder.mode = change.mode
        if change.owner is not None:
            current = placeholder.owner or (os.geteuid(), os.getegid())
            placeholder.owner = (
                current[0] if change.owner[0] < 0 else change.owner[0],
                current[1] if change.owner[1] < 0 else change.owner[1],
            )
        if change.times is not None:
            atime, mtime = change.times
            placeholder.atime_ns = atime if atime != OMIT else placeholder.atime_ns
            placeholder.mtime_ns = mtime if mtime != OMIT else placeholder.mtime_ns

    @_translate
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._writable()
        self._metadata_target(self._changing(path), MetaChange(times=_resolve_times(times, time.time_ns())))
        return 0

    @_translate
    def chmod(self, path: str, mode: int) -> int:
        self._writable()
        self._metadata_target(self._changing(path), MetaChange(mode=stat.S_IMODE(mode)))
        return 0

    @_translate
    def chown(self, path: str, uid: int, gid: int) -> int:
        self._writable()
        node = self._changing(path)
        if uid < 0 and gid < 0:
            return 0
        if node.kind is not Kind.RESULT or self._result_meta(node) is not None:
            # chown(-1, gid): keep the uid. The store takes a whole owner; fill in the current one.
            current = self.getattr(path)
            uid = current["st_uid"] if uid < 0 else uid
            gid = current["st_gid"] if gid < 0 else gid
        self._metadata_target(node, MetaChange(owner=(uid, gid)))
        return 0

    def _directory(self, node: Node) -> str | None:
        """The ID prefix of a directory node (``""``: the root), or ``None`` if it is no directory."""
        if node.kind is Kind.ROOT:
            return ""
        if node.kind is Kind.DIR_OR_SCRATCH and self._dir_meta(node) is not None:
            return "/".join(node.parts)
        return None

    @_translate
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        node = self._node(path)
        if node.kind is Kind.SCHEMAS:
            raise _fail(ENOATTR)
        if node.kind is not Kind.RESULT:
            directory = self._directory(node)
            if directory is not None:
                bound = self.store.binding(directory) if name == xattrs.MODEL else None
                if bound is None:
                    raise _fail(ENOATTR)
                return bound.model.encode("utf-8")
            error = self._error_of(node.path) if name == xattrs.ERROR else None
            if error is not None and self._is_scratch(node):
                return error.encode("utf-8")  # why a rename of this scratch file was refused
            return self._staging().getxattr(node.path, name)
        if not name.startswith(xattrs.PREFIX):
            raise _fail(ENOATTR)  # the fast answer to ls -l (security.selinux, POSIX ACLs) and write
        error = self._error_of(node.path)
        if self._result_meta(node) is None:
            # A placeholder (or a new result whose commit was refused) shows only its error.
            if name != xattrs.ERROR or error is None:
                raise _fail(ENOATTR)
            return error.encode("utf-8")
        model = self.store.model_of(node.result_id) if xattrs.needs_model(name) else None
        lease = self.store.lease(node.result_id) if xattrs.needs_lease(name) else None
        found = xattrs.value(name, model, lease, error)
        if found is None:
            raise _fail(ENOATTR)
        return found.encode("utf-8")

    @_translate
    def listxattr(self, path: str) -> list[str]:
        node = self._node(path)
        if node.kind is Kind.SCHEMAS:
            return []
        if node.kind is Kind.RESULT:
            error = self._error_of(node.path)
            if self._result_meta(node) is None:
                return [xattrs.ERROR] if error is not None else []
            return xattrs.names(self.store.model_of(node.result_id), self.store.lease(node.result_id), error)
        directory = self._directory(node)
        if directory is not None:
            return [xattrs.MODEL] if self.store.binding(directory) is not None else []
        listed = self._staging().listxattr(node.path)
        if self._error_of(node.path) is not None and xattrs.ERROR not in listed:
            listed.append(xattrs.ERROR)
        return listed

    @_translate
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        self._writable()
        node = self._changing(path)
        directory = self._directory(node) if node.kind is not Kind.RESULT else None
        if directory is not None and name == xattrs.MODEL:
            try:
                self.store.bind(directory, value.decode("utf-8", errors="replace").strip())
            except ResultsError as exc:
                log.warning("%s: cannot bind the directory: %s", node.path, exc)
                raise
            log.info("%s: bound to %s", node.path, value.decode("utf-8", errors="replace").strip())
            return 0
        if node.kind is Kind.RESULT or directory is not None:
            if xattrs.is_ours(name):
                return 0  # computed attributes: copying them back in is accepted and changes nothing
            raise _fail(errno.ENOTSUP)
        self._staging().setxattr(node.path, name, value, options)
        return 0

    @_translate
    def removexattr(self, path: str, name: str) -> int:
        self._writable()
        node = self._changing(path)
        directory = self._directory(node) if node.kind is not Kind.RESULT else None
        if directory is not None and name == xattrs.MODEL:
            if self.store.unbind(directory) is None:
                raise _fail(ENOATTR)
            log.info("%s: unbound", node.path)
            return 0
        if node.kind is Kind.RESULT or directory is not None:
            if xattrs.is_ours(name):
                return 0
            raise _fail(ENOATTR)
        self._staging().removexattr(node.path, name)
        return 0


def _resolve_times(times: tuple[int, int] | None, now: int) -> tuple[int, int]:
    """``utimens`` arguments as nanoseconds: ``UTIME_NOW`` is now, ``UTIME_OMIT`` is :data:`OMIT`."""
    if times is None:
        return (now, now)
    resolved = []
    for value in times:
        if value == _UTIME_NOW:
            resolved.append(now)
        elif value == _UTIME_OMIT:
            resolved.append(OMIT)
        else:
            resolved.append(int(value))
    return (resolved[0], resolved[1])
