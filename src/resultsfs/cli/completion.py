"""Shell completion of result IDs, from the store ``--store`` or ``RESULTSFS_STORE`` names.

Completion runs each time the user presses Tab, so it must be quick and silent: it lists one
directory of the ID tree (descending while exactly one directory matches, so that Tab keeps
going), gives up after :data:`TIME_LIMIT` seconds (a PostgreSQL server that does not answer,
a hung mount), and on any error completes nothing rather than print a traceback into the
user's command line.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

import click
from click.shell_completion import CompletionItem

from resultsfs.backends import open_backend
from resultsfs.cli.options import STORE_ENV, STORE_META
from resultsfs.store import ResultStore

#: Seconds a completion may take before it completes nothing.
TIME_LIMIT = 2.0
#: At most this many candidates (a directory of a million results is not worth listing).
MAX_ITEMS = 1000

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def ids(*, results: bool = True) -> Completer:
    """A ``shell_complete`` callback for an ID (or, with ``results=False``, a directory) argument.

    Without a store, a directory argument completes paths of the filesystem (``bind`` on a
    mount); an ID argument completes nothing.
    """

    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            store = ctx.params.get("store") or ctx.meta.get(STORE_META) or os.environ.get(STORE_ENV)
            if not store:
                return [] if results else [CompletionItem(incomplete, type="dir")]
            return _bounded(lambda: _candidates(str(store), incomplete, results))
        except Exception:
            return []

    return complete


def _bounded(find: Callable[[], list[str]]) -> list[CompletionItem]:
    """``find()`` run in a daemon thread for at most :data:`TIME_LIMIT` seconds; ``[]`` if it fails."""
    found: list[str] = []

    def run() -> None:
        with contextlib.suppress(BaseException):  # completion must never print a traceback
            found.extend(find())

    worker = threading.Thread(target=run, name="resultsfs-complete", daemon=True)
    worker.start()
    worker.join(TIME_LIMIT)
    if worker.is_alive():
        return []
    return [CompletionItem(value) for value in found]


def _candidates(store_name: str, incomplete: str, results: bool) -> list[str]:
    """IDs and directories (``dir/``) that start with ``incomplete``, one level of the tree at a time."""
    with ResultStore(open_backend(store_name, create_if_missing=False, read_only=True)) as store:
        parent, _, start = incomplete.rpartition("/")
        parts = tuple(parent.split("/")) if parent else ()
        found = _entries(store, parts, start, results)
        if len(found) == 1 and found[0].endswith("/"):
            # One directory matches: offer what is in it too, so that the shell completes to
            # "dir/" and stops there, instead of ending the word with a space.
            found += _entries(store, tuple(found[0].rstrip("/").split("/")), "", results)
        return found[:MAX_ITEMS]


def _entries(store: ResultStore, parts: tuple[str, ...], start: str, results: bool) -> list[str]:
    """The results (if ``results``) and subdirectories of ``parts`` whose names start with ``start``."""
    listing = store.listdir(parts)
    if listing is None:
        return []
    prefix = "".join(part + "/" for part in parts)
    names = sorted(name for name in listing.results if name.startswith(start)) if results else []
    dirs = sorted(name for name in listing.dirs if name.startswith(start))
    return [prefix + name for name in names] + [prefix + name + "/" for name in dirs]
