"""Nothing a program was told was written vanishes silently, and a mount refuses what cannot work.

Scratch files (names that are not results) live for the life of a mount; one still there when
the mount ends, or when its daemon dies, is kept in ``lost+found`` and reported. A scratch file
cannot be renamed to another name that is not a result (rsync's way of putting a file in place),
so rsync reports such files at once instead of them vanishing later.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from models import Counter
from mounting import MODELS, Mount, mounted, resultsfs, sh, start, stop, wait_until
from resultsfs import FileBackend, ResultStore, SqliteBackend
from resultsfs.atomic import process_is_running
from resultsfs.fs.staging import Staging


def _store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    FileBackend(store).set("r", Counter(writer="a", value=1))
    return store


def _kept(root: Path) -> dict[str, str]:
    """Files below a lost+found, by their path in the mount, with their content."""
    return {
        "/" + "/".join(p.relative_to(root).parts[1:]): p.read_text() for p in root.rglob("*") if p.is_file()
    }


def test_a_scratch_file_left_at_unmount_is_kept_logged_checked_and_announced(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    with mounted(store, mnt) as m:
        m.path("README.txt").write_text("read me\n")
        (m.path("d")).mkdir()
        m.path("d/notes").write_text("abc")
    lost = store / ".resultsfs" / "lost+found"
    assert _kept(lost) == {"/README.txt": "read me\n", "/d/notes": "abc"}
    assert "kept scratch file /README.txt (8 bytes)" in m.log()
    assert "kept scratch file /d/notes (3 bytes)" in m.log()
    assert not any((store / ".resultsfs" / "staging").iterdir())

    checked = resultsfs("check", "--store", str(store), "--models", MODELS, check=False)
    assert checked.returncode == 1
    assert "lost-found" in checked.stdout and "README.txt" in checked.stdout

    pid_file, log_file = tmp_path / "again.pid", tmp_path / "again.log"
    done = resultsfs(
        "mount",
        str(store),
        str(mnt),
        "--models",
        MODELS,
        "--pid-file",
        str(pid_file),
        "--log-file",
        str(log_file),
    )
    again = Mount(store, mnt, pid_file, log_file)
    try:
        assert "2 files written through earlier mounts of this store never became results" in done.stderr
        assert str(lost) in done.stderr
        assert sorted(os.listdir(mnt)) == ["d", "r.json"]
    finally:
        stop(again)


def test_the_scratch_files_of_a_dead_mount_are_kept_by_the_next_mount(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    mount = start(store, mnt)
    try:
        (mnt / "scratch.tmp").write_text("partial")
        dead = mount.pid
        os.kill(dead, 9)
        wait_until(lambda: not process_is_running(dead), 10, "the killed daemon did not exit")
        resultsfs("umount", str(mnt))
        staging = store / ".resultsfs" / "staging"
        assert any(staging.rglob("scratch.tmp"))
        mount = start(store, mnt)
        assert not any(staging.rglob("scratch.tmp"))
        assert _kept(store / ".resultsfs" / "lost+found") == {"/scratch.tmp": "partial"}
        assert "scratch.tmp" not in os.listdir(mnt)
        assert "kept scratch file /scratch.tmp (7 bytes)" in mount.log() and "its mount died" in mount.log()
    finally:
        stop(mount)


def test_a_dead_area_whose_random_part_is_all_digits_is_recognised(tmp_path: Path) -> None:
    """``vm.4176.54964024``: with dots in the host name, a greedy parse read host ``vm.4176``."""
    store = _store(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    area = store / ".resultsfs" / "staging" / f"{socket.gethostname()}.{gone.pid}.54964024"
    area.mkdir(parents=True)
    (area / "left.tmp").write_text("x")
    Staging(str(store), (".resultsfs", "staging")).close()
    assert not area.exists()
    assert _kept(store / ".resultsfs" / "lost+found") == {"/left.tmp": "x"}


def test_a_mount_of_an_sql_store_keeps_scratch_files_in_the_state_directory(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/results.db"
    ResultStore(SqliteBackend(tmp_path / "results.db")).close()
    with mounted(url, tmp_path / "mnt", workdir=tmp_path) as m:
        m.path("draft.txt").write_text("sql draft")
    state = Path(os.environ["RESULTSFS_STATE_DIR"])
    (label,) = [p for p in (state / "stores").glob("*/store") if p.read_text().strip() == url]
    assert _kept(label.parent / "lost+found") == {"/draft.txt": "sql draft"}


def test_rsync_of_a_mixed_directory_stores_the_results_names_the_rest_and_resends_nothing(
    tmp_path: Path,
) -> None:
    src, store, mnt = tmp_path / "src", _store(tmp_path), tmp_path / "mnt"
    (src / "b").mkdir(parents=True)
    source_store = FileBackend(tmp_path / "made")
    source_store.set("a", Counter(writer="rsync", value=1))
    source_store.set("b/c", Counter(writer="rsync", value=2))
    for rel in ("a.json", "b/c.json"):
        (src / rel).write_bytes((tmp_path / "made" / rel).read_bytes())
    (src / "README.txt").write_text("what these runs are\n")
    (src / "b" / "notes.md").write_text("# notes\n")
    with mounted(store, mnt):
        first = sh(f"rsync -a {src}/ {mnt}/")
        assert first.returncode == 23, first.stderr
        for name in ("README.txt", "notes.md"):
            assert name in first.stderr
        assert "Operation not permitted" in first.stderr
        assert ResultStore(FileBackend(store)).list_ids() == ["a", "b/c", "r"]
        for rel in ("a.json", "b/c.json"):
            assert sh(f"cmp {src / rel} {mnt / rel}").returncode == 0
        assert sorted(os.listdir(mnt)) == ["a.json", "b", "r.json"]
        second = sh(f"rsync -a --itemize-changes {src}/ {mnt}/")
        sent = [line for line in second.stdout.splitlines() if line.startswith(">f")]
        assert sorted(line.split()[-1] for line in sent) == ["README.txt", "b/notes.md"]
    assert not (store / ".resultsfs" / "lost+found").exists()  # rsync removed its refused temp files


def test_a_scratch_file_cannot_be_renamed_to_a_name_that_is_not_a_result(tmp_path: Path) -> None:
    with mounted(_store(tmp_path), tmp_path / "mnt") as m:
        m.path("t").write_text(
            '{"model_type": "Counter", "namespace": "default", "data": {"writer": "t", "value": 1}}'
        )
        moved = sh("mv t notes.txt", cwd=m.mnt)
        assert moved.returncode == 1 and "Operation not permitted" in moved.stderr
        why = sh("getfattr --only-values -n user.results.error t", cwd=m.mnt)
        assert "'notes.txt' is not a result name (results end in .json)" in why.stdout
        assert sh("mv t x.json", cwd=m.mnt).returncode == 0
        assert sorted(os.listdir(m.mnt)) == ["r.json", "x.json"]


# ---------------------------------------------------------------- refusals of the mount


def _mount_args(store: Path, mnt: Path, *extra: str) -> list[str]:
    return [
        "mount",
        str(store),
        str(mnt),
        "--pid-file",
        str(mnt) + ".pid",
        "--log-file",
        str(mnt) + ".log",
        *extra,
    ]


def test_a_mount_without_models_is_refused_unless_lenient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    monkeypatch.delenv("RESULTSFS_MODELS", raising=False)
    done = resultsfs(*_mount_args(store, mnt), check=False)
    assert done.returncode == 1
    assert "no --models given: every read would fail with EIO" in done.stderr and "--lenient" in done.stderr
    empty = tmp_path / "nomodels.py"
    empty.write_text("from pydantic import BaseModel\n\nclass NotRegistered(BaseModel):\n    x: int\n")
    done = resultsfs(*_mount_args(store, mnt, "--models", str(empty)), check=False)
    assert done.returncode == 1 and f"--models {empty} registered no model" in done.stderr
    assert not os.path.ismount(mnt)
    resultsfs(*_mount_args(store, mnt, "--lenient"))
    lenient = Mount(store, mnt, Path(str(mnt) + ".pid"), Path(str(mnt) + ".log"))
    try:
        assert (mnt / "r.json").read_bytes() == (store / "r.json").read_bytes()
    finally:
        stop(lenient)


def test_a_non_empty_mount_point_is_refused_unless_allowed(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "precious.txt").write_text("mine")
    done = resultsfs(*_mount_args(store, mnt, "--models", MODELS), check=False)
    assert done.returncode == 1
    assert f"mount point {mnt} is not empty (1 entries: 'precious.txt')" in done.stderr
    assert "--allow-non-empty" in done.stderr
    resultsfs(*_mount_args(store, mnt, "--models", MODELS, "--allow-non-empty"))
    over = Mount(store, mnt, Path(str(mnt) + ".pid"), Path(str(mnt) + ".log"))
    try:
        assert sorted(os.listdir(mnt)) == ["r.json"]
    finally:
        stop(over)
    assert (mnt / "precious.txt").read_text() == "mine"


def test_a_refusal_by_libfuse_is_reported_in_its_own_words(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    done = resultsfs(*_mount_args(store, mnt, "--models", MODELS, "-o", "no_such_option_x"), check=False)
    assert done.returncode == 1
    assert "no_such_option_x" in done.stderr, done.stderr
    assert not os.path.ismount(mnt)
