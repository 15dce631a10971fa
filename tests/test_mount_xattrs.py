"""Extended attributes: model type, namespace, live lease state, last error; copying trees out and in."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mounting import TESTS, Mount, resultsfs, sh, wait_until
from resultsfs import FileBackend

SEED7 = "sweep3/lr0.1/seed7.json"


def attrs(path: Path) -> dict[str, str]:
    return {name: os.getxattr(path, name).decode() for name in os.listxattr(path)}


class TestValues:
    def test_getfattr_lists_type_namespace_and_lock_state(self, mount: Mount) -> None:
        done = sh(f"getfattr -d {mount.mnt}/{SEED7}")
        assert done.returncode == 0
        assert 'user.results.model_type="Metrics"' in done.stdout
        assert 'user.results.namespace="default"' in done.stdout
        assert 'user.results.lock.state="unlocked"' in done.stdout
        assert "lock.holder" not in done.stdout and "user.results.error" not in done.stdout

    def test_missing_attribute_is_enodata_never_enosys(self, mount: Mount) -> None:
        path = mount.path(SEED7)
        for name in (
            "user.results.lock.holder",
            "user.results.error",
            "user.other",
            "security.selinux",
            "system.posix_acl_access",
            "trusted.x",
        ):
            with pytest.raises(OSError) as info:
                os.getxattr(path, name)
            assert info.value.errno == errno.ENODATA, name
        assert attrs(path)["user.results.model_type"] == "Metrics"  # xattrs still work afterwards

    def test_size_probe_and_erange(self, mount: Mount, helpers: Path) -> None:
        path = str(mount.path(SEED7))
        probe = subprocess.run(
            [helpers, "xattr-small", path, "user.results.model_type", "0"], capture_output=True, text=True
        )
        assert probe.stdout.strip() == "size 7"
        small = subprocess.run(
            [helpers, "xattr-small", path, "user.results.model_type", "3"], capture_output=True, text=True
        )
        assert small.stdout.strip() == "error Numerical result out of range"
        exact = subprocess.run(
            [helpers, "xattr-small", path, "user.results.model_type", "7"], capture_output=True, text=True
        )
        assert exact.stdout.strip() == "size 7"

    def test_directories_have_no_result_attributes(self, mount: Mount) -> None:
        assert os.listxattr(mount.path("sweep3")) == []

    def test_setting_our_attributes_changes_nothing_others_are_not_supported(self, mount: Mount) -> None:
        path = mount.path(SEED7)
        os.setxattr(path, "user.results.model_type", b"Forged")
        assert attrs(path)["user.results.model_type"] == "Metrics"
        os.removexattr(path, "user.results.namespace")
        assert attrs(path)["user.results.namespace"] == "default"
        with pytest.raises(OSError) as info:
            os.setxattr(path, "user.mine", b"x")
        assert info.value.errno == errno.ENOTSUP


class TestLiveLeaseState:
    def test_lease_taken_and_released_by_another_process_shows_within_a_second(self, mount: Mount) -> None:
        path = mount.path(SEED7)
        resultsfs(
            "lock", "--store", str(mount.store), "sweep3/lr0.1/seed7", "--holder", "job-42", "--ttl", "3600"
        )
        wait_until(lambda: attrs(path)["user.results.lock.state"] == "locked", 1.0)
        shown = attrs(path)
        assert shown["user.results.lock.holder"] == "job-42"
        assert shown["user.results.lock.expires"].endswith("Z") and "T" in shown["user.results.lock.expires"]
        resultsfs("unlock", "--store", str(mount.store), "sweep3/lr0.1/seed7", "--holder", "job-42")
        wait_until(lambda: attrs(path)["user.results.lock.state"] == "unlocked", 1.0)
        assert "user.results.lock.holder" not in attrs(path)

    def test_a_lease_without_expiry_shows_never(self, mount: Mount) -> None:
        script = textwrap.dedent(f"""
            import sys; sys.path.insert(0, {str(TESTS)!r})
            from resultsfs import FileBackend
            FileBackend({str(mount.store)!r}).acquire_lock("sweep3/lr0.1/seed8", holder="forever")
        """)
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        shown = attrs(mount.path("sweep3/lr0.1/seed8.json"))
        assert (shown["user.results.lock.holder"], shown["user.results.lock.expires"]) == ("forever", "never")


class TestCopyingTreesOutAndBackIn:
    @pytest.mark.parametrize(
        ("out", "back"),
        [
            ("cp -a {mnt}/sweep3 {tmp}/copy", "cp -a {tmp}/copy {mnt}/again"),
            ("rsync -aX {mnt}/sweep3/ {tmp}/copy/", "rsync -aX {tmp}/copy/ {mnt}/again/"),
            (
                "tar --xattrs -C {mnt} -cf {tmp}/t.tar sweep3 && mkdir {tmp}/copy && tar --xattrs -C {tmp}/copy --strip-components=1 -xf {tmp}/t.tar",
                "mkdir {mnt}/again && tar --xattrs -C {mnt}/again -xf {tmp}/t.tar --strip-components=1",
            ),
        ],
        ids=["cp-a", "rsync-aX", "tar-xattrs"],
    )
    def test_round_trip_without_errors(self, mount: Mount, tmp_path: Path, out: str, back: str) -> None:
        fill = {"mnt": mount.mnt, "tmp": tmp_path}
        done = sh(out.format(**fill))
        assert (done.returncode, done.stderr) == (0, "")
        assert os.getxattr(tmp_path / "copy/lr0.1/seed7.json", "user.results.model_type") == b"Metrics"
        done = sh(back.format(**fill))
        assert (done.returncode, done.stderr) == (0, "")
        store = FileBackend(mount.store)
        assert store.list_ids("again") == ["again/lr0.1/seed7", "again/lr0.1/seed8"]
        assert store.get("again/lr0.1/seed7") == store.get("sweep3/lr0.1/seed7")
