"""The ``resultsfs`` command: a click group whose subcommands each parse, call the library once, and print.

One module per group of commands (:mod:`.results`, :mod:`.models`, :mod:`.leases`,
:mod:`.mounts`); what they share is in :mod:`.options` (the command class, ``--store``,
``--models``, ``--json``, ``-v``/``-q``), :mod:`.output` (printing) and :mod:`.hints` (errors
as one line with a hint). Errors a user can cause exit 1, usage errors 2, a lease that cannot
be had 75. Shell completion completes result IDs (:mod:`.completion`).
"""

from __future__ import annotations

import click

from resultsfs import __version__
from resultsfs.cli import leases, models, mounts, results
from resultsfs.cli.options import group_store_param, verbosity_params


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    params=[group_store_param(), *verbosity_params()],
)
@click.version_option(__version__, prog_name="resultsfs")
def main() -> None:
    """A typed, validated results store for pydantic models, mountable as a filesystem.

    Most commands need a store: --store/-s PATH_OR_URL, or the environment variable
    RESULTSFS_STORE. Models are loaded with --models SPEC or RESULTSFS_MODELS.
    """


for command in (
    results.init,
    results.list_command,
    results.get,
    results.put,
    results.rm,
    results.copy,
    results.check,
    models.models,
    models.schema,
    models.bind,
    models.unbind,
    leases.lock,
    leases.unlock,
    leases.locks,
    mounts.mount,
    mounts.umount,
):
    main.add_command(command)

__all__ = ["main"]
