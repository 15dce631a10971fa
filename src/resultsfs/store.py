"""The storage core: typed results under a backing directory; the only I/O API.

A result is an envelope file (:mod:`resultsfs.envelope`) at ``<store>/<id>.json``. Writes are
validated against the registry, serialised canonically, and put in place by an atomic,
durable rename (:mod:`resultsfs.atomic`) under the result's short file lock
(:mod:`resultsfs.locks`), after checking leases (:mod:`resultsfs.leases`). Reads take no
lock: a rename is atomic, so a reader sees one whole version. The store's own files live in
``<store>/.resultsfs/``; temp files start with ``.``; neither is ever listed.

:class:`FileBackend` is the same class under results_manager's name and signature.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from resultsfs import atomic, envelope, ids, registry
from resultsfs.envelope import Envelope
from resultsfs.errors import (
    CorruptResultError,
    ModelNotRegisteredError,
    ReadOnlyStoreError,
    ResultConflictError,
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
from resultsfs.ids import ResultId
from resultsfs.leases import Clock, Lease, LeaseTable, default_holder, utc_now
from resultsfs.locks import DEFAULT_TIMEOUT, StripedLocks
from resultsfs.tree import BackingTree

T = TypeVar("T", bound=BaseModel)

log = logging.getLogger(__name__)

#: The directory, inside the store, of the store's own files.
META_DIR = ".resultsfs"

#: Results larger than this are refused (configurable per store): a result is a record, not a
#: data set, and the mount keeps a result being written in memory.
DEFAULT_MAX_RESULT_BYTES = 64 * 1024 * 1024

# Writers retry when the directory they write into is removed under them (a concurrent
# delete pruning a directory it saw empty); each retry recreates it.
_DIRECTORY_RETRIES = 20


class SetBehavior(str, enum.Enum):
    """What ``set`` does when a result is already stored under the ID."""

    #: Refuse with :class:`ResultExistsError`.
    RAISE_IF_EXISTS = "raise_if_exists"
    #: Leave the stored result untouched and return False.
    SKIP_IF_EXISTS = "skip_if_exists"
    #: Refuse with :class:`ResultConflictError` unless type, namespace and data are equal;
    #: equal data leaves the file untouched and returns False.
    RAISE_IF_DIFFERENT = "raise_if_different"
    #: Replace it.
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class StoredResult:
    """A result as read from disk: exact bytes, decoded envelope, and the file's stat."""

    result_id: str
    raw: bytes
    envelope: Envelope
    stat: os.stat_result


@dataclass(frozen=True)
class Problem:
    """One finding of :meth:`ResultStore.check`."""

    kind: str
    path: str
    detail: str


@dataclass
class CheckReport:
    """What :meth:`ResultStore.check` found, and what it repaired."""

    results: int = 0
    problems: list[Problem] = field(default_factory=list)
    fixed: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is left to report."""
        return not self.problems


class _Existing:
    """The result currently stored under an ID, read lazily while its short lock is held."""

    def __init__(self, store: ResultStore, result_id: str, parts: tuple[str, ...]) -> None:
        self._store = store
        self._result_id = result_id
        self._parts = parts
        self.stat = store._result_stat(parts)
        self._stored: StoredResult | None = None

    @property
    def exists(self) -> bool:
        return self.stat is not None

    def read(self) -> StoredResult:
        if self._stored is None:
            self._stored = self._store._read(self._result_id, self._parts)
        return self._stored


#: Builds the canonical envelope to store, given what is stored now.
_Builder = Callable[[_Existing], tuple[Envelope, bytes]]


class ResultStore:
    """Typed results in a directory, shared safely by many processes and hosts."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        create_if_missing: bool = True,
        locks_dir: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        clock: Clock = utc_now,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        lock_timeout: float = DEFAULT_TIMEOUT,
        durable: bool = True,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        if not self.base_dir.is_dir():
            if self.base_dir.exists():
                raise StoreNotFoundError(f"store {self.base_dir} is not a directory")
            if not create_if_missing or read_only:
                raise StoreNotFoundError(f"store {self.base_dir} does not exist")
            self.base_dir.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        self.max_result_bytes = max_result_bytes
        self.durable = durable
        meta = self.base_dir / META_DIR
        self.locks_dir = Path(locks_dir).absolute() if locks_dir is not None else meta / "locks"
        leases_dir = meta / "leases"
        if not read_only:
            self.locks_dir.mkdir(parents=True, exist_ok=True)
            leases_dir.mkdir(parents=True, exist_ok=True)
        self.tree = BackingTree(self.base_dir)
        base = os.fstat(self.tree.base_fd)
        self._identity = (base.st_dev, base.st_ino)
        self.locks = StripedLocks(self.locks_dir, timeout=lock_timeout)
        self.leases = LeaseTable(leases_dir, self.locks, clock)

    def close(self) -> None:
        """Release the store's open directory descriptors."""
        self.tree.close()
        self.leases.close()

    def check_base(self) -> None:
        """Raise :class:`StoreReplacedError` if the store's path no longer names the directory
        this store opened (it was renamed, removed or replaced): writing on would put results
        where no one finds them."""
        try:
            st = os.stat(self.base_dir)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._identity:
            raise StoreReplacedError(
                f"store {self.base_dir} was removed or replaced by another directory while open; "
                "open it again (for a mount: unmount and mount again)"
            )

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.base_dir)!r})"

    # ----------------------------------------------------------------- paths

    def path_for(self, result_id: ResultId) -> Path:
        """The file a result is stored in (for messages and tools; the store never follows it)."""
        return self.base_dir / ids.id_to_relpath(result_id)

    @staticmethod
    def _file_parts(parts: tuple[str, ...]) -> tuple[str, ...]:
        return (*parts[:-1], parts[-1] + ids.SUFFIX)

    def _result_stat(self, parts: tuple[str, ...]) -> os.stat_result | None:
        """The stat of the result file, or None; anything but a regular file is refused."""
        try:
            st = self.tree.lstat(self._file_parts(parts))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(
                f"{self.tree.path(self._file_parts(parts))}: is a symlink; the store never follows links"
            )
        if not stat.S_ISREG(st.st_mode):
            raise CorruptResultError(
                f"{self.tree.path(self._file_parts(parts))}: not a regular file", result_id="/".join(parts)
            )
        return st

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(f"cannot {what}: store {self.base_dir} is open read-only")

    # ----------------------------------------------------------------- reading

    def _read(self, result_id: str, parts: tuple[str, ...]) -> StoredResult:
        file_parts = self._file_parts(parts)
        try:
            raw, st = self.tree.read_file(file_parts, self.max_result_bytes)
        except (FileNotFoundError, NotADirectoryError):
            raise ResultNotFoundError(
                f"no result found for ID {result_id!r} ({self.tree.path(file_parts)})", result_id=result_id
            ) from None
        except OSError as exc:
            if exc.errno == errno.EFBIG:
                raise ResultTooLargeError(
                    f"result {result_id!r} is larger than the limit of {self.max_result_bytes} bytes",
                    result_id=result_id,
                ) from exc
            raise
        where = f"result {result_id!r} ({self.tree.path(file_parts)})"
        return StoredResult(result_id, raw, envelope.decode(raw, where), st)

    def read(self, result_id: ResultId) -> StoredResult:
        """The stored bytes and decoded envelope of a result, without validating the data.

        Raises :class:`ResultNotFoundError`, :class:`CorruptResultError` (not an envelope),
        :class:`ResultTooLargeError` or :class:`UnsafePathError`.
        """
        parts = ids.id_parts(result_id)
        return self._read("/".join(parts), parts)

    def validate(
        self,
        stored: StoredResult,
        model_class: type[T] | None = None,
        namespace: str | None = None,
    ) -> T:
        """The model instance of a stored result, validated.

        The model is ``model_class`` if given, else the stored type looked up in ``namespace``
        (default: the stored namespace) and then in every namespace, as results_manager did.
        """
        env = stored.envelope
        cls: type[BaseModel]
        if model_class is not None:
            cls = model_class
        else:
            try:
                cls = registry.resolve_model(
                    env.model_type, namespace if namespace is not None else env.namespace
                )
            except ModelNotRegisteredError as exc:
                raise ModelNotRegisteredError(
                    f"result {stored.result_id!r}: {exc}", result_id=stored.result_id
                ) from None
        return cast(T, _validate(cls, env.data, stored.result_id))

    def get(
        self,
        result_id: ResultId,
        model_class: type[T] | None = None,
        namespace: str | None = None,
    ) -> T:
        """The result stored under ``result_id``, validated against its model."""
        return self.validate(self.read(result_id), model_class, namespace)

    def exists(self, result_id: ResultId) -> bool:
        """True if a result is stored under ``result_id``."""
        return self._result_stat(ids.id_parts(result_id)) is not None

    def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """Every stored ID, sorted; with ``prefix``, the result ``prefix`` and those below it.

        ``list_ids("a")`` means ``a`` and ``a/...``, never ``ab/...``.
        """
        return sorted(self.iter_ids(prefix))

    def iter_ids(self, prefix: ResultId | None = None) -> Iterator[str]:
        """The IDs of :meth:`list_ids`, unsorted, as the directory walk finds them.

        A string prefix ending in ``/`` means only what is below it, not the result itself.
        """
        parts: tuple[str, ...] = ()
        if prefix is not None:
            below_only = isinstance(prefix, str) and prefix.endswith("/") and prefix != "/"
            parts = ids.id_parts(prefix[:-1] if below_only else prefix)
            if not below_only and self._result_stat(parts) is not None:
                yield "/".join(parts)
            if not ids.is_valid_part(parts[-1], is_last=False):
                return  # "a.json" can name a result but not a directory
        yield from self._walk(list(parts))

    def _walk(self, parts: list[str]) -> Iterator[str]:
        try:
            dir_fd = self.tree.open_dir(parts)
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            return
        subdirs = []
        try:
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if ids.is_valid_part(name, is_last=False):
                            subdirs.append(name)
                    elif entry.is_file(follow_symlinks=False):
                        part = ids.result_name_to_part(name)
                        if part is not None:
                            yield "/".join([*parts, part])
        finally:
            os.close(dir_fd)
        for name in subdirs:
            yield from self._walk([*parts, name])

    # ----------------------------------------------------------------- writing

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
        holder: str | None = None,
    ) -> bool:
        """Store ``data`` under ``result_id``; True if written, False if left as it was.

        The model class must be registered (in ``namespace``, if given). ``holder`` (default:
        this thread's) must not be blocked by another holder's lease.
        """
        if not isinstance(data, BaseModel):
            raise TypeError(
                f"cannot store {type(data).__name__} as result {result_id!r}: not a pydantic model"
            )
        rid = ids.normalize_id(result_id)
        cls = type(data)
        if namespace is None:
            found = registry.find_model_namespace(cls, strict=strict_namespace)
            if found is None:
                raise ModelNotRegisteredError(
                    f"cannot store result {rid!r}: model {cls.__name__} is not registered "
                    "(decorate it with @register_model)",
                    result_id=rid,
                )
            namespace = found
        elif registry.get_model_class(cls.__name__, namespace) is not cls:
            raise ModelNotRegisteredError(
                f"cannot store result {rid!r}: model {cls.__name__} is not registered "
                f"in namespace {namespace!r}",
                result_id=rid,
            )
        env, raw = _canonical(data, namespace, rid)
        return self._commit(rid, lambda _existing: (env, raw), behavior, holder)

    def set_bytes(
        self,
        result_id: ResultId,
        raw: bytes,
        behavior: SetBehavior = SetBehavior.OVERWRITE,
        holder: str | None = None,
        *,
        lock_wait: float = 0.0,
        exclusive: bool = False,
        new_mode: int | None = None,
        new_owner: tuple[int, int] | None = None,
    ) -> bool:
        """Validate bytes written by a user and store their canonical envelope.

        ``raw`` is a full envelope, or the bare data object of the model of the result already
        stored under the ID. Raises :class:`CorruptResultError` (not JSON, not an object),
        :class:`ModelNotRegisteredError`, :class:`ResultValidationError`, and the errors of
        ``set``. ``lock_wait`` bounds the wait for another holder's lease; ``exclusive``
        (``O_EXCL``) refuses an existing result whatever ``behavior`` says. ``new_mode`` and
        ``new_owner`` apply to a newly created file.
        """
        rid = ids.normalize_id(result_id)
        if len(raw) > self.max_result_bytes:
            raise ResultTooLargeError(
                f"result {rid!r} is {len(raw)} bytes, over the limit of {self.max_result_bytes}",
                result_id=rid,
            )
        submitted = envelope.decode_submission(raw, f"result {rid!r}")

        def build(existing: _Existing) -> tuple[Envelope, bytes]:
            if isinstance(submitted, Envelope):
                model_type, namespace, data = submitted.model_type, submitted.namespace, submitted.data
                cls = registry.get_model_class(model_type, namespace)
                if cls is None:
                    elsewhere = [ns for ns, _ in registry.find_model_in_all_namespaces(model_type)]
                    hint = f" (it is registered in: {', '.join(elsewhere)})" if elsewhere else ""
                    raise ModelNotRegisteredError(
                        f"result {rid!r}: model type {model_type!r} is not registered in namespace "
                        f"{namespace!r}{hint}",
                        result_id=rid,
                    )
            else:
                if not existing.exists:
                    raise ResultValidationError(
                        f"result {rid!r}: bare data can only replace an existing result (its model "
                        'is unknown); write a full envelope {"model_type", "namespace", "data"}',
                        result_id=rid,
                    )
                stored = existing.read().envelope
                model_type, namespace, data = stored.model_type, stored.namespace, submitted
                cls = registry.resolve_model(model_type, namespace)
            return _canonical(_validate(cls, data, rid), namespace, rid)

        effective = SetBehavior.RAISE_IF_EXISTS if exclusive else _behavior(behavior)
        return self._commit(
            rid, build, effective, holder, lock_wait=lock_wait, new_mode=new_mode, new_owner=new_owner
        )

    def _commit(
        self,
        rid: str,
        build: _Builder,
        behavior: SetBehavior,
        holder: str | None,
        *,
        lock_wait: float = 0.0,
        new_mode: int | None = None,
        new_owner: tuple[int, int] | None = None,
    ) -> bool:
        self._check_writable(f"store result {rid!r}")
        behavior = _behavior(behavior)
        holder = holder or default_holder()
        parts = ids.id_parts(rid)
        deadline = time.monotonic() + lock_wait
        while True:
            with self.locks.hold(rid):
                blocking = self.leases.blocking_lease(rid, holder)
                if blocking is None:
                    existing = _Existing(self, rid, parts)
                    env, raw = build(existing)
                    if len(raw) > self.max_result_bytes:
                        raise ResultTooLargeError(
                            f"result {rid!r} is {len(raw)} bytes, over the limit of {self.max_result_bytes}",
                            result_id=rid,
                        )
                    if existing.exists and not self._should_replace(rid, behavior, existing, env):
                        return False
                    self._write(parts, raw, existing.stat, new_mode, new_owner)
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _locked_error(rid, blocking, f"store result {rid!r}")
            log.debug("result %r is leased by %r; waiting up to %.1fs", rid, blocking.holder, remaining)
            if not self.leases.wait(rid, remaining, holder):
                raise _locked_error(rid, blocking, f"store result {rid!r}")

    def _should_replace(self, rid: str, behavior: SetBehavior, existing: _Existing, new: Envelope) -> bool:
        if behavior is SetBehavior.OVERWRITE:
            return True
        if behavior is SetBehavior.SKIP_IF_EXISTS:
            return False
        if behavior is SetBehavior.RAISE_IF_EXISTS:
            raise ResultExistsError(f"a result is already stored under ID {rid!r}", result_id=rid)
        try:
            old = existing.read()
            same = _same_result(old.envelope, new, rid)
        except ResultsError:
            same = False
        if not same:
            raise ResultConflictError(f"a different result is already stored under ID {rid!r}", result_id=rid)
        return False

    def _write(
        self,
        parts: tuple[str, ...],
        raw: bytes,
        old: os.stat_result | None,
        new_mode: int | None,
        new_owner: tuple[int, int] | None,
    ) -> None:
        if old is not None:
            mode: int | None = stat.S_IMODE(old.st_mode)
            owner = (old.st_uid, old.st_gid) if os.geteuid() == 0 else None
        else:
            mode, owner = new_mode, new_owner
        name = parts[-1] + ids.SUFFIX
        for attempt in range(_DIRECTORY_RETRIES):
            try:
                with self.tree.directory(parts[:-1], create=True) as dir_fd:
                    atomic.replace_file(dir_fd, name, raw, mode=mode, owner=owner, durable=self.durable)
                return
            except FileNotFoundError:
                # A concurrent delete pruned our directory (or a parent) after we opened it.
                if attempt == _DIRECTORY_RETRIES - 1:
                    raise

    def delete(self, result_id: ResultId, holder: str | None = None, *, prune: bool = True) -> bool:
        """Delete a result; False if there was none. ``prune`` removes emptied parent directories."""
        rid = ids.normalize_id(result_id)
        self._check_writable(f"delete result {rid!r}")
        holder = holder or default_holder()
        parts = ids.id_parts(rid)
        with self.locks.hold(rid):
            blocking = self.leases.blocking_lease(rid, holder)
            if blocking is not None:
                raise _locked_error(rid, blocking, f"delete result {rid!r}")
            if self._result_stat(parts) is None:
                return False
            with self.tree.directory(parts[:-1]) as dir_fd:
                try:
                    os.unlink(parts[-1] + ids.SUFFIX, dir_fd=dir_fd)
                except FileNotFoundError:
                    return False
                if self.durable:
                    os.fsync(dir_fd)
        if prune and len(parts) > 1:
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

    def rename(
        self,
        old_id: ResultId,
        new_id: ResultId,
        behavior: SetBehavior = SetBehavior.OVERWRITE,
        holder: str | None = None,
    ) -> None:
        """Move a result to a new ID (its bytes unchanged), as ``mv a.json b.json`` does.

        An existing destination is replaced only under ``OVERWRITE`` (or ``RAISE_IF_DIFFERENT``
        with an equal result); otherwise :class:`ResultExistsError`. Leases on either ID held
        by another holder refuse the move.
        """
        old, new = ids.normalize_id(old_id), ids.normalize_id(new_id)
        self._check_writable(f"move result {old!r} to {new!r}")
        behavior = _behavior(behavior)
        holder = holder or default_holder()
        old_parts, new_parts = ids.id_parts(old), ids.id_parts(new)
        if old == new:
            if self._result_stat(old_parts) is None:
                raise ResultNotFoundError(f"no result found for ID {old!r}", result_id=old)
            return
        with self.locks.hold(old, new):
            for rid in (old, new):
                blocking = self.leases.blocking_lease(rid, holder)
                if blocking is not None:
                    raise _locked_error(rid, blocking, f"move result {old!r} to {new!r}")
            if self._result_stat(old_parts) is None:
                raise ResultNotFoundError(f"no result found for ID {old!r}", result_id=old)
            target = _Existing(self, new, new_parts)
            if target.exists and behavior is not SetBehavior.OVERWRITE:
                same = False
                if behavior is SetBehavior.RAISE_IF_DIFFERENT:
                    with suppress(ResultsError):
                        same = _same_result(self._read(old, old_parts).envelope, target.read().envelope, new)
                if not same:
                    raise ResultExistsError(
                        f"cannot move result {old!r} to {new!r}: a result is already stored there",
                        result_id=new,
                    )
            with (
                self.tree.directory(old_parts[:-1]) as src_fd,
                self.tree.directory(new_parts[:-1], create=True) as dst_fd,
            ):
                os.rename(
                    old_parts[-1] + ids.SUFFIX,
                    new_parts[-1] + ids.SUFFIX,
                    src_dir_fd=src_fd,
                    dst_dir_fd=dst_fd,
                )
                if self.durable:
                    os.fsync(dst_fd)
                    if old_parts[:-1] != new_parts[:-1]:
                        os.fsync(src_fd)

    def clear(self, holder: str | None = None) -> None:
        """Delete every result, safely alongside concurrent operations.

        Each result is deleted like :meth:`delete` does (under its lock, respecting leases);
        results leased by other holders are kept and reported in one
        :class:`ResultLockedError` at the end. Files that are not results are left alone.
        """
        self._check_writable("clear the store")
        locked = []
        for rid in self.list_ids():
            try:
                self.delete(rid, holder)
            except ResultLockedError:
                locked.append(rid)
        self.cleanup()
        if locked:
            raise ResultLockedError(
                f"cleared the store except {len(locked)} result(s) leased by other holders: "
                + ", ".join(repr(r) for r in locked[:10])
                + (" ..." if len(locked) > 10 else "")
            )

    # ----------------------------------------------------------------- leases

    def acquire_lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take a lease on a result (renewing our own); False if ``acquire_timeout`` ran out."""
        self._check_writable(f"lock result {result_id!r}")
        return self.leases.acquire(
            ids.normalize_id(result_id), holder or default_holder(), acquire_timeout, hold_timeout
        )

    def release_lock(self, result_id: ResultId, holder: str | None = None) -> None:
        """Give a lease back; :class:`LockNotHeldError` unless ``holder`` holds it."""
        self._check_writable(f"unlock result {result_id!r}")
        self.leases.release(ids.normalize_id(result_id), holder or default_holder())

    def is_locked(self, result_id: ResultId) -> bool:
        """True while anybody holds a live lease on the result."""
        return self.leases.is_locked(ids.normalize_id(result_id))

    def is_lock_holder(self, result_id: ResultId, holder: str | None = None) -> bool:
        """True while ``holder`` (default: this thread) holds a live lease on the result."""
        return self.leases.is_holder(ids.normalize_id(result_id), holder or default_holder())

    def wait_for_lock(self, result_id: ResultId, timeout: float | None = None) -> bool:
        """Wait until nobody holds a lease on the result; False if ``timeout`` passed first."""
        return self.leases.wait(ids.normalize_id(result_id), timeout)

    def lease(self, result_id: ResultId) -> Lease | None:
        """The live lease on the result, or None."""
        return self.leases.current(ids.normalize_id(result_id))

    @contextmanager
    def lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> Iterator[None]:
        """Hold a lease for the duration of a block."""
        self._check_writable(f"lock result {result_id!r}")
        with self.leases.hold(
            ids.normalize_id(result_id), holder or default_holder(), acquire_timeout, hold_timeout
        ):
            yield

    # ----------------------------------------------------------------- checking

    def cleanup(self) -> list[str]:
        """Remove abandoned temp files and dead lease records; return what was removed.

        Cheap compared with :meth:`check`: it lists directories but reads no result.
        """
        self._check_writable("clean up the store")
        removed: list[str] = []
        pending: list[list[str]] = [[]]
        while pending:
            parts = pending.pop()
            try:
                removed += self._remove_stale_temps(parts)
                with self.tree.directory(parts) as dir_fd, os.scandir(dir_fd) as entries:
                    for entry in entries:
                        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                            pending.append([*parts, entry.name])
            except (FileNotFoundError, NotADirectoryError, UnsafePathError):
                continue
        with suppress(FileNotFoundError, NotADirectoryError, UnsafePathError):
            # Lease records are written through temp files too.
            removed += self._remove_stale_temps([META_DIR, "leases"])
        removed += [f"{META_DIR}/leases: {rid}" for rid in self.leases.remove_dead()]
        return removed

    def check(self, fix: bool = False, *, validate: bool = True) -> CheckReport:
        """Walk the store and report what is not a healthy result; never deletes a result.

        Reports corrupt or invalid results, results of unregistered models, symlinks, files
        that are not results, abandoned temp files and dead lease records. ``fix`` removes
        abandoned temp files and dead lease records (the only things safe to remove).
        """
        report = CheckReport()
        self._check_dir([], report, fix=fix and not self.read_only, validate=validate)
        for name, rid in self.leases.dead_records():
            detail = f"expired lease on {rid!r}" if rid else "unreadable lease record"
            report.problems.append(Problem("dead-lease", f"{META_DIR}/leases/{name}", detail))
        if fix and not self.read_only:
            for removed in self.leases.remove_dead():
                report.fixed.append(Problem("dead-lease", removed, "removed"))
            report.problems = [p for p in report.problems if p.kind not in ("dead-lease", "stale-temp")]
        return report

    def _check_dir(self, parts: list[str], report: CheckReport, *, fix: bool, validate: bool) -> None:
        try:
            dir_fd = self.tree.open_dir(parts)
        except UnsafePathError as exc:
            report.problems.append(Problem("symlink", "/".join(parts), str(exc)))
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
                        report.problems.append(
                            Problem("symlink", rel, "symlinks are never followed or listed")
                        )
                    elif atomic.is_temp_name(entry.name):
                        st = entry.stat(follow_symlinks=False)
                        if atomic.is_stale_temp(entry.name, st.st_mtime, now):
                            problem = Problem("stale-temp", rel, "temp file of a writer that is gone")
                            if fix:
                                with suppress(FileNotFoundError):
                                    os.unlink(entry.name, dir_fd=dir_fd)
                                report.fixed.append(problem)
                            else:
                                report.problems.append(problem)
                    elif entry.is_dir(follow_symlinks=False):
                        if ids.is_valid_part(entry.name, is_last=False):
                            subdirs.append(entry.name)
                        else:
                            report.problems.append(
                                Problem("foreign", rel + "/", "directory that is not an ID prefix")
                            )
                    else:
                        part = ids.result_name_to_part(entry.name)
                        if part is None or not entry.is_file(follow_symlinks=False):
                            report.problems.append(Problem("foreign", rel, "file that is not a result"))
                            continue
                        report.results += 1
                        self._check_result("/".join([*parts, part]), rel, report, validate)
        finally:
            os.close(dir_fd)
        for name in subdirs:
            self._check_dir([*parts, name], report, fix=fix, validate=validate)

    def _check_result(self, rid: str, rel: str, report: CheckReport, validate: bool) -> None:
        try:
            stored = self.read(rid)
            if validate:
                self.validate(stored)
        except ModelNotRegisteredError as exc:
            report.problems.append(Problem("unregistered", rel, str(exc)))
        except ResultValidationError as exc:
            report.problems.append(Problem("invalid", rel, str(exc)))
        except (CorruptResultError, ResultTooLargeError, UnsafePathError) as exc:
            report.problems.append(Problem("corrupt", rel, str(exc)))
        except ResultNotFoundError:
            pass  # deleted while we looked


def _behavior(behavior: SetBehavior | str) -> SetBehavior:
    """Accept the enum or its value (``"overwrite"``); anything else is a clear error."""
    try:
        return SetBehavior(behavior)
    except ValueError:
        choices = ", ".join(b.value for b in SetBehavior)
        raise ValueError(f"unknown set behavior {behavior!r}; choose one of {choices}") from None


def _validate(cls: type[BaseModel], data: Any, rid: str) -> BaseModel:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(loc) for loc in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise ResultValidationError(
            f"result {rid!r}: data does not validate as {cls.__name__}: {details}{more}", result_id=rid
        ) from exc
    except RecursionError as exc:
        raise ResultValidationError(f"result {rid!r}: data nested too deeply", result_id=rid) from exc


def _canonical(model: BaseModel, namespace: str, rid: str) -> tuple[Envelope, bytes]:
    """The envelope and bytes that store ``model``, refused unless they read back the same.

    What is stored must validate back to the same field values (as ``model_dump`` sees
    them, so fields excluded from dumps do not count): a model whose JSON form is lossy (NaN,
    a UTC offset with seconds, a serializer that does not invert its validator) would
    otherwise change, or fail, on the way back.
    """
    try:
        env, raw = envelope.encode_model(model, namespace)
    except ValueError as exc:
        raise ResultValidationError(
            f"result {rid!r}: data is not representable in JSON: {exc}", result_id=rid
        ) from exc
    back = _validate(type(model), env.data, rid)
    if back.model_dump() != model.model_dump():
        raise ResultValidationError(
            f"result {rid!r}: {type(model).__name__} does not survive a JSON round trip unchanged",
            result_id=rid,
        )
    return env, raw


def _same_result(old: Envelope, new: Envelope, rid: str) -> bool:
    """True if two envelopes hold the same result: type, namespace and data (after validation)."""
    if (old.model_type, old.namespace) != (new.model_type, new.namespace):
        return False
    if old.data == new.data:
        return True
    cls = registry.resolve_model(new.model_type, new.namespace)
    try:
        return bool(_validate(cls, old.data, rid).model_dump(mode="json") == new.data)
    except ResultValidationError:
        return False


def _locked_error(rid: str, lease: Lease | None, what: str) -> ResultLockedError:
    if lease is None:
        return ResultLockedError(f"cannot {what}: result is leased by another holder", result_id=rid)
    until = lease.expires.to_iso8601_string() if lease.expires is not None else "it is released"
    return ResultLockedError(f"cannot {what}: leased by {lease.holder!r} until {until}", result_id=rid)


class FileBackend(ResultStore):
    """results_manager's name for the store: ``FileBackend(base_dir, create_if_missing, locks_dir)``."""
