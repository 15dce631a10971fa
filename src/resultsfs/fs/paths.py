"""What a path in the mount names: the root, a result, a directory (an ID prefix) or a scratch file.

* ``/a/b/seed7.json`` names result ``a/b/seed7`` when ``seed7`` is a valid ID part;
* any other name that is a valid directory part (``lr0.1``, ``sedAbC123``, ``x.json.tmp``)
  is a directory if the backing tree has one, otherwise a scratch file;
* every other name (``.x.json.AbC123``, ``.swp`` files) is a scratch file;
* names that are not UTF-8 or hold control characters (a newline), and paths nested deeper
  than an ID may be, are invalid: nothing can be created under them;
* ``/.schemas`` and everything below it is the read-only directory of JSON Schemas
  (:mod:`.schemas_dir`); no ID can start with ``.``, so it never hides a result.

Directories above the last component must be valid directory parts; a path through anything
else cannot exist. Classification is pure string work, cached, because every FUSE call
starts with it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

from resultsfs import ids


class Kind(enum.Enum):
    ROOT = "root"
    RESULT = "result"
    #: A valid directory name: a backing directory if one exists, else a scratch file.
    DIR_OR_SCRATCH = "dir-or-scratch"
    SCRATCH = "scratch"
    #: A name nothing may be created under (not UTF-8, control characters, too deep).
    INVALID = "invalid"
    #: ``/.schemas`` or a path below it: generated, read-only.
    SCHEMAS = "schemas"


@dataclass(frozen=True, slots=True)
class Node:
    """A classified mount path."""

    kind: Kind
    path: str
    #: Backing directory holding the entry (parts below the store).
    parent: tuple[str, ...]
    #: Last component as it appears in the mount (``""`` for the root).
    name: str
    #: For results: the normalised result ID.
    result_id: str = ""
    #: For invalid names: why.
    reason: str = ""

    @property
    def parts(self) -> tuple[str, ...]:
        """Backing path parts of the entry itself (for a result: its ``.json`` file)."""
        return (*self.parent, self.name) if self.name else ()


ROOT = Node(Kind.ROOT, "/", (), "")

#: The name, at the root of the mount, of the directory of JSON Schemas.
SCHEMAS_DIR = ".schemas"


@lru_cache(maxsize=8192)
def classify(path: str) -> Node | None:
    """The node a mount path names, or ``None`` if no such path can exist."""
    if path in ("/", ""):
        return ROOT
    components = path.strip("/").split("/")
    parent = tuple(components[:-1])
    if components[0] == SCHEMAS_DIR:
        return Node(Kind.SCHEMAS, path, parent, components[-1])
    for part in parent:
        if not ids.is_valid_part(part, is_last=False):
            return None
    name = components[-1]
    if name in (".", ".."):
        return None
    stem = ids.result_name_to_part(name)
    reason = _unusable(name)
    # A result may be MAX_DEPTH parts deep; a directory one less, so that it can hold results.
    if reason is None and len(parent) >= ids.MAX_DEPTH - (stem is None):
        reason = f"an ID may have at most {ids.MAX_DEPTH} parts"
    if reason is not None:
        return Node(Kind.INVALID, path, parent, name, reason=reason)
    if stem is not None:
        return Node(Kind.RESULT, path, parent, name, "/".join((*parent, stem)))
    if ids.is_valid_part(name, is_last=False):
        return Node(Kind.DIR_OR_SCRATCH, path, parent, name)
    return Node(Kind.SCRATCH, path, parent, name)


def _unusable(name: str) -> str | None:
    """Why no file, not even a scratch file, may have this name (None if it may).

    The same characters as in IDs (:func:`resultsfs.ids.unusable_character`): a scratch file
    may become a result by a rename, and a name that cannot be one should fail at once.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    reason = ids.unusable_character(name)
    return f"the name cannot be used: {reason}" if reason is not None else None


def join(directory: str, name: str) -> str:
    """The mount path of ``name`` in ``directory``."""
    return "/" + name if directory in ("/", "") else f"{directory.rstrip('/')}/{name}"
