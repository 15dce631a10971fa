"""What every ``resultsfs`` command shares: its class, ``--store``, ``--models``, ``--json``, ``-v``/``-q``.

Each subcommand is a :class:`Command`, which adds ``-v``/``-q`` and turns the errors a user
can cause (the library's, and the system's) into one ``Error: ...`` line with a hint and exit
status 1. A traceback is shown only with ``-vv``, for a bug report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from resultsfs import registry
from resultsfs.backends import open_backend
from resultsfs.cli import hints, output
from resultsfs.errors import ResultsError
from resultsfs.holding import HOLDER_ENV
from resultsfs.store import ResultStore, SetBehavior

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

#: The environment variable that names the store when ``--store`` is not given.
STORE_ENV = "RESULTSFS_STORE"
#: Model specs loaded after the ``--models`` ones, separated by ``:``.
MODELS_ENV = "RESULTSFS_MODELS"
#: Where the group's ``-s`` is kept for the command (``click.Context.meta`` is shared with it).
STORE_META = "resultsfs.store"

ON_EXISTS = {
    "overwrite": SetBehavior.OVERWRITE,
    "raise": SetBehavior.RAISE_IF_EXISTS,
    "skip": SetBehavior.SKIP_IF_EXISTS,
    "raise-if-different": SetBehavior.RAISE_IF_DIFFERENT,
}


def _verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    output.set_verbosity(ctx, verbose=value)


def _quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    output.set_verbosity(ctx, quiet=value)


def verbosity_params() -> list[click.Parameter]:
    """``-v``/``--verbose`` and ``-q``/``--quiet``, accepted before and after the command name."""
    return [
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_verbose,
            help="Show the library's log on stderr (-vv: debug, and a traceback with an error).",
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_quiet,
            help="No notes and no progress bars on stderr (errors and warnings still show).",
        ),
    ]


class Command(click.Command):
    """A subcommand: ``-v``/``-q`` added, and library errors reported as one line with a hint."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(verbosity_params())

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ResultsError, OSError, ValueError) as exc:
            if output.verbosity() >= 2:
                log.debug("%s failed", ctx.command_path, exc_info=True)
            raise hints.CommandError(hints.explain(exc)) from exc


def _remember_store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[STORE_META] = value


def group_store_param() -> click.Option:
    """``resultsfs -s STORE COMMAND ...``: the store for the command, unless it names its own."""
    return click.Option(
        ["-s", "--store"],
        metavar="PATH_OR_URL",
        expose_value=False,
        callback=_remember_store,
        help=f"The store of the command that follows (also --store after the command, or {STORE_ENV}).",
    )


def store_option(command: F) -> F:
    """``--store``/``-s PATH_OR_URL``; else the group's ``-s``; else ``$RESULTSFS_STORE``."""
    return click.option(
        "-s",
        "--store",
        metavar="PATH_OR_URL",
        help="The store: a directory, sqlite:///FILE, sqlite:FILE or postgresql://... "
        f"[env var: {STORE_ENV}]",
    )(command)


def models_option(command: F) -> F:
    """``--models SPEC`` (repeatable), the modules or files whose import registers the models."""
    return click.option(
        "--models",
        "models",
        multiple=True,
        metavar="SPEC",
        help=f"Dotted module or .py file whose import registers the models (repeatable; "
        f"also {MODELS_ENV}, colon-separated).",
    )(command)


def json_option(command: F) -> F:
    """``--json``: print one JSON document instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for jq and scripts).")(command)


def holder_option(what: str) -> Callable[[F], F]:
    """``--holder TEXT``: the lease holder a change is made as."""

    def decorate(command: F) -> F:
        return click.option(
            "--holder",
            metavar="TEXT",
            envvar=HOLDER_ENV,
            help=f"Lease holder to {what} as (default: ${HOLDER_ENV}, which `resultsfs lock ID -- "
            "COMMAND` sets for COMMAND; else HOST:PID:THREAD of this command).",
        )(command)

    return decorate


def lock_wait_option(command: F) -> F:
    """``--lock-wait SECONDS``: how long a change waits for another holder's lease."""
    return click.option(
        "--lock-wait",
        type=click.FloatRange(min=0, max=1e9),
        default=0.0,
        show_default=True,
        metavar="SECONDS",
        help="How long to wait for another holder's lease to end before failing.",
    )(command)


def model_specs(models: Sequence[str]) -> list[str]:
    """``--models`` values, then the colon-separated ``RESULTSFS_MODELS``."""
    return [*models, *(spec for spec in os.environ.get(MODELS_ENV, "").split(":") if spec)]


def load_models(models: Sequence[str]) -> None:
    """Import every model spec (``--models``, then ``RESULTSFS_MODELS``) so the models register."""
    for spec in model_specs(models):
        registry.load_models(spec)


def given_store(store: str | None) -> str | None:
    """The store the user named: ``--store`` after the command, before it, or ``RESULTSFS_STORE``."""
    if store:
        return store
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(STORE_META):
        return str(ctx.meta[STORE_META])
    return os.environ.get(STORE_ENV) or None


def named_store(store: str | None) -> str:
    """The store the user named; :class:`NoStoreError` (exit status 2) if none."""
    found = given_store(store)
    if not found:
        ctx = click.get_current_context(silent=True)
        raise hints.NoStoreError(ctx.info_name if ctx is not None and ctx.info_name else "COMMAND")
    return found


def open_store(store: str | None, *, read_only: bool = False) -> ResultStore:
    """The existing store ``--store`` names (never created: ``resultsfs init`` does that)."""
    return ResultStore(open_backend(named_store(store), create_if_missing=False, read_only=read_only))
