"""Property-based fuzzing of the mount: random operation sequences against a model of the store.

Each example works in a fresh directory of one mount. After every step the mount's tree and
the backing store must match the model: whole canonical results, placeholders (empty files a
refused new result leaves), scratch files and directories, and nothing else.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mounting import Mount, mounted, write_errno
from resultsfs import FileBackend
from resultsfs.envelope import encode

DIRS = ["", "a", "a/b", "c"]
NAMES = ["x", "y", "z"]
_counter = itertools.count()


def canonical(value: int) -> bytes:
    return encode("Counter", "default", {"writer": "fuzz", "value": value, "payload": ""})


def submitted(value: int, style: str) -> bytes:
    if style == "envelope":
        return json.dumps({"model_type": "Counter", "data": {"writer": "fuzz", "value": value}}).encode()
    return json.dumps(
        {"model_type": "Counter", "namespace": "default", "data": {"writer": "fuzz", "value": value}},
        indent=4,
    ).encode()


BAD = [b"garbage", b'{"model_type": "Counter", "data": {"value": "NaN?"}}', b'{"unclosed": ', b"[1]"]


@pytest.fixture(scope="module")
def fuzz_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    root = tmp_path_factory.mktemp("fuzz")
    FileBackend(root / "store").close()
    with mounted(root / "store", root / "mnt") as m:
        yield m


class MountModel(RuleBasedStateMachine):
    mount: Mount

    def __init__(self) -> None:
        super().__init__()
        self.base = f"ex{next(_counter)}"
        (self.mount.mnt / self.base).mkdir()
        self.dirs: set[str] = {""}
        self.results: dict[str, bytes] = {}
        self.placeholders: set[str] = set()
        self.scratch: dict[str, bytes] = {}

    # ---------------------------------------------------------------- helpers

    def p(self, rel: str) -> Path:
        return self.mount.mnt / self.base / rel if rel else self.mount.mnt / self.base

    @staticmethod
    def join(directory: str, name: str) -> str:
        return f"{directory}/{name}" if directory else name

    def call(self, fn: object, *args: object) -> int | None:
        try:
            fn(*args)  # type: ignore[operator]
        except OSError as exc:
            return exc.errno
        return None

    def write_file(self, rel: str, data: bytes) -> int | None:
        return write_errno(self.p(rel), data)

    def exists(self, rel: str) -> bool:
        return rel in self.results or rel in self.placeholders or rel in self.scratch or rel in self.dirs

    # ---------------------------------------------------------------- rules

    @rule(
        d=st.sampled_from(DIRS),
        n=st.sampled_from(NAMES),
        value=st.integers(0, 10**6),
        style=st.sampled_from(["envelope", "indented"]),
    )
    def write_valid_result(self, d: str, n: str, value: int, style: str) -> None:
        if d not in self.dirs:
            return
        rel = self.join(d, n + ".json")
        if rel in self.dirs:
            return
        assert self.write_file(rel, submitted(value, style)) is None
        self.results[rel] = submitted(value, style)  # a valid envelope is stored as written
        self.placeholders.discard(rel)

    @rule(d=st.sampled_from(DIRS), n=st.sampled_from(NAMES), bad=st.sampled_from(BAD))
    def write_invalid_result(self, d: str, n: str, bad: bytes) -> None:
        if d not in self.dirs:
            return
        rel = self.join(d, n + ".json")
        if rel in self.dirs:
            return
        assert self.write_file(rel, bad) == errno.EINVAL
        if rel not in self.results:
            self.placeholders.add(rel)

    @rule(d=st.sampled_from(DIRS), n=st.sampled_from(NAMES), value=st.integers(0, 10**6), valid=st.booleans())
    def write_scratch(self, d: str, n: str, value: int, valid: bool) -> None:
        if d not in self.dirs:
            return
        rel = self.join(d, n + ".json.tmp")
        data = submitted(value, "envelope") if valid else BAD[value % len(BAD)]
        assert self.write_file(rel, data) is None
        self.scratch[rel] = data

    @precondition(lambda self: self.scratch)
    @rule(data=st.data(), n=st.sampled_from(NAMES))
    def commit_scratch(self, data: st.DataObject, n: str) -> None:
        src = data.draw(st.sampled_from(sorted(self.scratch)))
        d = src.rpartition("/")[0]
        dst = self.join(d, n + ".json")
        code = self.call(os.rename, self.p(src), self.p(dst))
        content = self.scratch[src]
        try:
            value = json.loads(content)["data"]["value"]
            valid = isinstance(value, int)
        except (ValueError, KeyError, TypeError):
            valid = False
        if valid:
            assert code is None
            self.results[dst] = content
            self.placeholders.discard(dst)
            del self.scratch[src]
        else:
            assert code == errno.EINVAL

    @precondition(lambda self: self.results)
    @rule(data=st.data(), d=st.sampled_from(DIRS), n=st.sampled_from(NAMES))
    def rename_result(self, data: st.DataObject, d: str, n: str) -> None:
        src = data.draw(st.sampled_from(sorted(self.results)))
        dst = self.join(d, n + ".json")
        if d not in self.dirs or dst in self.dirs:
            return
        assert self.call(os.rename, self.p(src), self.p(dst)) is None
        content = self.results.pop(src)
        self.results[dst] = content
        self.placeholders.discard(dst)

    @rule(d=st.sampled_from(DIRS), n=st.sampled_from([*NAMES, "x.json", "x.json.tmp"]))
    def unlink(self, d: str, n: str) -> None:
        rel = self.join(d, n if n.endswith((".json", ".tmp")) else n + ".json")
        if rel in self.dirs:
            return
        code = self.call(os.unlink, self.p(rel))
        if rel in self.results or rel in self.placeholders or rel in self.scratch:
            assert code is None
            self.results.pop(rel, None)
            self.placeholders.discard(rel)
            self.scratch.pop(rel, None)
        else:
            assert code == errno.ENOENT

    @rule(d=st.sampled_from(DIRS))
    def mkdir(self, d: str) -> None:
        parent = d.rpartition("/")[0]
        if parent not in self.dirs or d == "":
            return
        code = self.call(os.mkdir, self.p(d))
        if self.exists(d):
            assert code == errno.EEXIST
        else:
            assert code is None
            self.dirs.add(d)

    @rule(d=st.sampled_from(DIRS))
    def rmdir(self, d: str) -> None:
        if d == "" or d not in self.dirs:
            return
        inside = [
            k for k in [*self.results, *self.placeholders, *self.scratch, *self.dirs] if k.startswith(d + "/")
        ]
        code = self.call(os.rmdir, self.p(d))
        if inside:
            assert code == errno.ENOTEMPTY
        else:
            assert code is None
            self.dirs.discard(d)

    # ---------------------------------------------------------------- the check

    @invariant()
    def mount_and_store_match_the_model(self) -> None:
        seen_dirs, seen_files = set(), {}
        for directory, _subdirs, files in os.walk(self.p("")):
            rel_dir = os.path.relpath(directory, self.p(""))
            rel_dir = "" if rel_dir == "." else rel_dir
            seen_dirs.add(rel_dir)
            for name in files:
                rel = self.join(rel_dir, name)
                seen_files[rel] = os.stat(os.path.join(directory, name)).st_size
        assert seen_dirs == self.dirs
        expected = {**{k: len(v) for k, v in self.results.items()}, **{k: 0 for k in self.placeholders}}
        expected.update({k: len(v) for k, v in self.scratch.items()})
        assert seen_files == expected
        for rel, content in self.results.items():
            assert self.p(rel).read_bytes() == content
        for rel, content in self.scratch.items():
            assert self.p(rel).read_bytes() == content
        stored = FileBackend(self.mount.store).list_ids(self.base)
        assert sorted(stored) == sorted(f"{self.base}/{r[: -len('.json')]}" for r in self.results)


MountModel.TestCase.settings = settings(
    # make stress raises this (RESULTSFS_FUZZ_EXAMPLES=300).
    max_examples=int(os.environ.get("RESULTSFS_FUZZ_EXAMPLES", "25")),
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TestFuzz = MountModel.TestCase


@pytest.fixture(autouse=True)
def _bind_mount(fuzz_mount: Mount) -> None:
    MountModel.mount = fuzz_mount
