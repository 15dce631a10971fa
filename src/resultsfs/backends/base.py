"""The contract every backend implements: where results live, and nothing more.

A backend persists and fetches result envelopes (their exact bytes) under normalised IDs,
lists the IDs and the directory tree they form, keeps each result's metadata (mode, owner,
times) and the lease records, and changes all of these atomically inside a transaction over
named IDs. It decides nothing about results: validation, set behaviours, lease checks,
isolation and size limits are the store's (:mod:`resultsfs.store`), one level up, so every
backend behaves alike.

To add a backend, subclass :class:`ResultsBackend` and implement its abstract methods (the
directory backend in :mod:`resultsfs.backends.files` and the SQL ones next to it are worked
examples), then run the contract suite (``tests/contract.py``) against it. The suite states
every behaviour once; a backend that passes it works under the store, the CLI and the mount.

:class:`ResultsBackend` also carries results_manager's backend methods (``set``, ``get``,
``exists``, ``list_ids``, ``delete``, ``clear``, and Prefect's lease methods), implemented
once here by a :class:`~resultsfs.store.ResultStore` over the backend, so code written for
results_manager that uses a backend on its own keeps working.
"""

from __future__ import annotations

import abc
import errno
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pendulum
from pydantic import BaseModel

from resultsfs.delegate import StoreMethods
from resultsfs.errors import NotSupportedError
from resultsfs.leases import IsolationLevel, Lease

if TYPE_CHECKING:
    from resultsfs.store import ResultStore, SetBehavior

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: ``utimens``'s "leave this time as it is".
OMIT = -1


@dataclass(frozen=True)
class Meta:
    """What a backend knows of a stored result or directory besides its content."""

    size: int
    #: Permission bits only (``0o644``), never the file type.
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    atime_ns: int
    ctime_ns: int
    #: A number that names this entry while it exists (an inode number, a row number).
    ino: int
    #: Changes whenever the content may have changed, by any writer: a validation verdict
    #: keyed by it is never served for other bytes.
    version: Hashable
    nlink: int = 1


@dataclass(frozen=True)
class MetaChange:
    """A change of metadata: ``None`` keeps a field; a time of :data:`OMIT` keeps that time."""

    mode: int | None = None
    owner: tuple[int, int] | None = None
    #: ``(atime_ns, mtime_ns)``.
    times: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return self.mode is not None or self.owner is not None or self.times is not None


#: No change at all (the default of every ``change`` argument).
NO_CHANGE = MetaChange()


@dataclass(frozen=True)
class Listing:
    """The children of one directory of the ID tree: result names (last ID parts) and subdirectories."""

    results: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    """Something a backend's own inspection found (see :meth:`ResultsBackend.inspect`)."""

    kind: str
    path: str
    detail: str
    #: True if the inspection repaired it (only when asked to fix).
    fixed: bool = False


class Version(abc.ABC):
    """One committed version of a result, opened for reading: its bytes never change.

    A reader of a version keeps reading the same bytes even if the result is replaced or
    deleted meanwhile, as a reader of a file does on a local filesystem.
    """

    meta: Meta

    @abc.abstractmethod
    def read(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes from ``offset``."""

    @abc.abstractmethod
    def read_all(self, limit: int) -> bytes:
        """Every byte; ``OSError(EFBIG)`` past ``limit`` bytes."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the version holds (a descriptor, a buffer)."""

    def __enter__(self) -> Version:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BytesVersion(Version):
    """A version whose bytes were fetched whole (the SQL backends)."""

    def __init__(self, raw: bytes, meta: Meta) -> None:
        self.raw = raw
        self.meta = meta

    def read(self, size: int, offset: int) -> bytes:
        return self.raw[offset : offset + size]

    def read_all(self, limit: int) -> bytes:
        if len(self.raw) > limit:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
        return self.raw

    def close(self) -> None:
        self.raw = b""


class Transaction(abc.ABC):
    """The atomic view of a backend inside :meth:`ResultsBackend.atomically`.

    Everything a transaction reads is what is committed now for the IDs it was opened over,
    and no other writer changes those IDs (or their leases) until it ends. Changes take
    effect all together when the operation returns, or not at all if it raises. A change to
    an ID the transaction was not opened over is a programming error.
    """

    #: The time of this transaction, by the backend's clock (the server's, for PostgreSQL):
    #: lease liveness inside it is decided against this.
    now: pendulum.DateTime

    @abc.abstractmethod
    def meta(self, rid: str) -> Meta | None:
        """The metadata of result ``rid``, or ``None`` if none is stored."""

    @abc.abstractmethod
    def read(self, rid: str, limit: int) -> bytes | None:
        """The bytes of result ``rid`` (``OSError(EFBIG)`` past ``limit``), or ``None``."""

    @abc.abstractmethod
    def write(self, rid: str, raw: bytes, change: MetaChange = NO_CHANGE, *, keep_meta: bool = True) -> None:
        """Store ``raw`` as result ``rid``, creating its directories as needed.

        A replaced result keeps its mode and owner when ``keep_meta`` (an in-place write);
        ``change`` then applies on top. A new result (or ``keep_meta=False``) gets ``change``
        and the backend's defaults for what it leaves out.
        """

    @abc.abstractmethod
    def delete(self, rid: str, *, keep_parents: bool) -> bool:
        """Delete result ``rid``; False if there was none.

        ``keep_parents``: directories that become empty stay (a mount's ``rm``); otherwise
        empty parents disappear (results_manager's ``delete``).
        """

    @abc.abstractmethod
    def move(self, old: str, new: str) -> None:
        """Move result ``old`` to ``new`` with its bytes and metadata, replacing ``new``."""

    @abc.abstractmethod
    def move_dir(self, old: Sequence[str], new: Sequence[str]) -> None:
        """Move directory ``old`` (with everything below it) to ``new``, which must not exist.

        The transaction is opened over every ID below ``old``.
        """

    @abc.abstractmethod
    def set_meta(self, rid: str, change: MetaChange) -> None:
        """Change the metadata of result ``rid``."""

    @abc.abstractmethod
    def lease(self, rid: str) -> Lease | None:
        """The lease record of ``rid``, live or not, or ``None``."""

    @abc.abstractmethod
    def put_lease(self, rid: str, holder: str, ttl: float | None, process: str | None = None) -> Lease:
        """Write the lease of ``rid`` for ``holder``: acquired now, expiring ``ttl`` seconds
        from now by the backend's clock (``None``: never)."""

    @abc.abstractmethod
    def drop_lease(self, rid: str) -> None:
        """Remove the lease record of ``rid`` (nothing if there is none)."""


class ResultsBackend(StoreMethods):
    """Where results live: the interface a backend implements (see the module docstring).

    IDs passed to a backend are already normalised and valid (:mod:`resultsfs.ids`); a
    directory is named by the tuple of its parts (``()`` is the root).
    """

    #: True if the backend was opened read-only; every change then raises
    #: :class:`~resultsfs.errors.ReadOnlyStoreError`.
    read_only: bool = False

    # ------------------------------------------------------------ identity

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """How to name this store again: a path for a directory, a URL otherwise."""

    @abc.abstractmethod
    def location(self, rid: str) -> str:
        """Where result ``rid`` lives, for messages (a file path, ``URL#id``)."""

    # ------------------------------------------------------------ reading (no lock)

    @abc.abstractmethod
    def meta(self, rid: str) -> Meta | None:
        """The metadata of result ``rid``, or ``None``."""

    @abc.abstractmethod
    def open(self, rid: str) -> Version | None:
        """Result ``rid``'s current version, opened for reading, or ``None``."""

    def has(self, rid: str) -> bool:
        """True if result ``rid`` is stored (a backend may answer it without reading the result)."""
        return self.meta(rid) is not None

    def read(self, rid: str, limit: int) -> tuple[bytes, Meta] | None:
        """The bytes and metadata of result ``rid``, or ``None``; ``OSError(EFBIG)`` past ``limit``."""
        version = self.open(rid)
        if version is None:
            return None
        with version:
            return version.read_all(limit), version.meta

    @abc.abstractmethod
    def scan(self, parts: Sequence[str]) -> Iterator[str]:
        """Every ID strictly below directory ``parts`` (the whole store for ``()``), unsorted."""

    @abc.abstractmethod
    def listdir(self, parts: Sequence[str]) -> Listing | None:
        """The children of directory ``parts``, or ``None`` if it is not a directory."""

    @abc.abstractmethod
    def dir_meta(self, parts: Sequence[str]) -> Meta | None:
        """The metadata of directory ``parts`` (``()``: the root), or ``None``."""

    @abc.abstractmethod
    def lease(self, rid: str) -> Lease | None:
        """The lease record of ``rid``, live or not, or ``None``."""

    @abc.abstractmethod
    def leases(self) -> Iterator[Lease]:
        """Every lease record, live or not."""

    @abc.abstractmethod
    def now(self) -> pendulum.DateTime:
        """The current time by the clock leases are judged by."""

    # ------------------------------------------------------------ changing

    @abc.abstractmethod
    def atomically(self, rids: Iterable[str], operation: Callable[[Transaction], T]) -> T:
        """Run ``operation`` in a transaction over ``rids`` and return its result.

        The operation may be run again if the backend's transaction failed for a transient
        reason (a serialization failure, a dropped connection), so it must not have effects
        outside the transaction. An exception it raises rolls everything back and propagates.
        """

    @abc.abstractmethod
    def mkdir(self, parts: Sequence[str], change: MetaChange = NO_CHANGE) -> None:
        """Create directory ``parts`` (its parent must exist); ``FileExistsError`` if it does."""

    @abc.abstractmethod
    def rmdir(self, parts: Sequence[str]) -> None:
        """Remove empty directory ``parts``: ``OSError(ENOTEMPTY)`` if anything is below it,
        ``FileNotFoundError`` if it does not exist."""

    @abc.abstractmethod
    def set_dir_meta(self, parts: Sequence[str], change: MetaChange) -> None:
        """Change the metadata of directory ``parts``."""

    # ------------------------------------------------------------ bindings

    def bindings(self) -> dict[str, str]:
        """Every directory binding: ID prefix (``""``: the whole store) -> ``"namespace:Model"``.

        A binding names the model of bare data written below its prefix (see
        :meth:`resultsfs.store.ResultStore.bind`); it is kept in the store, so other
        processes, hosts and later mounts see it.
        """
        raise NotSupportedError(f"store {self.url} cannot keep directory bindings")

    def set_binding(self, prefix: str, model: str | None) -> None:
        """Bind ``prefix`` to ``model`` (``"namespace:Model"``), or with ``None`` unbind it."""
        raise NotSupportedError(f"store {self.url} cannot keep directory bindings")

    # ------------------------------------------------------------ maintenance

    @abc.abstractmethod
    def inspect(self, fix: bool) -> Iterator[Finding]:
        """What is wrong in the backend's own storage (foreign entries, unsafe paths, dead lease
        records, leftovers of killed writers); with ``fix``, repair what is safe to repair."""

    def check_alive(self) -> None:
        """Raise :class:`~resultsfs.errors.StoreReplacedError` if the storage this backend
        opened is no longer where its URL points (a mount must then stop writing)."""

    def scratch_dir(self) -> tuple[str, tuple[str, ...]] | None:
        """Where on the backend's own storage a mount may keep its private scratch files (large
        ones then cost no memory): a trusted directory and the parts below it (created as
        needed, never followed if a link), or ``None`` to use the system's temp directory."""
        return None

    def statfs(self) -> dict[str, int] | None:
        """``statvfs`` figures of the storage, for ``df`` on a mount; ``None`` if unknown."""
        return None

    def close(self) -> None:
        """Release connections and descriptors; the backend is unusable afterwards."""

    def __enter__(self: B) -> B:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # ------------------------------------------------------------ results_manager's methods

    @property
    def store(self) -> ResultStore:
        """The store over this backend that the methods below delegate to."""
        store: ResultStore | None = self.__dict__.get("_store")
        if store is None:
            from resultsfs.store import ResultStore  # noqa: PLC0415 - the store imports backends

            store = ResultStore(self)
            self.__dict__["_store"] = store
        return store

    def set(
        self,
        result_id: Any,
        data: BaseModel,
        behavior: SetBehavior | str = "raise_if_exists",
        namespace: str | None = None,
        strict_namespace: bool = False,
        holder: str | None = None,
    ) -> bool:
        """Validate and store a model instance; see :meth:`ResultStore.set`."""
        return self.store.set(result_id, data, behavior, namespace, strict_namespace, holder)

    def get(self, result_id: Any, model_class: type[M] | None = None, namespace: str | None = None) -> M:
        """Read and validate a result; see :meth:`ResultStore.get`."""
        return self.store.get(result_id, model_class, namespace)

    @staticmethod
    def supports_isolation_level(level: Any) -> bool:
        """Both of Prefect's isolation levels are supported by every backend."""
        try:
            return IsolationLevel(level) in (IsolationLevel.READ_COMMITTED, IsolationLevel.SERIALIZABLE)
        except ValueError:
            return False


B = TypeVar("B", bound=ResultsBackend)
