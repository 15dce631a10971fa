"""The store: every decision about results, above whichever backend keeps them.

:class:`ResultStore` validates results against the registry on the way in and out, stores
the canonical envelope (:mod:`resultsfs.envelope`), applies the set behaviours, checks leases
(waiting a bounded time for them where asked), enforces the size limit, and caches
validation verdicts per stored version. It is the only API the managers, the CLI and the
mount call. Backends (:mod:`resultsfs.backends`) only persist; each change here is one
backend transaction over the IDs it touches, so a check and the change it allows are one
step for every process and host.
"""

from __future__ import annotations

import enum
import errno
import functools
import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from resultsfs import envelope, ids, registry
from resultsfs.backends import open_backend
from resultsfs.backends.base import NO_CHANGE, Listing, Meta, MetaChange, ResultsBackend, Transaction, Version
from resultsfs.envelope import Envelope
from resultsfs.errors import (
    CorruptResultError,
    LockNotHeldError,
    LockTimeoutError,
    ModelNotRegisteredError,
    ReadOnlyStoreError,
    ResultConflictError,
    ResultExistsError,
    ResultLockedError,
    ResultNotFoundError,
    ResultsError,
    ResultTooLargeError,
    ResultValidationError,
    UnsafePathError,
)
from resultsfs.ids import ResultId
from resultsfs.leases import Lease, backoff, check_timeout, deadline_after, default_holder
from resultsfs.verdicts import VerdictLog

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

log = logging.getLogger(__name__)

#: Results larger than this are refused (configurable per store): a result is a record, not a
#: data set, and a mount keeps a result being written in a buffer.
DEFAULT_MAX_RESULT_BYTES = 64 * 1024 * 1024

#: How many validation verdicts a store remembers.
VERDICT_CACHE_SIZE = 100_000


class SetBehavior(str, enum.Enum):
    """What ``set`` does when a result is already stored under the ID."""

    #: Refuse with :class:`ResultExistsError`.
    RAISE_IF_EXISTS = "raise_if_exists"
    #: Leave the stored result untouched and return False.
    SKIP_IF_EXISTS = "skip_if_exists"
    #: Refuse with :class:`ResultConflictError` unless type, namespace and data are equal;
    #: equal data leaves the result untouched and returns False.
    RAISE_IF_DIFFERENT = "raise_if_different"
    #: Replace it.
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class StoredResult:
    """A result as stored: exact bytes, decoded envelope, and its metadata."""

    result_id: str
    raw: bytes
    envelope: Envelope
    meta: Meta


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


@dataclass
class CopyReport:
    """What :meth:`ResultStore.copy_to` did, result by result."""

    copied: list[str] = field(default_factory=list)
    #: Results the target already had and kept (``SKIP_IF_EXISTS``, or equal under ``RAISE_IF_DIFFERENT``).
    kept: list[str] = field(default_factory=list)
    #: ``(ID, reason)`` of every result that could not be copied.
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Binding:
    """A directory's model: bare data written below ``prefix`` becomes a ``namespace:model_type`` result."""

    #: The ID prefix (a directory; ``""`` is the whole store).
    prefix: str
    namespace: str
    model_type: str

    @property
    def model(self) -> str:
        """``namespace:model_type``, as users write it."""
        return registry.model_ref(self.namespace, self.model_type)


@dataclass(frozen=True)
class Verdict:
    """What validating one stored version found: its model (if it decodes) and the error, if any.

    Kept small (no data): a mount remembers one per version read, for every result.
    """

    #: ``(namespace, model_type)`` of the envelope, or ``None`` if it does not decode.
    model: tuple[str, str] | None
    error: str | None


class _LeaseBlockedError(Exception):
    """Inside a transaction: another holder's live lease stops the change."""

    def __init__(self, rid: str, lease: Lease) -> None:
        super().__init__(rid)
        self.rid = rid
        self.lease = lease


class _Existing:
    """The result currently stored under an ID, read lazily inside a transaction."""

    def __init__(self, txn: Transaction, rid: str, limit: int) -> None:
        self._txn = txn
        self._rid = rid
        self._limit = limit
        self.meta = txn.meta(rid)
        self._envelope: Envelope | None = None

    @property
    def exists(self) -> bool:
        return self.meta is not None

    def envelope(self) -> Envelope:
        if self._envelope is None:
            raw = _read_limited(lambda: self._txn.read(self._rid, self._limit), self._rid, self._limit)
            if raw is None:
                raise _not_found(self._rid)
            self._envelope = envelope.decode(raw, f"result {self._rid!r}")
        return self._envelope


#: Builds the canonical envelope to store, given what is stored now.
_Builder = Callable[[_Existing], tuple[Envelope, bytes]]


class ResultStore:
    """Typed results in a backend, shared safely by many processes and hosts.

    ``backend`` is a :class:`ResultsBackend`, or a path or URL that names one
    (``/data/results``, ``sqlite:///data/results.db``, ``postgresql://...``).
    """

    def __init__(
        self,
        backend: ResultsBackend | str | os.PathLike[str],
        *,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        create_if_missing: bool = True,
        read_only: bool = False,
    ) -> None:
        if not isinstance(backend, ResultsBackend):
            backend = open_backend(backend, create_if_missing=create_if_missing, read_only=read_only)
        self.backend = backend
        self.max_result_bytes = max_result_bytes
        self._verdicts: dict[bytes, Verdict] = {}
        #: Where verdicts outlive this store object (a mount sets one with :meth:`keep_verdicts`).
        self.verdict_log: VerdictLog | None = None
        #: True once every kept verdict is in memory: a miss then needs no look in the log.
        self._verdicts_loaded = False
        self._verdicts_lock = threading.Lock()

    @property
    def read_only(self) -> bool:
        """True if the backend was opened read-only."""
        return self.backend.read_only

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({self.backend!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_store, (self.backend, self.max_result_bytes))

    def location(self, result_id: ResultId) -> str:
        """Where a result lives, for messages and tools (a file path, ``URL#id``)."""
        return self.backend.location(ids.normalize_id(result_id))

    def check_alive(self) -> None:
        """Raise :class:`StoreReplacedError` if the backend's storage moved away (see the backend)."""
        self.backend.check_alive()

    def _check_writable(self, what: str) -> None:
        if self.backend.read_only:
            raise ReadOnlyStoreError(f"cannot {what}: store {self.backend.url} is open read-only")

    # ----------------------------------------------------------------- reading

    def read(self, result_id: ResultId) -> StoredResult:
        """The stored bytes and decoded envelope of a result, without validating the data.

        Raises :class:`ResultNotFoundError`, :class:`CorruptResultError` (not an envelope),
        :class:`ResultTooLargeError` or :class:`UnsafePathError`.
        """
        rid = ids.normalize_id(result_id)
        found = _read_limited(
            lambda: self.backend.read(rid, self.max_result_bytes), rid, self.max_result_bytes
        )
        if found is None:
            raise _not_found(rid, f" ({self.backend.location(rid)})")
        raw, meta = found
        where = f"result {rid!r} ({self.backend.location(rid)})"
        return StoredResult(rid, raw, envelope.decode(raw, where), meta)

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
        return self.backend.has(ids.normalize_id(result_id))

    def meta(self, result_id: ResultId) -> Meta | None:
        """The metadata of a stored result (size, mode, owner, times), or ``None``."""
        return self.backend.meta(ids.normalize_id(result_id))

    def open(self, result_id: ResultId) -> Version | None:
        """A result's current version opened for reading (it never changes under the reader), or ``None``."""
        return self.backend.open(ids.normalize_id(result_id))

    def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """Every stored ID, sorted; with ``prefix``, the result ``prefix`` and those below it.

        ``list_ids("a")`` means ``a`` and ``a/...``, never ``ab/...``.
        """
        return sorted(self.iter_ids(prefix))

    def iter_ids(self, prefix: ResultId | None = None) -> Iterator[str]:
        """The IDs of :meth:`list_ids`, unsorted, as the backend finds them.

        A string prefix ending in ``/`` means only what is below it, not the result itself.
        """
        # Not a generator: the backend's iterator is handed on as it is, so that list_ids
        # sorts 100,000 IDs without a Python frame per ID.
        parts: tuple[str, ...] = ()
        head: list[str] = []
        if prefix is not None:
            below_only = isinstance(prefix, str) and prefix.endswith("/") and prefix != "/"
            parts = ids.id_parts(prefix[:-1] if below_only else prefix)
            if not below_only and self.backend.meta("/".join(parts)) is not None:
                head.append("/".join(parts))
            if not ids.is_valid_part(parts[-1], is_last=False):
                return iter(head)  # "a.json" can name a result but not a directory
        found = self.backend.scan(parts)
        return itertools.chain(head, found) if head else iter(found)

    # ----------------------------------------------------------------- verdicts

    def verdict(self, rid: str, version: Version) -> Verdict:
        """Whether one stored version decodes and validates, remembered per version.

        Reading an unchanged result again costs no validation. Raises
        :class:`ResultTooLargeError` for a version over the size limit.
        """
        # A 16-byte digest of the ID and the version, not the pair itself: a mount that has read
        # 100,000 results keeps this cache small (collisions are as likely as for a SHA-1).
        key = hashlib.blake2b(repr((rid, version.meta.version)).encode(), digest_size=16).digest()
        with self._verdicts_lock:
            found = self._verdicts.get(key)
        if found is not None:
            return found
        if self.verdict_log is not None and not self._verdicts_loaded:
            kept = self.verdict_log.get(key)
            if kept is not None:
                found = _valid_verdict(kept[0]) if kept[1] is None and kept[0] is not None else Verdict(*kept)
                with self._verdicts_lock:
                    self._verdicts[key] = found
                return found
        raw = _read_limited(lambda: version.read_all(self.max_result_bytes), rid, self.max_result_bytes)
        assert raw is not None
        try:
            stored = StoredResult(rid, raw, envelope.decode(raw, f"result {rid!r}"), version.meta)
        except CorruptResultError as exc:
            verdict = Verdict(None, str(exc))
        else:
            model = (stored.envelope.namespace, stored.envelope.model_type)
            try:
                self.validate(stored)
                verdict = _valid_verdict(model)
            except ResultsError as exc:
                verdict = Verdict(model, str(exc))
        log.debug("result %r: validated version %s: %s", rid, version.meta.version, verdict.error or "valid")
        with self._verdicts_lock:
            if len(self._verdicts) >= VERDICT_CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        if self.verdict_log is not None:
            self.verdict_log.put(key, verdict.model, verdict.error)
        return verdict

    def keep_verdicts(self, log_: VerdictLog) -> None:
        """Keep verdicts in ``log_`` across instances (mounts), starting with those it holds."""
        self.verdict_log = log_
        kept, complete = log_.load(VERDICT_CACHE_SIZE)
        with self._verdicts_lock:
            for key, model, error in kept:
                self._verdicts[key] = (
                    _valid_verdict(model) if error is None and model is not None else Verdict(model, error)
                )
        self._verdicts_loaded = complete

    def model_of(self, result_id: ResultId) -> tuple[str, str] | None:
        """``(namespace, model_type)`` of a stored result if it decodes (from the verdict cache
        when unchanged), else ``None``."""
        rid = ids.normalize_id(result_id)
        try:
            version = self.backend.open(rid)
        except (OSError, ResultsError):
            return None
        if version is None:
            return None
        with version:
            try:
                return self.verdict(rid, version).model
            except (OSError, ResultsError):
                return None

    def envelope_of(self, result_id: ResultId) -> Envelope | None:
        """The envelope of a stored result if it decodes, else ``None`` (it is not validated)."""
        rid = ids.normalize_id(result_id)
        try:
            found = self.backend.read(rid, self.max_result_bytes)
            return envelope.decode(found[0], f"result {rid!r}") if found is not None else None
        except (OSError, ResultsError):
            return None

    # ----------------------------------------------------------------- writing

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior | str = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
        holder: str | None = None,
    ) -> bool:
        """Store ``data`` under ``result_id``; True if written, False if left as it was.

        The model class must be registered (in ``namespace``, if given). ``holder`` (default:
        this thread's or task's) must not be blocked by another holder's lease.
        """
        if not isinstance(data, BaseModel):
            raise TypeError(
                f"cannot store {type(data).__name__} as result {result_id!r}: not a pydantic model"
            )
        rid = ids.normalize_id(result_id)
        cls = type(data)
        if namespace is None:
            try:
                found = registry.find_model_namespace(cls, strict=strict_namespace)
            except ResultsError as exc:
                raise type(exc)(
                    f"Cannot automatically determine namespace for {cls.__name__} when saving to "
                    f"{rid!r}: {exc}",
                    result_id=rid,
                ) from exc
            if found is None:
                raise ModelNotRegisteredError(
                    f"cannot store result {rid!r}: model {cls.__name__} is not registered "
                    "(decorate it with @register_model)",
                    result_id=rid,
                )
            namespace = found
        elif registry.get_model_class(cls.__name__, namespace) is not cls:
            raise ModelNotRegisteredError(
                f"cannot store result {rid!r}: model {cls.__name__} is not registered in namespace "
                f"{namespace!r}",
                result_id=rid,
            )
        env, raw = _canonical(data, namespace, rid)
        return self._commit(rid, lambda _existing: (env, raw), _behavior(behavior), holder)

    def set_bytes(
        self,
        result_id: ResultId,
        raw: bytes,
        behavior: SetBehavior | str = SetBehavior.OVERWRITE,
        holder: str | None = None,
        *,
        lock_wait: float = 0.0,
        exclusive: bool = False,
        change: MetaChange = NO_CHANGE,
        replace_meta: bool = False,
        merge: bool = False,
        model: str | None = None,
    ) -> bool:
        """Validate bytes written by a user and store them.

        ``raw`` is a full envelope ``{"model_type", "namespace", "data"}``, or *bare data*: the
        data object alone. Bare data replaces the data of the result stored under the ID (in
        its model), or makes a new result of the model its directory is bound to
        (:meth:`bind`). A replacement must not lose what the result has: a field it leaves
        out must come back as the value stored now (its default, say), otherwise it is
        refused. With ``merge``, the data (bare, or an envelope's) is a JSON Merge Patch
        (RFC 7386) applied to the stored data: objects merge, ``null`` removes a field.
        ``model`` (``"namespace:Model"``) names the model of bare data, for a new result in any
        directory; a stored result, or an envelope, of another model is then refused.

        A full envelope whose values validation left exactly as they were is stored as
        written (the writer's layout: ``cmp`` after ``cp`` holds, and ``rsync`` sees the same
        size); otherwise, and for bare data, the canonical envelope is stored. Raises
        :class:`CorruptResultError` (not JSON, not an object), :class:`ModelNotRegisteredError`,
        :class:`ResultValidationError`, and the errors of ``set``. ``lock_wait`` bounds the
        wait for another holder's lease; ``exclusive`` (``O_EXCL``) refuses an existing result
        whatever ``behavior`` says. ``change`` is the metadata of a new result; with
        ``replace_meta`` it also replaces an existing result's mode and owner (a rename onto
        it: the replacement brings its own).
        """
        rid = ids.normalize_id(result_id)
        check_timeout("lock_wait", lock_wait, allow_none=False)
        if len(raw) > self.max_result_bytes:
            raise ResultTooLargeError(
                f"result {rid!r} is {len(raw)} bytes, over the limit of {self.max_result_bytes}",
                result_id=rid,
            )
        submitted = envelope.decode_submission(raw, f"result {rid!r}")
        parent = rid.rpartition("/")[0]
        named = registry.parse_model_ref(model) if model is not None else None
        if named is not None and isinstance(submitted, Envelope):
            _check_named(rid, named, (submitted.namespace, submitted.model_type), stored=False)
        bound = None
        if named is not None:
            bound = Binding(parent, *named)
        elif not isinstance(submitted, Envelope):
            bound = self.binding(parent)

        def build(existing: _Existing) -> tuple[Envelope, bytes]:
            stored = (
                existing.envelope()
                if existing.exists and (merge or not isinstance(submitted, Envelope))
                else None
            )
            if isinstance(submitted, Envelope):
                model_type, namespace, data = submitted.model_type, submitted.namespace, submitted.data
                cls = _registered(model_type, namespace, rid)
                if stored is not None:
                    if (stored.model_type, stored.namespace) != (model_type, namespace):
                        theirs = registry.model_ref(stored.namespace, stored.model_type)
                        raise ResultValidationError(
                            f"result {rid!r}: cannot merge a {registry.model_ref(namespace, model_type)} "
                            f"envelope into a {theirs} result",
                            result_id=rid,
                        )
                    data = envelope.merge_patch(stored.data, data)
            elif stored is not None:
                model_type, namespace = stored.model_type, stored.namespace
                if named is not None:
                    _check_named(rid, named, (namespace, model_type), stored=True)
                data = envelope.merge_patch(stored.data, submitted) if merge else submitted
                cls = registry.resolve_model(model_type, namespace)
            elif bound is not None:
                model_type, namespace, data = bound.model_type, bound.namespace, submitted
                cls = _registered(model_type, namespace, rid)
            else:
                raise ResultValidationError(
                    f"result {rid!r}: bare data (an object without model_type) names no model, and "
                    f"directory {parent or '/'!r} is not bound to one. Bind it (resultsfs bind, or setfattr "
                    "-n user.results.model -v NAMESPACE:Model DIR), name the model (resultsfs put --model "
                    'NAMESPACE:Model), or write a full envelope {"model_type", "namespace", "data"}',
                    result_id=rid,
                )
            env, canonical = _canonical(_validate(cls, data, rid), namespace, rid)
            if stored is not None and not merge and isinstance(submitted, dict):
                _check_nothing_lost(rid, submitted, stored.data, env.data)
            if (
                isinstance(submitted, Envelope)
                and not merge
                and envelope.same_as_written(raw, submitted, env)
            ):
                return env, raw  # validation changed nothing: keep the writer's own bytes
            return env, canonical

        effective = SetBehavior.RAISE_IF_EXISTS if exclusive else _behavior(behavior)
        return self._commit(
            rid, build, effective, holder, lock_wait=lock_wait, change=change, replace_meta=replace_meta
        )

    def _commit(
        self,
        rid: str,
        build: _Builder,
        behavior: SetBehavior,
        holder: str | None,
        *,
        lock_wait: float = 0.0,
        change: MetaChange = NO_CHANGE,
        replace_meta: bool = False,
    ) -> bool:
        self._check_writable(f"store result {rid!r}")

        def commit(txn: Transaction) -> bool:
            existing = _Existing(txn, rid, self.max_result_bytes)
            if existing.exists and behavior is SetBehavior.RAISE_IF_EXISTS:
                self._should_replace(rid, behavior, existing, None)  # raises: nothing to validate first
            env, raw = build(existing)
            if len(raw) > self.max_result_bytes:
                raise ResultTooLargeError(
                    f"result {rid!r} is {len(raw)} bytes, over the limit of {self.max_result_bytes}",
                    result_id=rid,
                )
            if existing.exists and not self._should_replace(rid, behavior, existing, env):
                return False
            # A new result gets ``change``; an existing one keeps its metadata (an in-place write)
            # unless the replacement brings its own (a rename onto it).
            applied = change if replace_meta or not existing.exists else NO_CHANGE
            txn.write(rid, raw, applied, keep_meta=not replace_meta)
            return True

        return self._change([rid], holder, lock_wait, f"store result {rid!r}", commit)

    def _should_replace(
        self, rid: str, behavior: SetBehavior, existing: _Existing, new: Envelope | None
    ) -> bool:
        if behavior is SetBehavior.OVERWRITE:
            return True
        if behavior is SetBehavior.SKIP_IF_EXISTS:
            return False
        if behavior is SetBehavior.RAISE_IF_EXISTS:
            raise ResultExistsError(
                f"Data already exists for ID: {rid} (a result is already stored under ID {rid!r})",
                result_id=rid,
            )
        assert new is not None  # RAISE_IF_DIFFERENT is decided once the new result is built
        try:
            same = _same_result(existing.envelope(), new, rid)
        except ResultsError:
            same = False
        if not same:
            raise ResultConflictError(
                f"Different data already exists for ID: {rid} (a different result is already stored under "
                f"ID {rid!r})",
                result_id=rid,
            )
        return False

    def _change(
        self,
        rids: Sequence[str],
        holder: str | None,
        lock_wait: float,
        what: str,
        operation: Callable[[Transaction], R],
    ) -> R:
        """Run ``operation`` in one transaction over ``rids`` once no other holder leases any of
        them, waiting up to ``lock_wait`` seconds for such leases to end."""
        holder = holder or default_holder()
        deadline = time.monotonic() + lock_wait

        def guarded(txn: Transaction) -> R:
            for rid in rids:
                lease = txn.lease(rid)
                if lease is not None and lease.is_live(txn.now) and lease.holder != holder:
                    raise _LeaseBlockedError(rid, lease)
            return operation(txn)

        while True:
            try:
                return self.backend.atomically(rids, guarded)
            except _LeaseBlockedError as blocked:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    log.debug(
                        "%r is leased by %r; waiting up to %.1fs",
                        blocked.rid,
                        blocked.lease.holder,
                        remaining,
                    )
                if remaining <= 0 or not self.wait_for_leases(blocked.rid, remaining, holder):
                    raise _locked_error(blocked.rid, self.lease(blocked.rid) or blocked.lease, what) from None

    def delete(
        self, result_id: ResultId, holder: str | None = None, *, prune: bool = True, lock_wait: float = 0.0
    ) -> bool:
        """Delete a result; False if there was none. ``prune`` removes emptied parent directories."""
        rid = ids.normalize_id(result_id)
        self._check_writable(f"delete result {rid!r}")
        return self._change(
            [rid],
            holder,
            lock_wait,
            f"delete result {rid!r}",
            lambda txn: txn.delete(rid, keep_parents=not prune),
        )

    def rename(
        self,
        old_id: ResultId,
        new_id: ResultId,
        behavior: SetBehavior | str = SetBehavior.OVERWRITE,
        holder: str | None = None,
        *,
        lock_wait: float = 0.0,
    ) -> None:
        """Move a result to a new ID (its bytes and metadata unchanged), as ``mv a.json b.json`` does.

        An existing destination is replaced only under ``OVERWRITE`` (or ``RAISE_IF_DIFFERENT``
        with an equal result); otherwise :class:`ResultExistsError`. Leases on either ID held
        by another holder refuse the move.
        """
        old, new = ids.normalize_id(old_id), ids.normalize_id(new_id)
        self._check_writable(f"move result {old!r} to {new!r}")
        chosen = _behavior(behavior)
        if old == new:
            if not self.exists(old):
                raise _not_found(old)
            return

        def move(txn: Transaction) -> None:
            if txn.meta(old) is None:
                raise _not_found(old)
            target = _Existing(txn, new, self.max_result_bytes)
            if target.exists and chosen is not SetBehavior.OVERWRITE:
                same = False
                if chosen is SetBehavior.RAISE_IF_DIFFERENT:
                    source = _Existing(txn, old, self.max_result_bytes)
                    try:
                        same = _same_result(source.envelope(), target.envelope(), new)
                    except ResultsError:
                        same = False
                if not same:
                    raise ResultExistsError(
                        f"cannot move result {old!r} to {new!r}: a result is already stored there",
                        result_id=new,
                    )
            txn.move(old, new)

        self._change([old, new], holder, lock_wait, f"move result {old!r} to {new!r}", move)

    def take(
        self,
        result_id: ResultId,
        sink: Callable[[bytes, Meta], None],
        holder: str | None = None,
        *,
        lock_wait: float = 0.0,
    ) -> None:
        """Move a result out of the store (``mv x.json x.json~``): give its bytes and metadata to
        ``sink``, then delete it, in one transaction.

        Nothing is deleted unless ``sink`` returned, and what is deleted is exactly what
        ``sink`` received: no commit can land in between.
        """
        rid = ids.normalize_id(result_id)
        self._check_writable(f"move result {rid!r} out of the store")

        def take(txn: Transaction) -> None:
            meta = txn.meta(rid)
            raw = _read_limited(lambda: txn.read(rid, self.max_result_bytes), rid, self.max_result_bytes)
            if meta is None or raw is None:
                raise _not_found(rid)
            sink(raw, meta)
            txn.delete(rid, keep_parents=True)

        self._change([rid], holder, lock_wait, f"move result {rid!r} out of the store", take)

    def set_meta(self, result_id: ResultId, change: MetaChange) -> None:
        """Change a result's mode, owner or times (leases do not cover metadata)."""
        rid = ids.normalize_id(result_id)
        self._check_writable(f"change the metadata of result {rid!r}")

        def apply(txn: Transaction) -> None:
            if txn.meta(rid) is None:
                raise _not_found(rid)
            txn.set_meta(rid, change)

        self.backend.atomically([rid], apply)

    def clear(self, holder: str | None = None) -> None:
        """Delete every result, safely alongside concurrent operations.

        Each result is deleted like :meth:`delete` does (in its own transaction, respecting
        leases); results leased by other holders are kept and reported in one
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

    def copy_to(
        self,
        target: ResultStore,
        behavior: SetBehavior | str = SetBehavior.RAISE_IF_EXISTS,
        *,
        prefix: ResultId | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> CopyReport:
        """Copy every result (below ``prefix``) into ``target``, which may be any backend.

        Each result is validated on its way in, as every write is (its model must be
        registered), and keeps its bytes, mode and times. One result that cannot be copied
        (invalid, unregistered, already there under ``RAISE_IF_EXISTS``, leased in the target)
        is reported and the copy goes on. ``progress`` is called with (done, total).
        """
        chosen = _behavior(behavior)
        report = CopyReport()
        found = self.list_ids(prefix)
        for done, rid in enumerate(found, 1):
            try:
                stored = self.read(rid)
                change = MetaChange(mode=stored.meta.mode, times=(stored.meta.atime_ns, stored.meta.mtime_ns))
                written = target.set_bytes(rid, stored.raw, chosen, change=change)
            except ResultsError as exc:
                report.failed.append((rid, str(exc)))
            else:
                (report.copied if written else report.kept).append(rid)
            if progress is not None:
                progress(done, len(found))
        return report

    # ----------------------------------------------------------------- directories

    def listdir(self, parts: Sequence[str]) -> Listing | None:
        """The result names and subdirectories of directory ``parts`` (``()``: the root), or ``None``."""
        return self.backend.listdir(tuple(parts))

    def dir_meta(self, parts: Sequence[str]) -> Meta | None:
        """The metadata of directory ``parts``, or ``None`` if there is none."""
        return self.backend.dir_meta(tuple(parts))

    def mkdir(self, parts: Sequence[str], change: MetaChange = NO_CHANGE) -> None:
        """Create directory ``parts`` (an ID prefix) in the store."""
        shown = "/".join(parts)
        self._check_writable(f"create directory {shown!r}")
        for index, part in enumerate(parts):
            ids.check_part(part, is_last=False, shown=shown)
            del index
        self.backend.mkdir(tuple(parts), change)

    def rmdir(self, parts: Sequence[str]) -> None:
        """Remove empty directory ``parts``."""
        self._check_writable(f"remove directory {'/'.join(parts)!r}")
        self.backend.rmdir(tuple(parts))

    def set_dir_meta(self, parts: Sequence[str], change: MetaChange) -> None:
        """Change a directory's mode, owner or times."""
        self._check_writable(f"change the metadata of directory {'/'.join(parts)!r}")
        self.backend.set_dir_meta(tuple(parts), change)

    def rename_dir(self, old: Sequence[str], new: Sequence[str], holder: str | None = None) -> None:
        """Move directory ``old``, with every result below it, to ``new`` (``mv dir1 dir2``).

        A lease of another holder on any result below refuses the move. ``new`` may be an
        empty directory (it is replaced), else ``OSError(ENOTEMPTY)``. Bindings at and below
        ``old`` move with it.
        """
        old, new = tuple(old), tuple(new)
        shown = f"directory {'/'.join(old)!r} to {'/'.join(new)!r}"
        self._check_writable(f"move {shown}")
        for part in new:
            ids.check_part(part, is_last=False, shown="/".join(new))
        if new[: len(old)] == old:
            raise OSError(errno.EINVAL, f"cannot move {shown}: a directory cannot move into itself")
        below = sorted(self.backend.scan(old))
        self._change(below, holder, 0.0, f"move {shown}", lambda txn: txn.move_dir(old, new))
        self._move_bindings("/".join(old), "/".join(new))

    # ----------------------------------------------------------------- bindings

    def bind(self, prefix: ResultId | None, model: type[BaseModel] | str) -> Binding:
        """Name the model of bare data written below directory ``prefix`` (``None``: the store).

        ``model`` is a registered class or ``"namespace:Model"`` (``"Model"``: the default
        namespace). The binding is kept in the store (other processes, hosts and later mounts
        see it) and inherited by subdirectories, down to one bound to another model. The
        directory need not exist yet. A full envelope of any model is still accepted below it.
        """
        where = _prefix(prefix)
        self._check_writable(f"bind directory {where or '/'!r}")
        if isinstance(model, str):
            namespace, name = registry.parse_model_ref(model)
        else:
            found = registry.find_model_namespace(model)
            if found is None:
                raise ModelNotRegisteredError(
                    f"cannot bind directory {where or '/'!r}: model {model.__name__} is not registered"
                )
            namespace, name = found, model.__name__
        self.backend.set_binding(where, registry.model_ref(namespace, name))
        return Binding(where, namespace, name)

    def unbind(self, prefix: ResultId | None) -> Binding | None:
        """Remove directory ``prefix``'s own binding and return it (``None`` if it had none)."""
        where = _prefix(prefix)
        self._check_writable(f"unbind directory {where or '/'!r}")
        own = next((b for b in self.bindings() if b.prefix == where), None)
        if own is not None:
            self.backend.set_binding(where, None)
        return own

    def bindings(self) -> list[Binding]:
        """Every binding, sorted by prefix (models need not be registered in this process)."""
        found = []
        for where, model in sorted(self.backend.bindings().items()):
            namespace, _, name = model.rpartition(":")
            found.append(Binding(where, namespace, name))
        return found

    def binding(self, directory: ResultId | None) -> Binding | None:
        """The binding that applies in directory ``directory``: its own, or its nearest parent's."""
        where = _prefix(directory)
        by_prefix = {b.prefix: b for b in self.bindings()}
        parts = where.split("/") if where else []
        for depth in range(len(parts), -1, -1):
            found = by_prefix.get("/".join(parts[:depth]))
            if found is not None:
                return found
        return None

    def _move_bindings(self, old: str, new: str) -> None:
        for found in self.bindings():
            if found.prefix == old or found.prefix.startswith(old + "/"):
                self.backend.set_binding(new + found.prefix[len(old) :], found.model)
                self.backend.set_binding(found.prefix, None)

    # ----------------------------------------------------------------- leases

    def acquire_lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
        *,
        process: str | None = None,
    ) -> bool:
        """Take a lease on a result (renewing our own); False if ``acquire_timeout`` ran out.

        ``acquire_timeout``: seconds to wait (``None``: forever; ``0``: try once).
        ``hold_timeout``: the lease's lifetime in seconds (``None``: until released).
        """
        rid = ids.normalize_id(result_id)
        self._check_writable(f"lock result {rid!r}")
        check_timeout("acquire_timeout", acquire_timeout)
        check_timeout("hold_timeout", hold_timeout, allow_zero=False)
        holder = holder or default_holder()

        def acquire(txn: Transaction) -> bool:
            lease = txn.lease(rid)
            if lease is not None and lease.is_live(txn.now) and lease.holder != holder:
                return False
            txn.put_lease(rid, holder, hold_timeout, process)
            return True

        return any(self.backend.atomically([rid], acquire) for _ in backoff(deadline_after(acquire_timeout)))

    def renew_lock(self, result_id: ResultId, holder: str, hold_timeout: float) -> bool:
        """Extend ``holder``'s live lease to ``hold_timeout`` seconds from now; False if it has none.

        Unlike :meth:`acquire_lock`, never takes a lease that is free: a lease that expired or
        was broken (``unlock --force``) stays lost, so a heartbeat cannot undo a break.
        """
        rid = ids.normalize_id(result_id)
        self._check_writable(f"renew the lease on result {rid!r}")
        check_timeout("hold_timeout", hold_timeout, allow_none=False, allow_zero=False)

        def renew(txn: Transaction) -> bool:
            lease = txn.lease(rid)
            if lease is None or lease.holder != holder or not lease.is_live(txn.now):
                return False
            txn.put_lease(rid, holder, hold_timeout, lease.process)
            return True

        return self.backend.atomically([rid], renew)

    def release_lock(self, result_id: ResultId, holder: str | None = None) -> None:
        """Give a lease back; :class:`LockNotHeldError` unless ``holder`` holds it."""
        rid = ids.normalize_id(result_id)
        self._check_writable(f"unlock result {rid!r}")
        holder = holder or default_holder()

        def release(txn: Transaction) -> str | None:
            lease = txn.lease(rid)
            if lease is None or lease.corrupt or lease.holder != holder:
                held_by = "nobody" if lease is None or lease.corrupt else lease.describe()
                return (
                    f"No lock held by {holder} for transaction with key {rid}: cannot release the lease on "
                    f"{rid!r}: held by {held_by}, not {holder!r}"
                )
            txn.drop_lease(rid)
            if not lease.is_live(txn.now):
                assert lease.expires is not None
                return (
                    f"No lock held by {holder} for transaction with key {rid}: cannot release the lease on "
                    f"{rid!r}: {holder!r}'s lease expired at {lease.expires.to_iso8601_string()}"
                )
            return None

        refusal = self.backend.atomically([rid], release)
        if refusal is not None:
            raise LockNotHeldError(refusal, result_id=rid)

    def break_lease(self, result_id: ResultId) -> Lease | None:
        """Remove whatever lease is on a result, whoever holds it; return it (``None`` if free)."""
        rid = ids.normalize_id(result_id)
        self._check_writable(f"break the lease on {rid!r}")

        def drop(txn: Transaction) -> Lease | None:
            lease = txn.lease(rid)
            if lease is not None:
                txn.drop_lease(rid)
            return lease if lease is not None and lease.is_live(txn.now) else None

        broken = self.backend.atomically([rid], drop)
        if broken is not None:
            log.info("broke the lease on %r held by %s", rid, broken.describe())
        return broken

    def lease(self, result_id: ResultId) -> Lease | None:
        """The live lease on the result, or None."""
        lease = self.backend.lease(ids.normalize_id(result_id))
        if lease is None or not lease.is_live(self.backend.now()):
            return None
        return lease

    def leases(self, prefix: ResultId | None = None) -> list[Lease]:
        """Every live lease (on results at or below ``prefix``), sorted by ID."""
        now = self.backend.now()
        wanted = ids.normalize_id(prefix) if prefix is not None else None
        found = [
            lease
            for lease in self.backend.leases()
            if lease.is_live(now)
            and (wanted is None or lease.result_id == wanted or lease.result_id.startswith(wanted + "/"))
        ]
        return sorted(found, key=lambda lease: lease.result_id)

    def is_locked(self, result_id: ResultId) -> bool:
        """True while anybody holds a live lease on the result."""
        return self.lease(result_id) is not None

    def is_lock_holder(self, result_id: ResultId, holder: str | None = None) -> bool:
        """True while ``holder`` (default: this thread's or task's) holds a live lease on the result."""
        lease = self.lease(result_id)
        return lease is not None and lease.holder == (holder or default_holder())

    def wait_for_leases(self, result_id: ResultId, timeout: float | None, holder: str | None = None) -> bool:
        """Wait until no one but ``holder`` has a live lease on the result; False if ``timeout`` passed.

        This is the wait of a ``SERIALIZABLE`` read, and of a write that may wait for a lease.
        """
        check_timeout("timeout", timeout)
        rid = ids.normalize_id(result_id)
        for _ in backoff(deadline_after(timeout)):
            lease = self.lease(rid)
            if lease is None or (holder is not None and lease.holder == holder):
                return True
        return False

    def wait_for_lock(self, result_id: ResultId, timeout: float | None = None) -> bool:
        """Wait until nobody holds a lease on the result; False if ``timeout`` passed first."""
        return self.wait_for_leases(result_id, timeout)

    @contextmanager
    def lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> Iterator[None]:
        """Hold a lease for the duration of a block; :class:`LockTimeoutError` if it cannot be had."""
        rid = ids.normalize_id(result_id)
        holder = holder or default_holder()
        if not self.acquire_lock(rid, holder, acquire_timeout, hold_timeout):
            lease = self.lease(rid)
            by = f": leased by {lease.describe()}" if lease is not None else ""
            raise LockTimeoutError(
                f"could not acquire the lease on {rid!r} within {acquire_timeout}s{by}", result_id=rid
            )
        try:
            yield
        finally:
            self.release_lock(rid, holder)

    # ----------------------------------------------------------------- checking

    def cleanup(self) -> list[str]:
        """Remove what killed writers left behind (temp files, dead lease records); return what.

        Cheap compared with :meth:`check`: no result is read.
        """
        self._check_writable("clean up the store")
        removed = []
        for finding in self.backend.inspect(fix=True):
            if finding.fixed:
                removed.append(
                    finding.path if finding.kind != "dead-lease" else f"{finding.path}: {finding.detail}"
                )
        return removed

    def check(
        self, fix: bool = False, *, validate: bool = True, progress: Callable[[int], None] | None = None
    ) -> CheckReport:
        """Report what is not a healthy result; never deletes a result.

        Reports corrupt or invalid results, results of unregistered models, and what the
        backend finds in its own storage (symlinks, foreign files, leftovers of killed writers,
        dead lease records). ``fix`` removes the leftovers and dead records, the only things
        safe to remove. ``progress`` is called with the number of results checked so far.
        """
        report = CheckReport()
        fix = fix and not self.read_only
        for finding in self.backend.inspect(fix=fix):
            problem = Problem(finding.kind, finding.path, finding.detail)
            (report.fixed if finding.fixed else report.problems).append(problem)
        for rid in sorted(self.backend.scan(())):
            report.results += 1
            self._check_result(rid, report, validate)
            if progress is not None:
                progress(report.results)
        report.problems.sort(key=lambda p: (p.path, p.kind))
        return report

    def _check_result(self, rid: str, report: CheckReport, validate: bool) -> None:
        shown = rid + ids.SUFFIX
        try:
            version = self.backend.open(rid)
        except (CorruptResultError, UnsafePathError) as exc:
            report.problems.append(Problem("corrupt", shown, str(exc)))
            return
        if version is None:
            return  # deleted while we looked
        with version:
            try:
                if validate:
                    verdict = self.verdict(rid, version)
                    if verdict.error is not None:
                        kind = "corrupt" if verdict.model is None else _kind_of(verdict.error)
                        report.problems.append(Problem(kind, shown, verdict.error))
                else:
                    raw = _read_limited(
                        lambda: version.read_all(self.max_result_bytes), rid, self.max_result_bytes
                    )
                    envelope.decode(raw or b"", f"result {rid!r}")
            except (CorruptResultError, ResultTooLargeError) as exc:
                report.problems.append(Problem("corrupt", shown, str(exc)))


@functools.lru_cache(maxsize=1024)
def _valid_verdict(model: tuple[str, str]) -> Verdict:
    """The verdict of a valid result of ``model``: one shared object per model."""
    return Verdict(model, None)


def _check_named(rid: str, named: tuple[str, str], found: tuple[str, str], stored: bool) -> None:
    """Refuse an envelope, or a stored result, of another model than the one the writer named."""
    if found == named:
        return
    theirs, ours = registry.model_ref(*found), registry.model_ref(*named)
    what = (
        f"it stores a {theirs} result, not {ours}; write a full envelope to replace it with a result of "
        "another model"
        if stored
        else f"the input is a {theirs} envelope, not {ours} (the model named)"
    )
    raise ResultValidationError(f"result {rid!r}: {what}", result_id=rid)


def _not_found(rid: str, where: str = "") -> ResultNotFoundError:
    """A "no result" error, with "did you mean" for an ID typed as its file name (``eval/z.json``)."""
    return ResultNotFoundError(f"no result found for ID {rid!r}{where}{ids.suffix_hint(rid)}", result_id=rid)


def _registered(model_type: str, namespace: str, rid: str) -> type[BaseModel]:
    """The class of ``namespace:model_type``; :class:`ModelNotRegisteredError` with a hint otherwise."""
    cls = registry.get_model_class(model_type, namespace)
    if cls is not None:
        return cls
    elsewhere = [ns for ns, _ in registry.find_model_in_all_namespaces(model_type)]
    hint = (
        f" (it is registered in: {', '.join(elsewhere)})"
        if elsewhere
        else "; is --models (or RESULTSFS_MODELS) missing the module that registers it?"
    )
    raise ModelNotRegisteredError(
        f"result {rid!r}: model type {model_type!r} is not registered in namespace {namespace!r}{hint}",
        result_id=rid,
    )


def _check_nothing_lost(rid: str, written: dict[str, Any], stored: Any, validated: Any) -> None:
    """Refuse bare data that would silently reset fields of a stored result it leaves out."""
    if not isinstance(stored, dict) or not isinstance(validated, dict):
        return
    lost = [
        f"{key!r} (stored {json.dumps(stored[key])}, would become {json.dumps(validated.get(key))})"
        for key in stored
        if key not in written and validated.get(key) != stored[key]
    ]
    if lost:
        raise ResultValidationError(
            f"result {rid!r}: bare data replaces the whole result, and leaves out {', '.join(lost)}. "
            "Write those fields too, write a full envelope to replace the result on purpose, or merge "
            "(resultsfs put --merge)",
            result_id=rid,
        )


def _prefix(prefix: ResultId | None) -> str:
    """A directory given as an ID prefix, normalised (``""``: the root)."""
    if prefix is None or prefix in ("", "/") or (not isinstance(prefix, str) and not list(prefix)):
        return ""
    parts = ids.id_parts(prefix.rstrip("/") if isinstance(prefix, str) else prefix)
    for part in parts:
        ids.check_part(part, is_last=False, shown="/".join(parts))
    return "/".join(parts)


def _rebuild_store(backend: ResultsBackend, max_result_bytes: int) -> ResultStore:
    return ResultStore(backend, max_result_bytes=max_result_bytes)


def _kind_of(error: str) -> str:
    return "unregistered" if "is not registered" in error else "invalid"


def _read_limited(read: Callable[[], R | None], rid: str, limit: int) -> R | None:
    """Call a backend read, turning its ``EFBIG`` into :class:`ResultTooLargeError`."""
    try:
        return read()
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise ResultTooLargeError(
                f"result {rid!r} is larger than the limit of {limit} bytes", result_id=rid
            ) from exc
        raise


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
            f"result {rid!r}: data does not validate as {cls.__name__}: {details}{more}",
            result_id=rid,
            title=cls.__name__,
            line_errors=exc.errors(),
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


def _locked_error(rid: str, lease: Lease, what: str) -> ResultLockedError:
    """Prefect's phrase ("because it is locked by another holder"), with the lease's holder and expiry."""
    subject = "it" if repr(rid) in what else f"result {rid!r}"
    return ResultLockedError(
        f"cannot {what} because {subject} is locked by another holder: leased by {lease.describe()}",
        result_id=rid,
    )
