"""Whether the daemon may run a ``--models`` file: models are code, and the daemon is often root.

A models file is imported by the daemon, and its validators run on every read and write,
with the daemon's privileges. Like sshd's ``StrictModes`` and sudo's checks on its
configuration, the mount refuses a file that anyone but root and the mounting user could
have written: the file, and every directory on its path, must be owned by one of them and
not be writable by group or others (a directory with the sticky bit, such as ``/tmp``, may
be writable by others: they cannot replace what they do not own there). For a dotted module,
the files Python would run for it (each package's ``__init__.py`` and the module) are
checked the same way, found without importing anything. ``--trust-models`` skips the check.

What those files import in turn (installed packages) is not checked: it is the Python
environment's own business.
"""

from __future__ import annotations

import importlib.machinery
import os
import stat
import sys
from pathlib import Path

from resultsfs.errors import ModelLoadError


def check_models_trusted(spec: str, owners: frozenset[int]) -> None:
    """Raise :class:`ModelLoadError` unless every file ``spec`` runs is safe from other users.

    ``owners`` are the users who may own them (root and the mounting user).
    """
    for path in _files_of(spec):
        problem = _untrusted(path, owners)
        if problem is not None:
            raise ModelLoadError(
                f"refusing to load models from {spec!r}: {problem}. Models are code the mount daemon "
                "runs with its own privileges; make the file and its directories writable only by "
                "root or you (chmod go-w, chown), or pass --trust-models if you trust every user who can"
            )


def _files_of(spec: str) -> list[Path]:
    """The files importing ``spec`` would run (nothing is imported to find them)."""
    if spec.endswith(".py") or "/" in spec:
        return [Path(spec).expanduser().resolve()]
    found: list[Path] = []
    search: list[str] | None = None
    for part in spec.split("."):
        module_spec = importlib.machinery.PathFinder.find_spec(part, search or sys.path)
        if module_spec is None:
            return found  # load_models will report the missing module
        if module_spec.origin and module_spec.origin not in ("built-in", "frozen"):
            found.append(Path(module_spec.origin).resolve())
        search = list(module_spec.submodule_search_locations or [])
    return found


def _untrusted(path: Path, owners: frozenset[int]) -> str | None:
    """Why ``path`` (or a directory above it) could be written by someone else, or ``None``."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # a missing file is load_models' to report
    if st.st_uid not in owners:
        return f"{path} is owned by uid {st.st_uid}"
    if st.st_mode & 0o022:
        who = "group and others" if st.st_mode & 0o002 else "its group"
        return f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})"
    for directory in path.parents:
        dst = os.stat(directory)
        if dst.st_uid not in owners:
            return f"directory {directory} is owned by uid {dst.st_uid}"
        sticky = bool(dst.st_mode & stat.S_ISVTX)
        if dst.st_mode & 0o022 and not sticky:
            return f"directory {directory} is writable by others (mode {stat.S_IMODE(dst.st_mode):o})"
    return None
