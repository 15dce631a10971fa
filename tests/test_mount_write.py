"""Writing results through the mount with ordinary programs, and every way a write is refused."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from models import Counter, Metrics
from mounting import MODELS, TESTS, Mount, mounted, sh, wait_until, write_errno
from resultsfs import FileBackend

ENVELOPE = {
    "model_type": "Metrics",
    "namespace": "default",
    "data": {"loss": 0.25, "accuracy": 0.5, "step": 1},
}


def envelope(**data: object) -> str:
    record = json.loads(json.dumps(ENVELOPE))
    record["data"].update(data)
    return json.dumps(record)


def stored(mount: Mount, rid: str) -> dict:  # type: ignore[type-arg]
    return json.loads((mount.store / f"{rid}.json").read_text())


def canonical(mount: Mount, rid: str) -> bool:
    """The backing file holds the canonical envelope (what the store itself writes)."""
    raw = (mount.store / f"{rid}.json").read_bytes()
    return raw == (json.dumps(json.loads(raw), indent=2) + "\n").encode()


class TestWorkflows:
    def test_append_keeps_posix_semantics(self, mount: Mount) -> None:
        path = f"{mount.mnt}/sweep3/lr0.1/seed8.json"
        before = stored(mount, "sweep3/lr0.1/seed8")
        assert sh(f"echo >> {path}").returncode == 0  # whitespace after the object: still the same result
        assert stored(mount, "sweep3/lr0.1/seed8") == before
        done = sh(f'python3 -c \'import sys; f = open("{path}", "a"); f.write("{{}}"); f.close()\'')
        assert done.returncode != 0 and "Invalid argument" in done.stderr  # two objects: refused at close
        assert stored(mount, "sweep3/lr0.1/seed8") == before

    @pytest.mark.parametrize(
        "editor",
        [
            "ex -s",
            "vim -es -u NONE",
            # Forces vim's backup dance (4913 probe, rename to x.json~, write anew, delete the
            # backup), which its default backupskip turns off under /tmp where tests mount.
            "vim -es -u NONE -c 'set nobackup writebackup backupskip= backupcopy=no'",
        ],
        ids=["ex", "vim", "vim-backup-rename"],
    )
    def test_editor_edits_a_result(self, mount: Mount, editor: str) -> None:
        path = f"{mount.mnt}/sweep3/lr0.1/seed7.json"
        done = sh(f"{editor} -c '%s/\"step\": 7/\"step\": 77/' -c 'wq' {path}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert stored(mount, "sweep3/lr0.1/seed7")["data"]["step"] == 77
        assert sorted(os.listdir(mount.path("sweep3/lr0.1"))) == ["seed7.json", "seed8.json"]

    def test_c_program_open_write_close(self, mount: Mount, helpers: Path) -> None:
        out = subprocess.run(
            [helpers, "write", str(mount.path("c.json")), envelope(step=5)], capture_output=True, text=True
        )
        assert (out.returncode, out.stdout.strip()) == (0, "ok")
        assert stored(mount, "c")["data"]["step"] == 5

    def test_mount_write_is_read_back_by_the_python_api_in_another_process(self, mount: Mount) -> None:
        mount.path("x.json").write_text(envelope(step=9))
        script = textwrap.dedent(f"""
            import sys; sys.path.insert(0, {str(TESTS)!r})
            import models
            from resultsfs import ResultsManager
            print(ResultsManager({str(mount.store)!r}, create_if_missing=False).get("x").step)
        """)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == "9", done.stderr

    def test_mv_n_does_not_replace(self, mount: Mount) -> None:
        d = mount.path("sweep3/lr0.1")
        before = stored(mount, "sweep3/lr0.1/seed8")
        sh(f"mv -n {d}/seed7.json {d}/seed8.json")
        assert stored(mount, "sweep3/lr0.1/seed8") == before
        assert (mount.store / "sweep3/lr0.1/seed7.json").exists()

    def test_an_empty_new_file_is_a_placeholder_until_written(self, mount: Mount) -> None:
        path = mount.path("new.json")
        assert sh(f"touch {path}").returncode == 0
        assert path.exists() and path.stat().st_size == 0
        assert not (mount.store / "new.json").exists()
        assert sh(f"cat {path}").returncode == 1  # not a result yet: EIO
        path.write_text(envelope(step=4))
        assert stored(mount, "new")["data"]["step"] == 4


class TestRejections:
    """Each refused write returns its errno, records the reason, and leaves the backing file as it was."""

    @pytest.mark.parametrize(
        ("content", "code", "reason"),
        [
            (b"garbage\n", errno.EINVAL, "cannot start one"),
            (b"\x89PNG\r\n", errno.EINVAL, "cannot start one"),
            (b'{"model_type": "Metrics", "data": {"loss": 1', errno.EINVAL, "invalid JSON"),
            (b'{"model_type": "Metrics", "data": {"loss": "high"}}', errno.EINVAL, "does not validate"),
            (b'{"model_type": "Ghost", "namespace": "default", "data": {}}', errno.EINVAL, "not registered"),
            (b"[1, 2, 3]", errno.EINVAL, "cannot start one"),
        ],
    )
    def test_bad_content(self, mount: Mount, content: bytes, code: int, reason: str) -> None:
        target = mount.path("sweep3/lr0.1/seed7.json")
        before = mount.backing("sweep3/lr0.1/seed7.json").read_bytes()
        assert write_errno(target, content) == code
        assert mount.backing("sweep3/lr0.1/seed7.json").read_bytes() == before
        error = os.getxattr(target, "user.results.error").decode()
        assert reason in error
        assert reason in mount.log()
        target.write_text(envelope(step=2))
        with pytest.raises(OSError) as info:
            os.getxattr(target, "user.results.error")
        assert info.value.errno == errno.ENODATA  # cleared by the next successful commit

    def test_echo_garbage_fails_loudly_even_from_a_builtin(self, mount: Mount) -> None:
        done = sh(f"echo garbage > {mount.mnt}/sweep3/lr0.1/seed7.json")
        assert done.returncode == 1 and "Invalid argument" in done.stderr

    def test_bare_data_for_a_new_result_is_refused(self, mount: Mount) -> None:
        assert write_errno(mount.path("fresh.json"), b'{"loss": 1, "accuracy": 0.5}') == errno.EINVAL
        assert not (mount.store / "fresh.json").exists()

    def test_o_excl_on_an_existing_result(self, mount: Mount) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        assert write_errno(mount.path("sweep3/lr0.1/seed7.json"), envelope().encode(), flags) == errno.EEXIST

    def test_too_large(self, mount: Mount) -> None:
        fd = os.open(mount.path("big.json"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, b'{"a": "')
            chunk = b"x" * (1024 * 1024)
            with pytest.raises(OSError) as info:
                for _ in range(100):  # the kernel may accept part of a write before the refusal
                    written += os.write(fd, chunk)
            assert info.value.errno == errno.EFBIG
            assert written <= 64 * 1024 * 1024
        finally:
            with pytest.raises(OSError):  # what was written is not a whole result either
                os.close(fd)
        assert not (mount.store / "big.json").exists()
        assert "larger than" in mount.log()
        assert "larger than" in os.getxattr(mount.path("big.json"), "user.results.error").decode()

    def test_invalid_scratch_renamed_onto_a_result(self, mount: Mount) -> None:
        d = mount.path("sweep3/lr0.1")
        (d / "tmp").write_text('{"model_type": "Metrics", "data": {}}')
        before = mount.backing("sweep3/lr0.1/seed7.json").read_bytes()
        with pytest.raises(OSError) as info:
            os.rename(d / "tmp", d / "seed7.json")
        assert info.value.errno == errno.EINVAL
        assert mount.backing("sweep3/lr0.1/seed7.json").read_bytes() == before
        assert (d / "tmp").exists()  # the scratch file is kept for the user to fix
        # mv reports EINVAL from rename as "cannot move ... to a subdirectory of itself"; the
        # reason is in the attribute.
        assert sh(f"mv {d}/tmp {d}/seed7.json").returncode == 1
        assert "does not validate" in os.getxattr(d / "seed7.json", "user.results.error").decode()
        # Onto a new name, the scratch file that stays carries the reason (nothing else shows it).
        with pytest.raises(OSError) as info:
            os.rename(d / "tmp", d / "fresh.json")
        assert info.value.errno == errno.EINVAL and not (d / "fresh.json").exists()
        reason = os.getxattr(d / "tmp", "user.results.error").decode()
        assert reason.startswith("rename refused: /sweep3/lr0.1/fresh.json: commit refused:")
        assert "does not validate" in reason

    def test_lease_of_another_holder_gives_ebusy_after_lock_wait(self, tmp_path: Path) -> None:
        store = tmp_path / "store"
        FileBackend(store).set("r", Counter(writer="a", value=1))
        with mounted(store, tmp_path / "mnt", ["--lock-wait", "0.5"]) as m:
            FileBackend(store).acquire_lock("r", holder="batch-job")
            started = time.monotonic()
            assert write_errno(m.path("r.json"), b'{"writer": "b", "value": 2}') == errno.EBUSY
            assert time.monotonic() - started >= 0.5
            assert FileBackend(store).get("r") == Counter(writer="a", value=1)
            assert "batch-job" in os.getxattr(m.path("r.json"), "user.results.error").decode()
            assert sh(f"rm {m.mnt}/r.json").returncode == 1  # deleting is refused too
            FileBackend(store).release_lock("r", holder="batch-job")
            assert write_errno(m.path("r.json"), b'{"writer": "b", "value": 2}') is None

    def test_a_lease_released_during_lock_wait_lets_the_write_through(self, tmp_path: Path) -> None:
        store = tmp_path / "store"
        backend = FileBackend(store)
        backend.set("r", Counter(writer="a", value=1))
        with mounted(store, tmp_path / "mnt", ["--lock-wait", "10"]) as m:
            backend.acquire_lock("r", holder="short-job", hold_timeout=0.5)
            assert write_errno(m.path("r.json"), b'{"writer": "b", "value": 2}') is None
            assert backend.get("r") == Counter(writer="b", value=2)


@pytest.mark.parametrize(
    ("policy", "code", "expected_step"),
    [
        ("raise", errno.EEXIST, 8),
        ("skip", None, 8),
        ("raise-if-different", errno.EEXIST, 8),
        ("overwrite", None, 99),
    ],
)
def test_on_exists_policies(tmp_path: Path, policy: str, code: int | None, expected_step: int) -> None:
    store = tmp_path / "store"
    FileBackend(store).set("r", Metrics(loss=0.4, accuracy=0.8, step=8))
    with mounted(store, tmp_path / "mnt", ["--on-exists", policy]) as m:
        assert write_errno(m.path("r.json"), envelope(step=99).encode()) == code
        assert FileBackend(store).get("r").step == expected_step
        assert write_errno(m.path("new.json"), envelope(step=1).encode()) is None
        if policy == "raise-if-different":
            same = m.backing("r.json").read_bytes()
            assert write_errno(m.path("r.json"), same) is None


def test_read_only_mount_refuses_every_change(tmp_path: Path) -> None:
    store = tmp_path / "store"
    FileBackend(store).set("r", Counter(writer="a", value=1))
    with mounted(store, tmp_path / "mnt", ["--read-only"]) as m:
        assert json.loads(m.path("r.json").read_text())["data"]["writer"] == "a"
        assert write_errno(m.path("r.json"), b"{}") == errno.EROFS
        assert write_errno(m.path("n.json"), b"{}") == errno.EROFS
        for command in (
            f"rm {m.mnt}/r.json",
            f"mkdir {m.mnt}/d",
            f"touch {m.mnt}/r.json",
            f"mv {m.mnt}/r.json {m.mnt}/s.json",
        ):
            done = sh(command)
            assert done.returncode != 0 and "Read-only file system" in done.stderr, command
        with pytest.raises(OSError) as info:
            os.setxattr(m.path("r.json"), "user.results.model_type", b"X")
        assert info.value.errno == errno.EROFS


def test_models_from_environment_variable(tmp_path: Path) -> None:
    store = tmp_path / "store"
    FileBackend(store).close()
    env_models = os.environ.get("RESULTSFS_MODELS")
    os.environ["RESULTSFS_MODELS"] = MODELS
    try:
        from mounting import Mount as M
        from mounting import resultsfs, stop

        mnt = tmp_path / "mnt"
        mnt.mkdir()
        resultsfs(
            "mount",
            str(store),
            str(mnt),
            "--pid-file",
            str(tmp_path / "p"),
            "--log-file",
            str(tmp_path / "l"),
        )
        try:
            assert write_errno(mnt / "x.json", envelope(step=1).encode()) is None
        finally:
            stop(M(store, mnt, tmp_path / "p", tmp_path / "l"))
    finally:
        if env_models is None:
            del os.environ["RESULTSFS_MODELS"]
        else:
            os.environ["RESULTSFS_MODELS"] = env_models


def test_a_commit_waiting_for_a_lease_does_not_stall_other_requests(tmp_path: Path) -> None:
    store = tmp_path / "store"
    backend = FileBackend(store)
    backend.set("leased", Counter(writer="a", value=1))
    backend.set("free", Counter(writer="a", value=1))
    with mounted(store, tmp_path / "mnt", ["--lock-wait", "30"]) as m:
        backend.acquire_lock("leased", holder="long-job")
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f'open({str(m.path("leased.json"))!r}, \'w\').write(\'{{"writer": "b", "value": 2}}\')',
            ]
        )
        try:
            wait_until(
                lambda: "'leased' is leased by 'long-job'; waiting" in m.log(),
                10,
                "the writer never reached its commit",
            )
            # While that commit waits, reads, listings and other commits go through.
            for i in range(20):
                assert json.loads(m.path("free.json").read_text())["data"]["value"] >= 1
                assert "leased.json" in os.listdir(m.mnt)
                m.path("free.json").write_text(f'{{"writer": "c", "value": {i + 2}}}')
            assert writer.poll() is None, "the waiting writer should still be waiting"
        finally:
            backend.release_lock("leased", holder="long-job")
        assert writer.wait(timeout=30) == 0
        assert backend.get("leased") == Counter(writer="b", value=2)
        assert backend.get("free").value == 21


class TestReviewFindings:
    """Behaviours a second reading of the code found wanting; each was fixed."""

    def test_truncating_without_writing_is_reported_and_changes_nothing(self, mount: Mount) -> None:
        before = mount.backing("sweep3/lr0.1/seed7.json").read_bytes()
        assert sh(f": > {mount.mnt}/sweep3/lr0.1/seed7.json").returncode == 0  # bash ignores close errors
        assert mount.backing("sweep3/lr0.1/seed7.json").read_bytes() == before
        error = os.getxattr(mount.path("sweep3/lr0.1/seed7.json"), "user.results.error").decode()
        assert "cannot be empty" in error
        assert mount.path("sweep3/lr0.1/seed7.json").read_bytes() == before

    def test_a_refused_write_never_lets_the_bytes_before_it_be_committed(self, mount: Mount) -> None:
        before = mount.backing("sweep3/lr0.1/seed7.json").read_bytes()
        fd = os.open(mount.path("sweep3/lr0.1/seed7.json"), os.O_WRONLY | os.O_TRUNC)
        os.write(fd, envelope(step=123).encode())  # a whole, valid result...
        with pytest.raises(OSError) as refused:  # ...then a write the mount refuses whole
            os.pwrite(fd, b"}", 70 * 1024 * 1024)
        with pytest.raises(OSError) as at_close:
            os.close(fd)
        assert refused.value.errno == at_close.value.errno == errno.EFBIG
        assert mount.backing("sweep3/lr0.1/seed7.json").read_bytes() == before

    def test_a_commit_refused_at_fsync_is_refused_again_at_close(self, mount: Mount) -> None:
        fd = os.open(mount.path("sweep3/lr0.1/seed7.json"), os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b'{"model_type": "Metrics", "data": {"loss": "bad"}}')
        with pytest.raises(OSError) as at_fsync:
            os.fsync(fd)
        with pytest.raises(OSError) as at_close:
            os.close(fd)
        assert at_fsync.value.errno == at_close.value.errno == errno.EINVAL

    def test_a_refused_new_result_stays_as_an_empty_placeholder_with_its_error(self, mount: Mount) -> None:
        assert write_errno(mount.path("fresh.json"), b'{"loss": 1}') == errno.EINVAL
        assert mount.path("fresh.json").stat().st_size == 0
        assert "bare data" in os.getxattr(mount.path("fresh.json"), "user.results.error").decode()
        assert os.listxattr(mount.path("fresh.json")) == ["user.results.error"]
        assert not (mount.store / "fresh.json").exists()
        mount.path("fresh.json").write_text(envelope(step=1))
        assert stored(mount, "fresh")["data"]["step"] == 1

    def test_sizes_are_right_at_once_after_a_refused_truncate(self, mount: Mount) -> None:
        path = mount.path("sweep3/lr0.1/seed7.json")
        before = path.read_bytes()
        assert sh(f"truncate -s 10 {path}").returncode == 1
        time.sleep(0.05)  # the kernel's cache is dropped right after the refusal
        assert path.stat().st_size == len(before)
        assert path.read_bytes() == before

    def test_readers_see_the_whole_committed_result_while_a_writer_is_pending(self, mount: Mount) -> None:
        path = mount.path("sweep3/lr0.1/seed7.json")
        before = path.read_bytes()
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, b"{")  # pending, one byte long
            reader = subprocess.run(["cat", str(path)], capture_output=True, timeout=30)
            assert reader.stdout == before
            other = subprocess.run(
                ["stat", "-c", "%s", str(path)], capture_output=True, text=True, timeout=30
            )
            assert int(other.stdout) == len(before)  # everyone else sees the committed result
            assert os.stat(path).st_size == 1  # the writer sees what it wrote
        finally:
            with pytest.raises(OSError):
                os.close(fd)

    def test_scratch_files_keep_any_extended_attribute(self, mount: Mount) -> None:
        scratch = mount.path("sweep3/notes.tmp")
        scratch.write_text("draft")
        os.setxattr(scratch, "user.results.model_type", b"Draft")
        os.setxattr(scratch, "user.mine", b"1")
        assert os.getxattr(scratch, "user.results.model_type") == b"Draft"
        assert set(os.listxattr(scratch)) >= {"user.results.model_type", "user.mine"}


def test_max_result_bytes_option(tmp_path: Path) -> None:
    store = tmp_path / "store"
    FileBackend(store).close()
    with mounted(store, tmp_path / "mnt", ["--max-result-bytes", "200"]) as m:
        small = envelope(step=1).encode()
        assert write_errno(m.path("small.json"), small) is None
        big = json.dumps({**ENVELOPE, "data": {**ENVELOPE["data"], "pad": "x" * 300}}).encode()
        assert write_errno(m.path("big.json"), big) == errno.EFBIG
