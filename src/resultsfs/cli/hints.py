"""Library errors as the one line the ``resultsfs`` command prints, with the hint a shell user needs.

The library's messages name the ID or path and the reason. What only makes sense on the
command line is added here: which option fixes the problem (``--models``, ``--on-exists
overwrite``, ``--model``, ``resultsfs init``), and "did you mean" for an ID typed as a file
name (``eval/z.json`` for ``eval/z``).
"""

from __future__ import annotations

import click

from resultsfs.errors import (
    ModelNotRegisteredError,
    ResultExistsError,
    ResultNotFoundError,
    ResultsError,
    ResultValidationError,
    StoreNotFoundError,
)
from resultsfs.holding import CONFLICT_EXIT
from resultsfs.ids import suffix_hint


class CommandError(click.ClickException):
    """An error a user can cause: ``Error: MESSAGE`` on one line, exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class MissingStoreError(CommandError):
    """No store to work on: a usage error (exit status 2), on one line all the same."""

    exit_code = 2


class NoStoreError(MissingStoreError):
    """No ``--store`` and no ``RESULTSFS_STORE``."""

    def __init__(self, command: str) -> None:
        super().__init__(
            f"no store given: name one with --store PATH_OR_URL (-s), or set RESULTSFS_STORE "
            f"(resultsfs {command} -h for help)"
        )


class LeaseConflictError(CommandError):
    """Another holder has the lease: exit status 75 (sysexits' EX_TEMPFAIL, "try again")."""

    exit_code = CONFLICT_EXIT


def one_line(message: str) -> str:
    """A message on one line: a driver's multi-line text (libpq's, say) joined with ``; ``."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(lines) if lines else message


#: ``; did you mean 'eval/z'?`` for ``eval/z.json``: IDs never end in the file suffix.
did_you_mean = suffix_hint


def explain(exc: BaseException) -> str:
    """The message of a library or system error, with the hint for a shell user."""
    if not isinstance(exc, ResultsError) and isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ModelNotRegisteredError) and "--models" not in message:
        message += "; is --models (or RESULTSFS_MODELS) missing the module that registers it?"
    elif isinstance(exc, ResultExistsError):
        message += "; pass --on-exists overwrite to replace it (or --merge to change some of its fields)"
    elif isinstance(exc, ResultNotFoundError) and exc.result_id is not None and "did you mean" not in message:
        message += did_you_mean(exc.result_id)
    elif isinstance(exc, StoreNotFoundError) and "does not exist" in message:
        message += "; resultsfs init --store STORE creates a store"
    elif isinstance(exc, ResultValidationError) and "names no model" in message and "--model " not in message:
        message += "; or name the model: resultsfs put --model NAMESPACE:Model"
    return message
