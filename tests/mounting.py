"""Mounting for tests: a real daemon started by the real CLI, always unmounted afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from resultsfs.atomic import process_is_running

TESTS = Path(__file__).resolve().parent
MODELS = str(TESTS / "models.py")
RESULTSFS = [sys.executable, "-m", "resultsfs"]


def resultsfs(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the resultsfs CLI in a new process."""
    done = subprocess.run([*RESULTSFS, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"resultsfs {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def sh(command: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a shell command line (bash), capturing its output."""
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )


def mount_state(path: Path) -> str:
    try:
        os.stat(path)
    except OSError as exc:
        return "stale" if exc.errno == 107 else "error"
    return "mounted" if os.path.ismount(path) else "none"


@dataclass
class Mount:
    #: The store's directory, or its URL for the SQL backends.
    store: Path | str
    mnt: Path
    pid_file: Path
    log_file: Path

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def path(self, rel: str) -> Path:
        return self.mnt / rel

    def backing(self, rel: str) -> Path:
        """A file of a directory store (meaningless for the SQL backends)."""
        assert isinstance(self.store, Path), "only a directory store has backing files"
        return self.store / rel


def start(store: Path | str, mnt: Path, extra: Sequence[str] = (), workdir: Path | None = None) -> Mount:
    if workdir is None:
        assert isinstance(store, Path), "a store URL needs a workdir for the pid and log files"
        workdir = store.parent
    pid_file = workdir / f"{mnt.name}.pid"
    log_file = workdir / f"{mnt.name}.log"
    mnt.mkdir(parents=True, exist_ok=True)
    resultsfs(
        "mount", str(store), str(mnt), "--models", MODELS,
        "--pid-file", str(pid_file), "--log-file", str(log_file), "--debug", *extra,
    )  # fmt: skip
    assert os.path.ismount(mnt)
    return Mount(store, mnt, pid_file, log_file)


def stop(mount: Mount) -> None:
    """Unmount; if that fails, detach lazily and kill the daemon. Never raises."""
    pid = None
    with contextlib.suppress(Exception):
        pid = mount.pid
    if mount_state(mount.mnt) != "none":
        done = resultsfs("umount", str(mount.mnt), check=False)
        if done.returncode != 0:
            subprocess.run(["fusermount3", "-uz", str(mount.mnt)], check=False, capture_output=True)
    if pid is not None:
        deadline = time.monotonic() + 10
        while process_is_running(pid):  # a zombie (nobody reaps here) counts as gone
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.02)


@contextlib.contextmanager
def mounted(
    store: Path | str, mnt: Path, extra: Sequence[str] = (), workdir: Path | None = None
) -> Iterator[Mount]:
    """Mount for the block; pid and log files go to ``workdir`` (default: beside the store)."""
    mount = start(store, mnt, extra, workdir)
    try:
        yield mount
    finally:
        stop(mount)


def write_errno(
    path: str | bytes | os.PathLike[str], data: bytes, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
) -> int | None:
    """open, write, close as a C program would; the errno of the first call that failed, or None.

    close is always attempted (it is a commit point); its error counts only if nothing failed before.
    """
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        return exc.errno
    first = None
    try:
        os.write(fd, data)
    except OSError as exc:
        first = exc.errno
    try:
        os.close(fd)
    except OSError as exc:
        first = first or exc.errno
    return first


def wait_until(
    done: Callable[[], bool], seconds: float = 10.0, what: str = "", still: Callable[[], bool] = lambda: True
) -> None:
    """Poll ``done`` until it holds; fail after ``seconds`` or as soon as ``still`` stops holding."""
    deadline = time.monotonic() + seconds
    while not done():
        assert still() and time.monotonic() < deadline, what or f"not done within {seconds:g}s"
        time.sleep(0.05)
