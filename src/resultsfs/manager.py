"""``ResultsManager``: the results_manager-compatible facade, plus isolation levels.

It stores through a backend (a :class:`~resultsfs.backends.files.FileBackend` by default) and
adds what a transaction needs: under ``SERIALIZABLE`` a read waits, bounded by
``lock_timeout``, until no other holder has a lease on the result, so it never sees a
result in the middle of another holder's transaction. ``manager.backend`` may be assigned
to switch backends, as in results_manager; nothing is copied (``resultsfs copy`` does that).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from resultsfs import ids
from resultsfs.backends import open_backend
from resultsfs.backends.base import ResultsBackend
from resultsfs.delegate import StoreMethods
from resultsfs.errors import LockTimeoutError
from resultsfs.ids import ResultId
from resultsfs.leases import IsolationLevel, check_timeout, default_holder
from resultsfs.store import ResultStore, SetBehavior

T = TypeVar("T", bound=BaseModel)

#: Where results go when neither ``base_dir`` nor ``backend`` is given.
DEFAULT_BASE_DIR = "./results"


class ResultsManager(StoreMethods):
    """Store, read and lease typed results by hierarchical ID.

    ``base_dir`` is a directory, or a URL naming another backend (``sqlite:///x.db``,
    ``postgresql://...``); ``backend`` is an opened backend and wins over ``base_dir``.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        create_if_missing: bool = True,
        backend: ResultsBackend | None = None,
        *,
        isolation: IsolationLevel | str = IsolationLevel.READ_COMMITTED,
        lock_timeout: float = 30.0,
    ) -> None:
        if backend is None:
            backend = open_backend(
                base_dir if base_dir is not None else DEFAULT_BASE_DIR, create_if_missing=create_if_missing
            )
        check_timeout("lock_timeout", lock_timeout, allow_none=False)
        self.backend = backend
        self.isolation = IsolationLevel(isolation)
        self.lock_timeout = lock_timeout

    @property
    def store(self) -> ResultStore:
        """The store over the current backend (it follows ``manager.backend``)."""
        return self.backend.store

    def __repr__(self) -> str:
        return f"ResultsManager({self.backend!r}, isolation={self.isolation.value})"

    def _get_backend_type(self) -> str:
        """The backend's class name (results_manager's helper, kept for its users' tests)."""
        return type(self.backend).__name__

    def _get_path_from_id(self, result_id: ResultId) -> Path:
        """The file of a result of a directory backend (results_manager's helper)."""
        path_for = getattr(self.backend, "path_for", None)
        if path_for is None:
            raise AttributeError(
                f"_get_path_from_id is only available with FileBackend. Current backend is "
                f"{type(self.backend).__name__}"
            )
        path: Path = path_for(ids.normalize_id(result_id))
        return path

    @staticmethod
    def supports_isolation_level(level: IsolationLevel | str) -> bool:
        """Both Prefect levels are supported."""
        return ResultsBackend.supports_isolation_level(level)

    def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior | str = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
        holder: str | None = None,
    ) -> bool:
        """Store ``data``; see :meth:`ResultStore.set`."""
        return self.store.set(result_id, data, behavior, namespace, strict_namespace, holder)

    def get(
        self,
        result_id: ResultId,
        model_class: type[T] | None = None,
        namespace: str | None = None,
        holder: str | None = None,
    ) -> T:
        """Read a result; under ``SERIALIZABLE`` first wait out other holders' leases."""
        store = self.store
        if self.isolation is IsolationLevel.SERIALIZABLE:
            rid = ids.normalize_id(result_id)
            if not store.wait_for_leases(rid, self.lock_timeout, holder or default_holder()):
                lease = store.lease(rid)
                by = f" by {lease.describe()}" if lease is not None else ""
                raise LockTimeoutError(
                    f"cannot read result {rid!r}: still leased{by} after {self.lock_timeout:g}s "
                    "(SERIALIZABLE)",
                    result_id=rid,
                )
        return store.get(result_id, model_class, namespace)
