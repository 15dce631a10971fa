"""``ResultsManager``: the results_manager-compatible facade, plus isolation levels.

It delegates storage to a backend (a :class:`~resultsfs.store.FileBackend` by default) and
adds what a transaction needs: under ``SERIALIZABLE`` a read waits, bounded by
``lock_timeout``, until no other holder has a lease on the result, so it never sees a
result in the middle of another holder's transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from pydantic import BaseModel

from resultsfs import ids
from resultsfs.errors import LockTimeoutError
from resultsfs.ids import ResultId
from resultsfs.leases import IsolationLevel, default_holder
from resultsfs.store import FileBackend, ResultStore, SetBehavior

T = TypeVar("T", bound=BaseModel)

#: Where results go when neither ``base_dir`` nor ``backend`` is given.
DEFAULT_BASE_DIR = "./results"


class ResultsManager:
    """Store, read and lease typed results by hierarchical ID."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        create_if_missing: bool = True,
        backend: ResultStore | None = None,
        *,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        lock_timeout: float = 30.0,
    ) -> None:
        if backend is None:
            backend = FileBackend(base_dir if base_dir is not None else DEFAULT_BASE_DIR, create_if_missing)
        self.backend = backend
        self.isolation = IsolationLevel(isolation)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"ResultsManager({self.backend!r}, isolation={self.isolation.value})"

    @staticmethod
    def supports_isolation_level(level: IsolationLevel) -> bool:
        """Both Prefect levels are supported."""
        return level in (IsolationLevel.READ_COMMITTED, IsolationLevel.SERIALIZABLE)

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
        holder: str | None = None,
    ) -> bool:
        """Store ``data``; see :meth:`ResultStore.set`."""
        return self.backend.set(result_id, data, behavior, namespace, strict_namespace, holder)

    def get(
        self,
        result_id: ResultId,
        model_class: type[T] | None = None,
        namespace: str | None = None,
        holder: str | None = None,
    ) -> T:
        """Read a result; under ``SERIALIZABLE`` first wait out other holders' leases."""
        if self.isolation is IsolationLevel.SERIALIZABLE:
            rid = ids.normalize_id(result_id)
            if not self.backend.leases.wait(rid, self.lock_timeout, holder or default_holder()):
                lease = self.backend.lease(rid)
                by = f" by {lease.holder!r}" if lease is not None else ""
                raise LockTimeoutError(
                    f"cannot read result {rid!r}: still leased{by} after "
                    f"{self.lock_timeout:g}s (SERIALIZABLE)",
                    result_id=rid,
                )
        return self.backend.get(result_id, model_class, namespace)

    def exists(self, result_id: ResultId) -> bool:
        """True if a result is stored under ``result_id``."""
        return self.backend.exists(result_id)

    def delete(self, result_id: ResultId, holder: str | None = None) -> bool:
        """Delete a result; False if there was none."""
        return self.backend.delete(result_id, holder)

    def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """Every stored ID (below ``prefix``), sorted."""
        return self.backend.list_ids(prefix)

    def clear(self, holder: str | None = None) -> None:
        """Delete every result not leased by another holder."""
        self.backend.clear(holder)

    def acquire_lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take a lease; see :meth:`ResultStore.acquire_lock`."""
        return self.backend.acquire_lock(result_id, holder, acquire_timeout, hold_timeout)

    def release_lock(self, result_id: ResultId, holder: str | None = None) -> None:
        """Give a lease back; see :meth:`ResultStore.release_lock`."""
        self.backend.release_lock(result_id, holder)

    def is_locked(self, result_id: ResultId) -> bool:
        """True while anybody holds a live lease on the result."""
        return self.backend.is_locked(result_id)

    def is_lock_holder(self, result_id: ResultId, holder: str | None = None) -> bool:
        """True while ``holder`` holds a live lease on the result."""
        return self.backend.is_lock_holder(result_id, holder)

    def wait_for_lock(self, result_id: ResultId, timeout: float | None = None) -> bool:
        """Wait until nobody holds a lease on the result."""
        return self.backend.wait_for_lock(result_id, timeout)

    @contextmanager
    def lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> Iterator[None]:
        """Hold a lease for the duration of a block."""
        with self.backend.lock(result_id, holder, acquire_timeout, hold_timeout):
            yield
