"""Reliability: hostile paths, bad names, a full or read-only backing store, killed daemons and writers.

Every case ends by checking that nothing outside the store changed and that the store holds
only whole, valid results.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import OtherUser
from models import Counter, Metrics
from mounting import MODELS, mount_state, mounted, resultsfs, sh, start, stop, wait_until, write_errno
from resultsfs import FileBackend, ResultStore, SetBehavior

VALID = b'{"model_type": "Counter", "namespace": "default", "data": {"writer": "mnt", "value": 5}}'


def _errno_of(call: object) -> int | None:
    try:
        call()  # type: ignore[operator]
    except OSError as exc:
        return exc.errno
    return None


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


class TestHostilePaths:
    def test_planted_symlinks_are_invisible_and_never_followed(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.json").write_text('{"model_type": "Counter", "data": {"writer": "x", "value": 1}}')
        before = _tree(outside)
        store = tmp_path / "store"
        FileBackend(store).set("ok", Counter(writer="a", value=1))
        (store / "evil").symlink_to(outside)
        (store / "link.json").symlink_to(outside / "secret.json")
        (store / "loop").symlink_to(store / "loop")
        with mounted(store, tmp_path / "mnt") as m:
            assert sorted(os.listdir(m.mnt)) == ["ok.json"]
            assert _errno_of((m.mnt / "evil" / "secret.json").read_bytes) == errno.ENOENT
            assert _errno_of((m.mnt / "link.json").read_bytes) == errno.ENOENT
            assert _errno_of(lambda: os.listdir(m.mnt / "loop")) == errno.ENOENT
            assert (
                write_errno(m.mnt / "link.json", VALID) == errno.EACCES
            )  # the store refuses to write through it
            assert _errno_of(lambda: os.mkdir(m.mnt / "evil")) == errno.EEXIST
            assert _errno_of(lambda: os.rename(m.mnt / "ok.json", m.mnt / "evil" / "x.json")) == errno.ENOENT
        assert _tree(outside) == before
        assert (store / "link.json").is_symlink()

    def test_a_planted_hard_link_is_read_but_never_changed_outside(self, tmp_path: Path) -> None:
        store = tmp_path / "store"
        FileBackend(store).close()
        outside = tmp_path / "outside.json"
        outside.write_text(
            '{"model_type": "Counter", "namespace": "default", "data": {"writer": "o", "value": 1}}'
        )
        outside.chmod(0o644)
        os.link(outside, store / "h.json")
        before = (outside.read_bytes(), outside.stat().st_mode, outside.stat().st_mtime_ns)
        with mounted(store, tmp_path / "mnt") as m:
            assert json.loads((m.mnt / "h.json").read_text())["data"]["writer"] == "o"
            assert _errno_of(lambda: os.chmod(m.mnt / "h.json", 0o600)) == errno.EPERM
            assert _errno_of(lambda: os.utime(m.mnt / "h.json", (1, 1))) == errno.EPERM
            assert "hard links" in os.getxattr(m.mnt / "h.json", "user.results.error").decode()
            assert _errno_of(lambda: os.link(m.mnt / "h.json", m.mnt / "h2.json")) == errno.EPERM
            assert _errno_of(lambda: os.symlink("h.json", m.mnt / "s.json")) == errno.EPERM
            assert write_errno(m.mnt / "h.json", VALID) is None  # replaced by rename: the link is cut
        assert (outside.read_bytes(), outside.stat().st_mode, outside.stat().st_mtime_ns) == before
        assert json.loads((store / "h.json").read_text())["data"]["writer"] == "mnt"

    def test_a_store_replaced_while_mounted_is_never_written_to(self, tmp_path: Path) -> None:
        store = tmp_path / "store"
        FileBackend(store).set("r", Counter(writer="a", value=1))
        with mounted(store, tmp_path / "mnt") as m:
            assert (m.mnt / "r.json").exists()
            os.rename(store, tmp_path / "store.old")
            store.mkdir()
            wait_until(
                lambda: _errno_of(lambda: os.listdir(m.mnt)) == errno.ESTALE,
                5,
                "the mount did not notice",
            )
            assert write_errno(m.mnt / "new.json", VALID) == errno.ESTALE
            assert "replaced" in m.log()
            assert "unmounted" in resultsfs("umount", str(m.mnt)).stdout  # umount copes with ESTALE
        assert list(store.iterdir()) == []  # nothing reached the new directory
        assert FileBackend(tmp_path / "store.old").list_ids() == ["r"]


class TestBadNamesThroughTheMount:
    def test_names_that_are_not_utf8_or_hold_control_characters(self, mount: object) -> None:
        from mounting import Mount

        assert isinstance(mount, Mount)
        before = _tree(mount.store)
        for name in (b"\xff\xfe.json", b"bad\nname.json", b"tab\there", b"bell\x07.json"):
            target = os.fsencode(mount.mnt) + b"/" + name
            assert write_errno(target, VALID) == errno.EINVAL, name
            assert _errno_of(lambda t=target: os.mkdir(t)) == errno.EINVAL, name  # type: ignore[misc]
        assert (
            _errno_of(lambda: os.rename(mount.mnt / "sweep3", os.fsencode(mount.mnt) + b"/\xff"))
            == errno.EINVAL
        )
        assert _tree(mount.store) == before
        assert "not valid UTF-8" in mount.log() and "control character" in mount.log()

    def test_backing_entries_the_mount_could_not_create_are_not_listed(self, mount: object) -> None:
        from mounting import Mount

        assert isinstance(mount, Mount)
        os.mkdir(os.fsencode(mount.store) + b"/bad\nname")
        os.mkdir(os.fsencode(mount.store) + b"/\xff\xfe")
        (mount.store / "dir.json").mkdir()
        time.sleep(1.1)
        assert sorted(os.listdir(mount.mnt)) == ["sweep3"]
        assert sh(f"ls -l {mount.mnt}").stdout.count("?") == 0

    def test_over_long_names_and_deep_nesting(self, mount: object) -> None:
        from mounting import Mount

        assert isinstance(mount, Mount)
        assert write_errno(mount.mnt / ("x" * 251 + ".json"), VALID) == errno.ENAMETOOLONG
        assert write_errno(mount.mnt / ("y" * 250 + ".json"), VALID) is None
        deep = mount.mnt
        for level in range(63):
            deep = deep / f"d{level}"
            os.mkdir(deep)
        # An ID has at most 64 parts: 63 directories and the result's name.
        assert _errno_of(lambda: os.mkdir(deep / "d63")) == errno.EINVAL
        assert write_errno(deep / "r.json", VALID) is None
        assert FileBackend(mount.store).exists("/".join(f"d{i}" for i in range(63)) + "/r")


class TestFullAndReadOnlyBacking:
    @pytest.fixture
    def small_fs(self, tmp_path: Path) -> Iterator[Path]:
        target = tmp_path / "small"
        target.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], check=True)
        try:
            yield target
        finally:
            subprocess.run(["umount", "-l", str(target)], check=False)

    def _fill(self, root: Path) -> None:
        fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def test_enospc_reaches_the_writer_and_the_old_result_stays(self, small_fs: Path, tmp_path: Path) -> None:
        store = small_fs / "store"
        backend = FileBackend(store)
        old = Counter(writer="old", value=1)
        backend.set("r", old)
        with mounted(store, small_fs / "mnt", workdir=tmp_path) as m:
            self._fill(small_fs)
            big = json.dumps(
                {"model_type": "Counter", "data": {"writer": "new", "value": 2, "payload": "x" * 50000}}
            )
            assert write_errno(m.mnt / "r.json", big.encode()) == errno.ENOSPC
            assert "No space left" in os.getxattr(m.mnt / "r.json", "user.results.error").decode()
            assert backend.get("r") == old
            with pytest.raises(OSError) as info:
                backend.set("r", Counter(writer="api", value=3, payload="y" * 50000), SetBehavior.OVERWRITE)
            assert info.value.errno == errno.ENOSPC
            assert backend.get("r") == old
            assert not [p for p in store.rglob(".resultsfs-tmp.*")]
            (small_fs / "filler").unlink()
            assert write_errno(m.mnt / "r.json", big.encode()) is None

    def test_erofs_reaches_the_writer_and_the_old_result_stays(self, small_fs: Path, tmp_path: Path) -> None:
        store = small_fs / "store"
        backend = FileBackend(store)
        old = Counter(writer="old", value=1)
        backend.set("r", old)
        with mounted(store, small_fs / "mnt", workdir=tmp_path) as m:
            subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
            try:
                assert write_errno(m.mnt / "r.json", VALID) == errno.EROFS
                assert backend.get("r") == old
                assert json.loads((m.mnt / "r.json").read_text())["data"]["writer"] == "old"
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)


WRITER = """
import os, sys, json, time
mnt, name, ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
seq = 0
print("ready", flush=True)
while True:
    seq += 1
    rid = ids[seq % len(ids)]
    record = {"model_type": "Counter", "namespace": "default",
              "data": {"writer": name, "value": seq, "payload": str(seq) * (seq % 2000)}}
    try:
        with open(os.path.join(mnt, rid + ".json"), "w") as handle:
            handle.write(json.dumps(record))
    except OSError:
        time.sleep(0.01)
"""


class TestKilledDaemonAndWriters:
    def test_daemon_killed_while_writers_commit(self, tmp_path: Path) -> None:
        store = tmp_path / "store"
        backend = FileBackend(store)
        ids = [f"shared/r{i}" for i in range(6)]
        for rid in ids:
            backend.set(rid, Counter(writer="init", value=0))
        mnt = tmp_path / "mnt"
        mount = start(store, mnt)
        try:  # stop() unmounts (or clears the stale mount) whatever fails below
            writers = [
                subprocess.Popen(
                    [sys.executable, "-c", WRITER, str(mnt), f"w{i}", ",".join(ids)], stdout=subprocess.PIPE
                )
                for i in range(4)
            ]
            try:
                for proc in writers:
                    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
                time.sleep(1.0)
                os.kill(mount.pid, signal.SIGKILL)
                wait_until(lambda: mount_state(mnt) == "stale", 10, "the mount did not go stale")
            finally:
                for proc in writers:
                    proc.kill()
                    proc.wait()
                    assert proc.stdout is not None
                    proc.stdout.close()
            report = ResultStore(FileBackend(store)).check()
            assert report.results == len(ids)
            assert all(p.kind == "stale-temp" for p in report.problems), report.problems
            for rid in ids:
                result = backend.get(rid)  # parses and validates
                assert result.payload == str(result.value) * (result.value % 2000) or result.writer == "init"
            assert "cleared stale mount" in resultsfs("umount", str(mnt)).stdout
            mount = start(store, mnt)
            assert sorted(os.listdir(mnt / "shared")) == sorted(f"r{i}.json" for i in range(6))
            wait_until(
                lambda: not list(store.rglob(".resultsfs-tmp.*")),
                10,
                "leftover temp files were not cleaned up",
            )
            assert write_errno(mnt / "shared" / "r0.json", VALID) is None
        finally:
            stop(mount)

    def test_a_writer_killed_mid_write_changes_nothing(self, mount: object) -> None:
        from mounting import Mount

        assert isinstance(mount, Mount)
        target = mount.path("sweep3/lr0.1/seed7.json")
        before = mount.backing("sweep3/lr0.1/seed7.json").read_bytes()
        script = (
            "import os, sys, time\n"
            f"fd = os.open({str(target)!r}, os.O_WRONLY | os.O_TRUNC)\n"
            'os.write(fd, b\'{"model_type": "Metrics", "data": {"loss": 0.1,\')\n'
            "print('ready', flush=True)\n"
            "time.sleep(60)\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            proc.kill()
            assert proc.stdout is not None
            proc.stdout.close()
        time.sleep(0.2)  # the kernel closes the killed writer's file: flush, release
        assert mount.backing("sweep3/lr0.1/seed7.json").read_bytes() == before
        assert target.read_bytes() == before
        assert "invalid JSON" in os.getxattr(target, "user.results.error").decode()


class TestOtherUsers:
    def test_allow_other_follows_the_backing_modes_and_protects_leases(
        self, other_user: OtherUser, shared_dir: Path
    ) -> None:
        store = shared_dir / "store"
        backend = FileBackend(store)
        backend.set("pub", Counter(writer="root", value=1))
        backend.set("priv", Counter(writer="root", value=2))
        (store / "priv.json").chmod(0o600)
        (store / "theirs").mkdir()
        os.chown(store / "theirs", other_user.uid, other_user.gid)
        with mounted(store, shared_dir / "mnt", ["--allow-other"]) as m:
            mnt = m.mnt
            assert other_user.run(f"cat {mnt}/pub.json").returncode == 0
            denied = other_user.run(f"cat {mnt}/priv.json")
            assert denied.returncode == 1 and "Permission denied" in denied.stderr
            assert "Permission denied" in other_user.run(f"echo '{{}}' > {mnt}/pub.json").stderr
            assert "Permission denied" in other_user.run(f"cp {mnt}/pub.json {mnt}/new.json").stderr
            assert "Permission denied" in other_user.run(f"rm {mnt}/pub.json").stderr
            made = other_user.run(f"cp {mnt}/pub.json {mnt}/theirs/mine.json")
            assert made.returncode == 0, made.stderr
            st = (store / "theirs" / "mine.json").stat()
            assert (st.st_uid, st.st_gid) == (other_user.uid, other_user.gid)
            # The store's own files are out of reach through the mount.
            listing = other_user.run(f"ls -a {mnt}; cat {mnt}/.resultsfs/leases/*")
            assert ".resultsfs" not in listing.stdout and "No such file" in listing.stderr
            # A lease held by someone else cannot be broken or written through.
            backend.acquire_lock("theirs/mine", holder="root-job")
            other_user.run(f"setfattr -n user.results.lock.holder -v me {mnt}/theirs/mine.json")
            assert backend.store.lease("theirs/mine").holder == "root-job"  # type: ignore[union-attr]
            busy = other_user.run(f"cp {mnt}/pub.json {mnt}/theirs/mine.json")
            assert busy.returncode == 1 and "busy" in busy.stderr
            assert other_user.run(f"rm {mnt}/theirs/mine.json").returncode == 1
            assert backend.exists("theirs/mine")

    def test_without_allow_other_other_users_are_kept_out(
        self, other_user: OtherUser, shared_dir: Path
    ) -> None:
        store = shared_dir / "store"
        FileBackend(store).set("pub", Counter(writer="root", value=1))
        with mounted(store, shared_dir / "mnt") as m:
            done = other_user.run(f"ls {m.mnt}")
            assert done.returncode != 0 and "Permission denied" in done.stderr


def test_cli_models_and_mount_refuse_an_unreadable_store(tmp_path: Path) -> None:
    """Bad input through the CLI: each error is one line naming the path and the reason."""
    store = tmp_path / "store"
    backend = FileBackend(store)
    backend.set("r", Metrics(loss=0.1, accuracy=0.2))
    cases = [
        (["get", "--store", str(store), "nope"], "no result found for ID 'nope'"),
        (["get", "--store", str(store), "../x"], "invalid result ID '../x'"),
        (["ls", "--store", str(tmp_path / "missing")], "does not exist"),
        (["put", "--store", str(store), "r", "-", "--models", MODELS], "already stored under ID 'r'"),
        (
            ["put", "--store", str(store), "r", "-", "--models", MODELS, "--on-exists", "overwrite"],
            "data does not validate as Metrics",
        ),
        (["put", "--store", str(store), "x\ny", "-", "--models", MODELS], "contains the character '\\n'"),
    ]
    for args, message in cases:
        done = subprocess.run(
            [sys.executable, "-m", "resultsfs", *args], input="{}", capture_output=True, text=True
        )
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
        assert done.stderr.count("\n") == 1  # one line, no traceback
    assert FileBackend(store).list_ids() == ["r"]
    assert sh(f"echo garbage | {sys.executable} -m resultsfs put --store {store} g -").returncode == 1
