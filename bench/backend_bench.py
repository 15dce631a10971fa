"""The three backends (directory, SQLite, PostgreSQL) side by side: Python API and mount cold reads.

What: each backend holds the same ``count`` results (``sweep/lr<i % 10>/seed<i>``, the IDs of
:mod:`store_bench`, ~400-byte envelopes). In every round each operation runs on every backend in
turn, the order rotated per round so that machine noise and cache effects hit them alike:

* ``set`` with ``durable=True`` (the default) and with ``durable=False``, each overwriting an
  existing result (the store is filled once, untimed, before round 1, so every round measures
  the same thing);
* ``get`` and ``exists`` of every result, and one ``list_ids`` of the whole store;
* a cold read through the mount: ``resultsfs mount`` of that backend's store on a fresh mount
  point, with an empty state directory in the run's temporary directory (no verdicts kept
  from the round before, and a SQL store's staging area removed with the rest), then
  open+read+close of every result file by one reader, as ``cat`` would.

The report keeps every round's rate and prints medians, with each SQL backend's ratio to the
directory backend.

Why: the filesystem table of :mod:`fuse_bench` measures the directory backend only; which
backend a user picks changes both the API's and the mount's speed, and the choice is
only informed if the three are measured by the same code, in the same run, on the same data.

PostgreSQL: the server is a throwaway cluster of ``tests/pgserver.py`` (Debian's
``postgresql``, as root, in /tmp) started by this module and always stopped at the end. The
tests run it with ``fsync=off``; here it runs with ``fsync=on`` (the server's default) so that
``set (durable)`` means on disk for all three backends; the settings in force are read back
from the server and reported. Without the server binaries (or without root) the PostgreSQL
column is skipped with the reason, and the rest still runs.

Robustness: every mount is stopped in ``finally`` and the temporary directory is removed only
once nothing is mounted below it (:func:`fuse_bench._cleanup`); a watchdog aborts the mounts
if the run overruns its deadline; SIGTERM unwinds through the same ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import fuse_bench
from bench_models import MountBenchResult

from resultsfs import ResultsBackend, SetBehavior, open_backend

TESTS = Path(__file__).resolve().parent.parent / "tests"
BACKENDS = ("directory", "sqlite", "postgresql")
#: Headings of the ratio columns of the printed table.
RATIO_HEADINGS = {"sqlite": "sqlite/dir", "postgresql": "pg/dir"}

T = TypeVar("T")


# --------------------------------------------------------------------------- the report


@dataclass
class Row:
    """One operation: every round's rate per backend (units per second)."""

    key: str
    title: str
    unit: str
    count: int
    rates: dict[str, list[float]] = field(default_factory=dict)

    def median(self, backend: str) -> float | None:
        """Median rate over the rounds; None if the backend was not measured."""
        values = self.rates.get(backend)
        return statistics.median(values) if values else None

    def ratio(self, backend: str) -> float | None:
        """This backend's median over the directory backend's; None if either is missing."""
        ours, base = self.median(backend), self.median("directory")
        return ours / base if ours is not None and base else None


@dataclass
class Report:
    """What :func:`run` measured, and about what (store URLs kinds, server settings, skips)."""

    count: int
    rounds: int
    mount_args: tuple[str, ...]
    rows: list[Row]
    #: Backend name -> a line saying what was measured (for the header and the JSON).
    backends: dict[str, str]
    #: Backend name -> why it was not measured.
    skipped: dict[str, str]
    #: The PostgreSQL server's settings that bear on the figures (fsync, synchronous_commit...).
    postgres_settings: dict[str, str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The JSON section ``backends`` of ``bench/results/<timestamp>.json``."""
        return {
            "results": self.count,
            "rounds": self.rounds,
            "mount_args": list(self.mount_args),
            "backends": self.backends,
            "skipped": self.skipped,
            "postgres_settings": self.postgres_settings,
            "seconds": round(self.seconds, 1),
            "rows": [
                {
                    "operation": row.key,
                    "title": row.title,
                    "unit": row.unit,
                    "count": row.count,
                    "per_second": row.rates,
                    "median": {name: row.median(name) for name in row.rates},
                    "ratio_to_directory": {
                        name: row.ratio(name) for name in row.rates if name != "directory"
                    },
                }
                for row in self.rows
            ],
        }


# --------------------------------------------------------------------------- PostgreSQL


def _pgserver() -> Any:
    """``tests/pgserver.py`` as a module (the tests directory is not a package)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import pgserver  # noqa: PLC0415 - only once a PostgreSQL column is wanted

    return pgserver


def start_postgres() -> Any:
    """A running ``tests/pgserver.PostgresServer`` with fsync on; the caller must ``stop()`` it.

    The tests start the cluster with ``-c fsync=off`` (speed; their data is thrown away). A
    benchmark of durable commits must not, so the start command is rewritten; if that ever
    stops matching, the report shows ``fsync=off`` (read back from the server) and a warning
    is printed. A server that failed half-way through starting is stopped before raising.
    """
    pgserver = _pgserver()

    class DurableServer(pgserver.PostgresServer):  # type: ignore[misc,name-defined]
        """The tests' throwaway cluster, but with fsync on."""

        def __init__(self) -> None:
            try:
                super().__init__()
            except BaseException:
                if hasattr(self, "root"):  # initdb or pg_ctl ran: stop and remove what exists
                    self.stop()
                raise

        def _as_server(self, program: str, *args: str) -> None:
            if program == "pg_ctl" and "start" in args:
                args = tuple(arg.replace("fsync=off", "fsync=on") for arg in args)
            super()._as_server(program, *args)

    return DurableServer()


def postgres_settings(server: Any) -> dict[str, str]:
    """The server settings that decide what a durable commit costs, read back from the server."""
    import psycopg  # noqa: PLC0415 - a dependency of resultsfs, needed only here

    names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "full_page_writes")
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


# --------------------------------------------------------------------------- one backend


class Target:
    """One backend under test: its store URL, a durable and a non-durable API handle, its mount."""

    def __init__(self, name: str, url: str, workdir: Path, mount_args: Sequence[str]) -> None:
        self.name = name
        self.url = url
        self.durable: ResultsBackend = open_backend(url)
        self.fast: ResultsBackend = open_backend(url, durable=False)
        workdir.mkdir(parents=True, exist_ok=True)
        self.mount = fuse_bench.Resultsfs(url, workdir / "mnt", workdir, mount_args, name=f"resultsfs-{name}")
        self._paths: list[str] | None = None

    def paths(self, ids: Sequence[str]) -> list[str]:
        """The result files of ``ids`` under the mount point (computed once)."""
        if self._paths is None:
            self._paths = [str(self.mount.root / f"{rid}.json") for rid in ids]
        return self._paths

    def close(self) -> None:
        """Unmount (if mounted) and close both API handles; never raises."""
        with contextlib.suppress(Exception):
            self.mount.stop()
        for handle in (self.durable, self.fast):
            with contextlib.suppress(Exception):
                handle.close()


# --------------------------------------------------------------------------- timing


def _ids(count: int) -> list[str]:
    return [f"sweep/lr{i % 10}/seed{i}" for i in range(count)]


def _results(count: int) -> list[MountBenchResult]:
    """The data of :func:`store_bench._result`, as the model the mount's ``--models`` file defines."""
    return [
        MountBenchResult(run=f"run{i}", loss=1 / (i + 1), accuracy=i / (i + 1), history=[i * 0.1] * 20)
        for i in range(count)
    ]


def _rate(count: int, fn: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - started)


def _rotated(items: Sequence[T], by: int) -> list[T]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def _list_rate(target: Target, expected: int) -> float:
    started = time.perf_counter()
    found = len(target.durable.list_ids())
    elapsed = time.perf_counter() - started
    if found != expected:
        raise RuntimeError(f"{target.name}: list_ids found {found} IDs, expected {expected}")
    return found / elapsed


def _cold_read_rate(target: Target, ids: Sequence[str], results: Sequence[MountBenchResult]) -> float:
    """Files per second of one reader over a fresh mount; checks two files' content afterwards."""
    target.mount.start()
    try:
        paths = target.paths(ids)
        started = time.perf_counter()
        fuse_bench._read_all(paths)
        elapsed = time.perf_counter() - started
        for i in (0, len(ids) - 1):
            data = json.loads(Path(paths[i]).read_bytes())
            if f'"{results[i].run}"' not in json.dumps(data):
                raise RuntimeError(f"{target.name}: {paths[i]} does not hold {results[i].run}")
    finally:
        target.mount.stop()
    return len(paths) / elapsed


def _round(
    number: int,
    targets: Sequence[Target],
    rows: dict[str, Row],
    ids: Sequence[str],
    results: Sequence[MountBenchResult],
    watchdog: fuse_bench.Watchdog,
) -> None:
    """Every operation on every backend once, in an order rotated by ``number``."""
    count = len(ids)
    order = _rotated(targets, number)
    overwrite = SetBehavior.OVERWRITE
    operations: list[tuple[str, Callable[[Target], float]]] = [
        ("set", lambda t: _rate(count, lambda i: t.durable.set(ids[i], results[i], overwrite))),
        ("set_nd", lambda t: _rate(count, lambda i: t.fast.set(ids[i], results[i], overwrite))),
        ("get", lambda t: _rate(count, lambda i: t.durable.get(ids[i]))),
        ("exists", lambda t: _rate(count, lambda i: t.durable.exists(ids[i]))),
        ("list_ids", lambda t: _list_rate(t, count)),
        ("read_cold", lambda t: _cold_read_rate(t, ids, results)),
    ]
    for key, operation in operations:
        for target in order:
            watchdog.check()
            rows[key].rates.setdefault(target.name, []).append(operation(target))


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def _postgres(skipped: dict[str, str], progress: Callable[[str], None]) -> Iterator[Any]:
    """A durable PostgreSQL server for the block, or None (with the reason in ``skipped``)."""
    try:
        server = start_postgres()
    except Exception as exc:  # no binaries, not root, initdb failed: the other columns still run
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        skipped["postgresql"] = reason
        progress(f"PostgreSQL skipped: {reason}")
        yield None
        return
    try:
        yield server
    finally:
        try:
            server.stop()
        except Exception as exc:  # report, but do not hide the error that ended the block
            print(f"bench: stopping the PostgreSQL server in {server.root} failed: {exc}", file=sys.stderr)


#: What each backend's column measures (PostgreSQL's line is completed from the server).
DESCRIPTIONS = {
    "directory": "a directory (FileBackend); durable: fsync of the file and of its directory",
    "sqlite": "SQLite in WAL mode; durable: synchronous=FULL, else NORMAL",
}


def _targets(
    tmp: Path, server: Any, mount_args: Sequence[str], targets: list[Target], mounts: list[fuse_bench.Side]
) -> tuple[dict[str, str], dict[str, str]]:
    """Open each backend's store into ``targets`` (its mount into ``mounts``, the watchdog's list).

    Returns what each column measures and the PostgreSQL server's settings (empty without it).
    """
    urls = {"directory": str(tmp / "directory" / "store"), "sqlite": f"sqlite://{tmp}/sqlite/store.db"}
    described = dict(DESCRIPTIONS)
    settings: dict[str, str] = {}
    if server is not None:
        settings = postgres_settings(server)
        urls["postgresql"] = server.url()
        described["postgresql"] = (
            f"PostgreSQL {settings['server_version']} over a unix socket, fsync={settings['fsync']}, "
            f"synchronous_commit={settings['synchronous_commit']}; durable=False: synchronous_commit=off"
        )
        if settings["fsync"] != "on":
            print(
                "bench: the PostgreSQL server runs with fsync=off; its durable sets are not", file=sys.stderr
            )
    for name in BACKENDS:
        if name in urls:
            targets.append(Target(name, urls[name], tmp / name, mount_args))
            mounts.append(targets[-1].mount)
    return described, settings


def run(
    count: int,
    rounds: int = 3,
    mount_args: Sequence[str] = (),
    deadline: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Fill each backend with ``count`` results, then time ``rounds`` interleaved rounds."""
    if count < 2:
        raise SystemExit("the backend benchmark needs at least 2 results")
    rounds = max(3, rounds)
    started = time.monotonic()
    ids, results = _ids(count), _results(count)
    rows = {
        "set": Row("set", "set (durable)", "ops", count),
        "set_nd": Row("set-nondurable", "set (durable=False)", "ops", count),
        "get": Row("get", "get", "ops", count),
        "exists": Row("exists", "exists", "ops", count),
        "list_ids": Row("list_ids", f"list_ids ({count} IDs)", "IDs", count),
        "read_cold": Row("read-cold", "mount: open+read+close, cold, 1 reader", "files", count),
    }
    skipped: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="resultsfs-backend-bench-"))
    targets: list[Target] = []
    #: The watchdog keeps this list (not a copy): each mount joins it as its target is opened.
    mounts: list[fuse_bench.Side] = []
    seconds = deadline if deadline is not None else 300 + count * 0.06 * rounds
    with fuse_bench._terminate_cleanly(), fuse_bench.Watchdog(seconds, mounts) as watchdog:
        try:
            progress("per-backend: starting a PostgreSQL server (fsync on)")
            with _postgres(skipped, progress) as server:
                try:
                    described, settings = _targets(tmp, server, mount_args, targets, mounts)
                    progress(f"per-backend: filling {len(targets)} stores with {count} results (untimed)")
                    for target in targets:
                        for rid, result in zip(ids, results, strict=True):
                            target.fast.set(rid, result, SetBehavior.OVERWRITE)
                    for number in range(rounds):
                        progress(f"per-backend: round {number + 1}/{rounds}")
                        _round(number, targets, rows, ids, results, watchdog)
                finally:
                    # Before the server stops: the mounts and the pools hold connections to it.
                    for target in targets:
                        target.close()
        except BaseException:
            watchdog.check()  # an overrun shows as such, not as the ENOTCONN it caused
            raise
        finally:
            fuse_bench._cleanup(tmp, mounts)
    return Report(
        count,
        rounds,
        tuple(mount_args),
        list(rows.values()),
        {name: described[name] for name in BACKENDS if name in described},
        skipped,
        settings,
        time.monotonic() - started,
    )


# --------------------------------------------------------------------------- printing


def print_report(report: Report, out: IO[str] = sys.stdout) -> None:
    """The per-backend table: median rates per backend and the SQL backends' ratios to the directory."""
    names = [name for name in BACKENDS if name not in report.skipped]
    ratios = [name for name in names if name != "directory"]
    print(
        f"\nPer backend: {report.count} results, per second, median of {report.rounds} interleaved rounds",
        file=out,
    )
    header = f"{'operation':<40} {'unit':>5} " + " ".join(f"{n:>11}" for n in names)
    print(header + "".join(f" {RATIO_HEADINGS[n]:>10}" for n in ratios), file=out)
    for row in report.rows:
        cells = []
        for name in names:
            value = row.median(name)
            cells.append(f"{fuse_bench._fmt_rate(value) if value is not None else '-':>11}")
        line = f"{row.title:<40} {row.unit:>5} " + " ".join(cells)
        for name in ratios:
            ratio = row.ratio(name)
            line += f" {ratio:>10.3f}" if ratio is not None else f" {'-':>10}"
        print(line, file=out)
    print("(ratios below 1: slower than the directory backend; set overwrites an existing result;", file=out)
    print(" the mount row starts a fresh `resultsfs mount` of that backend's store per round)", file=out)
    for name, what in report.backends.items():
        print(f"  {name:<11} {what}", file=out)
    for name, reason in report.skipped.items():
        print(f"  {name:<11} SKIPPED: {reason}", file=out)
