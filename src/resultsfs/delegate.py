"""The store's methods that results_manager's users call on a manager and on a backend alike.

:class:`~resultsfs.ResultsManager` and :class:`~resultsfs.ResultsBackend` both offer them, as
results_manager does; both hand them to their :class:`~resultsfs.ResultStore`, written here once.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from resultsfs.ids import ResultId

if TYPE_CHECKING:
    from resultsfs.store import ResultStore


class StoreMethods(abc.ABC):
    """Listing, deleting and leasing, handed to :attr:`store`."""

    @property
    @abc.abstractmethod
    def store(self) -> ResultStore:
        """The store these methods are handed to."""

    def exists(self, result_id: ResultId) -> bool:
        """True if a result is stored under ``result_id``."""
        return self.store.exists(result_id)

    def delete(self, result_id: ResultId, holder: str | None = None) -> bool:
        """Delete a result; False if there was none."""
        return self.store.delete(result_id, holder)

    def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """Every stored ID (below ``prefix``), sorted."""
        return self.store.list_ids(prefix)

    def clear(self, holder: str | None = None) -> None:
        """Delete every result not leased by another holder."""
        self.store.clear(holder)

    def acquire_lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take a lease; see :meth:`ResultStore.acquire_lock`."""
        return self.store.acquire_lock(result_id, holder, acquire_timeout, hold_timeout)

    def release_lock(self, result_id: ResultId, holder: str | None = None) -> None:
        """Give a lease back; see :meth:`ResultStore.release_lock`."""
        self.store.release_lock(result_id, holder)

    def is_locked(self, result_id: ResultId) -> bool:
        """True while anybody holds a live lease on the result."""
        return self.store.is_locked(result_id)

    def is_lock_holder(self, result_id: ResultId, holder: str | None = None) -> bool:
        """True while ``holder`` holds a live lease on the result."""
        return self.store.is_lock_holder(result_id, holder)

    def wait_for_lock(self, result_id: ResultId, timeout: float | None = None) -> bool:
        """Wait until nobody holds a lease on the result."""
        return self.store.wait_for_lock(result_id, timeout)

    @contextmanager
    def lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> Iterator[None]:
        """Hold a lease for the duration of a block."""
        with self.store.lock(result_id, holder, acquire_timeout, hold_timeout):
            yield
