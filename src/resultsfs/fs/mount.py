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
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from resultsfs import registry
from resultsfs.backends import is_url, open_backend
from resultsfs.backends.files import META_DIR
from resultsfs.errors import MountError, ResultsError
from resultsfs.fs import DEFAULT_CACHE_TIMEOUT, DEFAULT_THREADS
from resultsfs.fs.binding import ResultsFUSE
from resultsfs.fs.operations import MountOptions, ResultsOperations
from resultsfs.store import DEFAULT_MAX_RESULT_BYTES, ResultStore

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


def mount_state(mountpoint: Path) -> str:
    """``"mounted"``, ``"stale"`` (daemon gone), or ``"none"``."""
    try:
        os.stat(mountpoint)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            return "stale"
        if exc.errno == errno.ESTALE:
            return "mounted"  # a live daemon whose store directory was replaced
        if exc.errno == errno.ENOENT:
            return "none"
        raise
    return "mounted" if os.path.ismount(mountpoint) else "none"


def _preflight(config: MountConfig) -> None:
    mountpoint = config.mountpoint
    state = mount_state(mountpoint)
    if state == "stale":
        raise MountError(
            f"{mountpoint} is a stale mount (its daemon died: 'Transport endpoint is not connected'); "
            f"clear it with: resultsfs umount {mountpoint}"
        )
    if state == "mounted":
        raise MountError(
            f"{mountpoint} is already a mount point; unmount it first: resultsfs umount {mountpoint}"
        )
    if not mountpoint.is_dir():
        raise MountError(f"mount point {mountpoint} does not exist or is not a directory")
    if not is_url(config.store):
        store = Path(config.store)
        if not store.is_dir():
            raise MountError(f"store {config.store} does not exist or is not a directory")
        if store.resolve() == mountpoint.resolve() or mountpoint.resolve().is_relative_to(store.resolve()):
            raise MountError(f"mount point {mountpoint} may not be the store {config.store} or inside it")
    if not os.path.exists("/dev/fuse"):
        raise MountError("/dev/fuse is missing: load the fuse kernel module (modprobe fuse)")
    for spec in config.models:
        registry.load_models(spec)
    # Open the store once here, so that a wrong URL, a refused connection or a missing database
    # is reported by `resultsfs mount` itself rather than by a daemon that already detached.
    try:
        open_backend(config.store, create_if_missing=False, read_only=config.options.read_only).close()
    except (ResultsError, OSError, ValueError) as exc:
        raise MountError(f"cannot open store {config.store}: {exc}") from exc


def _fsname(store: str) -> str:
    """What ``df`` and ``/proc/mounts`` show: the store's path, or its URL without a password."""
    if is_url(store):
        parts = urlsplit(store)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            store = urlunsplit(parts._replace(netloc=netloc))
    else:
        store = str(Path(store).resolve())
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

    def ready() -> None:
        if config.pid_file is not None:
            config.pid_file.write_text(f"{os.getpid()}\n")
        if on_ready is not None:
            on_ready()

    operations = ResultsOperations(store, config.options, on_ready=ready)
    log.info("mounting %s on %s (%s)", config.store, config.mountpoint, config.options)
    try:
        ResultsFUSE(operations, str(config.mountpoint), raw_fi=True, **_fuse_kwargs(config))
    except RuntimeError as exc:
        # libfuse returns non-zero when a signal (SIGTERM, SIGINT) ended the loop; it has
        # unmounted cleanly by then. Before readiness it is a real failure.
        if not operations.ready:
            raise MountError(
                f"cannot mount {config.store} on {config.mountpoint} (libfuse error {exc})"
            ) from exc
        log.info("stopped by a signal; unmounted %s", config.mountpoint)
    finally:
        if config.pid_file is not None:
            with suppress(FileNotFoundError):
                config.pid_file.unlink()


def mount(config: MountConfig) -> None:
    """Mount a store; in the background unless ``config.foreground``. Raises :class:`MountError`."""
    if not is_url(config.store):
        config.store = str(Path(config.store).absolute())
    config.mountpoint = config.mountpoint.absolute()
    if config.pid_file is not None:
        config.pid_file = config.pid_file.absolute()
    _preflight(config)
    if config.foreground:
        _configure_logging(config, None)
        _serve(config)
        return
    _mount_in_background(config)


def _mount_in_background(config: MountConfig) -> None:
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the daemon
        os.close(read_fd)
        _daemonize(config, write_fd)
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


def _daemonize(config: MountConfig, ready_fd: int) -> None:  # pragma: no cover - runs in the daemon
    """Detach (setsid, second fork), then serve; report readiness or failure on ``ready_fd``."""
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.chdir("/")
        _configure_logging(config, _default_log_file(config))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

        def ready() -> None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)

        _serve(config, ready)
    except BaseException as exc:  # the parent must hear of every failure
        log.exception("mount failed")
        with suppress(OSError):
            os.write(ready_fd, f"mount failed: {exc}\n".encode())
        os._exit(1)
    os._exit(0)


def unmount(mountpoint: Path, *, timeout: float = 10.0) -> str:
    """Unmount, or clear a stale mount; returns what was done. Raises :class:`MountError`."""
    mountpoint = mountpoint.absolute()
    state = mount_state(mountpoint)
    if state == "none":
        raise MountError(f"{mountpoint} is not mounted")
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    lazy = state == "stale"
    command = [tool, "-u", "-z", str(mountpoint)] if tool else ["umount", "-l", str(mountpoint)]
    if not lazy:
        command = [tool, "-u", str(mountpoint)] if tool else ["umount", str(mountpoint)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip()
        if "busy" in reason.lower():
            raise MountError(
                f"cannot unmount {mountpoint}: it is busy (a program has a file open or a shell is "
                f"inside it); close them, or detach now with: fusermount3 -uz {mountpoint}"
            )
        raise MountError(f"cannot unmount {mountpoint}: {reason}")
    deadline = time.monotonic() + timeout
    while mount_state(mountpoint) != "none":
        if time.monotonic() > deadline:
            raise MountError(f"{mountpoint} is still mounted {timeout:g}s after unmounting")
        time.sleep(0.02)
    return "cleared stale mount" if lazy else "unmounted"
