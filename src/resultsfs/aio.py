"""The async API: ``AsyncResultsManager`` and the async backends, for asyncio programs.

Every operation runs the synchronous store operation in a worker thread (as results_manager's
``AsyncFileBackend`` did with ``asyncio.to_thread``), so the event loop never blocks on disk
or database I/O, and every backend gets an async twin for free.

Cancellation is safe. A store operation that has started finishes in its thread even if the
awaiting task is cancelled, and each one is atomic, so a cancelled ``set`` leaves the old
result or the new one, never a part. Waiting for a lease happens in the event loop, between
short attempts, so cancelling a waiter stops it at once; an attempt that took the lease just
as its task was cancelled gives it back, so no cancelled task holds a lease. The default
holder is the current task's (:func:`~resultsfs.leases.default_holder`), decided in the
event loop before the work moves to a thread.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel

from resultsfs.backends import backend_class, open_backend
from resultsfs.backends.base import ResultsBackend
from resultsfs.backends.files import FileBackend
from resultsfs.errors import LockTimeoutError
from resultsfs.ids import ResultId
from resultsfs.leases import check_timeout, default_holder
from resultsfs.store import SetBehavior

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.1


async def _in_thread(call: Callable[[], T], on_late_result: Callable[[T], None] | None = None) -> T:
    """Run ``call`` in a worker thread; if our task is cancelled meanwhile, let it finish there.

    ``on_late_result`` receives, in a worker thread, the result of a call that completed
    after its task was cancelled (to undo what nobody will see, such as a lease taken too late).
    """
    loop = asyncio.get_running_loop()
    future = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if on_late_result is not None:
            undo = on_late_result

            def undo_late(done: asyncio.Future[T]) -> None:
                if not done.cancelled() and done.exception() is None:
                    loop.run_in_executor(None, undo, done.result())

            future.add_done_callback(undo_late)
        raise


class AsyncResultsBackend:
    """The async twin of a backend: ``AsyncResultsBackend(FileBackend(...))``.

    It offers results_manager's async backend methods (``set``, ``get``, ``exists``,
    ``list_ids``, ``delete``, ``clear``) and the lease methods, as coroutines.
    """

    def __init__(self, backend: ResultsBackend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend.url!r})"

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()

    async def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior | str = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
        holder: str | None = None,
    ) -> bool:
        """Validate and store a model instance; see :meth:`ResultStore.set`."""
        call = functools.partial(
            self.backend.store.set,
            result_id,
            data,
            behavior,
            namespace,
            strict_namespace,
            holder or default_holder(),
        )
        return await _in_thread(call)

    async def get(
        self, result_id: ResultId, model_class: type[M] | None = None, namespace: str | None = None
    ) -> M:
        """Read and validate a result."""
        return await _in_thread(functools.partial(self.backend.store.get, result_id, model_class, namespace))

    async def exists(self, result_id: ResultId) -> bool:
        """True if a result is stored under ``result_id``."""
        return await _in_thread(functools.partial(self.backend.store.exists, result_id))

    async def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """Every stored ID (below ``prefix``), sorted."""
        return await _in_thread(functools.partial(self.backend.store.list_ids, prefix))

    async def delete(self, result_id: ResultId, holder: str | None = None) -> bool:
        """Delete a result; False if there was none."""
        return await _in_thread(
            functools.partial(self.backend.store.delete, result_id, holder or default_holder())
        )

    async def clear(self, holder: str | None = None) -> None:
        """Delete every result not leased by another holder."""
        await _in_thread(functools.partial(self.backend.store.clear, holder or default_holder()))

    async def acquire_lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take a lease, waiting in the event loop up to ``acquire_timeout`` seconds (``None``: forever)."""
        check_timeout("acquire_timeout", acquire_timeout)
        check_timeout("hold_timeout", hold_timeout, allow_zero=False)
        holder = holder or default_holder()
        store = self.backend.store
        attempt = functools.partial(store.acquire_lock, result_id, holder, 0, hold_timeout)

        def give_back(acquired: bool) -> None:
            if acquired:
                store.release_lock(result_id, holder)

        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        pause = _FIRST_PAUSE
        while True:
            if await _in_thread(attempt, give_back):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            left = None if deadline is None else deadline - time.monotonic()
            await asyncio.sleep(pause if left is None else max(0.0, min(pause, left)))
            pause = min(pause * 2, _LONGEST_PAUSE)

    async def release_lock(self, result_id: ResultId, holder: str | None = None) -> None:
        """Give a lease back; :class:`LockNotHeldError` unless ``holder`` holds it."""
        await _in_thread(
            functools.partial(self.backend.store.release_lock, result_id, holder or default_holder())
        )

    async def is_locked(self, result_id: ResultId) -> bool:
        """True while anybody holds a live lease on the result."""
        return await _in_thread(functools.partial(self.backend.store.is_locked, result_id))

    async def is_lock_holder(self, result_id: ResultId, holder: str | None = None) -> bool:
        """True while ``holder`` holds a live lease on the result."""
        return await _in_thread(
            functools.partial(self.backend.store.is_lock_holder, result_id, holder or default_holder())
        )

    async def wait_for_lock(self, result_id: ResultId, timeout: float | None = None) -> bool:
        """Wait in the event loop until nobody holds a lease on the result."""
        check_timeout("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_PAUSE
        while await self.is_locked(result_id):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
        return True

    @asynccontextmanager
    async def lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> AsyncIterator[None]:
        """Hold a lease for the duration of an ``async with`` block, released even on cancellation."""
        holder = holder or default_holder()
        if not await self.acquire_lock(result_id, holder, acquire_timeout, hold_timeout):
            raise LockTimeoutError(
                f"could not acquire the lease on {result_id!r} within {acquire_timeout}s",
                result_id=str(result_id),
            )
        try:
            yield
        finally:
            await asyncio.shield(self.release_lock(result_id, holder))


class AsyncFileBackend(AsyncResultsBackend):
    """``AsyncFileBackend(base_dir, create_if_missing=True, locks_dir=None)``: a directory, async."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        create_if_missing: bool = True,
        locks_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(FileBackend(base_dir, create_if_missing, locks_dir, **options))


class AsyncSqliteBackend(AsyncResultsBackend):
    """``AsyncSqliteBackend(db_path, create_if_missing=True)``: an SQLite database, async."""

    def __init__(
        self, db_path: str | os.PathLike[str], create_if_missing: bool = True, **options: Any
    ) -> None:
        sqlite_backend = backend_class("sqlite")
        super().__init__(sqlite_backend(db_path, create_if_missing, **options))  # type: ignore[call-arg]


class AsyncPostgresBackend(AsyncResultsBackend):
    """``AsyncPostgresBackend(dsn)``: PostgreSQL, async."""

    def __init__(self, dsn: str, **options: Any) -> None:
        postgres_backend = backend_class("postgresql")
        super().__init__(postgres_backend(dsn, **options))  # type: ignore[call-arg]


class AsyncResultsManager:
    """The async ``ResultsManager``.

    ``AsyncResultsManager(base_dir=None, create_if_missing=True, backend=None)``, as results_manager's.

    ``base_dir`` is a directory or a store URL; ``backend`` an :class:`AsyncResultsBackend`
    (or a plain :class:`ResultsBackend`, which is wrapped). ``manager.backend`` may be
    assigned to switch backends.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        create_if_missing: bool = True,
        backend: AsyncResultsBackend | ResultsBackend | None = None,
    ) -> None:
        if backend is None:
            backend = open_backend(
                base_dir if base_dir is not None else "./results", create_if_missing=create_if_missing
            )
        self.backend = backend if isinstance(backend, AsyncResultsBackend) else AsyncResultsBackend(backend)

    def __repr__(self) -> str:
        return f"AsyncResultsManager({self.backend!r})"

    def _get_backend_type(self) -> str:
        """The wrapped backend's class name."""
        return type(self.backend).__name__

    async def set(
        self,
        result_id: ResultId,
        data: BaseModel,
        behavior: SetBehavior | str = SetBehavior.RAISE_IF_EXISTS,
        namespace: str | None = None,
        strict_namespace: bool = False,
        holder: str | None = None,
    ) -> bool:
        """Validate and store a model instance."""
        return await self.backend.set(result_id, data, behavior, namespace, strict_namespace, holder)

    async def get(
        self, result_id: ResultId, model_class: type[M] | None = None, namespace: str | None = None
    ) -> M:
        """Read and validate a result."""
        return await self.backend.get(result_id, model_class, namespace)

    async def exists(self, result_id: ResultId) -> bool:
        """True if a result is stored under ``result_id``."""
        return await self.backend.exists(result_id)

    async def list_ids(self, prefix: ResultId | None = None) -> list[str]:
        """Every stored ID (below ``prefix``), sorted."""
        return await self.backend.list_ids(prefix)

    async def delete(self, result_id: ResultId, holder: str | None = None) -> bool:
        """Delete a result; False if there was none."""
        return await self.backend.delete(result_id, holder)

    async def clear(self, holder: str | None = None) -> None:
        """Delete every result not leased by another holder."""
        await self.backend.clear(holder)

    async def acquire_lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take a lease; see :meth:`AsyncResultsBackend.acquire_lock`."""
        return await self.backend.acquire_lock(result_id, holder, acquire_timeout, hold_timeout)

    async def release_lock(self, result_id: ResultId, holder: str | None = None) -> None:
        """Give a lease back."""
        await self.backend.release_lock(result_id, holder)

    async def is_locked(self, result_id: ResultId) -> bool:
        """True while anybody holds a live lease on the result."""
        return await self.backend.is_locked(result_id)

    async def is_lock_holder(self, result_id: ResultId, holder: str | None = None) -> bool:
        """True while ``holder`` holds a live lease on the result."""
        return await self.backend.is_lock_holder(result_id, holder)

    async def wait_for_lock(self, result_id: ResultId, timeout: float | None = None) -> bool:
        """Wait until nobody holds a lease on the result."""
        return await self.backend.wait_for_lock(result_id, timeout)

    @asynccontextmanager
    async def lock(
        self,
        result_id: ResultId,
        holder: str | None = None,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> AsyncIterator[None]:
        """Hold a lease for the duration of an ``async with`` block."""
        async with self.backend.lock(result_id, holder, acquire_timeout, hold_timeout):
            yield
