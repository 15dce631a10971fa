"""make install and make uninstall, for real, into a prefix of the test's own; used as nobody."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from models import Counter
from mounting import MODELS, mount_state
from resultsfs import FileBackend
from test_mountscripts import HELPER, UNIT, check_unit_waits_for_the_mount, fuse_mount_types

ROOT = Path(__file__).resolve().parent.parent
_VERSION = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
assert _VERSION is not None
VERSION = _VERSION[1]  # what the installed command must report
#: make install builds a venv and pip-installs into it: seconds, or minutes with a cold pip cache.
MAKE_TIMEOUT = 480


def make(target: str, prefix: Path) -> subprocess.CompletedProcess[str]:
    """``make TARGET`` with every install path inside ``prefix``."""
    # A make running pytest (make test) passes its command-line variables on in MAKEFLAGS.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), target, f"PREFIX={prefix}",
         f"SBINDIR={prefix}/sbin", f"SYSTEMDDIR={prefix}/systemd"],
        env=env, capture_output=True, text=True, timeout=MAKE_TIMEOUT,
    )  # fmt: skip


def as_nobody(prefix: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as the unprivileged user nobody, with ``prefix/bin`` on its PATH."""
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "env", "-i", f"PATH={prefix}/bin:/usr/bin:/bin", "HOME=/nonexistent", *command],
        cwd="/", capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def files_under(top: Path) -> list[Path]:
    """Everything under ``top`` that is not a directory (files and symbolic links)."""
    found = []
    for directory, dirnames, filenames in os.walk(top):
        found += [Path(directory, name) for name in filenames]
        found += [Path(directory, name) for name in dirnames if Path(directory, name).is_symlink()]
    return found


@pytest.fixture
def prefix(shared_dir: Path) -> Iterator[Path]:
    """An empty PREFIX every user can reach; whatever was installed into it is removed afterwards."""
    prefix = shared_dir / "prefix"
    prefix.mkdir(mode=0o755)
    try:
        yield prefix
    finally:
        make("uninstall", prefix)
        shutil.rmtree(prefix, ignore_errors=True)


@pytest.mark.timeout(2 * MAKE_TIMEOUT + 120)
def test_make_install_gives_every_user_resultsfs_and_uninstall_removes_it(
    prefix: Path, shared_dir: Path
) -> None:
    command = prefix / "bin" / "resultsfs"
    done = make("install", prefix)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith(f"resultsfs, version {VERSION}\n")  # install's own check, as nobody

    # On the PATH of an unprivileged user, and working: it imports the whole library.
    version = as_nobody(prefix, "resultsfs", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"resultsfs, version {VERSION}\n"
    store = shared_dir / "store"
    FileBackend(store).set("sweep/r", Counter(writer="a", value=1))
    subprocess.run(["chmod", "-R", "a+rX", str(store)], check=True)
    listed = as_nobody(prefix, "resultsfs", "ls", "-r", "--store", str(store))
    assert (listed.returncode, listed.stdout) == (0, "sweep/r\n"), listed.stderr
    assert command.is_symlink() and os.readlink(command) == f"{prefix}/lib/resultsfs/bin/resultsfs"
    assert (prefix / "lib/resultsfs/pyvenv.cfg").is_file()
    # A regular install, not an editable one pointing into this checkout.
    assert not any(str(ROOT) in path.read_text() for path in (prefix / "lib/resultsfs").rglob("*.pth"))

    # The mount helper, under both names, runs the installed command without being told.
    helper = prefix / "sbin" / "mount.fuse.resultsfs"
    assert helper.stat().st_mode & 0o777 == 0o755
    assert os.readlink(prefix / "sbin" / "mount.resultsfs") == "mount.fuse.resultsfs"
    assert helper.read_text() == HELPER.read_text().replace("/usr/local/bin/resultsfs", str(command))
    mnt = shared_dir / "mnt"
    mnt.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RESULTSFS", "RESULTSFS_MODELS")}
    env["PATH"] = "/usr/bin:/bin"  # not the test's venv: the helper must find the installed command
    try:
        mounted = subprocess.run(
            [str(prefix / "sbin" / "mount.resultsfs"), str(store), str(mnt), "-o", f"models={MODELS}"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert mounted.returncode == 0, mounted.stderr
        assert fuse_mount_types(mnt) == ["fuse.resultsfs"]
        assert (mnt / "sweep" / "r.json").read_text().startswith("{")
        unmounted = subprocess.run(
            [str(command), "umount", str(mnt)], env=env, capture_output=True, text=True, timeout=60
        )
        assert unmounted.returncode == 0, unmounted.stderr
    finally:
        if mount_state(mnt) != "none":
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False, capture_output=True)

    # The unit: Type=notify, and every command is the installed one.
    unit = prefix / "systemd" / "resultsfs@.service"
    assert unit.stat().st_mode & 0o777 == 0o644
    assert unit.read_text() == UNIT.read_text().replace("/usr/local/bin/resultsfs", str(command))
    check_unit_waits_for_the_mount(unit, str(command))
    if shutil.which("systemd-analyze"):  # systemd's own parser: settings, and that the commands exist
        verified = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
        )
        assert (verified.returncode, verified.stderr) == (0, ""), verified.stderr

    # Safe to run twice.
    again = make("install", prefix)
    assert again.returncode == 0, again.stdout + again.stderr
    assert as_nobody(prefix, "resultsfs", "--version").stdout == f"resultsfs, version {VERSION}\n"

    removed = make("uninstall", prefix)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert files_under(prefix) == []
    assert not (prefix / "lib" / "resultsfs").exists()


def test_install_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    """A venv cannot be moved after it is built, so DESTDIR and a relative PREFIX are refused."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    for variables, message in (
        ([f"DESTDIR={tmp_path}", f"PREFIX={tmp_path}"], "DESTDIR is not supported"),
        (["PREFIX=relative/dir"], "PREFIX must be an absolute path"),
        ([f"PREFIX={tmp_path}/with space"], "may only hold letters, digits"),
    ):
        for target in ("install", "uninstall"):
            done = subprocess.run(
                ["make", "--no-print-directory", "-C", str(ROOT), target, *variables,
                 f"SBINDIR={tmp_path}/sbin", f"SYSTEMDDIR={tmp_path}/systemd"],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode != 0 and message in done.stderr, (target, variables, done.stderr)
    assert files_under(tmp_path) == []
