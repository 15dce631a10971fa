"""POSIX conformance of the mount, in the spirit of pjdfstest's groups.

open, rename, unlink, mkdir, rmdir, chmod, chown, truncate, ftruncate and utimensat are
checked on scratch files and on results (pjdfstest is not packaged for Debian, so this
module states what it checks). Where the mount deliberately differs from a local
filesystem, :data:`DIFFERENCES` says so and why; the test then expects the difference.
Any other difference fails.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import OtherUser
from mounting import Mount, mounted, sh
from resultsfs import FileBackend

#: (kind of file, check) -> why the mount answers otherwise than a local filesystem.
DIFFERENCES: dict[tuple[str, str], str] = {
    (
        "result",
        "truncate-grow",
    ): "a result holds one JSON object: the NUL bytes growth adds are not JSON (EINVAL)",
    (
        "result",
        "ftruncate-grow",
    ): "a result holds one JSON object: the NUL bytes growth adds are not JSON (EINVAL)",
    (
        "result",
        "truncate-shrink",
    ): "a result cut short is not a JSON object any more (EINVAL), and stays as it was",
    ("result", "write-arbitrary"): "a result holds one JSON object: other content is refused (EINVAL)",
    (
        "scratch",
        "parent-times",
    ): "scratch files live in the mount's staging area: the directory's times do not change",
    (
        "scratch",
        "rename-to-scratch",
    ): "the mount keeps only results: a scratch file may become a result or go, not take another "
    "non-result name (EPERM), so rsync reports files it cannot store instead of them vanishing",
    ("any", "mkfifo"): "only regular files and directories: fifos, devices and sockets are refused (EPERM)",
    (
        "any",
        "symlink",
    ): "a result has exactly one name and the store never follows links: symlinks are refused (EPERM)",
    ("any", "link"): "a result has exactly one name: hard links are refused (EPERM)",
    ("any", "mkdir-json"): "a directory name ending in .json would collide with a result's file (EINVAL)",
}

KINDS = ("scratch", "result")


def _content(kind: str, value: int = 1) -> bytes:
    if kind == "scratch":
        return b"plain text %d\n" % value
    return json.dumps(
        {"model_type": "Counter", "namespace": "default", "data": {"writer": "p", "value": value}}
    ).encode()


def _name(kind: str, stem: str) -> str:
    return f"{stem}.json" if kind == "result" else f"{stem}.tmp"


def _errno(call: Callable[[], object]) -> int | None:
    try:
        call()
    except OSError as exc:
        return exc.errno
    return None


@pytest.fixture(scope="module")
def mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    root = tmp_path_factory.mktemp("conformance")
    FileBackend(root / "store").close()
    with mounted(root / "store", root / "mnt", ["--cache-timeout", "0"]) as m:
        yield m


@pytest.fixture
def here(mount: Mount, request: pytest.FixtureRequest) -> Path:
    directory = mount.mnt / request.node.name.replace("[", "_").replace("]", "")[-100:]
    directory.mkdir()
    return directory


def _make(here: Path, kind: str, stem: str = "f", mode: int = 0o644) -> Path:
    path = here / _name(kind, stem)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.write(fd, _content(kind))
    os.close(fd)
    return path


@pytest.mark.parametrize("kind", KINDS)
class TestOpen:
    def test_o_creat_makes_a_file_with_the_mode_less_the_umask(self, here: Path, kind: str) -> None:
        old = os.umask(0o027)
        try:
            path = _make(here, kind, mode=0o666)
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert path.read_bytes() == _content(kind)

    def test_o_excl_on_an_existing_file_is_eexist(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        assert _errno(lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)) == errno.EEXIST

    def test_a_missing_file_without_o_creat_is_enoent(self, here: Path, kind: str) -> None:
        assert _errno(lambda: os.open(here / _name(kind, "missing"), os.O_RDONLY)) == errno.ENOENT

    def test_o_directory_on_a_file_is_enotdir(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        assert _errno(lambda: os.open(path, os.O_RDONLY | os.O_DIRECTORY)) == errno.ENOTDIR

    def test_a_file_as_a_path_component_is_enotdir(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        assert _errno(lambda: os.open(path / "x.json", os.O_RDONLY)) == errno.ENOTDIR

    def test_a_directory_opened_for_writing_is_eisdir(self, here: Path, kind: str) -> None:
        assert _errno(lambda: os.open(here, os.O_WRONLY)) == errno.EISDIR

    def test_a_name_longer_than_255_bytes_is_enametoolong(self, here: Path, kind: str) -> None:
        assert _errno(lambda: os.open(here / ("n" * 256), os.O_WRONLY | os.O_CREAT)) == errno.ENAMETOOLONG

    def test_o_trunc_then_write_replaces_the_content(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, _content(kind, 2))
        os.close(fd)
        assert path.read_bytes() == _content(kind, 2) or json.loads(path.read_bytes())["data"]["value"] == 2

    def test_arbitrary_content_is_stored(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        code = _errno(lambda: os.write(fd, b"\x00binary\xff"))
        close = _errno(lambda: os.close(fd))
        if (kind, "write-arbitrary") in DIFFERENCES:
            assert errno.EINVAL in (code, close)
        else:
            assert (code, close) == (None, None)
            assert path.read_bytes() == b"\x00binary\xff"


@pytest.mark.parametrize("kind", KINDS)
class TestRename:
    def test_a_file_replaces_a_file(self, here: Path, kind: str) -> None:
        a, b = _make(here, kind, "a"), _make(here, kind, "b")
        expected, replaced = a.read_bytes(), b.read_bytes()
        if (kind, "rename-to-scratch") in DIFFERENCES:
            assert _errno(lambda: os.rename(a, b)) == errno.EPERM
            assert a.read_bytes() == expected and b.read_bytes() == replaced
            return
        os.rename(a, b)
        assert not a.exists() and b.read_bytes() == expected

    def test_a_file_onto_a_directory_is_eisdir(self, here: Path, kind: str) -> None:
        a = _make(here, kind, "a")
        os.mkdir(here / "d")
        assert _errno(lambda: os.rename(a, here / "d")) == errno.EISDIR

    def test_a_directory_onto_a_file_is_enotdir(self, here: Path, kind: str) -> None:
        b = _make(here, kind, "b")
        os.mkdir(here / "d")
        assert _errno(lambda: os.rename(here / "d", b)) == errno.ENOTDIR

    def test_a_directory_onto_a_non_empty_one_is_enotempty(self, here: Path, kind: str) -> None:
        os.mkdir(here / "src")
        os.mkdir(here / "dst")
        _make(here / "dst", kind)
        assert _errno(lambda: os.rename(here / "src", here / "dst")) in (errno.ENOTEMPTY, errno.EEXIST)

    def test_a_directory_onto_an_empty_one_replaces_it(self, here: Path, kind: str) -> None:
        os.mkdir(here / "src")
        _make(here / "src", kind)
        os.mkdir(here / "dst")
        os.rename(here / "src", here / "dst")
        assert os.listdir(here / "dst") == [_name(kind, "f")] and not (here / "src").exists()

    def test_a_directory_into_itself_is_einval(self, here: Path, kind: str) -> None:
        os.makedirs(here / "d" / "sub")
        assert _errno(lambda: os.rename(here / "d", here / "d" / "sub" / "x")) == errno.EINVAL

    def test_a_missing_source_is_enoent(self, here: Path, kind: str) -> None:
        assert _errno(lambda: os.rename(here / _name(kind, "no"), here / _name(kind, "b"))) == errno.ENOENT

    def test_a_rename_keeps_mode_and_mtime(self, here: Path, kind: str) -> None:
        a = _make(here, kind, "a", 0o600)
        os.utime(a, ns=(10**18, 10**18))
        # A scratch file keeps them when it becomes a result (its other renames are refused).
        b = here / ("b.json" if (kind, "rename-to-scratch") in DIFFERENCES else _name(kind, "b"))
        if kind == "scratch":
            a.write_bytes(_content("result"))
            os.utime(a, ns=(10**18, 10**18))
        os.rename(a, b)
        st = b.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o600, 10**18)


@pytest.mark.parametrize("kind", KINDS)
class TestUnlinkMkdirRmdir:
    def test_unlink_removes_a_file(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        os.unlink(path)
        assert not path.exists() and os.listdir(here) == []

    def test_unlink_of_a_missing_file_is_enoent(self, here: Path, kind: str) -> None:
        assert _errno(lambda: os.unlink(here / _name(kind, "no"))) == errno.ENOENT

    def test_unlink_of_a_directory_is_eisdir(self, here: Path, kind: str) -> None:
        os.mkdir(here / "d")
        assert _errno(lambda: os.unlink(here / "d")) == errno.EISDIR

    def test_mkdir_gives_the_mode_less_the_umask(self, here: Path, kind: str) -> None:
        old = os.umask(0o022)
        try:
            os.mkdir(here / "d", 0o777)
        finally:
            os.umask(old)
        assert stat.S_IMODE((here / "d").stat().st_mode) == 0o755

    def test_mkdir_of_an_existing_name_is_eexist(self, here: Path, kind: str) -> None:
        _make(here, kind)
        os.mkdir(here / "d")
        assert _errno(lambda: os.mkdir(here / "d")) == errno.EEXIST
        if kind == "scratch":
            assert _errno(lambda: os.mkdir(here / _name(kind, "f"))) == errno.EEXIST

    def test_mkdir_below_a_missing_directory_is_enoent(self, here: Path, kind: str) -> None:
        assert _errno(lambda: os.mkdir(here / "no" / "d")) == errno.ENOENT

    def test_rmdir_of_a_directory_holding_a_file_is_enotempty(self, here: Path, kind: str) -> None:
        os.mkdir(here / "d")
        _make(here / "d", kind)
        assert _errno(lambda: os.rmdir(here / "d")) == errno.ENOTEMPTY

    def test_rmdir_of_a_file_is_enotdir_and_of_nothing_enoent(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        assert _errno(lambda: os.rmdir(path)) == errno.ENOTDIR
        assert _errno(lambda: os.rmdir(here / "missing")) == errno.ENOENT

    def test_creating_a_file_updates_its_directorys_times(self, here: Path, kind: str) -> None:
        os.utime(here, ns=(10**18, 10**18))
        _make(here, kind)
        changed = here.stat().st_mtime_ns != 10**18
        assert changed is not ((kind, "parent-times") in DIFFERENCES)


@pytest.mark.parametrize("kind", KINDS)
class TestMetadata:
    def test_chmod_sets_the_mode_and_the_ctime(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        before = path.stat().st_ctime_ns
        time.sleep(0.01)
        os.chmod(path, 0o604)
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o604 and st.st_ctime_ns > before

    def test_chown_by_root_sets_owner_and_group_and_minus_one_keeps_them(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        os.chown(path, 1234, 5678)
        os.chown(path, -1, 4321)
        os.chown(path, 2345, -1)
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (2345, 4321)

    def test_utimensat_sets_now_or_keeps_each_time(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        os.utime(path, ns=(10**18, 2 * 10**18))
        st = path.stat()
        assert (st.st_atime_ns, st.st_mtime_ns) == (10**18, 2 * 10**18)
        assert sh(f"touch -m -d @1500000000 {path}").returncode == 0  # UTIME_OMIT for atime
        st = path.stat()
        assert (st.st_atime_ns, st.st_mtime_ns) == (10**18, 1_500_000_000 * 10**9)
        assert sh(f"touch -a {path}").returncode == 0  # UTIME_NOW for atime, UTIME_OMIT for mtime
        st = path.stat()
        assert st.st_atime_ns > 10**18 * 1.5 and st.st_mtime_ns == 1_500_000_000 * 10**9

    def test_truncate_shrinks_and_grows_with_zeros(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        content = path.read_bytes()
        code = _errno(lambda: os.truncate(path, 4))
        if (kind, "truncate-shrink") in DIFFERENCES:
            assert code == errno.EINVAL and path.read_bytes() == content
        else:
            assert code is None and path.read_bytes() == content[:4]
        code = _errno(lambda: os.truncate(path, len(content) + 10))
        if (kind, "truncate-grow") in DIFFERENCES:
            assert code == errno.EINVAL and path.read_bytes() == content
        else:
            assert code is None and path.read_bytes() == content[:4] + b"\0" * (len(content) + 6)

    def test_ftruncate_grows_with_zeros_through_a_descriptor(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        content = path.read_bytes()
        fd = os.open(path, os.O_RDWR)
        os.ftruncate(fd, len(content) + 3)
        assert os.fstat(fd).st_size == len(content) + 3
        assert os.pread(fd, 4096, 0) == content + b"\0\0\0"
        close = _errno(lambda: os.close(fd))
        if (kind, "ftruncate-grow") in DIFFERENCES:
            assert close == errno.EINVAL and path.read_bytes() == content
        else:
            assert close is None and path.read_bytes() == content + b"\0\0\0"

    def test_truncate_of_a_directory_is_eisdir_and_a_negative_length_einval(
        self, here: Path, kind: str
    ) -> None:
        path = _make(here, kind)
        assert _errno(lambda: os.truncate(here, 0)) == errno.EISDIR
        assert _errno(lambda: os.truncate(path, -1)) == errno.EINVAL

    def test_ftruncate_of_a_descriptor_open_for_reading_is_refused(self, here: Path, kind: str) -> None:
        path = _make(here, kind)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert _errno(lambda: os.ftruncate(fd, 0)) in (errno.EINVAL, errno.EBADF)
        finally:
            os.close(fd)


class TestOtherUsers:
    @pytest.fixture(scope="class")
    @classmethod
    def shared(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="rfs-conf-", dir="/tmp"))
        root.chmod(0o755)
        FileBackend(root / "store").close()
        (root / "store").chmod(0o777)
        try:
            with mounted(
                root / "store", root / "mnt", ["--allow-other", "--cache-timeout", "0"], workdir=root
            ) as m:
                yield m
        finally:
            import shutil

            shutil.rmtree(root, ignore_errors=True)

    @pytest.mark.parametrize("kind", KINDS)
    def test_only_the_owner_may_change_mode_owner_or_set_times(
        self, shared: Mount, other_user: OtherUser, kind: str
    ) -> None:
        path = shared.mnt / _name(kind, f"owned-{kind}")
        path.write_bytes(_content(kind))
        os.chmod(path, 0o666)
        assert "Operation not permitted" in other_user.run(f"chmod 600 {path}").stderr
        assert "Operation not permitted" in other_user.run(f"chown {other_user.uid} {path}").stderr
        assert "Operation not permitted" in other_user.run(f"touch -d @1500000000 {path}").stderr
        assert other_user.run(f"touch {path}").returncode == 0  # UTIME_NOW with write permission is fine
        mine = shared.mnt / _name(kind, f"mine-{kind}")
        made = other_user.run(
            f"umask 022; printf '%s' '{_content(kind).decode()}' > {mine} && chmod 640 {mine}"
        )
        assert made.returncode == 0, made.stderr
        st = mine.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (other_user.uid, 0o640)

    def test_creating_in_a_directory_without_write_permission_is_eacces(
        self, shared: Mount, other_user: OtherUser
    ) -> None:
        os.mkdir(shared.mnt / "closed", 0o755)
        for kind in KINDS:
            denied = other_user.run(f"printf x > {shared.mnt / 'closed' / _name(kind, 'f')}")
            assert "Permission denied" in denied.stderr


class TestDeliberateDifferences:
    def test_fifos_devices_symlinks_and_hard_links_are_refused(self, here: Path) -> None:
        assert (
            ("any", "mkfifo") in DIFFERENCES
            and ("any", "symlink") in DIFFERENCES
            and ("any", "link") in DIFFERENCES
        )
        assert _errno(lambda: os.mkfifo(here / "fifo")) == errno.EPERM
        assert _errno(lambda: os.mknod(here / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))) == errno.EPERM
        assert _errno(lambda: os.symlink("target", here / "link.json")) == errno.EPERM
        path = _make(here, "result")
        assert _errno(lambda: os.link(path, here / "again.json")) == errno.EPERM

    def test_a_directory_name_ending_in_json_is_refused(self, here: Path) -> None:
        assert ("any", "mkdir-json") in DIFFERENCES
        assert _errno(lambda: os.mkdir(here / "d.json")) == errno.EINVAL

    def test_every_difference_is_tested(self) -> None:
        """The list above is the whole story: each entry names a check this module makes."""
        source = Path(__file__).read_text()
        for _kind, check in DIFFERENCES:
            assert source.count(f'"{check}"') >= 2, check
