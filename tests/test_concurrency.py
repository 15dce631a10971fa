"""Many real processes on one store: one winner per new ID, readers never see a partial result."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from models import Counter
from resultsfs import FileBackend, ResultStore, SetBehavior

FORK = multiprocessing.get_context("fork")


def _churn(base: str, deadline: float, rid: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = FileBackend(base)
    errors, cycles = [], 0
    while time.monotonic() < deadline:
        try:
            store.set(rid, Counter(writer=rid, value=cycles), SetBehavior.OVERWRITE)
            store.delete(rid)
            cycles += 1
        except Exception as exc:
            errors.append(repr(exc))
    queue.put((cycles, errors))


def test_delete_pruning_never_breaks_a_concurrent_set_into_the_same_directory(store: ResultStore) -> None:
    deadline = time.monotonic() + 2.0
    queue = FORK.Queue()
    procs = [
        FORK.Process(
            target=_churn, args=(str(store.backend.base_dir), deadline, f"deep/shared/dir/r{i}", queue)
        )
        for i in range(4)
    ]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert [e for _, errors in outcomes for e in errors] == []
    assert all(cycles > 10 for cycles, _ in outcomes)
    assert store.list_ids() == []
    assert not (store.backend.base_dir / "deep").exists()


def _set_many(base: str, prefix: str, count: int) -> None:
    store = FileBackend(base)
    for i in range(count):
        store.set(f"{prefix}/{i}", Counter(writer=prefix, value=i))


def test_clear_alongside_writers_leaves_only_whole_results(store: ResultStore, tmp_path: Path) -> None:
    procs = [
        FORK.Process(target=_set_many, args=(str(store.backend.base_dir), f"p{i}", 150)) for i in range(3)
    ]
    for proc in procs:
        proc.start()
    for _ in range(5):
        store.clear()
    for proc in procs:
        proc.join(timeout=60)
    assert all(proc.exitcode == 0 for proc in procs)
    for rid in store.list_ids():
        assert store.get(rid).writer == rid.split("/")[0]
    assert store.check().ok
