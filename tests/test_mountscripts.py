"""The fstab mount helper and the systemd unit, run the way mount(8) and systemd run them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import Counter
from mounting import MODELS, mount_state, sh, wait_until
from resultsfs import FileBackend

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "mountscripts" / "mount.resultsfs"
UNIT = ROOT / "mountscripts" / "resultsfs@.service"
RESULTSFS_BIN = str(Path(sys.executable).parent / "resultsfs")


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


def test_helper_rejects_what_it_cannot_parse(tmp_path: Path) -> None:
    done = subprocess.run([str(HELPER), "only-one-arg"], capture_output=True, text=True)
    assert done.returncode == 1 and "usage" in done.stderr
    done = subprocess.run([str(HELPER), "a", "b", "--bogus"], capture_output=True, text=True)
    assert done.returncode == 1 and "unexpected argument: --bogus" in done.stderr


def test_real_mount_command_with_the_helper_installed(tmp_path: Path) -> None:
    """mount -t fuse.resultsfs finds /sbin/mount.fuse.resultsfs, as an fstab entry would."""
    installed = Path("/sbin/mount.fuse.resultsfs")
    if installed.exists():
        pytest.fail(f"{installed} exists already; this test installs its own and will not overwrite it")
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    installed.write_text(
        f'#!/bin/sh\nRESULTSFS={shlex.quote(RESULTSFS_BIN)} exec {shlex.quote(str(HELPER))} "$@"\n'
    )
    installed.chmod(0o755)
    try:
        done = subprocess.run(
            ["mount", "-t", "fuse.resultsfs", "-o", f"models={MODELS},nofail", str(store), str(mnt)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (mnt / "r.json").exists()
    finally:
        installed.unlink()
        _unmount(mnt)


def _unit_commands() -> dict[str, str]:
    commands = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("ExecStartPre", "ExecStart", "ExecStop"):
            commands[key] = value
    return commands


def _expand(command: str, env: dict[str, str]) -> list[str]:
    """systemd's expansion: ${VAR} is one word, $VAR splits on white space."""
    words = []
    for word in command.lstrip("-").split():
        if word.startswith("${") and word.endswith("}"):
            words.append(env[word[2:-1]])
        elif word.startswith("$"):
            words.extend(env[word[1:]].split())
        else:
            words.append(word.replace("/usr/local/bin/resultsfs", RESULTSFS_BIN))
    return words


def test_systemd_unit_starts_stops_and_clears_a_stale_mount(tmp_path: Path) -> None:
    store, mnt = _store(tmp_path), tmp_path / "mnt"
    commands = _unit_commands()
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
        _expand(commands["ExecStartPre"], env), env=child_env, capture_output=True, text=True, timeout=60
    )
    assert pre.returncode == 0 and mount_state(mnt) == "none", pre.stderr
    service = subprocess.Popen(
        _expand(commands["ExecStart"], env), env=child_env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: os.path.ismount(mnt), 20, still=lambda: service.poll() is None)
        assert (mnt / "r.json").exists()
        stop = subprocess.run(_expand(commands["ExecStop"], env), capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert service.wait(timeout=30) == 0
    finally:
        if service.poll() is None:
            service.kill()
        service.communicate()
        _unmount(mnt)
