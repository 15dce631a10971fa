"""Reading a mounted store with ordinary tools: IDs as paths, content byte for byte, validation."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from models import Metrics
from mounting import Mount, mounted, sh
from resultsfs import FileBackend


class TestWhatTheMountShows:
    def test_ids_are_paths_and_directories_are_prefixes(self, mount: Mount) -> None:
        found = sh(f"cd {mount.mnt} && find . | sort").stdout.split()
        assert found == [
            ".",
            "./sweep3",
            "./sweep3/lr0.1",
            "./sweep3/lr0.1/seed7.json",
            "./sweep3/lr0.1/seed8.json",
        ]

    def test_store_files_temp_files_and_foreign_files_never_appear(self, mount: Mount) -> None:
        FileBackend(mount.store).acquire_lock("sweep3/lr0.1/seed7", holder="x")
        (mount.store / "sweep3" / ".resultsfs-tmp.h.1.ab").write_text("{")
        (mount.store / "notes.txt").write_text("not a result")
        (mount.store / "sweep3" / "bad name.json.bak").write_text("{}")
        time.sleep(0.01)
        listing = sh(f"ls -aR {mount.mnt}").stdout
        assert ".resultsfs" not in listing and "resultsfs-tmp" not in listing
        assert "notes.txt" not in listing and "bak" not in listing

    def test_content_is_the_stored_envelope_byte_for_byte(self, mount: Mount) -> None:
        for rel in ("sweep3/lr0.1/seed7.json", "sweep3/lr0.1/seed8.json"):
            data = mount.path(rel).read_bytes()
            assert data == mount.backing(rel).read_bytes()
            assert os.stat(mount.path(rel)).st_size == len(data)

    def test_mtime_mode_and_owner_come_from_the_backing_file(self, mount: Mount) -> None:
        backing = mount.backing("sweep3/lr0.1/seed7.json")
        os.chmod(backing, 0o640)
        os.utime(backing, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
        time.sleep(1.1)  # attribute cache timeout
        st, bst = os.stat(mount.path("sweep3/lr0.1/seed7.json")), os.stat(backing)
        assert (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) == (
            bst.st_mode,
            bst.st_uid,
            bst.st_gid,
            bst.st_mtime_ns,
        )

    def test_readdir_gives_entry_types_so_find_needs_no_stat(self, mount: Mount, helpers: Path) -> None:
        out = subprocess.run(
            [helpers, "dtypes", str(mount.path("sweep3"))], capture_output=True, text=True, check=True
        )
        assert "dir lr0.1" in out.stdout.splitlines()
        out = subprocess.run(
            [helpers, "dtypes", str(mount.path("sweep3/lr0.1"))], capture_output=True, text=True, check=True
        )
        assert {"file seed7.json", "file seed8.json"} <= set(out.stdout.splitlines())
        assert "unknown" not in out.stdout


class TestReadsValidate:
    BAD = {
        "notjson": "{oops",
        "nomodel": '{"namespace": "default", "data": {}}',
        "ghost": '{"model_type": "Ghost", "namespace": "default", "data": {}}',
        "invalid": '{"model_type": "Metrics", "namespace": "default", "data": {"loss": "high", "accuracy": 7}}',
    }

    def _plant(self, store: Path) -> None:
        for name, content in self.BAD.items():
            (store / f"{name}.json").write_text(content)

    def test_invalid_results_fail_to_open_with_eio(self, mount: Mount) -> None:
        self._plant(mount.store)
        for name in self.BAD:
            done = sh(f"cat {mount.mnt}/{name}.json")
            assert done.returncode == 1 and "Input/output error" in done.stderr, name
            error = sh(f"getfattr --only-values -n user.results.error {mount.mnt}/{name}.json").stdout
            assert error.startswith("read: "), error
        assert "refused to open" in mount.log()

    def test_lenient_serves_them(self, tmp_path: Path) -> None:
        store = tmp_path / "store"
        FileBackend(store).close()
        self._plant(store)
        with mounted(store, tmp_path / "mnt", ["--lenient"]) as m:
            for name, content in self.BAD.items():
                assert m.path(f"{name}.json").read_text() == content

    def test_validation_is_cached_per_version(self, mount: Mount) -> None:
        path = mount.path("sweep3/lr0.1/seed7.json")
        for _ in range(3):
            path.read_bytes()
        assert mount.log().count("'sweep3/lr0.1/seed7': validated version") == 1
        FileBackend(mount.store).set(
            "sweep3/lr0.1/seed7", Metrics(loss=0.1, accuracy=0.2), behavior="overwrite"
        )  # type: ignore[arg-type]
        time.sleep(1.1)
        assert json.loads(path.read_bytes())["data"]["loss"] == 0.1
        assert mount.log().count("'sweep3/lr0.1/seed7': validated version") == 2
