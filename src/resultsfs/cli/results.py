"""The commands about results: ``init``, ``ls``, ``get``, ``put``, ``rm``, ``copy`` and ``check``.

Each parses its arguments, calls :class:`resultsfs.store.ResultStore`, and prints: data on
standard output (text, or one JSON document with ``--json``), notes on standard error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any

import click
from pydantic import BaseModel

from resultsfs import ids, registry
from resultsfs.backends import open_backend, shown_url
from resultsfs.cli import completion, hints, output
from resultsfs.cli.options import (
    ON_EXISTS,
    Command,
    holder_option,
    json_option,
    load_models,
    lock_wait_option,
    models_option,
    named_store,
    open_store,
    store_option,
)
from resultsfs.errors import StoreNotFoundError
from resultsfs.ids import SUFFIX
from resultsfs.leases import Lease
from resultsfs.store import ResultStore

#: What ``init`` calls each backend (by class name, so that no driver is imported to ask).
KINDS = {"FileBackend": "directory", "SqliteBackend": "sqlite", "PostgresBackend": "postgresql"}

#: ``check`` draws a progress bar (on a terminal) for stores with more results than this.
PROGRESS_FROM = 100


@click.command(cls=Command)
@store_option
@json_option
def init(store: str | None, as_json: bool) -> None:
    """Create a store (a directory, an SQLite file, or the tables of a PostgreSQL database).

    Running it on a store that exists changes nothing. Prints what it made.
    """
    name = named_store(store)
    try:
        open_backend(name, create_if_missing=False, read_only=True).close()
        existed = True
    except StoreNotFoundError:
        existed = False
    with ResultStore(open_backend(name, create_if_missing=True)) as opened:
        url = opened.backend.url
        kind = KINDS.get(type(opened.backend).__name__, type(opened.backend).__name__)
    # A PostgreSQL database is never created here, only its tables (where they were missing).
    created = None if kind == "postgresql" else not existed
    if as_json:
        output.emit_json({"store": url, "kind": kind, "created": created})
    elif created is None:
        click.echo(f"{url}: {kind} store ready (its tables created where they were missing)")
    elif created:
        click.echo(f"created {kind} store {url}")
    else:
        click.echo(f"{url}: already a {kind} store; nothing changed")


@click.command(name="ls", cls=Command)
@store_option
@click.option("-l", "long", is_flag=True, help="Show model, size, modification time and lease.")
@click.option("-r", "--recursive", is_flag=True, help="List every result below PREFIX (no directories).")
@json_option
@click.argument("prefix", required=False, shell_complete=completion.ids())
def list_command(store: str | None, long: bool, recursive: bool, as_json: bool, prefix: str | None) -> None:
    """List the results and directories in PREFIX (default: the top), as IDs; directories end in /.

    With -r, every result ID at or below PREFIX, sorted, one per line.
    """
    with open_store(store, read_only=True) as opened:
        where = _directory_parts(prefix)
        listing = opened.listdir(where) if where is not None else None
        shown = prefix or "/"
        entries: list[tuple[str, bool]]  # (ID, is a directory)
        if recursive:
            entries = [(rid, False) for rid in opened.list_ids(prefix if where != () else None)]
            if not entries and listing is None:
                raise hints.CommandError(f"nothing is stored under {shown!r}{hints.did_you_mean(shown)}")
        elif listing is not None:
            base = "".join(part + "/" for part in where or ())
            entries = sorted(
                [(base + name, False) for name in listing.results]
                + [(base + name, True) for name in listing.dirs]
            )
        elif prefix and not prefix.endswith("/") and opened.exists(prefix):
            entries = [(prefix, False)]  # a result, as ls(1) shows a file
        else:
            raise hints.CommandError(f"nothing is stored under {shown!r}{hints.did_you_mean(shown)}")
        leased = {lease.result_id: lease for lease in opened.leases(_lease_prefix(prefix))} if long else {}
        rows = [_entry(opened, rid, is_dir, leased if long else None) for rid, is_dir in entries]
    if as_json:
        output.emit_json(rows)
    elif long:
        output.emit_columns(
            [
                [
                    row["model"] or "-",
                    str(row["size"]),
                    row["mtime"] or "-",
                    _lease_column(row["lease"]),
                    row["id"] + ("/" if row["type"] == "directory" else ""),
                ]
                for row in rows
            ]
        )
    else:
        for row in rows:
            click.echo(row["id"] + ("/" if row["type"] == "directory" else ""))


def _directory_parts(prefix: str | None) -> tuple[str, ...] | None:
    """The directory ``prefix`` names, as ID parts (``()``: the top); ``None`` if it cannot name one."""
    if not prefix or prefix.strip("/") == "":
        return ()
    parts = ids.id_parts(prefix.rstrip("/"))
    return parts if ids.is_valid_part(parts[-1], is_last=False) else None


def _lease_prefix(prefix: str | None) -> str | None:
    """The prefix whose leases an ``ls`` may show (``None``: the whole store)."""
    stripped = (prefix or "").rstrip("/")
    return stripped or None


def _entry(store: ResultStore, rid: str, is_dir: bool, leased: dict[str, Lease] | None) -> dict[str, Any]:
    """One line of ``ls``: its ID and type; with ``-l`` (``leased`` given) its model, size, time and lease."""
    row: dict[str, Any] = {"id": rid, "type": "directory" if is_dir else "result"}
    if leased is None:
        return row
    if is_dir:
        meta = store.dir_meta(tuple(rid.split("/")))
        bound = store.binding(rid)
        row["model"] = bound.model if bound is not None else None
        row["lease"] = None
    else:
        meta = store.meta(rid)
        found = store.envelope_of(rid)
        row["model"] = registry.model_ref(found.namespace, found.model_type) if found is not None else None
        lease = leased.get(rid)
        row["lease"] = output.lease_json(lease) if lease is not None else None
    row["size"] = meta.size if meta is not None else 0
    row["mtime"] = output.iso_time_ns(meta.mtime_ns) if meta is not None else None
    return row


def _lease_column(lease: dict[str, Any] | None) -> str:
    if lease is None:
        return "-"
    return f"{lease['holder']} until {lease['expires'] or 'it is released'}"


@click.command(cls=Command)
@store_option
@models_option
@click.option("--envelope", "whole", is_flag=True, help="Print the stored envelope, byte for byte.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for uniformity: the output is JSON anyway.")
@click.argument("result_id", metavar="ID", shell_complete=completion.ids())
def get(store: str | None, models: Sequence[str], whole: bool, as_json: bool, result_id: str) -> None:
    """Print a result's data as JSON, after validating it against its model.

    --envelope prints the whole stored record {"model_type", "namespace", "data"} exactly as stored.
    """
    del as_json
    load_models(models)
    with open_store(store, read_only=True) as opened:
        stored = opened.read(result_id)
        model: BaseModel = opened.validate(stored)
    if whole:
        sys.stdout.buffer.write(stored.raw)
        sys.stdout.buffer.flush()
    else:
        output.emit_json(model.model_dump(mode="json"))


@click.command(cls=Command)
@store_option
@models_option
@click.option(
    "--model",
    "model_ref",
    metavar="NS:Model",
    help="The model of bare data (an object without model_type): it is stored as a whole NS:Model result.",
)
@click.option(
    "--on-exists",
    type=click.Choice(list(ON_EXISTS)),
    default=None,
    help="What to do if a result is stored under ID  [default: raise; overwrite with --merge]",
)
@click.option("--merge", is_flag=True, help="Apply the JSON as a merge patch (RFC 7386) to the stored data.")
@holder_option("write")
@lock_wait_option
@json_option
@click.argument("result_id", metavar="ID", shell_complete=completion.ids())
@click.argument("source", metavar="[FILE]", type=click.File("rb"), default="-")
def put(
    store: str | None,
    models: Sequence[str],
    model_ref: str | None,
    on_exists: str | None,
    merge: bool,
    holder: str | None,
    lock_wait: float,
    as_json: bool,
    result_id: str,
    source: IO[bytes],
) -> None:
    """Validate JSON from FILE (standard input if absent or -) and store it as ID.

    The JSON is a full envelope {"model_type", "namespace", "data"}, or bare data: the data
    object alone. Bare data for a new result is stored as the model named by --model, or the
    model its directory is bound to (resultsfs bind); for a stored result it replaces that
    result's data, and is refused if that would silently reset a field it leaves out (use
    --merge to change only some fields).
    """
    load_models(models)
    behavior = on_exists or ("overwrite" if merge else "raise")
    if result_id.endswith(SUFFIX):
        stored_as = f"{result_id}{SUFFIX}{hints.did_you_mean(result_id)}"
        output.note(f"ID {result_id!r} ends in {SUFFIX}: its file is {stored_as}")
    if source is sys.stdin.buffer and sys.stdin.isatty():
        output.note("reading the JSON from the terminal; end it with Ctrl-D")
    with open_store(store) as opened:
        # Read one byte past the limit: a huge input is refused without reading all of it.
        raw = source.read(opened.max_result_bytes + 1)
        written = opened.set_bytes(
            result_id, raw, ON_EXISTS[behavior], holder, merge=merge, lock_wait=lock_wait, model=model_ref
        )
    if as_json:
        output.emit_json({"id": result_id, "stored": written})
    else:
        click.echo(f"{result_id}: {'stored' if written else 'left as it was'}")


@click.command(cls=Command)
@store_option
@click.option("-r", "--recursive", is_flag=True, help="Delete every result at or below each ID.")
@holder_option("delete")
@lock_wait_option
@click.argument("result_ids", metavar="ID...", nargs=-1, required=True, shell_complete=completion.ids())
def rm(
    store: str | None, recursive: bool, holder: str | None, lock_wait: float, result_ids: Sequence[str]
) -> None:
    """Delete results (with -r, every result at or below each ID).

    A result leased by another holder is refused; with -r, nothing below an ID is deleted if
    any result there is leased by another holder.
    """
    with open_store(store) as opened:
        for given in result_ids:
            if not recursive:
                if not opened.delete(given, holder, lock_wait=lock_wait):
                    raise hints.CommandError(f"no result found for ID {given!r}{hints.did_you_mean(given)}")
                continue
            found = opened.list_ids(given)
            if not found:
                raise hints.CommandError(f"nothing is stored under {given!r}{hints.did_you_mean(given)}")
            blocking = _leased_by_others(opened, given, holder, time.monotonic() + lock_wait)
            if blocking:
                raise hints.CommandError(_leased_below(given, blocking))
            for rid in found:
                opened.delete(rid, holder, lock_wait=lock_wait)


def _leased_by_others(store: ResultStore, prefix: str, holder: str | None, deadline: float) -> list[Lease]:
    """The live leases at or below ``prefix`` of holders other than ``holder``, once each has
    ended or ``deadline`` (monotonic) has passed."""
    for lease in store.leases(prefix):
        if lease.holder != holder:
            store.wait_for_leases(lease.result_id, max(0.0, deadline - time.monotonic()), holder)
    return [lease for lease in store.leases(prefix) if lease.holder != holder]


def _leased_below(prefix: str, leases: Sequence[Lease]) -> str:
    first = leases[0]
    more = f" (and {len(leases) - 1} more)" if len(leases) > 1 else ""
    return (
        f"cannot delete {prefix!r} recursively: result {first.result_id!r} is leased by "
        f"{first.describe()}{more}; nothing was deleted (resultsfs locks {prefix} lists the leases)"
    )


@click.command(cls=Command)
@click.argument("source")
@click.argument("target")
@models_option
@click.option(
    "--behavior",
    "on_exists",
    type=click.Choice(list(ON_EXISTS)),
    default="raise",
    show_default=True,
    help="What to do with a result TARGET already has.",
)
@click.option("--prefix", help="Copy only this result and those below it.")
@json_option
def copy(
    source: str, target: str, models: Sequence[str], on_exists: str, prefix: str | None, as_json: bool
) -> None:
    """Copy every result of SOURCE into TARGET (paths or URLs of any backends).

    Each result is validated on its way in, and keeps its bytes, mode and times. Results
    that cannot be copied are listed; the exit status is then 1. TARGET is created if missing.
    """
    load_models(models)
    with (
        ResultStore(open_backend(source, create_if_missing=False, read_only=True)) as src,
        ResultStore(open_backend(target, create_if_missing=True)) as dst,
    ):
        if output.show_progress() and not as_json:
            with click.progressbar(length=len(src.list_ids(prefix)), label="copying", file=sys.stderr) as bar:
                report = src.copy_to(
                    dst, ON_EXISTS[on_exists], prefix=prefix, progress=lambda _done, _total: bar.update(1)
                )
        else:
            report = src.copy_to(dst, ON_EXISTS[on_exists], prefix=prefix)
        urls = f"{src.backend.url} -> {dst.backend.url}"
    if as_json:
        output.emit_json(
            {"copied": report.copied, "kept": report.kept, "failed": [list(f) for f in report.failed]}
        )
    else:
        for rid, reason in report.failed:
            click.echo(f"failed  {rid}: {hints.one_line(reason)}")
        click.echo(
            f"{len(report.copied)} copied, {len(report.kept)} left as they were, "
            f"{len(report.failed)} failed ({urls})"
        )
    if report.failed:
        sys.exit(1)


@click.command(cls=Command)
@store_option
@models_option
@click.option("--fix", is_flag=True, help="Remove abandoned temp files and dead lease records.")
@json_option
def check(store: str | None, models: Sequence[str], fix: bool, as_json: bool) -> None:
    """Report what in the store is not a healthy result, sorted by path; exit 1 if anything is."""
    load_models(models)
    with open_store(store, read_only=not fix) as opened:
        total = sum(1 for _ in opened.iter_ids()) if output.show_progress() and not as_json else 0
        if total > PROGRESS_FROM:
            with click.progressbar(length=total, label="checking", file=sys.stderr) as bar:
                report = opened.check(fix=fix, progress=lambda done: bar.update(done - bar.pos))
        else:
            report = opened.check(fix=fix)
        shown = shown_url(opened.backend.url)
    fixed = sorted(report.fixed, key=lambda p: (p.path, p.kind))
    if as_json:
        output.emit_json(
            {
                "store": shown,
                "results": report.results,
                "ok": report.ok,
                "problems": [vars(p) for p in report.problems],
                "fixed": [vars(p) for p in fixed],
            }
        )
    else:
        for problem in fixed:
            click.echo(f"fixed   {problem.kind:<13} {problem.path}")
        for problem in report.problems:
            click.echo(f"{problem.kind:<21} {problem.path}: {hints.one_line(problem.detail)}")
        click.echo(
            f"{report.results} results, {len(report.problems)} problems, {len(report.fixed)} fixed ({shown})"
        )
    if not report.ok:
        sys.exit(1)
