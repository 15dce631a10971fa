"""The backing directory, a C libfuse passthrough, the same in Python, and resultsfs, side by side.

What: one store (default 3,000 results of ~160 bytes in 30 leaf directories; ``BENCH_N`` or
``--files`` for another size) is served four ways: as the plain directory; through the
minimal libfuse 3 passthrough of ``bench/passthrough.c`` (compiled into a temporary directory,
libfuse's default options) mounted over a copy; through the same passthrough written in
Python on resultsfs's own binding (``bench/pypassthrough.py``, mfusepy's path API, libfuse's
default options) over another copy; and through resultsfs mounted over a copy. Every
workload runs on the four sides in turn, in each of ``rounds`` rounds (side order rotated per
round; fresh mounts per round), and the median rate is reported with the ratios between them.
Each resultsfs mount starts with an empty state directory, so nothing is kept from an earlier
mount: its cold row includes validating every result (:mod:`scale_bench` measures a remount
that finds the kept verdicts).

Around every timed run the CPU time of each daemon (``/proc/PID/stat``) and of the client
(this process and the tools it waited for, ``getrusage``) is read, and reported per file.
The row "commit: open+write+close, one writer" has a fourth turn in the same rotation: the
same bytes onto the same IDs of a copy of the store with ``ResultStore.set_bytes`` (durable,
as the mount's commits are), so that commits through the mount and through the Python API
are compared at the same durability, without a process start per commit (the cp and mv rows
start one). A separate, untimed pass runs each daemon in the foreground with ``-o debug``
and counts libfuse's request lines per workload, per file, by opcode; the resultsfs daemon's
peak RSS (``VmHWM``) is read after each timed round.

Why: resultsfs/directory alone mixes what any FUSE filesystem costs (a kernel round trip per
request, libfuse's default caching) with what resultsfs adds (Python, validation, direct I/O,
durable commits). The C passthrough is the floor of the first, so resultsfs/passthrough is
the second. The Python passthrough splits the second: what the binding costs a daemon that
does nothing of its own (Python pt / C pt), and what resultsfs's own code costs on top
(resultsfs / Python pt). The request counts tell whether a gap comes from more requests or
from slower ones.

Robustness: every mount is unmounted in ``finally`` (``fusermount3 -uz`` and killing the
daemon as the last resort), a watchdog aborts the FUSE connections and kills the daemons if
the run overruns its deadline (so no syscall can hang forever), and the temporary directory
is removed only once nothing is mounted under it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import store_bench
from bench_models import MountBenchResult

from resultsfs import FileBackend, ResultStore

BENCH = Path(__file__).resolve().parent
PASSTHROUGH_C = BENCH / "passthrough.c"
MODELS_FILE = BENCH / "bench_models.py"
#: Debian packages that provide ``gcc $(pkg-config --cflags --libs fuse3)``.
BUILD_PACKAGES = ("gcc", "libc6-dev", "pkg-config", "libfuse3-dev")
#: The store's own directory (locks, leases); not part of the results tree.
META_DIR = ".resultsfs"
SIDES = ("directory", "passthrough", "pypassthrough", "resultsfs")
FUSE_SIDES = ("passthrough", "pypassthrough", "resultsfs")
PYPASSTHROUGH = BENCH / "pypassthrough.py"
#: How long a quiet trace must stay quiet before a workload's count is closed (async RELEASEs).
QUIET_SECONDS = 0.2


# --------------------------------------------------------------------------- configuration


@dataclass
class Config:
    """What one run measures."""

    files: int = 3000
    rounds: int = 3
    #: Commits per commit workload (cp, mv), each onto an existing result.
    commits: int = 300
    #: Operations per round of the Python API benchmark (set, get, exists).
    api_ops: int = 3000
    #: Run the untimed ``-o debug`` pass that counts FUSE requests.
    count_requests: bool = True
    #: Extra arguments for ``resultsfs mount`` (``--threads 1``...).
    mount_args: tuple[str, ...] = ()
    #: Seconds after which the watchdog aborts the mounts; None: derived from the size.
    deadline: float | None = None

    def effective_deadline(self) -> float:
        if self.deadline is not None:
            return self.deadline
        return 300 + self.files * 0.03 * (self.rounds + 2)

    @property
    def tool_timeout(self) -> float:
        """Seconds any single external command (find, ls, cp...) may take."""
        return 60 + self.files * 0.02


@dataclass
class WorkloadResult:
    """Every round's seconds and CPU times per side, and the request counts of the debug pass."""

    key: str
    title: str
    unit: str
    count: int
    seconds: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Per side, every round's (user, system) CPU seconds of the FUSE daemon during the run.
    daemon_cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    #: Per side, every round's (user, system) CPU seconds of the client: this process and the
    #: processes it started and waited for (cp, find, forked readers...).
    client_cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    #: Every round's seconds of the same operation through the Python API (commit rows only).
    api_seconds: list[float] = field(default_factory=list)

    def rate(self, side: str) -> float:
        """Median units per second over the rounds."""
        return statistics.median(self.count / s for s in self.seconds[side])

    def api_rate(self) -> float:
        return statistics.median(self.count / s for s in self.api_seconds)

    def api_ratios(self) -> list[float]:
        """Each round's resultsfs rate over the API's rate in the same round."""
        return [api / ours for ours, api in zip(self.seconds["resultsfs"], self.api_seconds, strict=True)]

    def cpu_per_unit(self, samples: list[tuple[float, float]]) -> tuple[float, float]:
        """Median (user, system) microseconds per file or commit over the rounds."""
        user = statistics.median(u for u, _ in samples) / self.count * 1e6
        system = statistics.median(s for _, s in samples) / self.count * 1e6
        return user, system

    def per_file(self, side: str) -> dict[str, float]:
        counts = self.requests.get(side, {})
        return {op: n / self.count for op, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n}


@dataclass
class Report:
    config: Config
    store: dict[str, Any]
    workloads: list[WorkloadResult]
    api: list[store_bench.ApiRow]
    rss_kib: dict[str, list[int]]
    spawn_floor: list[float]
    host: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        rows = []
        for w in self.workloads:
            rates = {side: w.rate(side) for side in SIDES}
            rows.append(
                {
                    "workload": w.key,
                    "title": w.title,
                    "unit": w.unit,
                    "count": w.count,
                    "seconds": w.seconds,
                    "per_second": rates,
                    "ratio": {
                        "resultsfs/passthrough": rates["resultsfs"] / rates["passthrough"],
                        "pypassthrough/passthrough": rates["pypassthrough"] / rates["passthrough"],
                        "resultsfs/pypassthrough": rates["resultsfs"] / rates["pypassthrough"],
                        "resultsfs/directory": rates["resultsfs"] / rates["directory"],
                    },
                    "requests": w.requests,
                    "request_errors": w.errors,
                    "requests_per_file": {
                        side: w.per_file(side) for side in FUSE_SIDES if side in w.requests
                    },
                    "daemon_cpu_seconds": w.daemon_cpu,
                    "client_cpu_seconds": w.client_cpu,
                    "cpu_us_per_unit": {
                        side: {
                            "daemon": w.cpu_per_unit(w.daemon_cpu[side]) if side in w.daemon_cpu else None,
                            "client": w.cpu_per_unit(w.client_cpu[side]),
                        }
                        for side in SIDES
                        if side in w.client_cpu
                    },
                }
            )
        commits = [
            {
                "workload": w.key,
                "title": w.title,
                "commits": w.count,
                "mount_seconds": w.seconds["resultsfs"],
                "api_seconds": w.api_seconds,
                "mount_per_second": w.rate("resultsfs"),
                "api_per_second": w.api_rate(),
                "ratio_mount_to_api": w.rate("resultsfs") / w.api_rate(),
                "ratio_per_round": w.api_ratios(),
            }
            for w in self.workloads
            if w.api_seconds
        ]
        return {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": self.host,
            "config": {
                "files": self.config.files,
                "rounds": self.config.rounds,
                "commits": self.config.commits,
                "api_ops": self.config.api_ops,
                "count_requests": self.config.count_requests,
                "mount_args": list(self.config.mount_args),
            },
            "store": self.store,
            "filesystem": rows,
            "commit_vs_api": commits,
            "spawn_floor_per_second": self.spawn_floor,
            "peak_rss_kib": self.rss_kib,
            "api": [
                {
                    "operation": row.operation,
                    "unit": row.unit,
                    "resultsfs_per_second": row.ours,
                    "baseline_per_second": row.base,
                    "resultsfs_median": row.ours_median,
                    "baseline_median": row.base_median,
                    "ratio": row.ours_median / row.base_median,
                }
                for row in self.api
            ],
        }


# --------------------------------------------------------------------------- helpers


def _mounted_under(prefix: Path) -> list[Path]:
    """Mount points at or below ``prefix``, from /proc/self/mounts (which never touches them)."""
    found = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            point = Path(line.split()[1].encode().decode("unicode_escape"))
            if point == prefix or prefix in point.parents:
                found.append(point)
    return found


def _is_mounted(path: Path) -> bool:
    return path in _mounted_under(path)


def _lazy_unmount(path: Path) -> None:
    subprocess.run(["fusermount3", "-uz", str(path)], capture_output=True, check=False, timeout=30)


def _run_tool(
    command: Sequence[str], timeout: float, stdin: bytes | None = None, capture: bool = False
) -> str:
    """Run an external program; its stdout if ``capture``. Raises if it fails."""
    done = subprocess.run(
        list(command),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace")[-500:]
        raise RuntimeError(f"{' '.join(command[:4])}... exited {done.returncode}: {reason}")
    return done.stdout.decode(errors="replace") if capture else ""


def build_passthrough(workdir: Path) -> Path:
    """Compile bench/passthrough.c to ``workdir/passthrough``; a clear message if libfuse3-dev is missing."""
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        raise SystemExit(
            f"the passthrough needs gcc and pkg-config: apt-get install {' '.join(BUILD_PACKAGES)}"
        )
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True, text=True, check=False
    )
    if flags.returncode != 0:
        raise SystemExit(f"pkg-config finds no fuse3: apt-get install {' '.join(BUILD_PACKAGES)}")
    binary = workdir / "passthrough"
    command = ["gcc", "-O2", "-Wall", "-o", str(binary), str(PASSTHROUGH_C), *flags.stdout.split()]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"compiling {PASSTHROUGH_C} failed:\n{done.stderr}")
    return binary


def _read_all(paths: Sequence[str]) -> None:
    """open, read to EOF, close: what cat or json.load does."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            while os.read(fd, 65536):
                pass
        finally:
            os.close(fd)


def _stat_all(paths: Sequence[str]) -> None:
    for path in paths:
        os.lstat(path)


def _parallel_read(paths: Sequence[str], readers: int) -> None:
    """``readers`` forked processes split ``paths``; raises if any of them failed."""
    pids = []
    for i in range(readers):
        chunk = paths[i::readers]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                _read_all(chunk)
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    failed = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        failed |= status
    if failed:
        raise RuntimeError(f"a reader process failed (wait status {failed})")


def _cpu_seconds(pid: int | None) -> tuple[float, float] | None:
    """(user, system) CPU seconds of process ``pid`` so far, all its threads, from /proc/PID/stat."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # Fields 14 (utime) and 15 (stime) of proc(5); fields[0] is field 3 (state).
    return int(fields[11]) / tick, int(fields[12]) / tick


def _client_cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process and of the children it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + children.ru_utime, own.ru_stime + children.ru_stime


def _vm_hwm_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- request counting


_REQUEST = re.compile(rb"^unique: (\d+), opcode: (\w+) \(")
_REPLY = re.compile(rb"^\s+unique: (\d+), (?:success|error: (-?\d+))")
_MARK = re.compile(rb"^LOOKUP /\.bench-mark-(begin|end)-(\S+)$")
_NO_REPLY = {"FORGET", "BATCH_FORGET", "INTERRUPT"}


class RequestCounter:
    """Counts the requests in libfuse's ``-o debug`` trace, per segment between two markers.

    A marker is a lookup of ``/.bench-mark-begin-LABEL`` or ``/.bench-mark-end-LABEL`` (a name
    that does not exist): the high-level library prints ``LOOKUP /path`` for it. Requests seen
    between the two are the segment's; the end marker's own LOOKUP is taken off again. Replies
    with an error are counted per opcode too.
    """

    #: Lines of the trace kept in the log (libfuse's start-up report and errors come first).
    LOGGED_LINES = 200

    def __init__(self, stream: IO[bytes], log: IO[bytes] | None = None) -> None:
        self.counts: dict[str, Counter[str]] = {}
        self.errors: dict[str, Counter[str]] = {}
        self._label: str | None = None
        self._closed: set[str] = set()
        self._inflight: dict[int, tuple[str | None, str]] = {}
        self._last_lookup = -1
        self._last_line = time.monotonic()
        self._cond = threading.Condition()
        self._log = log
        self._thread = threading.Thread(target=self._read, args=(stream,), name="fuse-trace", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for number, line in enumerate(stream):
            if self._log is not None and number < self.LOGGED_LINES:
                self._log.write(line)
            with self._cond:
                self._last_line = time.monotonic()
                self._parse(line.rstrip(b"\n"))
                self._cond.notify_all()

    def _parse(self, line: bytes) -> None:
        if found := _REQUEST.match(line):
            unique, op = int(found[1]), found[2].decode()
            if op not in _NO_REPLY:
                self._inflight[unique] = (self._label, op)
            if self._label is not None:
                self.counts[self._label][op] += 1
            if op == "LOOKUP":
                self._last_lookup = unique
        elif found := _REPLY.match(line):
            request = self._inflight.pop(int(found[1]), None)
            if request is not None and request[0] is not None and found[2] is not None:
                self.errors[request[0]][request[1]] += 1
        elif found := _MARK.match(line):
            kind, label = found[1].decode(), found[2].decode()
            if kind == "begin":
                self._label = label
                self.counts[label] = Counter()
                self.errors[label] = Counter()
            elif self._label == label:
                self.counts[label]["LOOKUP"] -= 1
                self._inflight.pop(self._last_lookup, None)
                self._label = None
                self._closed.add(label)

    def wait_quiet(self, quiet: float = QUIET_SECONDS, timeout: float = 10.0) -> None:
        """Wait until the trace has been silent for ``quiet`` seconds (asynchronous requests done)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (idle := time.monotonic() - self._last_line) < quiet and time.monotonic() < deadline:
                self._cond.wait(quiet - idle)

    def wait_closed(self, label: str, timeout: float = 60.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: label in self._closed, timeout):
                raise RuntimeError(f"the debug trace never showed the end marker of {label!r}")

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)


def _mark(root: Path, kind: str, label: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.stat(root / f".bench-mark-{kind}-{label}")
        raise RuntimeError(f"{root}: a marker file exists")


# --------------------------------------------------------------------------- the sides


class Side:
    """Where a workload runs: a directory, possibly a mount point."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.counter: RequestCounter | None = None

    @property
    def pid(self) -> int | None:
        return None

    def start(self, debug: bool = False) -> None:
        """Make ``root`` ready (mount it); ``debug`` attaches a :class:`RequestCounter`."""

    def stop(self) -> None:
        """Undo ``start``; never raises for an unmount that had to be forced."""

    def abort(self) -> None:
        """Watchdog: make every pending request fail, kill the daemon (any thread may call it)."""


class FuseSide(Side):
    """A FUSE daemon run in the foreground as our child, in its own session (no terminal signals)."""

    def __init__(self, name: str, mnt: Path, workdir: Path) -> None:
        super().__init__(name, mnt)
        self.workdir = workdir
        self.log_path = workdir / f"{name}.stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.connection: int | None = None
        self._log: IO[bytes] | None = None

    def command(self, debug: bool) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The daemon's environment; None: ours."""
        return None

    def unmount_command(self) -> list[str]:
        return ["fusermount3", "-u", str(self.root)]

    def ready(self) -> bool:
        return _is_mounted(self.root)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, debug: bool = False) -> None:
        self.root.mkdir(exist_ok=True)
        if _is_mounted(self.root):
            raise RuntimeError(f"{self.root} is already mounted")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(debug),
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.PIPE if debug else self._log,
            start_new_session=True,
        )
        if debug:
            assert self.proc.stderr is not None
            self.counter = RequestCounter(self.proc.stderr, self._log)
        deadline = time.monotonic() + 30
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} did not mount on {self.root}:\n{tail}")
            time.sleep(0.02)
        st_dev = os.stat(self.root).st_dev
        self.connection = os.minor(st_dev) if os.major(st_dev) == 0 else None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if _is_mounted(self.root):
                done = subprocess.run(self.unmount_command(), capture_output=True, timeout=60, check=False)
                if done.returncode != 0:
                    _lazy_unmount(self.root)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        finally:
            if _is_mounted(self.root):
                _lazy_unmount(self.root)
            if proc.poll() is None:
                proc.kill()
            if self.counter is not None:
                self.counter.join()
                self.counter = None
            if proc.stderr is not None:
                proc.stderr.close()
            if self._log is not None:
                self._log.close()
                self._log = None
            self.connection = None

    def abort(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(OSError):
                Path(f"/sys/fs/fuse/connections/{self.connection}/abort").write_text("1")
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()


class Passthrough(FuseSide):
    def __init__(self, binary: Path, backing: Path, mnt: Path, workdir: Path) -> None:
        super().__init__("passthrough", mnt, workdir)
        self.binary = binary
        self.backing = backing

    def command(self, debug: bool) -> list[str]:
        return [
            str(self.binary),
            str(self.backing),
            str(self.root),
            "-f",
            *(["-o", "debug"] if debug else []),
        ]


class PyPassthrough(FuseSide):
    """``bench/pypassthrough.py``: the C passthrough's callbacks in Python, on resultsfs's binding."""

    def __init__(self, backing: Path, mnt: Path, workdir: Path) -> None:
        super().__init__("pypassthrough", mnt, workdir)
        self.backing = backing

    def command(self, debug: bool) -> list[str]:
        return [
            sys.executable,
            str(PYPASSTHROUGH),
            str(self.backing),
            str(self.root),
            *(["-o", "debug"] if debug else []),
        ]


class Resultsfs(FuseSide):
    """``resultsfs mount -f`` of ``store`` (a directory, or any store URL) on ``mnt``.

    ``name`` names the side and its pid and log files in ``workdir``, so that several mounts
    (one per backend, :mod:`backend_bench`) can share a work directory.

    The daemon's state directory (``RESULTSFS_STATE_DIR``: the verdicts kept across mounts,
    and the staging area of a SQL store) is in ``workdir``, so the bench leaves nothing in
    ``/var/lib/resultsfs``. By default every start gets an empty one, so that a fresh mount
    validates what it reads, as the first mount of a store does; with ``keep_verdicts`` every
    start uses the same one, so a mount finds the verdicts of the mounts before it.
    """

    def __init__(
        self,
        store: Path | str,
        mnt: Path,
        workdir: Path,
        extra: Sequence[str],
        name: str = "resultsfs",
        *,
        keep_verdicts: bool = False,
    ) -> None:
        super().__init__(name, mnt, workdir)
        self.store = store
        self.extra = list(extra)
        self.pid_file = workdir / f"{name}.pid"
        #: The daemon's own log (``--log-file``); the caller may point it elsewhere between starts.
        self.daemon_log = workdir / f"{name}.log"
        self.keep_verdicts = keep_verdicts
        self._starts = 0

    def state_dir(self) -> Path:
        """The state directory of the next (or current) start."""
        if self.keep_verdicts:
            return self.workdir / "state" / self.name
        return self.workdir / "state" / f"{self.name}-{self._starts}"

    def environment(self) -> dict[str, str]:
        return {**os.environ, "RESULTSFS_STATE_DIR": str(self.state_dir())}

    def start(self, debug: bool = False) -> None:
        self._starts += 1
        super().start(debug)

    def command(self, debug: bool) -> list[str]:
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return [
            sys.executable, "-m", "resultsfs", "mount", "-f", str(self.store), str(self.root),
            "--models", str(MODELS_FILE), "--pid-file", str(self.pid_file),
            "--log-file", str(self.daemon_log),
            *(["-o", "debug"] if debug else []), *self.extra,
        ]  # fmt: skip

    def unmount_command(self) -> list[str]:
        return [sys.executable, "-m", "resultsfs", "umount", str(self.root)]

    def ready(self) -> bool:
        # The pid file is written from FUSE init, once the kernel mount exists.
        return self.pid_file.exists() and _is_mounted(self.root)


class Watchdog:
    """Aborts the FUSE connections and kills the daemons once ``seconds`` have passed."""

    def __init__(self, seconds: float, sides: Sequence[Side]) -> None:
        self.fired = False
        self.seconds = seconds
        self.started = time.monotonic()
        self._sides = sides
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        print(f"\nbench: deadline of {self.seconds:.0f}s passed; aborting the mounts", file=sys.stderr)
        for side in self._sides:
            side.abort()

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def check(self) -> None:
        """Raise once the deadline has passed: called between workloads, so that an overrun stops
        the run also where no mount was there to abort."""
        if self.fired or time.monotonic() - self.started > self.seconds:
            raise RuntimeError(f"the run overran its deadline of {self.seconds:.0f}s")


# --------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    key: str
    title: str
    unit: str
    count: int
    run: Callable[[Side], None]
    #: Untimed set-up before each run (not counted either).
    prepare: Callable[[Side], None] | None = None
    #: Untimed check after each run that it did what it should (not counted either).
    verify: Callable[[Side], None] | None = None
    #: The same operation through the Python API, timed in the same rotation as the sides.
    api: Callable[[], None] | None = None
    #: Untimed check after the API run.
    api_verify: Callable[[], None] | None = None


class Workloads:
    """The workloads over one tree of result files, with each side's paths computed once.

    ``api_store`` is a directory store holding the same results (a copy): the commit rows
    write the same bytes onto the same IDs there with ``ResultStore.set_bytes``.
    """

    def __init__(self, rels: list[str], config: Config, tmp: Path, api_store: Path) -> None:
        self.rels = rels
        self.config = config
        self.tmp = tmp
        self._paths: dict[str, list[str]] = {}
        commits = config.commits
        # Three disjoint sets of existing results (config.commits <= (files - 1) // 3), none the
        # last one, the needle of the grep row.
        self.cp_targets = rels[0 : 2 * commits : 2]
        self.mv_targets = rels[1 : 2 * commits : 2]
        self.write_targets = rels[2 * commits : 3 * commits]
        self.write_ids = [rel.removesuffix(".json") for rel in self.write_targets]
        needle_rel = rels[-1]
        self.needle = f'"run": "{Path(needle_rel).stem}"'
        self.payload = tmp / "payload.json"
        self._raw = b""
        self.api_store_dir = api_store
        self.api_store = ResultStore(api_store, create_if_missing=False)

    def close(self) -> None:
        self.api_store.close()

    def paths(self, side: Side) -> list[str]:
        if side.name not in self._paths:
            self._paths[side.name] = [str(side.root / rel) for rel in self.rels]
        return self._paths[side.name]

    def set_payload(self, raw: bytes) -> None:
        """What the commit workloads write (a valid envelope, different per round)."""
        self.payload.write_bytes(raw)
        self._raw = raw

    def all(self) -> list[Workload]:
        n, k = len(self.rels), len(self.cp_targets)
        return [
            # The cold read must come first: it is the first thing a fresh mount serves.
            Workload("read-cold", "open+read+close, cold (fresh mount)", "files", n, self._read),
            Workload("read-warm", "open+read+close, warm (again)", "files", n, self._read),
            Workload("stat", "lstat every file", "files", n, lambda s: _stat_all(self.paths(s))),
            Workload("find", "find -name '*.json'", "files", n, self._find),
            Workload("ls-lR", "ls -lR", "files", n, self._ls),
            Workload("grep", "grep -r (one match)", "files", n, self._grep),
            Workload("getfattr", "getfattr -d on every file", "files", n, self._getfattr),
            Workload("read-1p", "read, 1 reader process", "files", n, lambda s: self._parallel(s, 1)),
            Workload("read-2p", "read, 2 reader processes", "files", n, lambda s: self._parallel(s, 2)),
            Workload("read-4p", "read, 4 reader processes", "files", n, lambda s: self._parallel(s, 4)),
            Workload(
                "commit-write",
                "commit: open+write+close, one writer",
                "commits",
                k,
                self._write,
                verify=lambda s: self._check_committed(s, self.write_targets),
                api=self._api_write,
                api_verify=self._check_api_committed,
            ),
            Workload(
                "commit-cp",
                "commit: cp onto a result (a cp each)",
                "commits",
                k,
                self._cp,
                verify=lambda s: self._check_committed(s, self.cp_targets),
            ),
            Workload(
                "commit-mv",
                "commit: mv scratch file (an mv each)",
                "commits",
                k,
                self._mv,
                prepare=self._scratch,
                verify=lambda s: self._check_committed(s, self.mv_targets),
            ),
        ]

    def _write(self, side: Side) -> None:
        """One long-lived writer (this process): open(O_TRUNC), write the envelope, close.

        On resultsfs the close commits: validation, then a durable atomic replace.
        """
        raw = self._raw
        for rel in self.write_targets:
            fd = os.open(side.root / rel, os.O_WRONLY | os.O_TRUNC)
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)

    def _api_write(self) -> None:
        """The same bytes onto the same IDs with the Python API (durable, the default)."""
        raw, store = self._raw, self.api_store
        for rid in self.write_ids:
            store.set_bytes(rid, raw)

    def _check_api_committed(self) -> None:
        for rel in (self.write_targets[0], self.write_targets[-1]):
            if (self.api_store_dir / rel).read_bytes() != self._raw:
                raise RuntimeError(f"api: {rel} does not hold what set_bytes just stored")

    def _read(self, side: Side) -> None:
        _read_all(self.paths(side))

    def _parallel(self, side: Side, readers: int) -> None:
        _parallel_read(self.paths(side), readers)

    def _find(self, side: Side) -> None:
        out = _run_tool(["find", str(side.root), "-name", "*.json"], self.config.tool_timeout, capture=True)
        if (found := out.count("\n")) != len(self.rels):
            raise RuntimeError(f"{side.name}: find listed {found} files, expected {len(self.rels)}")

    def _ls(self, side: Side) -> None:
        _run_tool(["ls", "-lR", str(side.root)], self.config.tool_timeout)

    def _grep(self, side: Side) -> None:
        out = _run_tool(
            ["grep", "-r", "-l", "-F", "-e", self.needle, str(side.root)],
            self.config.tool_timeout,
            capture=True,
        )
        if out.count("\n") != 1:
            raise RuntimeError(f"{side.name}: grep found {out!r}, expected one file")

    def _getfattr(self, side: Side) -> None:
        names = "\0".join(self.paths(side)).encode()
        _run_tool(
            ["xargs", "-0", "getfattr", "-d", "--absolute-names", "--"], self.config.tool_timeout, names
        )

    def _pairs(self, pairs: list[tuple[Path, Path]]) -> bytes:
        return "\0".join(f"{a}\0{b}" for a, b in pairs).encode()

    def _cp(self, side: Side) -> None:
        pairs = [(self.payload, side.root / rel) for rel in self.cp_targets]
        _run_tool(["xargs", "-0", "-n2", "cp", "--"], self.config.tool_timeout, self._pairs(pairs))

    def _scratch_name(self, side: Side, rel: str) -> Path:
        target = side.root / rel
        return target.parent / f".bench-scratch-{target.stem}"

    def _scratch(self, side: Side) -> None:
        raw = self.payload.read_bytes()
        for rel in self.mv_targets:
            self._scratch_name(side, rel).write_bytes(raw)

    def _mv(self, side: Side) -> None:
        pairs = [(self._scratch_name(side, rel), side.root / rel) for rel in self.mv_targets]
        _run_tool(["xargs", "-0", "-n2", "mv", "--"], self.config.tool_timeout, self._pairs(pairs))

    def _check_committed(self, side: Side, targets: Sequence[str]) -> None:
        expected = self.payload.read_bytes()
        for rel in (targets[0], targets[-1]):
            if (side.root / rel).read_bytes() != expected:
                raise RuntimeError(f"{side.name}: {rel} does not hold what was just committed")
        left = [rel for rel in targets if self._scratch_name(side, rel).exists()]
        if left:
            raise RuntimeError(f"{side.name}: {len(left)} scratch files left after mv, e.g. {left[0]}")

    def spawn_floor(self) -> float:
        """Pairs per second of ``xargs -n2 true``: the process start-up cost in the commit rows."""
        pairs = [(self.payload, self.tmp / rel) for rel in self.cp_targets]
        started = time.perf_counter()
        _run_tool(["xargs", "-0", "-n2", "true"], self.config.tool_timeout, self._pairs(pairs))
        return len(pairs) / (time.perf_counter() - started)


# --------------------------------------------------------------------------- the run


def make_store(path: Path, count: int) -> list[str]:
    """``count`` results in 3 x 10 leaf directories; the relative paths of their files."""
    store = FileBackend(path, durable=False)
    ids = [f"sweep{i % 3}/lr{i % 10}/r{i:06d}" for i in range(count)]
    for i, rid in enumerate(ids):
        result = MountBenchResult(run=f"r{i:06d}", loss=round(1 / (i + 1), 6), accuracy=0.5, history=[])
        store.set(rid, result)
    store.close()
    return [f"{rid}.json" for rid in ids]


def make_payload(workdir: Path, tag: int) -> bytes:
    """A canonical envelope (as resultsfs would store it), different for every ``tag``."""
    store_dir = workdir / f"payload-store-{tag}"
    store = FileBackend(store_dir, durable=False)
    store.set("p", MountBenchResult(run=f"commit{tag}", loss=tag + 0.5, accuracy=0.25, history=[]))
    store.close()
    raw = (store_dir / "p.json").read_bytes()
    shutil.rmtree(store_dir)
    return raw


def _rotated(items: Sequence[Side], by: int) -> list[Side]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def _cpu_delta(before: tuple[float, float], after: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def _timed_run(side: Side, workload: Workload, result: WorkloadResult) -> None:
    """``workload`` once on ``side``: its seconds, the daemon's and the client's CPU seconds."""
    if workload.prepare is not None:
        workload.prepare(side)
    daemon_before = _cpu_seconds(side.pid)
    client_before = _client_cpu_seconds()
    started = time.perf_counter()
    workload.run(side)
    elapsed = time.perf_counter() - started
    client_after = _client_cpu_seconds()
    daemon_after = _cpu_seconds(side.pid)
    result.seconds[side.name].append(elapsed)
    result.client_cpu.setdefault(side.name, []).append(_cpu_delta(client_before, client_after))
    if daemon_before is not None and daemon_after is not None:
        result.daemon_cpu.setdefault(side.name, []).append(_cpu_delta(daemon_before, daemon_after))
    if workload.verify is not None:
        workload.verify(side)


def _timed_round(
    number: int,
    sides: Sequence[Side],
    workloads: Workloads,
    results: list[WorkloadResult],
    watchdog: Watchdog,
) -> dict[str, int | None]:
    """One round on fresh mounts; returns each daemon's VmHWM afterwards."""
    for side in sides:
        side.start()
    try:
        for workload, result in zip(workloads.all(), results, strict=True):
            watchdog.check()
            turns: list[Side | None] = list(_rotated(sides, number))
            if workload.api is not None:
                # The API (None) takes a turn too: last in even rounds, first in odd ones.
                turns.insert(0 if number % 2 else len(turns), None)
            for turn in turns:
                if turn is not None:
                    _timed_run(turn, workload, result)
                    continue
                assert workload.api is not None
                started = time.perf_counter()
                workload.api()
                result.api_seconds.append(time.perf_counter() - started)
                if workload.api_verify is not None:
                    workload.api_verify()
        return {side.name: _vm_hwm_kib(side.pid) for side in sides if isinstance(side, FuseSide)}
    finally:
        for side in sides:
            side.stop()


def _counting_pass(
    sides: Sequence[FuseSide], workloads: Workloads, results: list[WorkloadResult], watchdog: Watchdog
) -> None:
    """Each workload once per daemon under ``-o debug``; untimed."""
    for side in sides:
        side.start(debug=True)
        try:
            counter = side.counter
            assert counter is not None
            for workload, result in zip(workloads.all(), results, strict=True):
                watchdog.check()
                if workload.prepare is not None:
                    workload.prepare(side)
                counter.wait_quiet()
                _mark(side.root, "begin", workload.key)
                workload.run(side)
                counter.wait_quiet()
                _mark(side.root, "end", workload.key)
                counter.wait_closed(workload.key)
                if workload.verify is not None:
                    workload.verify(side)
                result.requests[side.name] = dict(counter.counts[workload.key])
                result.errors[side.name] = {op: n for op, n in counter.errors[workload.key].items() if n}
        finally:
            side.stop()


def _host() -> dict[str, Any]:
    def output(*command: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
            return done.stdout.strip()
        return ""

    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "libfuse": output("pkg-config", "--modversion", "fuse3"),
        "git": output("git", "-C", str(BENCH), "describe", "--always", "--dirty"),
    }


def _cleanup(tmp: Path, sides: Sequence[Side]) -> None:
    """Stop every side, then remove ``tmp``, never while anything is mounted below it."""
    for side in sides:
        with contextlib.suppress(Exception):
            side.stop()
    for point in _mounted_under(tmp):
        _lazy_unmount(point)
    if _mounted_under(tmp):
        print(f"bench: {tmp} still has mounts below it; left in place", file=sys.stderr)
        return
    shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """SIGTERM ends the run through the ``finally`` blocks (unmounting), as Ctrl-C does."""

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prepare(tmp: Path, count: int) -> tuple[list[str], dict[str, Any]]:
    """The store and its copies in ``tmp``; the result files' relative paths and a summary."""
    store = tmp / "store"
    rels = make_store(store, count)
    plain = tmp / "directory"
    shutil.copytree(store, plain, ignore=shutil.ignore_patterns(META_DIR))
    shutil.copytree(plain, tmp / "passthrough-backing")
    shutil.copytree(plain, tmp / "pypassthrough-backing")
    shutil.copytree(store, tmp / "resultsfs-store")
    shutil.copytree(store, tmp / "api-store")
    shutil.rmtree(store)
    sizes = [(plain / rel).stat().st_size for rel in rels]
    summary = {
        "results": len(rels),
        "leaf_directories": len({str(Path(rel).parent) for rel in rels}),
        "mean_bytes": statistics.mean(sizes),
    }
    return rels, summary


def run(config: Config, progress: Callable[[str], None] = lambda _: None) -> Report:
    """Build the store, measure the API, time every workload on every side, count requests."""
    if config.files < 10:
        raise SystemExit("the benchmark needs at least 10 files")
    # Three disjoint sets of commit targets, none of them the last result (grep looks for it).
    config.commits = max(1, min(config.commits, (config.files - 1) // 3))
    tmp = Path(tempfile.mkdtemp(prefix="resultsfs-fuse-bench-"))
    plain = tmp / "directory"
    sides: list[Side] = [
        Side("directory", plain),
        Passthrough(tmp / "passthrough", tmp / "passthrough-backing", tmp / "passthrough-mnt", tmp),
        PyPassthrough(tmp / "pypassthrough-backing", tmp / "pypassthrough-mnt", tmp),
        Resultsfs(tmp / "resultsfs-store", tmp / "resultsfs-mnt", tmp, config.mount_args),
    ]
    rss: dict[str, list[int]] = {name: [] for name in FUSE_SIDES}
    floor: list[float] = []
    with _terminate_cleanly(), Watchdog(config.effective_deadline(), sides) as watchdog:
        try:
            build_passthrough(tmp)
            progress(f"building a store of {config.files} results")
            rels, summary = _prepare(tmp, config.files)
            progress(f"Python API: {config.api_ops} operations x {config.rounds} rounds")
            api = store_bench.measure(
                config.api_ops, config.rounds, (tmp / "resultsfs-store", plain, len(rels))
            )
            workloads = Workloads(rels, config, tmp, tmp / "api-store")
            try:
                results = [WorkloadResult(w.key, w.title, w.unit, w.count) for w in workloads.all()]
                for number in range(config.rounds):
                    progress(f"timed round {number + 1}/{config.rounds}")
                    workloads.set_payload(make_payload(tmp, number))
                    peaks = _timed_round(number, sides, workloads, results, watchdog)
                    for name, kib in peaks.items():
                        if kib is not None:
                            rss[name].append(kib)
                    floor.append(workloads.spawn_floor())
                if config.count_requests:
                    progress("counting FUSE requests (-o debug, untimed)")
                    workloads.set_payload(make_payload(tmp, config.rounds))
                    fuse_sides = [side for side in sides if isinstance(side, FuseSide)]
                    _counting_pass(fuse_sides, workloads, results, watchdog)
            finally:
                workloads.close()
            return Report(config, summary, results, api, rss, floor, _host())
        except BaseException:
            watchdog.check()  # an overrun shows as such, not as the ENOTCONN it caused
            raise
        finally:
            _cleanup(tmp, sides)


# --------------------------------------------------------------------------- printing


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _fmt_per_file(value: float) -> str:
    """Requests per file: two decimals, or enough to show a rare request at all."""
    return f"{value:.2f}" if value >= 0.01 or value == 0 else f"{value:.4f}"


def print_report(report: Report, out: IO[str] = sys.stdout) -> None:
    cfg, store = report.config, report.store
    print(
        f"\nFilesystem: {store['results']} results (mean {store['mean_bytes']:.0f} B) in "
        f"{store['leaf_directories']} leaf directories; per second, median of {cfg.rounds} rounds",
        file=out,
    )
    if cfg.mount_args:
        print(f"resultsfs mounted with: {' '.join(cfg.mount_args)}", file=out)
    names = ("directory", "C pt", "Python pt", "resultsfs")
    header = f"{'workload':<40} {'unit':>7} " + " ".join(f"{name:>11}" for name in names)
    print(f"{header} {'rfs/pt':>7} {'py/pt':>7} {'rfs/py':>7} {'rfs/dir':>7}", file=out)
    for w in report.workloads:
        rates = {side: w.rate(side) for side in SIDES}
        cells = " ".join(f"{_fmt_rate(rates[side]):>11}" for side in SIDES)
        ratios = (
            rates["resultsfs"] / rates["passthrough"],
            rates["pypassthrough"] / rates["passthrough"],
            rates["resultsfs"] / rates["pypassthrough"],
            rates["resultsfs"] / rates["directory"],
        )
        print(f"{w.title:<40} {w.unit:>7} {cells} " + " ".join(f"{r:>7.3f}" for r in ratios), file=out)
    print(
        "(C pt: bench/passthrough.c; Python pt: the same callbacks in Python on resultsfs's binding,\n"
        " bench/pypassthrough.py. Ratios below 1: the first is slower. 'cold' means a fresh mount; the\n"
        " backing page cache is warm on every side, so the directory's cold and warm rows measure the same)",
        file=out,
    )
    if report.spawn_floor:
        print(
            f"(the cp and mv rows start one cp/mv process per commit: xargs -n2 true alone runs "
            f"{_fmt_rate(statistics.median(report.spawn_floor))}/s here;\n"
            " the open+write+close row is one long-lived process; on the directory and the passthrough\n"
            " every commit row is a plain write, on resultsfs a validated, durable, atomic commit)",
            file=out,
        )
    for name, values in report.rss_kib.items():
        if values:
            print(
                f"peak RSS (VmHWM) of the {name} daemon after the workloads: {max(values) / 1024:.1f} MiB",
                file=out,
            )
    print_commits(report, out)
    print_cpu(report, out)

    if any(w.requests for w in report.workloads):
        print("\nFUSE requests per file (or per commit), by opcode; untimed -o debug pass", file=out)
        print(
            "(LOOKUP/GETATTR depend on the 1 s entry/attr timeouts, which expire more often in this\n"
            " slower pass than in the timed one; 'err' counts the replies that were errors)",
            file=out,
        )
        for w in report.workloads:
            print(f"{w.title}", file=out)
            for side in FUSE_SIDES:
                per_file = w.per_file(side)
                errors = w.errors.get(side, {})
                parts = []
                for op, n in per_file.items():
                    err = errors.get(op, 0) / w.count
                    parts.append(f"{op} {_fmt_per_file(n)}" + (f" ({_fmt_per_file(err)} err)" if err else ""))
                total = sum(per_file.values())
                print(f"  {side:<14} {total:6.2f}  {', '.join(parts)}", file=out)

    print("\nPython API: resultsfs vs a results_manager-style baseline; median of rounds", file=out)
    print(f"{'operation':<40} {'unit':>5} {'resultsfs':>11} {'baseline':>11} {'ratio':>7}", file=out)
    for row in report.api:
        print(
            f"{row.operation:<40} {row.unit:>5} {_fmt_rate(row.ours_median):>11} "
            f"{_fmt_rate(row.base_median):>11} {row.ours_median / row.base_median:>7.3f}",
            file=out,
        )


def print_commits(report: Report, out: IO[str] = sys.stdout) -> None:
    """Commits through the mount against the Python API, at the same durability."""
    for w in report.workloads:
        if not w.api_seconds:
            continue
        mount, api = w.rate("resultsfs"), w.api_rate()
        print(
            f"\nCommits at the same durability (fsync of the file and of its directory): {w.count} commits\n"
            f"onto existing results by one long-lived writer, median of {len(w.api_seconds)} rounds",
            file=out,
        )
        lines = (
            ("writer", "commits/s"),
            ("through the mount: open(O_TRUNC)+write+close of the envelope", f"{mount:,.0f}"),
            ("ResultStore.set_bytes of the same bytes onto the same IDs", f"{api:,.0f}"),
            ("ratio mount/API (issue 9 target: >= 0.5)", f"{mount / api:.3f}x"),
        )
        for what, value in lines:
            print(f"{what:<64} {value:>10}", file=out)
        rounds = ", ".join(f"{ratio:.2f}" for ratio in w.api_ratios())
        print(f"(the ratio in each round: {rounds}; durable commits wait for the disk's fsync)", file=out)


def _fmt_cpu(value: tuple[float, float] | None) -> str:
    return "-" if value is None else f"{value[0]:.0f}+{value[1]:.0f}"


def print_cpu(report: Report, out: IO[str] = sys.stdout) -> None:
    """CPU microseconds per file or commit: each daemon, and the client on each side."""
    if not any(w.client_cpu for w in report.workloads):
        return
    print(
        "\nCPU per file (or commit), microseconds user+system, median of rounds (daemons: /proc/PID/stat;\n"
        " client: this process and the tools and readers it ran, getrusage; clock ticks of "
        f"{1e6 / os.sysconf('SC_CLK_TCK'):,.0f} us)",
        file=out,
    )
    columns = (
        ("dir client", "directory", "client"),
        ("pt daemon", "passthrough", "daemon"),
        ("pt client", "passthrough", "client"),
        ("py daemon", "pypassthrough", "daemon"),
        ("py client", "pypassthrough", "client"),
        ("rfs daemon", "resultsfs", "daemon"),
        ("rfs client", "resultsfs", "client"),
    )
    print(f"{'workload':<40} " + " ".join(f"{title:>11}" for title, _, _ in columns), file=out)
    for w in report.workloads:
        cells = []
        for _, side, who in columns:
            samples = (w.daemon_cpu if who == "daemon" else w.client_cpu).get(side)
            cells.append(f"{_fmt_cpu(w.cpu_per_unit(samples) if samples else None):>11}")
        print(f"{w.title:<40} " + " ".join(cells), file=out)


def write_json(report: Report, directory: Path) -> Path:
    """``report`` as ``directory/<timestamp>.json``; the path written."""
    return save_json(report.to_json(), directory)


def save_json(data: dict[str, Any], directory: Path) -> Path:
    """``data`` as ``directory/<timestamp>.json`` (run.py adds the ``backends`` section)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def host_json() -> dict[str, Any]:
    """The ``created`` and ``host`` keys of a report, for a run without the filesystem section."""
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": _host()}
