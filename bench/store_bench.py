"""The Python API (set, get, exists, list_ids) against a results_manager-style baseline, one run.

Each round runs every operation on every store in turn (interleaved, so that machine noise
hits them alike); :func:`measure` keeps every round's rate and the caller takes medians.
``list_ids`` can be pointed at a given pair of directories (the filesystem benchmark passes
its large store), otherwise it lists the stores that ``set`` filled.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from baseline import ResultsManagerStyleStore
from pydantic import BaseModel

from resultsfs import FileBackend, SetBehavior, register_model


@register_model(namespace="bench")
class BenchResult(BaseModel):
    run: str
    loss: float
    accuracy: float
    history: list[float]


@dataclass
class ApiRow:
    """One operation: every round's rate for resultsfs and for the baseline."""

    operation: str
    unit: str
    ours: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def base_median(self) -> float:
        return statistics.median(self.base)


def _result(i: int) -> BenchResult:
    return BenchResult(run=f"run{i}", loss=1 / (i + 1), accuracy=i / (i + 1), history=[i * 0.1] * 20)


def _rate(count: int, fn: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - started)


def _list_rate(lister: Callable[[], list[str]], expected: int) -> float:
    """IDs per second of one full listing (checked against the expected count)."""
    started = time.perf_counter()
    found = len(lister())
    elapsed = time.perf_counter() - started
    if found != expected:
        raise RuntimeError(f"list_ids found {found} IDs, expected {expected}")
    return found / elapsed


def measure(
    count: int = 1500, rounds: int = 3, list_dirs: tuple[Path, Path, int] | None = None
) -> list[ApiRow]:
    """Rates per round of each operation; ``list_dirs`` is (resultsfs store, plain copy, ID count)."""
    with tempfile.TemporaryDirectory(prefix="resultsfs-api-bench-") as tmp:
        ours = FileBackend(Path(tmp) / "ours")
        fast = FileBackend(Path(tmp) / "fast", durable=False)
        base = ResultsManagerStyleStore(Path(tmp) / "base")
        list_ours, list_base, listed = ours, base, count
        if list_dirs is not None:
            list_ours = FileBackend(list_dirs[0], create_if_missing=False, read_only=True)
            list_base = ResultsManagerStyleStore(list_dirs[1])
            listed = list_dirs[2]
        try:
            rows = _rounds(count, rounds, (ours, fast, base), (list_ours, list_base, listed))
        finally:
            ours.close()
            fast.close()
            base.close()
            if list_dirs is not None:
                list_ours.close()
                list_base.close()
    return rows


def _rounds(
    count: int,
    rounds: int,
    stores: tuple[FileBackend, FileBackend, ResultsManagerStyleStore],
    listing: tuple[FileBackend, ResultsManagerStyleStore, int],
) -> list[ApiRow]:
    ours, fast, base = stores
    list_ours, list_base, listed = listing
    ids = [f"sweep/lr{i % 10}/seed{i}" for i in range(count)]
    results = [_result(i) for i in range(count)]
    rows = {
        "set": ApiRow("set (durable: fsync file+dir)", "ops"),
        "set_nf": ApiRow("set (durable=False)", "ops"),
        "get": ApiRow("get", "ops"),
        "exists": ApiRow("exists", "ops"),
        "list_ids": ApiRow(f"list_ids ({listed} IDs)", "IDs"),
    }
    for _ in range(rounds):
        rows["set"].ours.append(_rate(count, lambda i: ours.set(ids[i], results[i], SetBehavior.OVERWRITE)))
        rows["set_nf"].ours.append(
            _rate(count, lambda i: fast.set(ids[i], results[i], SetBehavior.OVERWRITE))
        )
        base_set = _rate(count, lambda i: base.set(ids[i], results[i]))
        rows["set"].base.append(base_set)
        rows["set_nf"].base.append(base_set)
        rows["get"].ours.append(_rate(count, lambda i: ours.get(ids[i])))
        rows["get"].base.append(_rate(count, lambda i: base.get(ids[i])))
        rows["exists"].ours.append(_rate(count, lambda i: ours.exists(ids[i])))
        rows["exists"].base.append(_rate(count, lambda i: base.exists(ids[i])))
        rows["list_ids"].ours.append(_list_rate(list_ours.list_ids, listed))
        rows["list_ids"].base.append(_list_rate(list_base.list_ids, listed))
    return list(rows.values())


def run(count: int = 1500) -> list[tuple[str, float, float]]:
    """Rows of (operation, ours per second, baseline per second), medians of 3 rounds."""
    return [(row.operation, row.ours_median, row.base_median) for row in measure(count)]
