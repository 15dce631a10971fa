"""Shared fixtures: a fresh store per test and a registry restored after each test."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import models  # noqa: E402  (registers the test models)
from resultsfs import FileBackend, ResultsManager, registry  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_registry() -> Iterator[None]:
    """Each test may register models; the registry is put back as it was afterwards."""
    saved = copy.copy({ns: dict(m) for ns, m in registry._registry.items()})
    yield
    with registry._lock:
        registry._registry.clear()
        registry._registry.update(saved)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_dir: Path) -> Iterator[FileBackend]:
    backend = FileBackend(store_dir)
    yield backend
    backend.close()


@pytest.fixture
def manager(store: FileBackend) -> ResultsManager:
    return ResultsManager(backend=store)


@pytest.fixture
def metrics() -> models.Metrics:
    return models.Metrics(loss=0.25, accuracy=0.9, step=3)


class FakeClock:
    """A UTC clock that only moves when a test says so (``advance``)."""

    def __init__(self) -> None:
        import pendulum

        self.now = pendulum.datetime(2026, 11, 21, 12, 0, 0, tz="UTC")

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = self.now.add(microseconds=int(seconds * 1_000_000))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_store(store_dir: Path, clock: FakeClock) -> Iterator[FileBackend]:
    backend = FileBackend(store_dir, clock=clock)
    yield backend
    backend.close()
