"""The commands that mount and unmount: ``mount STORE MOUNTPOINT`` and ``umount MOUNTPOINT``.

``mount`` keeps its positional STORE, as sshfs and rclone do (and as ``/etc/fstab`` and the
mount helper pass it). The FUSE layer is imported inside the commands, so that every other
command works on a machine without libfuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from resultsfs.cli import output
from resultsfs.cli.options import ON_EXISTS, Command, model_specs, models_option
from resultsfs.fs import DEFAULT_CACHE_TIMEOUT, DEFAULT_MEMORY_BUDGET, DEFAULT_PENDING_LIMIT, DEFAULT_THREADS
from resultsfs.leases import IsolationLevel
from resultsfs.store import DEFAULT_MAX_RESULT_BYTES

ISOLATION = {"read-committed": IsolationLevel.READ_COMMITTED, "serializable": IsolationLevel.SERIALIZABLE}


@click.command(cls=Command)
@click.argument("store")
@click.argument("mountpoint", type=click.Path(file_okay=False, path_type=Path))
@models_option
@click.option("-f", "--foreground", is_flag=True, help="Stay in the foreground, logging to stderr.")
@click.option("--read-only", is_flag=True, help="Refuse every change with EROFS.")
@click.option(
    "--allow-other",
    is_flag=True,
    help="Let other users in (the backing files' modes decide what they may do).",
)
@click.option(
    "--on-exists",
    type=click.Choice(list(ON_EXISTS)),
    default="overwrite",
    show_default=True,
    help="What a write onto an existing result does.",
)
@click.option(
    "--lenient", is_flag=True, help="Serve results that fail validation instead of refusing them (EIO)."
)
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a write waits for another holder's lease before EBUSY.",
)
@click.option("--isolation", type=click.Choice(list(ISOLATION)), default="read-committed", show_default=True)
@click.option("-o", "fuse_options", multiple=True, metavar="OPT[,OPT...]", help="Raw FUSE mount options.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Daemon log (default: STORE/.resultsfs/mount.log).",
)
@click.option(
    "--pid-file", type=click.Path(dir_okay=False, path_type=Path), help="Write the daemon's pid here."
)
@click.option(
    "--max-result-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_RESULT_BYTES,
    show_default=True,
    help="Refuse results larger than this (EFBIG).",
)
@click.option(
    "--max-pending-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_PENDING_LIMIT,
    show_default=True,
    help="Uncommitted writes all open files may hold together (memory and disk); then ENOSPC.",
)
@click.option(
    "--buffer-memory",
    type=click.IntRange(min=0),
    default=DEFAULT_MEMORY_BUDGET,
    show_default=True,
    help="Memory write buffers may use together; larger ones spill to private files on disk.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1, max=64),
    default=DEFAULT_THREADS,
    show_default=True,
    help="FUSE worker threads (1: libfuse's single-threaded loop; see docs/performance.md).",
)
@click.option(
    "--cache-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_CACHE_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long the kernel caches names and attributes.",
)
@click.option(
    "--debug", is_flag=True, help="Log at debug level (each validation, each commit). -o debug traces FUSE."
)
@click.option(
    "--trust-models",
    is_flag=True,
    help="Load --models files even if users other than root and you could have written them "
    "(models are code the daemon runs).",
)
@click.option(
    "--allow-non-empty",
    is_flag=True,
    help="Mount over a directory that holds files (hidden while mounted).",
)
@click.option(
    "--revalidate",
    is_flag=True,
    help="Validate every result again instead of trusting the verdicts kept by earlier mounts.",
)
def mount(
    store: str,
    mountpoint: Path,
    models: Sequence[str],
    foreground: bool,
    read_only: bool,
    allow_other: bool,
    on_exists: str,
    lenient: bool,
    lock_wait: float,
    isolation: str,
    fuse_options: Sequence[str],
    log_file: Path | None,
    pid_file: Path | None,
    max_result_bytes: int,
    max_pending_bytes: int,
    buffer_memory: int,
    threads: int,
    cache_timeout: float,
    debug: bool,
    trust_models: bool,
    allow_non_empty: bool,
    revalidate: bool,
) -> None:
    """Mount STORE on MOUNTPOINT; returns once the mount is ready (unless -f)."""
    # The FUSE layer is imported here only, so that the store commands work without libfuse.
    from resultsfs.fs.mount import MountConfig
    from resultsfs.fs.mount import mount as do_mount
    from resultsfs.fs.operations import MountOptions

    specs = model_specs(models)
    options = MountOptions(
        read_only=read_only,
        on_exists=ON_EXISTS[on_exists],
        lenient=lenient,
        lock_wait=lock_wait,
        isolation=ISOLATION[isolation],
        buffer_memory=buffer_memory,
        max_pending_bytes=max_pending_bytes,
    )
    do_mount(
        MountConfig(
            store=store,
            mountpoint=mountpoint,
            models=specs,
            options=options,
            foreground=foreground,
            allow_other=allow_other,
            threads=threads,
            cache_timeout=cache_timeout,
            fuse_options=fuse_options,
            log_file=log_file.absolute() if log_file else None,
            pid_file=pid_file,
            max_result_bytes=max_result_bytes,
            debug=debug,
            trust_models=trust_models,
            allow_non_empty=allow_non_empty,
            revalidate=revalidate,
        ),
        say=output.note,
    )


@click.command(cls=Command)
# A plain string: click.Path would stat it, which hangs when the daemon does not answer.
@click.argument("mountpoint")
@click.option("--lazy", is_flag=True, help="Detach even if busy; open files stay usable until closed.")
@click.option(
    "--force",
    is_flag=True,
    help="Abort the daemon's connection first (uncommitted writes are lost), then detach.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Give up after this long.",
)
def umount(mountpoint: str, lazy: bool, force: bool, timeout: float) -> None:
    """Unmount MOUNTPOINT, or clear it if its daemon died (never hangs on a stopped daemon)."""
    from resultsfs.fs.mount import unmount

    click.echo(f"{mountpoint}: {unmount(Path(mountpoint), timeout=timeout, lazy=lazy, force=force)}")
