"""Mounting and unmounting: readiness, preflight errors, stale mounts, signals, foreground mode."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from models import Counter
from mounting import MODELS, RESULTSFS, mount_state, mounted, resultsfs, start, stop, wait_until
from resultsfs import FileBackend


def _store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    FileBackend(store).set("r", Counter(writer="a", value=1))
    return store


def test_mount_returns_when_ready_and_the_mount_is_usable_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    mount = start(store, tmp_path / "mnt")
    try:
        assert (tmp_path / "mnt" / "r.json").read_bytes() == (store / "r.json").read_bytes()
        mounts = Path("/proc/mounts").read_text()
        line = next(line for line in mounts.splitlines() if f" {tmp_path / 'mnt'} " in line)
        assert line.split()[0] == str(store) and line.split()[2] == "fuse.resultsfs"
        assert "default_permissions" in line
    finally:
        stop(mount)
    assert mount_state(tmp_path / "mnt") == "none"
    assert not mount.pid_file.exists()


def test_stale_mount_is_explained_cleared_by_umount_and_mountable_again(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    mount = start(store, mnt)
    try:
        os.kill(mount.pid, signal.SIGKILL)
        wait_until(lambda: mount_state(mnt) == "stale", 10)
        done = subprocess.run(["ls", str(mnt)], capture_output=True, text=True)
        assert "Transport endpoint is not connected" in done.stderr
        again = resultsfs("mount", str(store), str(mnt), "--models", MODELS, check=False)
        assert again.returncode == 1
        assert "stale mount" in again.stderr and f"resultsfs umount {mnt}" in again.stderr
        cleared = resultsfs("umount", str(mnt))
        assert "cleared stale mount" in cleared.stdout
        assert mount_state(mnt) == "none"
        mount = start(store, mnt)
        assert (mnt / "r.json").exists()
    finally:
        stop(mount)


def test_preflight_errors_name_the_path_and_the_fix(tmp_path: Path) -> None:
    store = _store(tmp_path)
    (tmp_path / "mnt").mkdir()
    cases = [
        ((str(tmp_path / "nope"), str(tmp_path / "mnt")), "store"),
        ((str(store), str(tmp_path / "missing")), "does not exist"),
        ((str(store), str(store / "inside")), "may not be the store"),
    ]
    (store / "inside").mkdir()
    for args, message in cases:
        done = resultsfs("mount", *args, "--models", MODELS, check=False)
        assert done.returncode == 1 and message in done.stderr, done.stderr
    bad_models = resultsfs(
        "mount", str(store), str(tmp_path / "mnt"), "--models", "no_such_models_mod", check=False
    )
    assert bad_models.returncode == 1 and "no_such_models_mod" in bad_models.stderr
    assert mount_state(tmp_path / "mnt") == "none"


def test_mounting_twice_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with mounted(store, tmp_path / "mnt"):
        done = resultsfs("mount", str(store), str(tmp_path / "mnt"), "--models", MODELS, check=False)
        assert done.returncode == 1 and "already a mount point" in done.stderr


def test_umount_of_something_not_mounted(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    done = resultsfs("umount", str(tmp_path / "plain"), check=False)
    assert done.returncode == 1 and "is not mounted" in done.stderr


def test_sigterm_unmounts_cleanly(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    mount = start(store, mnt)
    try:
        os.kill(mount.pid, signal.SIGTERM)
        wait_until(
            lambda: mount_state(mnt) == "none" and "stopped by a signal" in mount.log(),
            10,
            mount.log()[-500:],
        )
    finally:
        stop(mount)


def test_foreground_mode_logs_to_stderr_until_unmounted(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(
        [*RESULTSFS, "mount", "-f", str(store), str(mnt), "--models", MODELS],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: os.path.ismount(mnt), 20, still=lambda: proc.poll() is None)
        (mnt / "r.json").write_text('{"writer": "fg", "value": 2}')
        resultsfs("umount", str(mnt))
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "committed" in err and "unmounted" in err
    finally:
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
            proc.kill()
            proc.communicate()


def test_a_store_written_by_results_manager_mounts_in_the_background(tmp_path: Path) -> None:
    store = tmp_path / "rm-store"
    (store / "exp").mkdir(parents=True)
    (store / "exp" / "run.json").write_text(
        '{\n  "model_type": "Counter",\n  "namespace": "default",\n  "data": {\n    "writer": "rm",\n    "value": 1\n  }\n}'
    )
    with mounted(store, tmp_path / "mnt") as m:
        assert (m.mnt / "exp" / "run.json").read_text().startswith("{")
    assert (store / ".resultsfs" / "mount.log").exists() or (tmp_path / "mnt.log").exists()


def test_pid_file_in_the_foreground(tmp_path: Path) -> None:
    store, mnt, pid_file = _store(tmp_path), tmp_path / "mnt", tmp_path / "fg.pid"
    mnt.mkdir()
    proc = subprocess.Popen(
        [*RESULTSFS, "mount", "-f", str(store), str(mnt), "--models", MODELS, "--pid-file", str(pid_file)],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(pid_file.exists, 20, still=lambda: proc.poll() is None)
        assert int(pid_file.read_text()) == proc.pid
        resultsfs("umount", str(mnt))
        assert proc.wait(timeout=20) == 0
        assert not pid_file.exists()
    finally:
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
            proc.kill()
            proc.wait()
