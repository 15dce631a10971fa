"""The ``resultsfs`` command: each subcommand parses, calls the library once, and prints.

Errors a user can cause print one line naming the path or ID and the reason, and exit 1
(2 for usage errors, as click does).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from resultsfs import __version__, registry
from resultsfs.backends import open_backend
from resultsfs.errors import ResultsError
from resultsfs.fs import DEFAULT_CACHE_TIMEOUT, DEFAULT_MEMORY_BUDGET, DEFAULT_PENDING_LIMIT, DEFAULT_THREADS
from resultsfs.leases import IsolationLevel
from resultsfs.store import DEFAULT_MAX_RESULT_BYTES, ResultStore, SetBehavior

F = TypeVar("F", bound=Callable[..., Any])

ON_EXISTS = {
    "overwrite": SetBehavior.OVERWRITE,
    "raise": SetBehavior.RAISE_IF_EXISTS,
    "skip": SetBehavior.SKIP_IF_EXISTS,
    "raise-if-different": SetBehavior.RAISE_IF_DIFFERENT,
}
ISOLATION = {"read-committed": IsolationLevel.READ_COMMITTED, "serializable": IsolationLevel.SERIALIZABLE}


def _reported(command: F) -> F:
    """Print library errors as one clear line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ResultsError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _models_option(command: F) -> F:
    return click.option(
        "--models",
        "models",
        multiple=True,
        metavar="SPEC",
        help="Dotted module or .py file whose import registers the models (repeatable; "
        "also RESULTSFS_MODELS, colon-separated).",
    )(command)


def _model_specs(models: Sequence[str]) -> list[str]:
    """``--models`` values, then the colon-separated ``RESULTSFS_MODELS``."""
    return [*models, *(spec for spec in os.environ.get("RESULTSFS_MODELS", "").split(":") if spec)]


def _load_models(models: Sequence[str]) -> None:
    for spec in _model_specs(models):
        registry.load_models(spec)


def _store(path: str, *, read_only: bool = False) -> ResultStore:
    return ResultStore(open_backend(path, create_if_missing=False, read_only=read_only))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="resultsfs")
def main() -> None:
    """A typed, validated results store for pydantic models, mountable as a filesystem."""


@main.command()
@click.argument("store")
@click.argument("mountpoint", type=click.Path(file_okay=False, path_type=Path))
@_models_option
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
@_reported
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
) -> None:
    """Mount STORE on MOUNTPOINT; returns once the mount is ready (unless -f)."""
    from resultsfs.fs.mount import MountConfig
    from resultsfs.fs.mount import mount as do_mount
    from resultsfs.fs.operations import MountOptions

    specs = _model_specs(models)
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
        ),
        say=lambda notice: click.echo(f"resultsfs: note: {notice}", err=True),
    )


@main.command()
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
@_reported
def umount(mountpoint: str, lazy: bool, force: bool, timeout: float) -> None:
    """Unmount MOUNTPOINT, or clear it if its daemon died (never hangs on a stopped daemon)."""
    from resultsfs.fs.mount import unmount

    click.echo(f"{mountpoint}: {unmount(Path(mountpoint), timeout=timeout, lazy=lazy, force=force)}")


@main.command(name="ls")
@click.argument("store", type=click.Path(file_okay=False))
@click.argument("prefix", required=False)
@_reported
def list_command(store: str, prefix: str | None) -> None:
    """List result IDs (below PREFIX), one per line."""
    for rid in _store(store, read_only=True).list_ids(prefix):
        click.echo(rid)


@main.command()
@click.argument("store", type=click.Path(file_okay=False))
@click.argument("result_id")
@_models_option
@_reported
def get(store: str, result_id: str, models: Sequence[str]) -> None:
    """Print a result's envelope after validating it."""
    _load_models(models)
    backend = _store(store, read_only=True)
    stored = backend.read(result_id)
    backend.validate(stored)
    sys.stdout.buffer.write(stored.raw)


@main.command()
@click.argument("store", type=click.Path(file_okay=False))
@click.argument("result_id")
@click.argument("source", type=click.File("rb"), default="-")
@_models_option
@click.option("--on-exists", type=click.Choice(list(ON_EXISTS)), default="raise", show_default=True)
@click.option("--holder", help="Lease holder to write as (default: HOST:PID:THREAD of this command).")
@_reported
def put(
    store: str, result_id: str, source: Any, models: Sequence[str], on_exists: str, holder: str | None
) -> None:
    """Validate JSON from SOURCE (a file, or - for stdin) and store it as RESULT_ID.

    SOURCE is a full envelope {"model_type", "namespace", "data"}, or the bare data of the
    result already stored under RESULT_ID.
    """
    _load_models(models)
    backend = _store(store)
    # Read one byte past the limit: a huge input is refused without reading all of it.
    raw = source.read(backend.max_result_bytes + 1)
    written = backend.set_bytes(result_id, raw, ON_EXISTS[on_exists], holder)
    click.echo(f"{result_id}: {'stored' if written else 'left as it was'}")


@main.command()
@click.argument("store", type=click.Path(file_okay=False))
@click.argument("result_ids", nargs=-1, required=True)
@click.option("--holder", help="Lease holder to delete as (default: HOST:PID:THREAD of this command).")
@_reported
def rm(store: str, result_ids: Sequence[str], holder: str | None) -> None:
    """Delete results."""
    backend = _store(store)
    for rid in result_ids:
        if not backend.delete(rid, holder):
            raise click.ClickException(f"no result found for ID {rid!r}")


@main.command()
@click.argument("source")
@click.argument("target")
@_models_option
@click.option(
    "--behavior",
    "on_exists",
    type=click.Choice(list(ON_EXISTS)),
    default="raise",
    show_default=True,
    help="What to do with a result TARGET already has.",
)
@click.option("--prefix", help="Copy only this result and those below it.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_reported
def copy(
    source: str, target: str, models: Sequence[str], on_exists: str, prefix: str | None, as_json: bool
) -> None:
    """Copy every result of SOURCE into TARGET (paths or URLs of any backends).

    Each result is validated on its way in, and keeps its bytes, mode and times. Results
    that cannot be copied are listed; the exit status is then 1.
    """
    _load_models(models)
    src = _store(source, read_only=True)
    dst = ResultStore(open_backend(target, create_if_missing=True))
    if sys.stderr.isatty() and not as_json:
        with click.progressbar(length=len(src.list_ids(prefix)), label="copying", file=sys.stderr) as bar:
            report = src.copy_to(
                dst, ON_EXISTS[on_exists], prefix=prefix, progress=lambda done, total: bar.update(1)
            )
    else:
        report = src.copy_to(dst, ON_EXISTS[on_exists], prefix=prefix)
    if as_json:
        click.echo(
            json.dumps(
                {"copied": report.copied, "kept": report.kept, "failed": [list(f) for f in report.failed]},
                indent=2,
            )
        )
    else:
        for rid, reason in report.failed:
            click.echo(f"failed  {rid}: {reason}")
        click.echo(
            f"{len(report.copied)} copied, {len(report.kept)} left as they were, {len(report.failed)} failed "
            f"({src.backend.url} -> {dst.backend.url})"
        )
    if report.failed:
        sys.exit(1)


@main.command()
@click.argument("store", type=click.Path(file_okay=False))
@_models_option
@click.option("--fix", is_flag=True, help="Remove abandoned temp files and dead lease records.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_reported
def check(store: str, models: Sequence[str], fix: bool, as_json: bool) -> None:
    """Report what in STORE is not a healthy result; exit 1 if anything is."""
    _load_models(models)
    report = _store(store, read_only=not fix).check(fix=fix)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "results": report.results,
                    "problems": [vars(p) for p in report.problems],
                    "fixed": [vars(p) for p in report.fixed],
                },
                indent=2,
            )
        )
    else:
        for problem in report.fixed:
            click.echo(f"fixed   {problem.kind:<13} {problem.path}")
        for problem in report.problems:
            click.echo(f"{problem.kind:<21} {problem.path}: {problem.detail}")
        click.echo(f"{report.results} results, {len(report.problems)} problems, {len(report.fixed)} fixed")
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("store", type=click.Path(file_okay=False))
@click.argument("result_id")
@click.option("--holder", required=True, help="Who holds the lease.")
@click.option(
    "--ttl", type=click.FloatRange(min=0, min_open=True), help="Seconds until it expires (default: never)."
)
@click.option(
    "--wait", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Seconds to wait for it."
)
@_reported
def lock(store: str, result_id: str, holder: str, ttl: float | None, wait: float) -> None:
    """Take a lease on RESULT_ID."""
    if not _store(store).acquire_lock(result_id, holder, acquire_timeout=wait, hold_timeout=ttl):
        raise click.ClickException(f"result {result_id!r} is leased by another holder")


@main.command()
@click.argument("store", type=click.Path(file_okay=False))
@click.argument("result_id")
@click.option("--holder", required=True, help="Who holds the lease.")
@_reported
def unlock(store: str, result_id: str, holder: str) -> None:
    """Release a lease on RESULT_ID."""
    _store(store).release_lock(result_id, holder)
