"""How the ``resultsfs`` command prints: JSON, aligned columns, times, notes and verbosity.

Standard output carries data only (IDs, results, reports), so that it can be piped; notes,
warnings and progress bars go to standard error. ``-q`` silences notes and progress bars,
``-v`` shows the library's logging (INFO; ``-vv``: DEBUG). Every command's ``--json`` output
is one JSON document, written here so that all commands agree on its form.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click
import pendulum

from resultsfs.leases import Lease

#: Where the verbosity of one invocation is kept (``click.Context.meta`` is shared by the
#: group's context and the command's).
_VERBOSITY = "resultsfs.verbosity"
_QUIET = "resultsfs.quiet"


class _Formatter(logging.Formatter):
    """``resultsfs: info: resultsfs.store: message``: one line per record, prefixed as notes are."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"resultsfs: {record.levelname.lower()}: {record.name}: {record.getMessage()}"
        return f"{line}\n{self.formatException(record.exc_info)}" if record.exc_info else line


def set_verbosity(ctx: click.Context, verbose: int | None = None, quiet: bool | None = None) -> None:
    """Remember ``-v``/``-q`` (given to the group or to the command) and configure logging.

    The library logs through :mod:`logging` and never configures it. The CLI reports what a
    user must know itself (errors, warnings, notes), so without ``-v`` only the library's
    errors show; ``-v`` shows its INFO records, ``-vv`` its DEBUG records.
    """
    if verbose:
        ctx.meta[_VERBOSITY] = ctx.meta.get(_VERBOSITY, 0) + verbose
    if quiet:
        ctx.meta[_QUIET] = True
    level = {0: logging.ERROR, 1: logging.INFO}.get(ctx.meta.get(_VERBOSITY, 0), logging.DEBUG)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h.formatter, _Formatter)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        root.addHandler(handler)
    root.setLevel(level)


def verbosity() -> int:
    """How many ``-v`` were given."""
    ctx = click.get_current_context(silent=True)
    return int(ctx.meta.get(_VERBOSITY, 0)) if ctx is not None else 0


def quiet() -> bool:
    """True if ``-q`` was given: no notes, no progress bars."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx.meta.get(_QUIET, False)) if ctx is not None else False


def note(message: str) -> None:
    """Tell the user something worth knowing on standard error (unless ``-q``)."""
    if not quiet():
        click.echo(f"resultsfs: note: {message}", err=True)


def warn(message: str) -> None:
    """A warning on standard error; ``-q`` does not silence it."""
    click.echo(f"resultsfs: warning: {message}", err=True)


def show_progress() -> bool:
    """True if a progress bar may be drawn: standard error is a terminal and ``-q`` was not given."""
    return sys.stderr.isatty() and not quiet()


def emit_json(value: Any) -> None:
    """Print one JSON document (indented, UTF-8, with a final newline)."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def emit_columns(rows: Sequence[Sequence[str]]) -> None:
    """Print rows as columns aligned with two spaces; the last column is never padded.

    The last column holds what may contain spaces (an ID, a holder), so a line still splits
    on the first fields.
    """
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


def iso_time(value: pendulum.DateTime | None) -> str | None:
    """A lease time as lease errors and ``getfattr`` show it (ISO 8601 UTC); ``None`` stays ``None``."""
    return value.in_timezone("UTC").to_iso8601_string() if value is not None else None


def iso_time_ns(ns: int) -> str:
    """A file time in nanoseconds since the epoch as ISO 8601 UTC to the second."""
    moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def lease_json(lease: Lease) -> dict[str, Any]:
    """A lease as ``--json`` shows it."""
    return {
        "id": lease.result_id,
        "holder": lease.holder,
        "acquired": iso_time(lease.acquired),
        "expires": iso_time(lease.expires),
        "process": lease.process,
    }
