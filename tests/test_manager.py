"""ResultsManager: the results_manager facade, and isolation levels over leases."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models import Metrics
from resultsfs import (
    FileBackend,
    IsolationLevel,
    ResultExistsError,
    ResultLockedError,
    ResultsManager,
    ResultStore,
    SetBehavior,
)


def test_manager_with_base_dir_creates_a_file_backend(tmp_path: Path, metrics: Metrics) -> None:
    manager = ResultsManager(tmp_path / "results")
    assert isinstance(manager.backend, FileBackend)
    assert manager.set(["exp", "run1"], metrics) is True
    assert manager.exists("exp/run1")
    assert manager.get("exp/run1") == metrics
    assert manager.list_ids() == ["exp/run1"]
    assert manager.list_ids("exp") == ["exp/run1"]
    with pytest.raises(ResultExistsError):
        manager.set("exp/run1", metrics)
    assert manager.set("exp/run1", metrics, behavior=SetBehavior.SKIP_IF_EXISTS) is False
    assert manager.delete("exp/run1") is True
    manager.set("a", metrics)
    manager.clear()
    assert manager.list_ids() == []


def test_both_isolation_levels_are_supported() -> None:
    assert ResultsManager.supports_isolation_level(IsolationLevel.READ_COMMITTED)
    assert ResultsManager.supports_isolation_level(IsolationLevel.SERIALIZABLE)


class TestReadCommitted:
    def test_reads_do_not_wait_for_leases(self, manager: ResultsManager, metrics: Metrics) -> None:
        manager.set("r", metrics)
        manager.acquire_lock("r", holder="writer")
        started = time.monotonic()
        assert manager.get("r") == metrics
        assert time.monotonic() - started < 1

    def test_writes_by_non_holders_are_refused(self, manager: ResultsManager, metrics: Metrics) -> None:
        manager.acquire_lock("r", holder="writer")
        with pytest.raises(ResultLockedError):
            manager.set("r", metrics, holder="someone")
        assert manager.set("r", metrics, holder="writer") is True


class TestSerializable:
    def test_the_holder_reads_its_own_lease_at_once(self, store: ResultStore, metrics: Metrics) -> None:
        manager = ResultsManager(
            backend=store.backend, isolation=IsolationLevel.SERIALIZABLE, lock_timeout=0.2
        )
        manager.set("r", metrics)
        with manager.lock("r"):
            assert manager.get("r") == metrics
