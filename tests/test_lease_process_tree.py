"""A lease taken for a command lets that command's process tree, and nobody else, write through a mount.

``resultsfs lock ID -- COMMAND`` records its process identity (host, pid, start time) in the
lease; the mount acts as the lease's holder for requests from that process or its
descendants. Identities survive PID reuse: a process with the same PID but another start time
is someone else.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from models import Counter
from mounting import mounted, wait_until, write_errno
from resultsfs import FileBackend, ResultStore, processes


def _envelope(value: int) -> bytes:
    return json.dumps(
        {"model_type": "Counter", "namespace": "default", "data": {"writer": "sh", "value": value}}
    ).encode()


def test_an_identity_names_one_process_and_its_descendants_only() -> None:
    me = processes.identity()
    host, pid, started = me.rsplit(":", 2)
    assert host == socket.gethostname() and int(pid) == os.getpid() and int(started) > 0
    assert processes.is_running(me)
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert processes.in_tree(me, child.pid)
        assert not processes.in_tree(processes.identity(child.pid), os.getpid())
        # The same PID with another start time (a reused PID) is someone else; so is another host.
        assert not processes.in_tree(f"{host}:{pid}:{int(started) + 1}", child.pid)
        assert not processes.in_tree(f"elsewhere:{pid}:{started}", child.pid)
        assert not processes.is_running(f"{host}:{pid}:{int(started) + 1}")
    finally:
        child.kill()
        child.wait()
    assert not processes.is_running("not an identity") and not processes.in_tree("x:y", os.getpid())


def test_the_commands_tree_writes_as_the_holder_and_others_wait(tmp_path: Path) -> None:
    store_path, mnt = tmp_path / "store", tmp_path / "mnt"
    FileBackend(store_path).set("r", Counter(writer="api", value=1))
    (tmp_path / "new.json").write_bytes(_envelope(2))
    done = tmp_path / "done"
    script = textwrap.dedent(
        f"""
        import sys
        from resultsfs import ResultStore
        from resultsfs.holding import run_holding
        command = ["sh", "-c", "cat {tmp_path}/new.json > {mnt}/r.json && touch {done} && sleep 4"]
        sys.exit(run_holding(ResultStore({str(store_path)!r}), "r", command, holder="job-7", ttl=1.5))
        """
    )
    with mounted(store_path, mnt) as m:
        wrapper = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
        try:
            wait_until(
                done.exists,
                20,
                "the command under the lease did not write",
                still=lambda: wrapper.poll() is None,
            )
            store = ResultStore(FileBackend(store_path))
            assert store.get("r") == Counter(writer="sh", value=2)  # the command's write passed
            lease = store.lease("r")
            assert lease is not None and lease.holder == "job-7" and lease.process is not None
            # This test process is not in the command's tree: its write through the mount is refused.
            assert write_errno(m.path("r.json"), _envelope(3)) == errno.EBUSY
            holder = os.getxattr(m.path("r.json"), "user.results.lock.holder").decode()
            assert holder == "job-7"
            # Past its 1.5 s lifetime, the heartbeat keeps the lease while the command runs.
            time.sleep(2.5)
            assert write_errno(m.path("r.json"), _envelope(3)) == errno.EBUSY
            assert store.get("r") == Counter(writer="sh", value=2)
            _, err = wrapper.communicate(timeout=20)
            assert wrapper.returncode == 0, err
            assert store.lease("r") is None
            assert write_errno(m.path("r.json"), _envelope(4)) is None
            assert store.get("r") == Counter(writer="sh", value=4)
        finally:
            if wrapper.poll() is None:
                wrapper.kill()
                wrapper.communicate()
