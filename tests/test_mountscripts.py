"""The fstab mount helper and the systemd unit, run the way mount(8) and systemd run them."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from models import Counter
from mounting import MODELS, mount_state, sh, wait_until
from resultsfs import FileBackend

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "mountscripts" / "mount.resultsfs"
UNIT = ROOT / "mountscripts" / "resultsfs@.service"
RESULTSFS_BIN = str(Path(sys.executable).parent / "resultsfs")
#: Where the helper and the unit look for the command unless make install rewrote them.
DEFAULT_COMMAND = "/usr/local/bin/resultsfs"


def _store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    FileBackend(store).set("r", Counter(writer="a", value=1))
    (tmp_path / "mnt").mkdir()
    return store


def _unmount(mnt: Path) -> None:
    if mount_state(mnt) != "none":
        subprocess.run([RESULTSFS_BIN, "umount", str(mnt)], check=False, capture_output=True)
    if mount_state(mnt) != "none":
        subprocess.run(["fusermount3", "-uz", str(mnt)], check=False, capture_output=True)


def fuse_mount_types(mnt: Path) -> list[str]:
    """The filesystem types mounted on ``mnt``, from /proc/self/mountinfo (which asks no daemon)."""
    types = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        if fields.split()[4] == str(mnt):
            types.append(rest.split()[0])
    return types


def test_helper_translates_fstab_options(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    extra_models = tmp_path / "extra_models.py"
    extra_models.write_text(
        "from pydantic import BaseModel\nfrom resultsfs import register_model\n\n\n"
        "@register_model\nclass Extra(BaseModel):\n    n: int\n"
    )
    # models=A:B loads both; mount(8) and systemd options are dropped; noatime goes to libfuse.
    options = (
        f"models={MODELS}:{extra_models},ro,noauto,nofail,_netdev,x-systemd.automount,"
        "on_exists=raise,lock_wait=2,noatime"
    )
    env = {**os.environ, "RESULTSFS": RESULTSFS_BIN}
    try:
        done = subprocess.run(
            [str(HELPER), str(store), str(mnt), "-n", "-o", options],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        line = next(line for line in Path("/proc/mounts").read_text().splitlines() if f" {mnt} " in line)
        assert line.split()[3].startswith("ro,") and "noatime" in line
        assert (mnt / "r.json").read_text().startswith("{")
        assert sh(f"echo '{{}}' > {mnt}/r.json").returncode == 1  # read-only
        (store / "e.json").write_text('{"model_type": "Extra", "data": {"n": 1}}')
        time.sleep(1.1)
        assert (mnt / "e.json").read_text().startswith("{")  # the second models file was loaded
    finally:
        _unmount(mnt)


def test_helper_fakes_with_f_and_shows_the_command_with_v(tmp_path: Path) -> None:
    """mount -f must not mount; -v prints the command; option values are never globbed."""
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    (tmp_path / "m1.log").touch()  # what m[1].log would match if the helper globbed
    env = {**os.environ, "RESULTSFS": RESULTSFS_BIN}
    done = subprocess.run(
        [str(HELPER), str(store), str(mnt), "-f", "-v", "-o", f"rw,log_file={tmp_path}/m[1].log,threads=2"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"{HELPER}: {RESULTSFS_BIN} mount {store} {mnt} --log-file {tmp_path}/m[1].log --threads 2\n"
    )
    assert mount_state(mnt) == "none" and not fuse_mount_types(mnt)


def test_helper_rejects_what_it_cannot_parse(tmp_path: Path) -> None:
    done = subprocess.run([str(HELPER), "only-one-arg"], capture_output=True, text=True)
    assert done.returncode == 1 and "usage" in done.stderr
    done = subprocess.run([str(HELPER), "a", "b", "--bogus"], capture_output=True, text=True)
    assert done.returncode == 1 and "unexpected argument: --bogus" in done.stderr


def test_real_mount_command_with_the_helper_installed(tmp_path: Path) -> None:
    """mount -t fuse.resultsfs finds /sbin/mount.fuse.resultsfs, as an fstab entry would.

    The helper installed by ``make install`` (default PREFIX) is used as it is if it is this
    one; otherwise the test installs a wrapper of its own, and removes it afterwards.
    """
    installed = Path("/sbin/mount.fuse.resultsfs")
    ours = not installed.exists()
    if not ours and installed.read_text() != HELPER.read_text():
        pytest.fail(f"{installed} is not {HELPER}; run make install again, or remove it")
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    if ours:
        installed.write_text(f'#!/bin/sh\nexec {shlex.quote(str(HELPER))} "$@"\n')
        installed.chmod(0o755)
    try:
        done = subprocess.run(
            ["mount", "-t", "fuse.resultsfs", "-o", f"models={MODELS},nofail", str(store), str(mnt)],
            env={**os.environ, "RESULTSFS": RESULTSFS_BIN},  # mount(8) run by root keeps the environment
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (mnt / "r.json").exists()
        assert fuse_mount_types(mnt) == ["fuse.resultsfs"]
    finally:
        if ours:
            installed.unlink()
        _unmount(mnt)


def unit_settings(unit: Path) -> dict[str, str]:
    """The unit file's ``Key=value`` settings (each key is set once in ours)."""
    settings = {}
    for line in unit.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";")):
            assert key not in settings, f"{key} is set twice in {unit}"
            settings[key] = value
    return settings


def unit_commands(unit: Path) -> dict[str, str]:
    return {
        key: value
        for key, value in unit_settings(unit).items()
        if key in ("ExecStartPre", "ExecStart", "ExecStop")
    }


def expand(command: str, env: dict[str, str], resultsfs: str | None = None) -> list[str]:
    """systemd's expansion: ${VAR} is one word, $VAR splits on white space.

    With ``resultsfs``, the unit's command path is replaced by that command.
    """
    words = []
    for word in command.lstrip("-").split():
        if word.startswith("${") and word.endswith("}"):
            words.append(env[word[2:-1]])
        elif word.startswith("$"):
            words.extend(env[word[1:]].split())
        elif resultsfs is not None:
            words.append(word.replace(DEFAULT_COMMAND, resultsfs))
        else:
            words.append(word)
    return words


def check_unit_waits_for_the_mount(unit: Path, command: str) -> None:
    """What systemd needs to start dependent units only once the mount answers."""
    settings = unit_settings(unit)
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"  # the daemon itself is the main process
    assert float(settings["TimeoutStartSec"]) > 0
    commands = unit_commands(unit)
    assert set(commands) == {"ExecStartPre", "ExecStart", "ExecStop"}
    for key, value in commands.items():
        assert value.lstrip("-").split()[0] == command, f"{key} does not run {command}"
    assert commands["ExecStart"].split()[1:3] == ["mount", "--foreground"]


def test_unit_waits_for_the_mount_and_runs_the_installed_command() -> None:
    check_unit_waits_for_the_mount(UNIT, DEFAULT_COMMAND)
    for line in UNIT.read_text().splitlines():
        if line.startswith("#") and " install -" in line:
            assert " -D " in line, f"install without -D fails if the directory is missing: {line}"


@contextlib.contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """An AF_UNIX datagram socket such as systemd passes in NOTIFY_SOCKET, with sender credentials."""
    with (
        tempfile.TemporaryDirectory(prefix="rfs-notify-") as directory,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        path = os.path.join(directory, "notify")
        sock.bind(path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.settimeout(0.1)
        yield sock, path


def receive(sock: socket.socket, seconds: float, still: Callable[[], bool]) -> tuple[list[str], int]:
    """The next notification's lines and the pid of its sender (as systemd checks NotifyAccess)."""
    ucred = struct.Struct("iII")  # pid, uid, gid
    deadline = time.monotonic() + seconds
    while True:
        try:
            data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(ucred.size))
        except TimeoutError:
            assert still(), "the daemon exited before it notified"
            assert time.monotonic() < deadline, f"no notification within {seconds:g}s"
            continue
        pids = [
            ucred.unpack(payload[: ucred.size])[0]
            for level, kind, payload in ancillary
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
        ]
        assert len(pids) == 1
        return data.decode().split("\n"), pids[0]


def test_systemd_unit_clears_a_stale_mount_is_ready_once_mounted_and_stops(tmp_path: Path) -> None:
    """ExecStartPre, ExecStart (Type=notify: READY=1 once the mount answers), ExecStop, as systemd runs them."""
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    commands = unit_commands(UNIT)
    assert commands["ExecStartPre"].startswith("-")  # "not mounted" must not fail the start
    env = {
        "STORE": str(store),
        "MOUNTPOINT": str(mnt),
        "RESULTSFS_OPTIONS": "--on-exists raise --lock-wait 1",
    }
    child_env = {**os.environ, "RESULTSFS_MODELS": MODELS}
    # A daemon that crashed leaves a stale mount; ExecStartPre clears it.
    pid_file = tmp_path / "crashed.pid"
    subprocess.run(
        [RESULTSFS_BIN, "mount", str(store), str(mnt), "--pid-file", str(pid_file)], env=child_env, check=True
    )
    os.kill(int(pid_file.read_text()), 9)
    wait_until(lambda: mount_state(mnt) == "stale", 10)
    pre = subprocess.run(
        expand(commands["ExecStartPre"], env, RESULTSFS_BIN),
        env=child_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert pre.returncode == 0 and mount_state(mnt) == "none", pre.stderr
    stderr = tmp_path / "service.stderr"
    with notify_socket() as (sock, address), stderr.open("w") as stderr_file:
        service = subprocess.Popen(
            expand(commands["ExecStart"], env, RESULTSFS_BIN),
            env={**child_env, "NOTIFY_SOCKET": address}, stdout=subprocess.DEVNULL, stderr=stderr_file,
        )  # fmt: skip
        try:

            def running() -> bool:
                return service.poll() is None

            lines, sender = receive(sock, 30, running)
            # At READY=1 the mount is there and answers: this is what After= units rely on.
            assert fuse_mount_types(mnt) == ["fuse.resultsfs"]
            assert os.listdir(mnt) == ["r.json"]
            assert "READY=1" in lines, lines
            assert f"STATUS=serving {store} on {mnt}" in lines, lines
            assert sender == service.pid  # NotifyAccess=main accepts only the main process
            stop = subprocess.run(
                expand(commands["ExecStop"], env, RESULTSFS_BIN), capture_output=True, text=True, timeout=60
            )
            assert stop.returncode == 0, stop.stderr
            lines, sender = receive(sock, 30, lambda: True)
            assert lines == ["STOPPING=1"] and sender == service.pid
            assert service.wait(timeout=30) == 0, stderr.read_text()
        finally:
            if service.poll() is None:
                service.kill()
                service.wait()
            _unmount(mnt)
