"""Crash safety of the Python API: a killed writer leaves the old result or the new, never a part."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import Counter
from resultsfs import ResultStore, SetBehavior, atomic

TESTS = Path(__file__).resolve().parent

KILL_BEFORE_RENAME = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import models
from resultsfs import FileBackend, SetBehavior, atomic
store = FileBackend({base!r})
atomic.before_rename = lambda: os.kill(os.getpid(), signal.SIGKILL)
store.set("victim", models.Counter(writer="new", value=2, payload="N" * 100000), SetBehavior.OVERWRITE)
"""

WRITE_FOREVER = """
import sys
sys.path.insert(0, {tests!r})
import models
from resultsfs import FileBackend, SetBehavior
store = FileBackend({base!r})
i = 0
print("ready", flush=True)
while True:
    i += 1
    store.set("busy/" + str(i % 7), models.Counter(writer="w", value=i, payload=str(i) * (i % 3000)), SetBehavior.OVERWRITE)
"""


def test_killed_between_temp_write_and_rename_keeps_the_old_result(store: ResultStore) -> None:
    old = Counter(writer="old", value=1)
    store.set("victim", old)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_BEFORE_RENAME.format(tests=str(TESTS), base=str(store.backend.base_dir))],
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    assert store.get("victim") == old
    leftovers = [n for n in os.listdir(store.backend.base_dir) if n.startswith(".resultsfs-tmp.")]
    assert len(leftovers) == 1  # the dead writer's complete temp file, never listed
    assert store.list_ids() == ["victim"]
    report = store.check(fix=True)
    assert [p.kind for p in report.fixed] == ["stale-temp"]
    assert not [n for n in os.listdir(store.backend.base_dir) if n.startswith(".resultsfs-tmp.")]


def test_writers_killed_at_random_points_leave_only_valid_results(store: ResultStore) -> None:
    for attempt in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITE_FOREVER.format(tests=str(TESTS), base=str(store.backend.base_dir))],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(0.05 + 0.07 * attempt)
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        for rid in store.list_ids():
            result = store.get(rid)  # parses and validates, or raises
            assert result.payload == str(result.value) * (result.value % 3000)
    store.check(fix=True)
    assert store.check().ok


def test_a_write_that_fails_before_its_rename_leaves_no_temp_and_the_old_result(
    store: ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = Counter(writer="a", value=1)
    store.set("x", old)

    def disk_full() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "before_rename", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.set("x", Counter(writer="b", value=2), SetBehavior.OVERWRITE)
    assert not [n for n in os.listdir(store.backend.base_dir) if n.startswith(".resultsfs-tmp.")]
    assert store.get("x") == old
