"""Mount throughput against the backing directory, measured side by side in one run.

Reads: ``open/read/close`` of every result, by 1 and by 4 reader processes, cold (fresh mount)
and warm; ``ls -lR``-style stat of every entry; writes: committing results through the mount
against ``ResultStore.set``. Each configuration mounts its own fresh copy of the same store.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_models import MountBenchResult

from resultsfs import FileBackend, SetBehavior

FORK = multiprocessing.get_context("fork")
MODELS_FILE = Path(__file__).resolve().parent / "bench_models.py"


def _read_all(paths: list[str]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        os.read(fd, 65536)
        os.close(fd)


def _parallel_reads(paths: list[str], readers: int) -> float:
    """Files per second when ``readers`` processes split ``paths``."""
    chunks = [paths[i::readers] for i in range(readers)]
    procs = [FORK.Process(target=_read_all, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return len(paths) / (time.perf_counter() - started)


def _stat_all(root: Path) -> float:
    started = time.perf_counter()
    count = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            os.lstat(os.path.join(directory, name))
            count += 1
    return count / (time.perf_counter() - started)


def make_store(path: Path, count: int) -> list[str]:
    store = FileBackend(path, durable=False)
    ids = [f"sweep{i % 4}/lr{i % 10}/seed{i}" for i in range(count)]
    for i, rid in enumerate(ids):
        store.set(rid, MountBenchResult(run=rid, loss=1 / (i + 1), accuracy=0.5, history=[0.1] * 10))
    store.close()
    return ids


def _mount(store: Path, mnt: Path, extra: list[str]) -> None:
    mnt.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "resultsfs", "mount", str(store), str(mnt), "--models", str(MODELS_FILE)]
    subprocess.run([*command, *extra], check=True)


def _umount(mnt: Path) -> None:
    subprocess.run([sys.executable, "-m", "resultsfs", "umount", str(mnt)], check=True, capture_output=True)


def run(count: int = 2000, configs: dict[str, list[str]] | None = None) -> list[tuple[str, float, float]]:
    """Rows of (what, mount per second, backing directory per second)."""
    configs = configs or {"": []}
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "store"
        ids = make_store(base, count)
        direct = [str(base / f"{rid}.json") for rid in ids]
        _read_all(direct)  # warm the page cache for the direct baseline
        for label, extra in configs.items():
            store = Path(tmp) / f"store{len(rows)}"
            shutil.copytree(base, store)
            mnt = Path(tmp) / f"mnt{len(rows)}"
            _mount(store, mnt, extra)
            try:
                paths = [str(mnt / f"{rid}.json") for rid in ids]
                tag = f" [{label}]" if label else ""
                for what, readers in (("1 reader, cold", 1), ("1 reader, warm", 1), ("4 readers", 4)):
                    rows.append(
                        (
                            f"read, {what}{tag}",
                            _parallel_reads(paths, readers),
                            _parallel_reads(direct, readers),
                        )
                    )
                rows.append((f"stat every file{tag}", _stat_all(mnt), _stat_all(store)))
                rows.append(_writes(mnt, store, min(count, 300), tag))
            finally:
                _umount(mnt)
    return rows


def _writes(mnt: Path, store_path: Path, count: int, tag: str) -> tuple[str, float, float]:
    payload = MountBenchResult(run="w", loss=0.5, accuracy=0.5, history=[0.2] * 10)
    envelope = {
        "model_type": "MountBenchResult",
        "namespace": "bench",
        "data": payload.model_dump(mode="json"),
    }
    raw = json.dumps(envelope).encode()
    store = FileBackend(store_path)

    def through_mount(i: int) -> None:
        with open(mnt / "writes" / f"w{i}.json", "wb") as handle:
            handle.write(raw)

    def direct(i: int) -> None:
        store.set(f"direct/w{i}", payload, SetBehavior.OVERWRITE)

    (mnt / "writes").mkdir(exist_ok=True)
    return (f"write (commit) {tag}", _rate(count, through_mount), _rate(count, direct))


def _rate(count: int, fn: Callable[[int], None]) -> float:
    started = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - started)
