"""Stress scenarios shared by ``make test`` (short runs) and ``make stress`` (long runs, a table).

* ``concurrency``: writers through the mount and through the Python API on overlapping IDs,
  readers on both sides, a lease holder running transactions, racing creators; then the
  final state is checked against every writer's log of acknowledged commits.
* ``crashes``: the daemon killed while writers commit, writers killed mid-write, Python
  ``set`` killed between its temp write and its rename; after each fault the store must
  hold only whole, valid results and every acknowledged write.
* ``escapes``: hostile paths and links planted in the backing directory, then every kind of
  operation on them through the mount; nothing outside the store may change.

Every scenario is bounded by time and count and stops by itself.

Run ``python tests/stress.py --seconds 60`` for the long version (``make stress``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import models  # noqa: E402
from mounting import Mount, mount_state, resultsfs, start, stop, write_errno  # noqa: E402
from resultsfs import (  # noqa: E402
    FileBackend,
    ResultExistsError,
    ResultLockedError,
    ResultsError,
    SetBehavior,
    atomic,
)

FORK = multiprocessing.get_context("fork")


@dataclass
class Tally:
    """One row of the stress table."""

    scenario: str
    operations: int = 0
    processes: int = 0
    faults: int = 0
    invalid_reads: int = 0
    lost_writes: int = 0
    escapes: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.operations += other.operations
        self.processes = max(self.processes, other.processes)
        self.faults += other.faults
        self.invalid_reads += other.invalid_reads
        self.lost_writes += other.lost_writes
        self.escapes += other.escapes
        self.notes += other.notes


def payload(writer: str, value: int) -> str:
    """What a result written as (writer, value) must carry; a torn write would not match."""
    return f"{writer}:{value};" * (value % 40)


def envelope(writer: str, value: int) -> bytes:
    data = {"writer": writer, "value": value, "payload": payload(writer, value)}
    return json.dumps({"model_type": "Counter", "namespace": "default", "data": data}).encode()


def whole(result: dict[str, Any]) -> bool:
    return result.get("payload") == payload(result.get("writer", ""), result.get("value", -1))


# ---------------------------------------------------------------------------------- concurrency


def _writer(kind: str, name: str, store: str, mnt: str, deadline: float, max_ops: int, shared: list[str],
            races: list[str], leased: str, queue: Any) -> None:  # fmt: skip
    """Write overlapping results by one path (mount or API); log every acknowledged commit."""
    rng = random.Random(name)
    backend = FileBackend(store)
    acks: list[tuple[str, int]] = []
    won: list[str] = []
    ops = seq = 0
    for race in races:  # everybody tries to create every race ID once, as early as possible
        seq += 1
        if kind == "mount":
            ok = (
                write_errno(
                    Path(mnt, race + ".json"), envelope(name, seq), os.O_WRONLY | os.O_CREAT | os.O_EXCL
                )
                is None
            )
        else:
            try:
                ok = backend.set(race, models.Counter(writer=name, value=seq, payload=payload(name, seq)))
            except ResultExistsError:
                ok = False
        if ok:
            won.append(race)
            acks.append((race, seq))
        ops += 1
    while time.monotonic() < deadline and ops < max_ops:
        seq += 1
        roll = rng.random()
        rid = f"private/{name}" if roll < 0.4 else leased if roll < 0.5 else rng.choice(shared)
        if kind == "mount":
            ok = write_errno(Path(mnt, rid + ".json"), envelope(name, seq)) is None
        else:
            try:
                backend.set(
                    rid,
                    models.Counter(writer=name, value=seq, payload=payload(name, seq)),
                    SetBehavior.OVERWRITE,
                )
                ok = True
            except ResultLockedError:
                ok = False
        if ok:
            acks.append((rid, seq))
        ops += 1
    queue.put(("writer", name, ops, acks, won))


def _reader(kind: str, name: str, store: str, mnt: str, deadline: float, ids: list[str], queue: Any) -> None:
    rng = random.Random(name)
    backend = FileBackend(store)
    ops = invalid = 0
    notes = []
    while time.monotonic() < deadline:
        rid = rng.choice(ids)
        try:
            if kind == "mount":
                with open(Path(mnt, rid + ".json"), "rb") as handle:
                    data = json.loads(handle.read())["data"]
            else:
                data = backend.get(rid).model_dump()
        except FileNotFoundError:
            continue  # a race ID not created yet
        except (OSError, ValueError, KeyError, ResultsError) as exc:
            invalid += 1
            notes.append(f"{kind} read of {rid}: {exc!r}"[:200])
            continue
        ops += 1
        if not whole(data):
            invalid += 1
            notes.append(f"{kind} read of {rid}: torn result {data.get('writer')}:{data.get('value')}")
    queue.put(("reader", name, ops, invalid, notes[:5]))


def _lease_holder(store: str, deadline: float, leased: str, queue: Any) -> None:
    """Transactions on one result: under a lease, nobody else's write may land in between."""
    backend = FileBackend(store)
    holder = f"txn-{os.getpid()}"
    ops = interleavings = seq = 0
    notes = []
    while time.monotonic() < deadline:
        if not backend.acquire_lock(leased, holder, acquire_timeout=1, hold_timeout=30):
            continue
        try:
            for _ in range(5):
                seq += 1
                backend.set(leased, models.Counter(writer=holder, value=seq, payload=payload(holder, seq)),
                            SetBehavior.OVERWRITE, holder=holder)  # fmt: skip
                ops += 1
                time.sleep(0.002)
                current = backend.get(leased)
                if (current.writer, current.value) != (holder, seq):
                    interleavings += 1
                    notes.append(
                        f"lease on {leased}: expected {holder}:{seq}, found {current.writer}:{current.value}"
                    )
        finally:
            backend.release_lock(leased, holder)
        time.sleep(0.01)
    queue.put(("holder", holder, ops, interleavings, notes[:5]))


def concurrency(seconds: float, max_ops: int = 10**9, writers: int = 4) -> Tally:
    """Writers through the mount and the API, readers on both sides, a lease holder, racing creators."""
    tally = Tally("concurrency (mount + API)")
    with tempfile.TemporaryDirectory(prefix="rfs-stress-") as tmp:
        store, mnt = Path(tmp, "store"), Path(tmp, "mnt")
        backend = FileBackend(store)
        shared = [f"shared/s{i}" for i in range(6)]
        races = [f"race/c{i}" for i in range(20)]
        leased = "txn/ledger"
        for rid in [*shared, leased]:
            backend.set(rid, models.Counter(writer="init", value=0, payload=payload("init", 0)))
        mount = start(store, mnt, ["--lock-wait", "0.2"], workdir=Path(tmp))
        try:
            deadline = time.monotonic() + seconds
            queue = FORK.Queue()
            procs = []
            for i in range(writers):
                for kind in ("mount", "api"):
                    name = f"{kind}{i}"
                    args = (kind, name, str(store), str(mnt), deadline, max_ops, shared, races, leased, queue)
                    procs.append(FORK.Process(target=_writer, args=args))
            for i, kind in enumerate(("mount", "api", "mount", "api")):
                procs.append(FORK.Process(target=_reader, args=(kind, f"r{i}", str(store), str(mnt), deadline,
                                                                [*shared, leased, *races], queue)))  # fmt: skip
            procs.append(FORK.Process(target=_lease_holder, args=(str(store), deadline, leased, queue)))
            for proc in procs:
                proc.start()
            reports = [queue.get(timeout=seconds + 120) for _ in procs]
            for proc in procs:
                proc.join(timeout=60)
            tally.processes = len(procs)
            tally.add(_check_concurrency(backend, reports, shared, races, leased))
            tally.scenario = "concurrency (mount + API)"
        finally:
            stop(mount)
    return tally


def _check_concurrency(backend: FileBackend, reports: list[Any], shared: list[str], races: list[str],
                       leased: str) -> Tally:  # fmt: skip
    tally = Tally("")
    acked: dict[str, set[tuple[str, int]]] = {}
    last_private: dict[str, int] = {}
    winners: dict[str, list[str]] = {}
    for report in reports:
        kind, name = report[0], report[1]
        tally.operations += report[2]
        if kind == "writer":
            for rid, seq in report[3]:
                acked.setdefault(rid, set()).add((name, seq))
                if rid == f"private/{name}":
                    last_private[rid] = max(last_private.get(rid, 0), seq)
            for rid in report[4]:
                winners.setdefault(rid, []).append(name)
        else:
            tally.invalid_reads += report[3] if kind == "reader" else 0
            tally.lost_writes += report[3] if kind == "holder" else 0  # an interleaved transaction
            tally.notes += report[4]
    # Every acknowledged write survives: a private result holds its writer's last acknowledged
    # value; a shared one holds some acknowledged value; each race ID has exactly one winner.
    for rid, seq in last_private.items():
        stored = backend.get(rid)
        if stored.value != seq:
            tally.lost_writes += 1
            tally.notes.append(f"{rid}: last acknowledged {seq}, stored {stored.value}")
    for rid in shared:
        stored = backend.get(rid)
        if (stored.writer, stored.value) not in acked.get(rid, set()) | {("init", 0)}:
            tally.lost_writes += 1
            tally.notes.append(f"{rid}: stored {stored.writer}:{stored.value} was never acknowledged")
    for rid in races:
        names = winners.get(rid, [])
        stored = backend.get(rid) if backend.exists(rid) else None
        if len(names) != 1 or stored is None or stored.writer != names[0]:
            tally.lost_writes += 1
            tally.notes.append(f"{rid}: winners {names}, stored {stored and stored.writer}")
    for rid in backend.list_ids():
        try:
            if not whole(backend.get(rid).model_dump()):
                tally.invalid_reads += 1
        except ResultsError as exc:
            tally.invalid_reads += 1
            tally.notes.append(f"final {rid}: {exc}")
    return tally


# ---------------------------------------------------------------------------------- crashes

_MOUNT_WRITER = """
import os, sys, json
mnt, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seq = 0
os.makedirs(os.path.join(mnt, "crash", name), exist_ok=True)
print("ready", flush=True)
while True:
    seq += 1
    rid = f"crash/{name}/r{seq % count}"
    data = {"writer": name, "value": seq, "payload": f"{name}:{seq};" * (seq % 40)}
    body = json.dumps({"model_type": "Counter", "namespace": "default", "data": data}).encode()
    try:
        fd = os.open(os.path.join(mnt, rid + ".json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, body)
        os.close(fd)
    except OSError:
        break
    print(rid, seq, flush=True)
"""

_KILLED_SET = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import models
from resultsfs import FileBackend, SetBehavior, atomic
store = FileBackend({store!r})
atomic.before_rename = lambda: os.kill(os.getpid(), signal.SIGKILL)
store.set("crash/api", models.Counter(writer="api", value={value}, payload="x" * {value}), SetBehavior.OVERWRITE)
"""


def _verify_store(store: Path, tally: Tally, acked: dict[str, int]) -> None:
    backend = FileBackend(store)
    for rid in backend.list_ids():
        try:
            if not whole(backend.get(rid).model_dump()):
                tally.invalid_reads += 1
                tally.notes.append(f"{rid}: torn result")
        except ResultsError as exc:
            tally.invalid_reads += 1
            tally.notes.append(f"{rid}: {exc}")
    for rid, seq in acked.items():
        # The daemon replies after the durable rename, so an acknowledged value (or a later
        # one whose acknowledgement the kill cut off) must be stored.
        stored = backend.get(rid) if backend.exists(rid) else None
        if stored is None or stored.value < seq:
            tally.lost_writes += 1
            tally.notes.append(f"{rid}: acknowledged {seq}, stored {stored and stored.value}")


def crashes(rounds: int, writers: int = 4) -> Tally:
    """Kill the daemon under load, kill writers mid-write, kill Python set before its rename."""
    tally = Tally("crashes (kill -9)")
    with tempfile.TemporaryDirectory(prefix="rfs-crash-") as tmp:
        store, mnt = Path(tmp, "store"), Path(tmp, "mnt")
        FileBackend(store).close()
        acked: dict[str, int] = {}
        for round_ in range(rounds):
            mount = start(store, mnt, workdir=Path(tmp))
            procs = [
                subprocess.Popen(
                    # Fresh writer names each round: sequence numbers start again at 1.
                    [sys.executable, "-c", _MOUNT_WRITER, str(mnt), f"w{i}-{round_}", "5"],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for i in range(writers)
            ]
            try:
                for proc in procs:
                    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
                time.sleep(0.3 + 0.2 * (round_ % 3))
                if round_ % 2:
                    victim = procs[round_ % writers]  # a writer killed mid-stream
                    victim.kill()
                    tally.faults += 1
                os.kill(mount.pid, signal.SIGKILL)  # the daemon killed under load
                tally.faults += 1
                deadline = time.monotonic() + 10
                while mount_state(mnt) != "stale" and time.monotonic() < deadline:
                    time.sleep(0.02)
            finally:
                for proc in procs:
                    proc.kill()
                    out, _ = proc.communicate()
                    for line in out.splitlines():
                        rid, _, seq = line.partition(" ")
                        if seq.isdigit():
                            acked[rid] = max(acked.get(rid, 0), int(seq))
                            tally.operations += 1
            resultsfs("umount", str(mnt))
            done = subprocess.run(
                [sys.executable, "-c", _KILLED_SET.format(tests=str(TESTS), store=str(store), value=round_ + 1)],
                timeout=60, check=False,
            )  # fmt: skip
            tally.faults += 1 if done.returncode == -signal.SIGKILL else 0
            _verify_store(store, tally, acked)
            tally.processes = writers + 2
        mount = start(store, mnt, workdir=Path(tmp))
        try:
            deadline = time.monotonic() + 20
            while list(store.rglob(f"{atomic.TEMP_PREFIX}*")) and time.monotonic() < deadline:
                time.sleep(0.1)
            leftovers = list(store.rglob(f"{atomic.TEMP_PREFIX}*"))
            if leftovers:
                tally.notes.append(f"{len(leftovers)} temp files left after the next mount's cleanup")
                tally.lost_writes += 0
            if any(name.startswith(".") for name in os.listdir(mnt)):
                tally.escapes += 1
                tally.notes.append("store files visible in the mount")
        finally:
            stop(mount)
        if leftovers:
            tally.invalid_reads += len(leftovers)
    return tally


# ---------------------------------------------------------------------------------- escapes


def escapes(rounds: int) -> Tally:
    """Plant symlinks and hard links, then try every operation on them through the mount."""
    tally = Tally("escapes (hostile paths)")
    with tempfile.TemporaryDirectory(prefix="rfs-escape-") as tmp:
        root = Path(tmp)
        outside = root / "outside"
        outside.mkdir()
        secret = outside / "secret.json"
        secret.write_bytes(envelope("outside", 1))
        store, mnt = root / "store", root / "mnt"
        FileBackend(store).set("ok", models.Counter(writer="a", value=1, payload=payload("a", 1)))
        (store / "dirlink").symlink_to(outside)
        (store / "filelink.json").symlink_to(secret)
        (store / "loop").symlink_to(store / "loop")
        os.link(secret, store / "hard.json")
        snapshot = {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in outside.iterdir()}
        mount = start(store, mnt, workdir=root)
        try:
            attempts = [
                (mnt / "dirlink" / "secret.json").read_bytes,
                lambda: write_errno(mnt / "dirlink" / "new.json", envelope("evil", 2)),
                lambda: write_errno(mnt / "filelink.json", envelope("evil", 3)),
                lambda: os.rename(mnt / "ok.json", mnt / "dirlink" / "ok.json"),
                lambda: os.chmod(mnt / "hard.json", 0o600),
                lambda: os.utime(mnt / "hard.json", (1, 1)),
                lambda: os.mkdir(mnt / "dirlink" / "sub"),
                lambda: os.unlink(mnt / "dirlink" / "secret.json"),
                lambda: os.listdir(mnt / "loop"),
                lambda: os.symlink(str(secret), mnt / "s.json"),
                lambda: os.link(mnt / "hard.json", mnt / "h2.json"),
                lambda: os.rename(mnt / "ok.json", mnt / ".." / "escaped.json"),
            ]
            for _ in range(rounds):
                for attempt in attempts:
                    with contextlib.suppress(OSError):
                        attempt()
                    tally.operations += 1
            tally.faults = len(attempts)
        finally:
            stop(mount)
        after = {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in outside.iterdir()}
        if after != snapshot:
            tally.escapes += 1
            tally.notes.append(f"outside changed: {sorted(set(after) ^ set(snapshot))}")
        if (root / "escaped.json").exists():
            tally.escapes += 1
        tally.processes = 1
    return tally


# ---------------------------------------------------------------------------------- main


def table(rows: list[Tally]) -> str:
    header = (
        "scenario",
        "operations",
        "processes",
        "faults injected",
        "invalid reads",
        "acked writes lost",
        "escapes",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = (
            row.scenario,
            row.operations,
            row.processes,
            row.faults,
            row.invalid_reads,
            row.lost_writes,
            row.escapes,
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the concurrency run")
    parser.add_argument("--crash-rounds", type=int, default=12)
    parser.add_argument("--escape-rounds", type=int, default=200)
    args = parser.parse_args()
    # The mounts' kept verdicts and staging areas of SQL stores go to a state directory of the run,
    # not to /var/lib/resultsfs.
    with tempfile.TemporaryDirectory(prefix="rfs-state-") as state:
        os.environ["RESULTSFS_STATE_DIR"] = state
        rows = [concurrency(args.seconds), crashes(args.crash_rounds), escapes(args.escape_rounds)]
    print(table(rows))
    for row in rows:
        for note in row.notes[:10]:
            print(f"  {row.scenario}: {note}")
    return 1 if any(r.invalid_reads or r.lost_writes or r.escapes for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Mount", "Tally", "concurrency", "crashes", "errno", "escapes", "table"]
