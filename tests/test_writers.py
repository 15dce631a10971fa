"""Writers in other languages store results through a mount: the programs of examples/writers/.

docs/writing.md shows these files as they are. The C writer stores bare data in a bound
directory with open, write, fsync and close, and prints the mount's reason
(``user.results.error``) when a result is refused. The shell writer checks the data against
``.schemas/`` with check-jsonschema before it writes anything, then commits by a rename.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from models import Metrics
from mounting import Mount, mounted
from resultsfs import FileBackend, ResultStore

WRITERS = Path(__file__).resolve().parent.parent / "examples" / "writers"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


@dataclass
class Bound:
    """A mount, its directory ``runs`` bound to default:Metrics, and the store behind it."""

    mount: Mount
    runs: Path
    store: ResultStore


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env}
    )


@pytest.fixture(scope="module")
def c_writer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """write_result.c compiled with gcc, every warning an error."""
    binary = tmp_path_factory.mktemp("writers") / "write_result"
    built = run(["gcc", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(WRITERS / "write_result.c")])
    assert built.returncode == 0, built.stderr
    return binary


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[Bound]:
    store_path = tmp_path / "store"
    FileBackend(store_path).close()
    with mounted(store_path, tmp_path / "mnt") as mount, ResultStore(FileBackend(store_path)) as store:
        runs = mount.path("runs")
        runs.mkdir()
        done = run(["setfattr", "-n", "user.results.model", "-v", "default:Metrics", str(runs)])
        assert done.returncode == 0, done.stderr
        yield Bound(mount, runs, store)


def shell_writer(bound: Bound, result_id: str, data: Path) -> subprocess.CompletedProcess[str]:
    script = WRITERS / "write_result.sh"
    return run(
        ["bash", str(script), str(bound.mount.mnt), result_id, str(data)],
        CHECK_JSONSCHEMA=str(CHECK_JSONSCHEMA),
    )


class TestCWriter:
    def test_it_stores_bare_data_in_a_bound_directory(self, c_writer: Path, bound: Bound) -> None:
        done = run([str(c_writer), str(bound.runs / "r1.json"), "0.25", "0.91", "100"])
        assert done.returncode == 0, done.stderr
        assert bound.store.get("runs/r1") == Metrics(loss=0.25, accuracy=0.91, step=100)

    def test_a_refused_result_fails_the_program_with_the_mounts_reason(
        self, c_writer: Path, bound: Bound
    ) -> None:
        done = run([str(c_writer), str(bound.runs / "r2.json"), "0.25", "5", "100"])
        assert done.returncode == 1
        assert "fsync of" in done.stderr and "Invalid argument" in done.stderr
        assert "commit refused: result 'runs/r2': data does not validate as Metrics: accuracy" in done.stderr
        assert not bound.store.exists("runs/r2")

    def test_a_refused_replacement_leaves_the_stored_result_as_it_was(
        self, c_writer: Path, bound: Bound
    ) -> None:
        assert run([str(c_writer), str(bound.runs / "r1.json"), "0.25", "0.91", "100"]).returncode == 0
        done = run([str(c_writer), str(bound.runs / "r1.json"), "0.1", "1.5", "200"])
        assert done.returncode == 1 and "accuracy" in done.stderr
        assert bound.store.get("runs/r1") == Metrics(loss=0.25, accuracy=0.91, step=100)


class TestShellWriter:
    def test_it_refuses_data_the_schema_rejects_before_writing_anything(
        self, bound: Bound, tmp_path: Path
    ) -> None:
        data = tmp_path / "bad.json"
        data.write_text('{"loss": "low", "accuracy": 5}\n')
        done = shell_writer(bound, "runs/r3", data)
        assert done.returncode == 1
        assert "'low' is not of type 'number'" in done.stderr and "nothing written" in done.stderr
        assert os.listdir(bound.runs) == []
        assert not bound.store.exists("runs/r3")
        assert "r3" not in bound.mount.log()  # the mount never saw a file of that name

    def test_it_stores_checked_data_by_renaming_a_temp_file(self, bound: Bound, tmp_path: Path) -> None:
        data = tmp_path / "good.json"
        data.write_text('{"loss": 0.3, "accuracy": 0.5}\n')
        done = shell_writer(bound, "runs/r4", data)
        assert done.returncode == 0, done.stderr
        assert bound.store.get("runs/r4") == Metrics(loss=0.3, accuracy=0.5)
        assert os.listdir(bound.runs) == ["r4.json"]  # no temp file left behind

    def test_a_commit_refused_by_the_mount_is_reported_with_its_reason(
        self, bound: Bound, tmp_path: Path
    ) -> None:
        # Data the schema accepts, refused by the mount all the same: another holder leases the result.
        bound.store.set("runs/r5", Metrics(loss=0.9, accuracy=0.1))
        assert bound.store.acquire_lock("runs/r5", "nightly", acquire_timeout=0, hold_timeout=60)
        data = tmp_path / "good.json"
        data.write_text('{"loss": 0.3, "accuracy": 0.5}\n')
        done = shell_writer(bound, "runs/r5", data)
        assert done.returncode == 1
        assert "Device or resource busy" in done.stderr
        assert "commit refused: cannot store result 'runs/r5' because it is locked" in done.stderr
        assert "leased by 'nightly'" in done.stderr
        assert os.listdir(bound.runs) == ["r5.json"]  # the temp file was removed
        assert bound.store.get("runs/r5") == Metrics(loss=0.9, accuracy=0.1)
