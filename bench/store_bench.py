"""Set and get throughput of the store against a results_manager-style baseline, one run."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
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


def _result(i: int) -> BenchResult:
    return BenchResult(run=f"run{i}", loss=1 / (i + 1), accuracy=i / (i + 1), history=[i * 0.1] * 20)


def _rate(count: int, fn: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - started)


def run(count: int = 1500) -> list[tuple[str, float, float]]:
    """Rows of (operation, ours per second, baseline per second), medians of 3 rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        ours = FileBackend(Path(tmp) / "ours")
        fast = FileBackend(Path(tmp) / "fast", durable=False)
        base = ResultsManagerStyleStore(Path(tmp) / "base")
        ids = [f"sweep/lr{i % 10}/seed{i}" for i in range(count)]
        results = [_result(i) for i in range(count)]
        ops: dict[str, Callable[[int], object]] = {
            "set": lambda i: ours.set(ids[i], results[i], SetBehavior.OVERWRITE),
            "set_nf": lambda i: fast.set(ids[i], results[i], SetBehavior.OVERWRITE),
            "set_b": lambda i: base.set(ids[i], results[i]),
            "get": lambda i: ours.get(ids[i]),
            "get_b": lambda i: base.get(ids[i]),
        }
        # Interleave the stores in rounds so that machine noise hits them alike.
        rates: dict[str, list[float]] = {name: [] for name in ops}
        for _ in range(3):
            for name, op in ops.items():
                rates[name].append(_rate(count, op))
        med = {name: sorted(values)[1] for name, values in rates.items()}
    return [
        ("set (durable: fsync file+dir)", med["set"], med["set_b"]),
        ("set (durable=False)", med["set_nf"], med["set_b"]),
        ("get", med["get"], med["get_b"]),
    ]
