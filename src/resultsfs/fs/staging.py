"""The staging area: where scratch files of the mount live.

Programs write through temp files: ``jq ... > tmp && mv tmp x.json``, ``sed -i`` (``sedXXXXXX``),
``rsync`` (``.x.json.AbC123``), ``vim`` (``4913``, ``x.json~``). Such names are not results, so
they are never stored in the backing tree; they live here, in
``<store>/.resultsfs/staging/<mount>/`` (on the store's filesystem, so large ones cost no
memory), mirroring the directory they were created in, for the life of the mount. Renaming
one onto a result name commits it. A mount removes its staging directory when it ends, and
the directories of mounts whose daemon died are removed by the next mount.
"""

from __future__ import annotations

import os
import shutil
import socket
from contextlib import suppress
from pathlib import Path

from resultsfs.atomic import process_is_running

_HOST = socket.gethostname().replace("/", "_")


class Staging:
    """Scratch files of one mount, addressed by their path in the mount (``/a/b/name``)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        remove_dead_staging(root)
        self.root = root / f"{_HOST}.{os.getpid()}"
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(mode=0o755)

    def path(self, mount_path: str) -> Path:
        """The staging file for a path in the mount (its parents are not created)."""
        return self.root / mount_path.lstrip("/")

    def prepare(self, mount_path: str) -> Path:
        """The staging file for a path, with its parent directories created."""
        target = self.path(mount_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def lstat(self, mount_path: str) -> os.stat_result | None:
        try:
            return os.lstat(self.path(mount_path))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def names(self, mount_dir: str) -> list[str]:
        """Scratch files directly in a directory of the mount."""
        try:
            with os.scandir(self.path(mount_dir)) as entries:
                return [e.name for e in entries if e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def is_empty_dir(self, mount_dir: str) -> bool:
        """True if no scratch file lives in (or below) a directory of the mount."""
        target = self.path(mount_dir)
        if not target.is_dir():
            return True
        return not any(p.is_file() for p in target.rglob("*"))

    def remove_dir(self, mount_dir: str) -> None:
        """Forget a directory of the mount (after it was removed)."""
        shutil.rmtree(self.path(mount_dir), ignore_errors=True)

    def move_dir(self, old: str, new: str) -> None:
        """Follow a directory rename in the mount."""
        source = self.path(old)
        if source.is_dir():
            target = self.prepare(new)
            shutil.rmtree(target, ignore_errors=True)
            os.rename(source, target)

    def close(self) -> None:
        """Remove this mount's scratch files."""
        shutil.rmtree(self.root, ignore_errors=True)


def remove_dead_staging(root: Path) -> None:
    """Remove the staging directories of mounts on this host whose daemon is gone."""
    with suppress(FileNotFoundError), os.scandir(root) as entries:
        for entry in entries:
            host, _, pid = entry.name.rpartition(".")
            if host != _HOST or not pid.isdigit() or int(pid) == os.getpid():
                continue
            if not process_is_running(int(pid)):
                shutil.rmtree(entry.path, ignore_errors=True)
