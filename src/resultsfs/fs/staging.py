"""The staging area: a mount's scratch files, in a private directory reached only by descriptors.

Programs write through temp files: ``jq ... > tmp && mv tmp x.json``, ``sed -i``
(``sedXXXXXX``), ``rsync`` (``.x.json.AbC123``), ``vim`` (``4913``, ``x.json~``). Such names are
not results, so they are never stored; they live here for the life of the mount, mirroring
the directory of the mount they were created in. Renaming one onto a result name commits it.
Write buffers that grow large spill here too (unnamed files that vanish when closed).

The area is a directory this daemon creates with a fresh random name and mode 0700, under
``<store>/.resultsfs/staging/`` for a directory store (the store's filesystem, so large
scratch files cost no memory) or under the state directory (:func:`state_dir`) otherwise, and
verifies: a directory owned by the daemon's user that nobody else may enter. Every access goes
through its descriptor, one component at a time, never following a link, so a user who can
write the store's root cannot redirect the daemon (which usually runs as root) with a planted
symlink, and no other user can read a scratch file through the backing store.

Nothing a program wrote is dropped without a trace: a scratch file still there when the mount
ends (or its daemon dies) is kept, with the area, in ``lost+found/`` beside ``staging/``, and
each one is logged with its name and size; the next mount and ``resultsfs check`` report them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path

from resultsfs.atomic import process_is_running
from resultsfs.backends.base import OMIT, MetaChange
from resultsfs.errors import UnsafePathError
from resultsfs.tree import BackingTree, remove_tree

log = logging.getLogger(__name__)

_HOST = socket.gethostname().replace("/", "_")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: ``<host>.<pid>.<8 hex digits>``; the random part is required, or a host name with dots and a
#: random part of digits only (``vm.4176.54964024``) would read as host ``vm.4176``.
_AREA_NAME = re.compile(r"^(?P<host>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}$")
#: Where kept scratch files go: beside ``staging/``.
LOST_FOUND = "lost+found"


def _parts(mount_path: str) -> tuple[str, ...]:
    stripped = mount_path.strip("/")
    return tuple(stripped.split("/")) if stripped else ()


def state_dir() -> Path:
    """Where a mount of a store that is not a directory keeps its staging area and lost+found.

    ``$RESULTSFS_STATE_DIR`` if set; ``/var/lib/resultsfs`` for root; otherwise
    ``$XDG_STATE_HOME/resultsfs`` (``~/.local/state/resultsfs``). A durable place, not the
    system temp directory: what is kept there must survive a reboot.
    """
    chosen = os.environ.get("RESULTSFS_STATE_DIR")
    if chosen:
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/lib/resultsfs")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "resultsfs"


def scratch_location(
    scratch_dir: tuple[str, tuple[str, ...]] | None, store_url: str
) -> tuple[str, tuple[str, ...]]:
    """The anchor and the parts below it of a store's ``staging/`` directory.

    ``scratch_dir`` is what the backend offers (:meth:`ResultsBackend.scratch_dir`); without
    one, a directory of the state directory named after the store is used (its ``store``
    file says which store, for a human reading it).
    """
    if scratch_dir is not None:
        return scratch_dir
    home = store_home(store_url)
    return str(home.parent.parent), ("stores", home.name, "staging")


def store_home(store_url: str) -> Path:
    """This host's directory for a store, in the state directory (made if missing).

    ``STATE/stores/<16 hex digits of the URL's SHA-256>``; its ``store`` file names the store,
    for a human reading it.
    """
    key = hashlib.sha256(store_url.encode()).hexdigest()[:16]
    home = state_dir() / "stores" / key
    home.mkdir(parents=True, mode=0o700, exist_ok=True)
    label = home / "store"
    if not label.exists():
        label.write_text(store_url + "\n")
    return home


def kept_files(anchor: str, staging_parts: Sequence[str]) -> list[tuple[str, int]]:
    """``(path, size)`` of every file in the ``lost+found`` beside a ``staging`` directory."""
    where = Path(anchor).joinpath(*staging_parts[:-1], LOST_FOUND)
    try:
        tree = BackingTree(where, fd=os.open(where, _DIR_FLAGS))
    except OSError:
        return []
    try:
        return [(str(where.joinpath(*parts)), size) for parts, size in scratch_files(tree, ())]
    finally:
        tree.close()


class Staging:
    """Scratch files of one mount, addressed by their path in the mount (``/a/b/name``).

    ``anchor`` is a trusted directory (the store, or the system temp directory); the area is
    made below it in ``inside`` (created as needed, never followed if a link).
    """

    def __init__(self, anchor: str, inside: Sequence[str]) -> None:
        if not inside:
            raise ValueError("the staging area needs a directory of its own below the anchor")
        anchor_fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        parent_tree = BackingTree(Path(anchor), fd=anchor_fd, dir_mode=0o755)
        try:
            self._parent_fd = parent_tree.open_dir(tuple(inside), create=True)
            #: ``lost+found`` beside ``staging``: made private when first needed.
            self._lost_parent_fd = parent_tree.open_dir(tuple(inside[:-1]), create=True)
        finally:
            parent_tree.close()
        self._lost_shown = Path(anchor).joinpath(*inside[:-1], LOST_FOUND)
        remove_dead_areas(self._parent_fd, Path(anchor).joinpath(*inside), self._keep)
        self.name = f"{_HOST}.{os.getpid()}.{secrets.token_hex(4)}"
        os.mkdir(self.name, 0o700, dir_fd=self._parent_fd)
        fd = os.open(self.name, _DIR_FLAGS, dir_fd=self._parent_fd)
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            os.close(fd)
            raise UnsafePathError(
                f"{Path(anchor).joinpath(*inside, self.name)}: the staging directory just made is not a "
                "private "
                "directory of this user (replaced meanwhile?); refusing to use it"
            )
        self.root = Path(anchor).joinpath(*inside, self.name)
        self.tree = BackingTree(self.root, fd=fd, dir_mode=0o700)

    # ------------------------------------------------------------ queries

    def lstat(self, mount_path: str) -> os.stat_result | None:
        """The stat of a scratch entry (never following a link), or ``None``."""
        try:
            return self.tree.lstat(_parts(mount_path))
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            return None

    def is_file(self, mount_path: str) -> bool:
        """True if a scratch file (a regular file) has this path."""
        st = self.lstat(mount_path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def names(self, mount_dir: str) -> list[str]:
        """Scratch files directly in a directory of the mount."""
        try:
            with self.tree.directory(_parts(mount_dir)) as dir_fd, os.scandir(dir_fd) as entries:
                return [e.name for e in entries if e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            return []

    def has_files(self, mount_dir: str) -> bool:
        """True if a scratch file lives in (or below) a directory of the mount."""
        return any(True for _ in scratch_files(self.tree, _parts(mount_dir)))

    # ------------------------------------------------------------ files

    def open(self, mount_path: str, flags: int, mode: int = 0o600) -> int:
        """A descriptor of a scratch file; with ``O_CREAT`` its directories are made first.

        A new file gets exactly ``mode`` (the caller's umask is already in it; the daemon's
        own umask is not applied).
        """
        parts = _parts(mount_path)
        if not flags & os.O_CREAT:
            return self.tree.open_file(parts, flags)
        with self.tree.directory(parts[:-1], create=True) as dir_fd:
            try:
                fd = os.open(parts[-1], flags | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
            except FileExistsError:
                if flags & os.O_EXCL:
                    raise
                return os.open(parts[-1], (flags & ~os.O_CREAT) | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        os.fchmod(fd, mode)  # os.open applied the daemon's umask on top of the caller's
        return fd

    def _path_fd(self, mount_path: str) -> int:
        """An ``O_PATH`` descriptor of a scratch entry (metadata and xattrs go through it)."""
        return self.tree.open_file(_parts(mount_path), os.O_PATH)

    def unlink(self, mount_path: str) -> None:
        parts = _parts(mount_path)
        with self.tree.directory(parts[:-1]) as dir_fd:
            os.unlink(parts[-1], dir_fd=dir_fd)

    def rename(self, old: str, new: str) -> None:
        """Rename a scratch file (replacing a scratch file ``new``), making ``new``'s directories."""
        old_parts, new_parts = _parts(old), _parts(new)
        with (
            self.tree.directory(old_parts[:-1]) as src_fd,
            self.tree.directory(new_parts[:-1], create=True) as dst_fd,
        ):
            os.rename(old_parts[-1], new_parts[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd)

    def write_new(self, mount_path: str, raw: bytes, mode: int, times: tuple[int, int] | None = None) -> None:
        """Make ``mount_path`` a scratch file holding ``raw``, replacing one there in one step."""
        parts = _parts(mount_path)
        tmp = f".resultsfs-new.{secrets.token_hex(6)}"
        with self.tree.directory(parts[:-1], create=True) as dir_fd:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
            )
            try:
                try:
                    view = memoryview(raw)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fchmod(fd, mode)
                    if times is not None:
                        os.utime(fd, ns=times)
                finally:
                    os.close(fd)
                os.rename(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise

    def set_meta(self, mount_path: str, change: MetaChange) -> None:
        """Change a scratch file's mode, owner or times, through its descriptor."""
        fd = self._path_fd(mount_path)
        try:
            through = f"/proc/self/fd/{fd}"  # an O_PATH descriptor's own file, never a lookup by name
            if change.mode is not None:
                os.chmod(through, change.mode)
            if change.owner is not None:
                os.chown(through, *change.owner)
            if change.times is not None:
                st = os.fstat(fd)
                atime, mtime = change.times
                os.utime(
                    through,
                    ns=(
                        st.st_atime_ns if atime == OMIT else atime,
                        st.st_mtime_ns if mtime == OMIT else mtime,
                    ),
                )
        finally:
            os.close(fd)

    def getxattr(self, mount_path: str, name: str) -> bytes:
        fd = self._path_fd(mount_path)
        try:
            return os.getxattr(f"/proc/self/fd/{fd}", name)
        finally:
            os.close(fd)

    def listxattr(self, mount_path: str) -> list[str]:
        fd = self._path_fd(mount_path)
        try:
            return os.listxattr(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    def setxattr(self, mount_path: str, name: str, value: bytes, flags: int) -> None:
        fd = self._path_fd(mount_path)
        try:
            os.setxattr(f"/proc/self/fd/{fd}", name, value, flags)
        finally:
            os.close(fd)

    def removexattr(self, mount_path: str, name: str) -> None:
        fd = self._path_fd(mount_path)
        try:
            os.removexattr(f"/proc/self/fd/{fd}", name)
        finally:
            os.close(fd)

    def tmpfile(self) -> int:
        """An unnamed private file (it vanishes when closed), for a spilled write buffer."""
        return os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=self.tree.base_fd)

    # ------------------------------------------------------------ directories

    def remove_dir(self, mount_dir: str) -> None:
        """Forget a directory of the mount after it was removed (it holds no scratch file)."""
        parts = _parts(mount_dir)
        with (
            suppress(FileNotFoundError, NotADirectoryError, UnsafePathError),
            self.tree.directory(parts[:-1]) as dir_fd,
        ):
            remove_tree(dir_fd, parts[-1])

    def move_dir(self, old: str, new: str) -> None:
        """Follow a directory rename in the mount (the target holds no scratch file)."""
        old_parts, new_parts = _parts(old), _parts(new)
        try:
            src_fd = self.tree.open_dir(old_parts[:-1])
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            return
        try:
            try:
                st = os.stat(old_parts[-1], dir_fd=src_fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(st.st_mode):
                return
            with self.tree.directory(new_parts[:-1], create=True) as dst_fd:
                remove_tree(dst_fd, new_parts[-1])
                os.rename(old_parts[-1], new_parts[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        finally:
            os.close(src_fd)

    # ------------------------------------------------------------ the end

    def close(self) -> None:
        """Keep the scratch files still here in ``lost+found`` (each one logged), or remove the area."""
        kept = list(scratch_files(self.tree, ()))
        ours = os.fstat(self.tree.base_fd)
        self.tree.close()
        try:
            there = os.stat(self.name, dir_fd=self._parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is not None and (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino):
            if kept:
                self._keep(self._parent_fd, self.name, kept, "it never became a result")
            else:
                with suppress(OSError):
                    remove_tree(self._parent_fd, self.name)
        elif there is not None:
            log.error("%s is no longer the staging directory this mount made; left as it is", self.root)
        os.close(self._parent_fd)
        os.close(self._lost_parent_fd)

    def _keep(self, parent_fd: int, name: str, files: list[tuple[tuple[str, ...], int]], why: str) -> None:
        """Move area ``name`` (holding ``files``) into ``lost+found`` and log each file."""
        with suppress(FileExistsError):
            os.mkdir(LOST_FOUND, 0o700, dir_fd=self._lost_parent_fd)
        kept_as = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.{name}"
        lost_fd = os.open(LOST_FOUND, _DIR_FLAGS, dir_fd=self._lost_parent_fd)
        try:
            os.rename(name, kept_as, src_dir_fd=parent_fd, dst_dir_fd=lost_fd)
        except OSError:
            log.exception("could not keep %d scratch files of %s in %s", len(files), name, self._lost_shown)
            return
        finally:
            os.close(lost_fd)
        for parts, size in files:
            log.warning(
                "kept scratch file %s (%d bytes) as %s: %s",
                "/" + "/".join(parts),
                size,
                self._lost_shown.joinpath(kept_as, *parts),
                why,
            )


def remove_dead_areas(parent_fd: int, shown: Path, keep: Callable[..., None]) -> None:
    """Clear the staging areas of mounts on this host whose daemon is gone.

    An area that still holds scratch files goes to ``lost+found`` through ``keep``; an empty
    one is removed.
    """
    try:
        entries = list(os.scandir(parent_fd))
    except OSError:
        return
    for entry in entries:
        match = _AREA_NAME.match(entry.name)
        if match is None or match["host"] != _HOST or int(match["pid"]) == os.getpid():
            continue
        if process_is_running(int(match["pid"])):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue  # not one of ours: leave it
        files: list[tuple[tuple[str, ...], int]] = []
        with suppress(OSError):
            leftover = BackingTree(shown / entry.name, fd=os.open(entry.name, _DIR_FLAGS, dir_fd=parent_fd))
            try:
                files = list(scratch_files(leftover, ()))
            finally:
                leftover.close()
        if files:
            keep(parent_fd, entry.name, files, f"its mount died ({entry.name})")
        else:
            with suppress(OSError):
                remove_tree(parent_fd, entry.name)


def scratch_files(tree: BackingTree, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], int]]:
    """``(parts, size)`` of every regular file at or below directory ``parts`` of ``tree``."""
    try:
        dir_fd = tree.open_dir(parts)
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        return
    subdirs = []
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                elif entry.is_file(follow_symlinks=False) and not entry.name.startswith(".resultsfs-new."):
                    yield (*parts, entry.name), entry.stat(follow_symlinks=False).st_size
    finally:
        os.close(dir_fd)
    for name in subdirs:
        yield from scratch_files(tree, (*parts, name))
