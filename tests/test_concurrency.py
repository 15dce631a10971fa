"""Many real processes on one store: one winner per new ID, readers never see a partial result."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from models import Counter
from resultsfs import FileBackend, ResultExistsError, ResultsError, ResultStore, SetBehavior

FORK = multiprocessing.get_context("fork")


def _race_create(
    base: str, rids: list[str], barrier: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    store = FileBackend(base)
    me = str(os.getpid())
    wins = []
    barrier.wait()
    for rid in rids:
        try:
            if store.set(rid, Counter(writer=me, value=1)):
                wins.append(rid)
        except ResultExistsError:
            pass
    queue.put((me, wins))


def test_eight_processes_racing_raise_if_exists_have_exactly_one_winner_per_id(store: ResultStore) -> None:
    rids = [f"race/{i}" for i in range(40)]
    barrier = FORK.Barrier(8)
    queue = FORK.Queue()
    procs = [
        FORK.Process(target=_race_create, args=(str(store.backend.base_dir), rids, barrier, queue))
        for _ in range(8)
    ]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    winners: dict[str, str] = {}
    for writer, wins in outcomes:
        for rid in wins:
            assert rid not in winners, f"{rid} won by {winners[rid]} and {writer}"
            winners[rid] = writer
    assert sorted(winners) == sorted(rids)
    for rid, writer in winners.items():
        assert store.get(rid).writer == writer  # the stored result is the winner's


def _payload(value: int) -> str:
    # Sizes vary from ~10 bytes to ~40 KiB so that a torn write would show.
    return f"{value:08d}" * (1 + (value * 7919) % 5000)


def _writer(base: str, deadline: float, name: str) -> None:
    store = FileBackend(base)
    value = 0
    while time.monotonic() < deadline:
        value += 1
        store.set(
            "hot/result", Counter(writer=name, value=value, payload=_payload(value)), SetBehavior.OVERWRITE
        )


def _reader(base: str, deadline: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = FileBackend(base)
    reads, bad = 0, []
    while time.monotonic() < deadline:
        try:
            result = store.get("hot/result")
        except ResultsError as exc:
            bad.append(repr(exc))
            continue
        reads += 1
        if result.payload != _payload(result.value):
            bad.append(f"torn: {result.writer} {result.value}")
    queue.put((reads, bad))


def test_readers_racing_writers_never_see_a_partial_or_invalid_result(store: ResultStore) -> None:
    store.set("hot/result", Counter(writer="init", value=0, payload=_payload(0)))
    deadline = time.monotonic() + 3.0
    queue = FORK.Queue()
    writers = [
        FORK.Process(target=_writer, args=(str(store.backend.base_dir), deadline, f"w{i}")) for i in range(3)
    ]
    readers = [
        FORK.Process(target=_reader, args=(str(store.backend.base_dir), deadline, queue)) for _ in range(3)
    ]
    for proc in writers + readers:
        proc.start()
    outcomes = [queue.get(timeout=60) for _ in readers]
    for proc in writers + readers:
        proc.join(timeout=60)
    assert all(proc.exitcode == 0 for proc in writers)
    assert sum(reads for reads, _ in outcomes) > 100
    assert [b for _, bad in outcomes for b in bad] == []
    assert [p.name for p in (store.backend.base_dir / "hot").iterdir()] == ["result.json"]  # no temp left


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
