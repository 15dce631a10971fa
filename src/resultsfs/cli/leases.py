"""The lease commands: ``lock`` (also around a command, as ``flock(1)`` does), ``unlock`` and ``locks``.

``resultsfs lock ID -- COMMAND`` holds the lease while COMMAND runs
(:func:`resultsfs.holding.run_holding`: a heartbeat renews it, and a mount lets COMMAND's
process tree write as the holder) and exits with COMMAND's status. A lease that cannot be
had in time is exit status :data:`~resultsfs.holding.CONFLICT_EXIT` (75, "try again") in
both forms. Breaking another holder's lease (``unlock --force``) is said on standard error
and sent to syslog, so that the system journal keeps who broke what.
"""

from __future__ import annotations

import getpass
import os
import socket
import syslog
from collections.abc import Sequence

import click

from resultsfs.cli import completion, hints, output
from resultsfs.cli.options import Command, json_option, open_store, store_option
from resultsfs.errors import LockNotHeldError
from resultsfs.holding import DEFAULT_TTL, run_holding

_TIMEOUT = click.FloatRange(min=0, max=1e9)


@click.command(cls=Command)
@store_option
@click.option("--holder", metavar="TEXT", help="Who holds the lease (required without COMMAND).")
@click.option(
    "--ttl",
    type=click.FloatRange(min=0, min_open=True, max=1e9),
    metavar="SECONDS",
    help=f"Seconds until it expires (default: never; with COMMAND {DEFAULT_TTL:g}, renewed every third).",
)
@click.option(
    "--wait", type=_TIMEOUT, default=0.0, show_default=True, metavar="SECONDS", help="Seconds to wait for it."
)
@json_option
@click.argument("result_id", metavar="ID", shell_complete=completion.ids())
@click.argument("command", metavar="[-- COMMAND [ARG]...]", nargs=-1, type=click.UNPROCESSED)
def lock(
    store: str | None,
    holder: str | None,
    ttl: float | None,
    wait: float,
    as_json: bool,
    result_id: str,
    command: Sequence[str],
) -> None:
    """Take a lease on ID and print it; or hold it while COMMAND runs, and exit with its status.

    With COMMAND, the lease is renewed while COMMAND runs and released when it ends, however it
    ends; a mount lets COMMAND and its children write as the holder. Exit status 75 if the
    lease is held by another holder after --wait seconds (COMMAND is then not run).
    """
    if command:
        if as_json:
            raise click.UsageError("--json prints the lease taken without COMMAND; it cannot go with COMMAND")
        with open_store(store) as opened:
            status = run_holding(
                opened,
                result_id,
                command,
                holder=holder,
                ttl=ttl if ttl is not None else DEFAULT_TTL,
                wait=wait,
                say=lambda message: click.echo(f"resultsfs: {message}", err=True),
            )
        click.get_current_context().exit(status)
    if not holder:
        raise click.UsageError("--holder is required without COMMAND (resultsfs unlock needs it)")
    with open_store(store) as opened:
        taken = opened.acquire_lock(result_id, holder, acquire_timeout=wait, hold_timeout=ttl)
        lease = opened.lease(result_id)
    if taken and lease is None:
        raise hints.CommandError(
            f"the lease on {result_id!r} expired before it could be shown (--ttl {ttl:g})"
        )
    if not taken or lease is None:
        by = lease.describe() if lease is not None else "another holder"
        raise hints.LeaseConflictError(
            f"cannot lock {result_id!r}: leased by {by} (still after --wait {wait:g}s)",
        )
    if as_json:
        output.emit_json(output.lease_json(lease))
    else:
        click.echo(f"{lease.result_id}: leased by {lease.describe()}")


@click.command(cls=Command)
@store_option
@click.option("--holder", metavar="TEXT", help="The holder whose lease is released.")
@click.option(
    "--force", is_flag=True, help="Break the lease whoever holds it (said on stderr and in syslog)."
)
@click.argument("result_id", metavar="ID", shell_complete=completion.ids())
def unlock(store: str | None, holder: str | None, force: bool, result_id: str) -> None:
    """Release HOLDER's lease on ID; or, with --force, break whatever lease is on it."""
    if force == bool(holder):
        raise click.UsageError("give --holder TEXT to release your lease, or --force to break anyone's")
    with open_store(store) as opened:
        if not force:
            assert holder is not None
            try:
                opened.release_lock(result_id, holder)
            except LockNotHeldError as exc:
                live = opened.lease(result_id) is not None
                raise hints.CommandError(f"{exc}{' (--force breaks it)' if live else ''}") from exc
            return
        broken = opened.break_lease(result_id)
        url = opened.backend.url
    if broken is None:
        output.note(f"{result_id!r} had no live lease; nothing was broken")
        return
    line = (
        f"broke the lease on {broken.result_id!r} held by {broken.describe()} "
        f"(resultsfs unlock --force by {_user()}@{socket.gethostname()}, store {url})"
    )
    output.warn(line)
    syslog.openlog("resultsfs", syslog.LOG_PID, syslog.LOG_USER)
    syslog.syslog(syslog.LOG_WARNING, line)
    syslog.closelog()


@click.command(cls=Command)
@store_option
@json_option
@click.argument("prefix", required=False, shell_complete=completion.ids())
def locks(store: str | None, as_json: bool, prefix: str | None) -> None:
    """List the live leases (on PREFIX and below): ID, holder, and when each expires."""
    with open_store(store, read_only=True) as opened:
        found = opened.leases(prefix.rstrip("/") or None if prefix else None)
    if as_json:
        output.emit_json([output.lease_json(lease) for lease in found])
        return
    output.emit_columns(
        [[lease.result_id, lease.holder, output.iso_time(lease.expires) or "never"] for lease in found]
    )


def _user() -> str:
    """Who runs this command, for the record of a broken lease (the uid if it has no name)."""
    try:
        return getpass.getuser()
    except Exception:
        return f"uid {os.getuid()}"
