"""Mount and unmount: preflight checks, the daemon, readiness, and clearing stale mounts.

``mount`` returns only once the filesystem answers (so the next line of a script can use
it), with the daemon running in the background; in the foreground it blocks until unmounted.
Readiness is a pipe: the daemon writes ``ready`` from the FUSE ``init`` callback, which libfuse
calls after the kernel mount exists, or the reason it failed. ``unmount`` also clears a stale
mount whose daemon died (``Transport endpoint is not connected``).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from resultsfs import registry
from resultsfs.backends import is_url, open_backend, shown_url
from resultsfs.backends.files import META_DIR
from resultsfs.errors import MountError, ResultsError
from resultsfs.fs import DEFAULT_CACHE_TIMEOUT, DEFAULT_THREADS
from resultsfs.fs.binding import ResultsFUSE
from resultsfs.fs.notify import notify
from resultsfs.fs.operations import MountOptions, ResultsOperations
from resultsfs.fs.staging import LOST_FOUND, kept_files, scratch_location, store_home
from resultsfs.fs.trust import check_models_trusted
from resultsfs.store import DEFAULT_MAX_RESULT_BYTES, ResultStore
from resultsfs.verdicts import VerdictLog, fingerprint

log = logging.getLogger(__name__)

#: How long ``mount`` waits for the daemon to become ready.
READY_TIMEOUT = 30.0


@dataclass
class MountConfig:
    """Everything ``resultsfs mount`` was asked for."""

    #: A directory, or a store URL (``sqlite:///x.db``, ``postgresql://...``).
    store: str
    mountpoint: Path
    models: Sequence[str] = ()
    options: MountOptions = field(default_factory=MountOptions)
    foreground: bool = False
    allow_other: bool = False
    #: Worker threads of the FUSE loop; 1 is libfuse's single-threaded loop. Measured in
    #: docs/performance.md: 4 keeps parallel reads fast and lets slow commits run alongside.
    threads: int = DEFAULT_THREADS
    cache_timeout: float = DEFAULT_CACHE_TIMEOUT
    #: Raw ``-o`` options for libfuse (``name`` or ``name=value``).
    fuse_options: Sequence[str] = ()
    log_file: Path | None = None
    #: Where the daemon writes its pid once it is ready (removed when it exits).
    pid_file: Path | None = None
    #: Results larger than this are refused (EFBIG).
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    debug: bool = False
    #: Load ``models`` even if users other than root and the mounting user could have written them.
    trust_models: bool = False
    #: Mount over a directory that holds files (they are hidden while mounted).
    allow_non_empty: bool = False
    #: Validate every result again instead of trusting verdicts kept by earlier mounts.
    revalidate: bool = False


#: How long a mount may take to answer a ``stat`` before it counts as unresponsive.
PROBE_TIMEOUT = 2.0


def _unescape(field: str) -> str:
    """A ``/proc/self/mountinfo`` path field (spaces and the like are octal escapes)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mount_entry(mountpoint: Path) -> list[str] | None:
    """The ``/proc/self/mountinfo`` fields of the mount at ``mountpoint``, or ``None``.

    Reading the table never touches the mount, so it cannot hang on a daemon that does not
    answer (``stat`` of the mount point would: it asks the daemon).
    """
    target = os.path.join(os.path.realpath(mountpoint.parent), mountpoint.name)
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == target:
                found = fields  # the last one is the one on top
    return found


def mount_state(mountpoint: Path, timeout: float = PROBE_TIMEOUT) -> str:
    """``"mounted"``, ``"stale"`` (daemon gone), ``"unresponsive"`` (it does not answer within
    ``timeout`` seconds: stopped or hung), or ``"none"``."""
    if _mount_entry(mountpoint) is None:
        return "none"
    # The probe runs in a child: a stat stuck in a daemon that does not answer keeps the mount
    # busy, and only killing the process that made it lets the mount go.
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.stat(mountpoint)
        except OSError as exc:
            os._exit(2 if exc.errno == errno.ENOTCONN else 0)
        os._exit(0)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            return "stale" if os.waitstatus_to_exitcode(status) == 2 else "mounted"
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            return "unresponsive"
        time.sleep(0.005)


def _preflight(config: MountConfig) -> list[str]:
    """Refuse what cannot work, with the reason; return notices worth telling the user."""
    mountpoint = config.mountpoint
    state = mount_state(mountpoint)
    if state == "stale":
        raise MountError(
            f"{mountpoint} is a stale mount (its daemon died: 'Transport endpoint is not connected'); "
            f"clear it with: resultsfs umount {mountpoint}"
        )
    if state == "unresponsive":
        raise MountError(
            f"{mountpoint} is a mount point whose daemon does not answer (stopped or hung); clear it "
            f"with: resultsfs umount --force {mountpoint}"
        )
    if state == "mounted":
        raise MountError(
            f"{mountpoint} is already a mount point; unmount it first: resultsfs umount {mountpoint}"
        )
    if not mountpoint.is_dir():
        raise MountError(f"mount point {mountpoint} does not exist or is not a directory")
    if not config.allow_non_empty:
        with os.scandir(mountpoint) as entries:
            there = sorted(entry.name for entry in entries)
        if there:
            shown = ", ".join(repr(name) for name in there[:3]) + (", ..." if len(there) > 3 else "")
            raise MountError(
                f"mount point {mountpoint} is not empty ({len(there)} entries: {shown}); the mount would "
                "hide them. Choose an empty directory, or pass --allow-non-empty"
            )
    if not is_url(config.store):
        store = Path(config.store)
        if not store.is_dir():
            raise MountError(f"store {config.store} does not exist or is not a directory")
        if store.resolve() == mountpoint.resolve() or mountpoint.resolve().is_relative_to(store.resolve()):
            raise MountError(f"mount point {mountpoint} may not be the store {config.store} or inside it")
    if not os.path.exists("/dev/fuse"):
        raise MountError("/dev/fuse is missing: load the fuse kernel module (modprobe fuse)")
    for spec in config.models:
        if not config.trust_models:
            check_models_trusted(spec, _mounting_users())
        registry.load_models(spec)
    if not config.options.lenient and not any(
        registry.get_models_in_namespace(ns) for ns in registry.get_namespaces()
    ):
        named = (
            f"--models {' '.join(config.models)} registered no model"
            if config.models
            else "no --models given"
        )
        raise MountError(
            f"{named}: every read would fail with EIO. Name the module or .py file that registers the "
            "models (with @register_model) with --models or RESULTSFS_MODELS, or mount with --lenient to "
            "serve results without validating them"
        )
    # Open the store once here, so that a wrong URL, a refused connection or a missing database
    # is reported by `resultsfs mount` itself rather than by a daemon that already detached.
    try:
        backend = open_backend(config.store, create_if_missing=False, read_only=config.options.read_only)
    except (ResultsError, OSError, ValueError) as exc:
        raise MountError(f"cannot open store {shown_url(config.store)}: {exc}") from exc
    try:
        notices = []
        if not config.options.read_only:
            anchor, parts = scratch_location(backend.scratch_dir(), backend.url)
            kept = kept_files(anchor, parts)
            if kept:
                where = Path(anchor).joinpath(*parts[:-1], LOST_FOUND)
                notices.append(
                    f"{len(kept)} files written through earlier mounts of this store never became results "
                    f"and were kept in {where} (resultsfs check lists them)"
                )
        return notices
    finally:
        backend.close()


def _mounting_users() -> frozenset[int]:
    """Who may own a models file: root, the mounting user, and the user who ran sudo."""
    users = {0, os.geteuid(), os.getuid()}
    sudo_uid = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and sudo_uid.isdigit():
        users.add(int(sudo_uid))
    return frozenset(users)


def _fsname(store: str) -> str:
    """What ``df`` and ``/proc/mounts`` show: the store's path, or its URL without a password."""
    store = shown_url(store) if is_url(store) else str(Path(store).resolve())
    # libfuse splits -o on commas; a backslash escapes one.
    return store.replace("\\", "\\\\").replace(",", "\\,")


def _fuse_kwargs(config: MountConfig) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "foreground": True,
        "nothreads": config.threads <= 1,
        "fsname": _fsname(config.store),
        "subtype": "resultsfs",
        "default_permissions": True,
        "entry_timeout": config.cache_timeout,
        "attr_timeout": config.cache_timeout,
        "negative_timeout": config.cache_timeout,
        "hard_remove": True,
    }
    if config.threads > 1:
        kwargs["max_threads"] = config.threads
        kwargs["max_idle_threads"] = config.threads
    if config.allow_other:
        kwargs["allow_other"] = True
    if config.options.read_only:
        kwargs["ro"] = True
    for option in config.fuse_options:
        for item in option.split(","):
            name, sep, value = item.partition("=")
            if name:
                kwargs[name.strip()] = value if sep else True
    return kwargs


def _configure_logging(config: MountConfig, default_file: Path | None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.foreground and config.log_file is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        target = config.log_file or default_file
        handler = logging.FileHandler(target) if target is not None else logging.NullHandler()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if config.debug else logging.INFO)


def _default_log_file(config: MountConfig) -> Path | None:
    """``STORE/.resultsfs/mount.log`` for a directory store; beside the user's state otherwise."""
    if is_url(config.store):
        base = Path("/var/log/resultsfs") if os.geteuid() == 0 else Path.home() / ".local/state/resultsfs"
        base.mkdir(parents=True, exist_ok=True)
        name = str(config.mountpoint).strip("/").replace("/", "-") or "root"
        return base / f"{name}.log"
    if config.options.read_only:
        return None
    meta = Path(config.store) / META_DIR
    meta.mkdir(exist_ok=True)  # a store written by results_manager has none yet
    return meta / "mount.log"


def _serve(config: MountConfig, on_ready: Callable[[], None] | None = None) -> None:
    """Run the FUSE loop until unmounted; ``--pid-file`` is written once the mount is ready."""
    store = ResultStore(
        open_backend(config.store, create_if_missing=False, read_only=config.options.read_only),
        max_result_bytes=config.max_result_bytes,
    )
    try:
        store.keep_verdicts(VerdictLog(store_home(store.backend.url), fingerprint(), fresh=config.revalidate))
    except (OSError, sqlite3.Error) as exc:
        log.warning("verdicts of this mount will not be kept for the next one: %s", exc)

    def ready() -> None:
        if config.pid_file is not None:
            config.pid_file.write_text(f"{os.getpid()}\n")
        notify(f"READY=1\nSTATUS=serving {shown_url(config.store)} on {config.mountpoint}")
        if on_ready is not None:
            on_ready()

    operations = ResultsOperations(store, config.options, on_ready=ready)
    log.info("mounting %s on %s (%s)", shown_url(config.store), config.mountpoint, config.options)
    try:
        ResultsFUSE(operations, str(config.mountpoint), raw_fi=True, **_fuse_kwargs(config))
    except RuntimeError as exc:
        # libfuse returns non-zero when a signal (SIGTERM, SIGINT) ended the loop; it has
        # unmounted cleanly by then. Before readiness it is a real failure.
        if not operations.ready:
            raise MountError(
                f"cannot mount {shown_url(config.store)} on {config.mountpoint} (libfuse error {exc})"
            ) from exc
        log.info("stopped by a signal; unmounted %s", config.mountpoint)
    finally:
        notify("STOPPING=1")
        if store.verdict_log is not None:
            store.verdict_log.close()
        if config.pid_file is not None:
            with suppress(FileNotFoundError):
                config.pid_file.unlink()


def mount(config: MountConfig, say: Callable[[str], None] | None = None) -> None:
    """Mount a store; in the background unless ``config.foreground``. Raises :class:`MountError`.

    ``say`` is told what the user should know before the mount starts (files kept by earlier
    mounts); the daemon's log has it too.
    """
    if not is_url(config.store):
        config.store = str(Path(config.store).absolute())
    config.mountpoint = config.mountpoint.absolute()
    if config.pid_file is not None:
        config.pid_file = config.pid_file.absolute()
    notices = _preflight(config)
    for notice in notices:
        if say is not None:
            say(notice)
    if config.foreground:
        _configure_logging(config, None)
        for notice in notices:
            log.warning("%s", notice)
        _serve(config)
        return
    _mount_in_background(config, notices)


def _mount_in_background(config: MountConfig, notices: Sequence[str] = ()) -> None:
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the daemon
        os.close(read_fd)
        _daemonize(config, write_fd, notices)
    os.close(write_fd)
    os.waitpid(child, 0)  # the first child exits at once; the daemon is its child
    message = _read_ready(read_fd, READY_TIMEOUT)
    os.close(read_fd)
    if message != "ready":
        raise MountError(message or f"the daemon for {config.mountpoint} exited before it was ready")


def _read_ready(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    chunks = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
        if b"\n" in chunk:
            break
    else:
        return f"the daemon did not become ready within {timeout:g}s"
    return b"".join(chunks).decode(errors="replace").strip()


def _daemonize(
    config: MountConfig, ready_fd: int, notices: Sequence[str] = ()
) -> None:  # pragma: no cover - runs in the daemon
    """Detach (setsid, second fork), then serve; report readiness or failure on ``ready_fd``.

    Until the mount is ready, what libfuse and fusermount3 print (a bad ``-o`` option,
    ``/dev/fuse`` permissions) goes to a private file, so that a failure reports their own
    words rather than a bare "libfuse error 3".
    """
    with tempfile.TemporaryFile() as fuse_said:
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1):
                os.dup2(devnull, fd)
            os.dup2(fuse_said.fileno(), 2)
            os.chdir("/")
            _configure_logging(config, _default_log_file(config))
            for notice in notices:
                log.warning("%s", notice)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

            def ready() -> None:
                os.dup2(devnull, 2)
                os.write(ready_fd, b"ready\n")
                os.close(ready_fd)

            _serve(config, ready)
        except BaseException as exc:  # the parent must hear of every failure
            log.exception("mount failed")
            said = _fuse_messages(fuse_said)
            with suppress(OSError):
                os.write(ready_fd, f"mount failed: {exc}{f': {said}' if said else ''}\n".encode())
            os._exit(1)
        os._exit(0)


def _fuse_messages(file: IO[bytes]) -> str:
    """What libfuse printed to stderr, on one line (the last 2000 characters)."""
    with suppress(OSError):
        file.seek(0)
        text = file.read().decode(errors="replace")
        return " ".join(line.strip() for line in text.splitlines() if line.strip())[-2000:]
    return ""


def unmount(mountpoint: Path, *, timeout: float = 10.0, lazy: bool = False, force: bool = False) -> str:
    """Unmount, or clear a stale mount; returns what was done. Raises :class:`MountError`.

    Every step is bounded by ``timeout`` seconds, also when the daemon is stopped or hung.
    ``lazy`` detaches the mount even if it is busy (programs keep their open files until they
    close them); ``force`` first aborts the FUSE connection, so that every request still in
    flight fails at once (uncommitted writes are lost), then detaches it.
    """
    mountpoint = mountpoint.absolute()
    state = mount_state(mountpoint)
    if state == "none":
        raise MountError(f"{mountpoint} is not mounted")
    if force:
        _run_bounded(["umount", "-f", str(mountpoint)], timeout)  # MNT_FORCE aborts a FUSE connection
        lazy = True
    elif state == "stale":
        lazy = True
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool:
        command = [tool, "-u", *(["-z"] if lazy else []), str(mountpoint)]
    else:
        command = ["umount", *(["-l"] if lazy else []), str(mountpoint)]
    done = _run_bounded(command, timeout)
    if done is None:
        raise MountError(
            f"cannot unmount {mountpoint}: {command[0]} did not finish within {timeout:g}s; the daemon is "
            f"not answering. Detach it with: resultsfs umount --lazy {mountpoint}, or abort it (uncommitted "
            f"writes are lost) with: resultsfs umount --force {mountpoint}"
        )
    if done.returncode != 0 and _mount_entry(mountpoint) is not None:
        reason = (done.stderr or done.stdout).strip()
        if "busy" in reason.lower():
            raise MountError(
                f"cannot unmount {mountpoint}: it is busy (a program has a file open or a shell is inside "
                f"it); close them, or detach it now with: resultsfs umount --lazy {mountpoint}"
            )
        raise MountError(f"cannot unmount {mountpoint}: {reason}")
    deadline = time.monotonic() + timeout
    while _mount_entry(mountpoint) is not None:
        if time.monotonic() > deadline:
            raise MountError(
                f"{mountpoint} is still mounted {timeout:g}s after unmounting; detach it with: "
                f"resultsfs umount --lazy {mountpoint}"
            )
        time.sleep(0.02)
    if force:
        return "aborted and detached"
    if state == "stale":
        return "cleared stale mount"
    if state == "unresponsive":
        return "unmounted (its daemon was not answering)"
    return "detached" if lazy else "unmounted"


def _run_bounded(command: list[str], timeout: float) -> subprocess.CompletedProcess[str] | None:
    """Run ``command``; ``None`` if it did not finish within ``timeout`` seconds (it is killed)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
