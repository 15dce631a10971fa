"""``/.schemas``: the JSON Schema of every registered model, readable by any program.

``/.schemas/NAMESPACE/Model.json`` is the schema of the model's data (what a bound directory
takes as bare data), ``/.schemas/NAMESPACE/Model.envelope.json`` the schema of a full
envelope. The tree is generated from the daemon's registry (fixed for the life of the mount)
and read-only. The root's listing does not show it, so ``find``, ``grep -r``, ``tar`` and
``du`` over a mount see results only; it is there for whoever names it (``ls MNT/.schemas``).
"""

from __future__ import annotations

import functools
import os
import stat
import time

from resultsfs import registry, schemas
from resultsfs.backends.base import Meta


class SchemasTree:
    """The generated files, by their path below ``/.schemas`` (``""`` is ``/.schemas`` itself)."""

    def __init__(self) -> None:
        self._made_ns = time.time_ns()

    @functools.cached_property
    def _files(self) -> dict[str, bytes]:
        files = {}
        for namespace, name, cls in registry.all_models():
            folder = schemas.namespace_dir(namespace)
            files[f"{folder}/{name}.json"] = schemas.to_bytes(schemas.data_schema(namespace, name, cls))
            files[f"{folder}/{name}.envelope.json"] = schemas.to_bytes(
                schemas.envelope_schema(namespace, name, cls)
            )
        return files

    @staticmethod
    def _rel(path: str) -> str:
        return path.strip("/").partition("/")[2]

    def file(self, path: str) -> bytes | None:
        """The bytes of the schema file at mount path ``path``, or ``None``."""
        return self._files.get(self._rel(path))

    def listing(self, path: str) -> list[str] | None:
        """The names in directory ``path`` of the tree, or ``None`` if it is not one."""
        rel = self._rel(path)
        if rel == "":
            return sorted({name.partition("/")[0] for name in self._files})
        names = [name.partition("/")[2] for name in self._files if name.partition("/")[0] == rel]
        return sorted(names) if names else None

    def attrs(self, path: str) -> dict[str, int] | None:
        """``stat`` of ``path`` (read-only files and directories), or ``None`` if there is none."""
        raw = self.file(path)
        if raw is not None:
            return self._attrs(stat.S_IFREG | 0o444, len(raw))
        if self.listing(path) is not None:
            return self._attrs(stat.S_IFDIR | 0o555, 0, nlink=2)
        return None

    def meta(self, raw: bytes) -> Meta:
        """Metadata of a schema file's bytes, for a read handle."""
        return Meta(
            size=len(raw),
            mode=0o444,
            uid=os.geteuid(),
            gid=os.getegid(),
            mtime_ns=self._made_ns,
            atime_ns=self._made_ns,
            ctime_ns=self._made_ns,
            ino=0,
            version=("schema", len(raw)),
        )

    def _attrs(self, mode: int, size: int, nlink: int = 1) -> dict[str, int]:
        return {
            "st_mode": mode,
            "st_nlink": nlink,
            "st_size": size,
            "st_uid": os.geteuid(),
            "st_gid": os.getegid(),
            "st_atime": self._made_ns,
            "st_mtime": self._made_ns,
            "st_ctime": self._made_ns,
        }
