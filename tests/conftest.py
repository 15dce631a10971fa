"""Shared fixtures: a fresh store per test and a registry restored after each test."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import models  # noqa: E402  (registers the test models)
from mounting import Mount  # noqa: E402
from resultsfs import FileBackend, ResultsManager, ResultStore, registry  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Mounts of SQL stores keep their staging and lost+found here, not in /var/lib/resultsfs."""
    state = tmp_path_factory.mktemp("state")
    saved = os.environ.get("RESULTSFS_STATE_DIR")
    os.environ["RESULTSFS_STATE_DIR"] = str(state)
    yield state
    if saved is None:
        os.environ.pop("RESULTSFS_STATE_DIR", None)
    else:
        os.environ["RESULTSFS_STATE_DIR"] = saved


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
def store(store_dir: Path) -> Iterator[ResultStore]:
    """The store over a fresh directory backend."""
    with ResultStore(FileBackend(store_dir)) as opened:
        yield opened


@pytest.fixture
def manager(store: ResultStore) -> ResultsManager:
    return ResultsManager(backend=store.backend)


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
def clocked_store(store_dir: Path, clock: FakeClock) -> Iterator[ResultStore]:
    with ResultStore(FileBackend(store_dir, clock=clock)) as opened:
        yield opened


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    """A store mounted for real (default options), with two results in it."""
    from mounting import mounted

    store_path = tmp_path / "store"
    backend = FileBackend(store_path)
    backend.set("sweep3/lr0.1/seed7", models.Metrics(loss=0.5, accuracy=0.9, step=7))
    backend.set("sweep3/lr0.1/seed8", models.Metrics(loss=0.4, accuracy=0.8, step=8))
    backend.close()
    with mounted(store_path, tmp_path / "mnt") as m:
        yield m


@pytest.fixture(scope="session")
def helpers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/helpers.c compiled with the system C compiler (real open/write/close calls)."""
    import subprocess

    binary = tmp_path_factory.mktemp("bin") / "helpers"
    subprocess.run(["cc", "-Wall", "-o", str(binary), str(TESTS_DIR / "helpers.c")], check=True)
    return binary


@dataclass(frozen=True)
class OtherUser:
    """A second, unprivileged user: commands run as it through setpriv."""

    name: str
    uid: int
    gid: int

    def run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a bash command line as this user."""
        return subprocess.run(
            ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "bash", "-c", command],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


@pytest.fixture
def other_user() -> Iterator[OtherUser]:
    """A system user created for the test (and removed after it, if the test made it)."""
    name = "rfs-tester"

    def ids() -> tuple[int, int]:
        found = [
            int(subprocess.run(["id", flag, name], capture_output=True, text=True, check=True).stdout)
            for flag in ("-u", "-g")
        ]
        return found[0], found[1]

    created = subprocess.run(["id", "-u", name], capture_output=True).returncode != 0
    if created:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
        )
    try:
        uid, gid = ids()
        yield OtherUser(name, uid, gid)
    finally:
        if created:
            subprocess.run(["userdel", name], check=False)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's own tmp is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="rfs-users-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A PostgreSQL server of the test session's own (Debian's package, started in /tmp)."""
    import pgserver

    with pgserver.running() as server:
        yield server
