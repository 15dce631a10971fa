"""A large store: listing, ``resultsfs check``, the daemon's memory, and a remount, side by side.

What, on one directory store of N results (the layout of :func:`fuse_bench.make_store`; 100,000
with ``BENCH_N=100000`` or ``run.py --large``):

* ``ResultStore.list_ids()`` against ``find STORE -name '*.json'`` on the same directory, in
  alternating order, after an untimed pass of each (so both see a warm dentry cache);
* the real ``python -m resultsfs check -s STORE --models bench/bench_models.py`` on a warm page
  cache (an untimed run first), and the same command on an empty store: its start-up cost;
* the remount: a first mount reads every result (and validates each: nothing is kept yet);
  then in every round, in alternating order, a fresh mount that finds the verdicts the earlier
  mounts kept (the default) and a fresh mount with ``--revalidate`` each read every result
  once, cold (one reader: open, read to EOF, close). The daemon's peak RSS (``VmHWM``) is read
  after each mount has read every result;
* an untimed pass: the same two mounts again with ``--debug``, counting the lines of each
  daemon's log that say ``validated version`` (one per validation).

Why: the targets of issue 9 for a store of 100,000 results (``list_ids`` within 1.5x of
``find``; ``check`` >= 10,000 results/s; the daemon's RSS after reading every result <= 150 MB;
a remount does not validate again what an earlier mount validated) are about size, so they are
measured at that size, each against its yardstick in the same run.

Robustness: the mounts' state directory (``RESULTSFS_STATE_DIR``, where the verdicts are
kept) is in the run's temporary directory, as the store is; every mount is stopped in
``finally``, a watchdog aborts the mount if the section overruns its deadline, SIGTERM unwinds
through the same ``finally`` blocks, and the temporary directory is removed only once nothing
is mounted below it (:func:`fuse_bench._cleanup`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fuse_bench

from resultsfs import FileBackend, ResultStore

#: The two remount variants: the default (verdicts kept by earlier mounts) and ``--revalidate``.
VARIANTS = {"kept": (), "revalidate": ("--revalidate",)}
#: What the daemon logs at debug level for each validation (``ResultStore.verdict``).
VALIDATION_LINE = "validated version"


@dataclass
class Report:
    """What :func:`run` measured; seconds per round, medians computed when printed."""

    results: int
    rounds: int
    mount_args: tuple[str, ...]
    store: dict[str, Any] = field(default_factory=dict)
    list_ids_seconds: list[float] = field(default_factory=list)
    find_seconds: list[float] = field(default_factory=list)
    #: Lines ``find`` printed (every result file, and any other ``*.json`` of the directory).
    find_lines: int = 0
    check_seconds: list[float] = field(default_factory=list)
    check_empty_seconds: list[float] = field(default_factory=list)
    #: The last line ``resultsfs check`` printed.
    check_summary: str = ""
    #: Seconds of the first mount's read of every result (it validates every one).
    first_read_seconds: float = 0.0
    remount_seconds: dict[str, list[float]] = field(default_factory=lambda: {v: [] for v in VARIANTS})
    #: VmHWM of each mount after it read every result: "first", "kept", "revalidate".
    rss_kib: dict[str, list[int]] = field(default_factory=dict)
    #: Validations each variant's mount logged in the --debug pass (None: not counted).
    validations: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0

    def median(self, values: Sequence[float]) -> float:
        return statistics.median(values)

    def rate(self, seconds: Sequence[float]) -> float:
        """Results per second of the median round."""
        return self.results / statistics.median(seconds)

    def peak_rss_kib(self) -> int:
        return max((kib for values in self.rss_kib.values() for kib in values), default=0)

    def to_json(self) -> dict[str, Any]:
        """The JSON section ``scale`` of ``bench/results/<timestamp>.json``."""
        list_s, find_s = self.median(self.list_ids_seconds), self.median(self.find_seconds)
        check_s, empty_s = self.median(self.check_seconds), self.median(self.check_empty_seconds)
        kept, revalidate = (self.rate(self.remount_seconds[v]) for v in VARIANTS)
        return {
            "results": self.results,
            "rounds": self.rounds,
            "mount_args": list(self.mount_args),
            "store": self.store,
            "seconds": round(self.seconds, 1),
            "list_ids": {
                "list_ids_seconds": self.list_ids_seconds,
                "find_seconds": self.find_seconds,
                "find_lines": self.find_lines,
                "list_ids_median": list_s,
                "find_median": find_s,
                "ratio_list_ids_to_find": list_s / find_s,
            },
            "check": {
                "command": "python -m resultsfs check -s STORE --models bench/bench_models.py",
                "seconds": self.check_seconds,
                "empty_store_seconds": self.check_empty_seconds,
                "median": check_s,
                "empty_store_median": empty_s,
                "results_per_second": self.results / check_s,
                "results_per_second_without_startup": self.results / (check_s - empty_s)
                if check_s > empty_s
                else None,
                "summary": self.check_summary,
            },
            "remount": {
                "first_read_seconds": self.first_read_seconds,
                "seconds": self.remount_seconds,
                "per_second": {"kept": kept, "revalidate": revalidate},
                "ratio_kept_to_revalidate": kept / revalidate,
                "validations": self.validations,
            },
            "peak_rss_kib": self.rss_kib,
        }


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- listing and check


def _list_ids(store: ResultStore, expected: int) -> None:
    found = len(store.list_ids())
    if found != expected:
        raise RuntimeError(f"list_ids found {found} IDs, expected {expected}")


def _find(directory: Path, timeout: float) -> int:
    out = fuse_bench._run_tool(["find", str(directory), "-name", "*.json"], timeout, capture=True)
    return out.count("\n")


def _listing(report: Report, directory: Path, timeout: float) -> None:
    """``list_ids`` against ``find``: one untimed pass of each, then ``rounds`` alternating."""
    with ResultStore(directory, create_if_missing=False, read_only=True) as store:
        _list_ids(store, report.results)
        report.find_lines = _find(directory, timeout)
        if report.find_lines < report.results:
            raise RuntimeError(f"find listed {report.find_lines} files, expected {report.results}")
        turns: list[tuple[list[float], Callable[[], object]]] = [
            (report.list_ids_seconds, lambda: _list_ids(store, report.results)),
            (report.find_seconds, lambda: _find(directory, timeout)),
        ]
        for number in range(report.rounds):
            for seconds, fn in turns if number % 2 == 0 else reversed(turns):
                seconds.append(_timed(fn))


def _check_command(store: Path) -> list[str]:
    return [
        sys.executable, "-m", "resultsfs", "check", "-s", str(store), "--models", str(fuse_bench.MODELS_FILE),
    ]  # fmt: skip


def _check(store: Path, expected: int, env: dict[str, str], timeout: float) -> str:
    """Run ``resultsfs check``; its last line. Raises unless it found ``expected`` healthy results."""
    done = subprocess.run(
        _check_command(store),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not last.startswith(f"{expected} results, 0 problems"):
        raise RuntimeError(f"resultsfs check exited {done.returncode}: {last or done.stderr[-500:]}")
    return last.rpartition(" (")[0] or last  # without the store's temporary path


def _checking(report: Report, store: Path, empty: Path, env: dict[str, str], timeout: float) -> None:
    """The check command on the store (warm: an untimed run first) and on an empty store."""
    report.check_summary = _check(store, report.results, env, timeout)
    turns: list[tuple[list[float], Callable[[], object]]] = [
        (report.check_seconds, lambda: _check(store, report.results, env, timeout)),
        (report.check_empty_seconds, lambda: _check(empty, 0, env, timeout)),
    ]
    for number in range(report.rounds):
        for seconds, fn in turns if number % 2 == 0 else reversed(turns):
            seconds.append(_timed(fn))


# --------------------------------------------------------------------------- remount


def _read_every_result(side: fuse_bench.Resultsfs, paths: Sequence[str]) -> tuple[float, int | None]:
    """Mount, read every result once (timed), read the daemon's VmHWM, unmount."""
    side.start()
    try:
        seconds = _timed(lambda: fuse_bench._read_all(paths))
        return seconds, fuse_bench._vm_hwm_kib(side.pid)
    finally:
        side.stop()


def _count_validations(log: Path) -> int:
    with open(log, errors="replace") as lines:
        return sum(VALIDATION_LINE in line for line in lines)


def _remount(
    report: Report,
    side: fuse_bench.Resultsfs,
    paths: Sequence[str],
    watchdog: fuse_bench.Watchdog,
    progress: Callable[[str], None],
) -> None:
    """The first mount, then kept against --revalidate per round, then the --debug counting pass."""
    base = list(report.mount_args)

    def keep_rss(what: str, kib: int | None) -> None:
        if kib is not None:
            report.rss_kib.setdefault(what, []).append(kib)

    progress(f"scale: the first mount reads {report.results} results (validating each)")
    side.extra = base
    report.first_read_seconds, kib = _read_every_result(side, paths)
    keep_rss("first", kib)
    for number in range(report.rounds):
        progress(f"scale: remount round {number + 1}/{report.rounds} (verdicts kept, --revalidate)")
        order = list(VARIANTS) if number % 2 == 0 else list(reversed(VARIANTS))
        for variant in order:
            watchdog.check()
            side.extra = [*base, *VARIANTS[variant]]
            seconds, kib = _read_every_result(side, paths)
            report.remount_seconds[variant].append(seconds)
            keep_rss(variant, kib)
    progress("scale: counting validations (--debug, untimed)")
    normal_log = side.daemon_log
    try:
        for variant, extra in VARIANTS.items():
            watchdog.check()
            side.extra = [*base, *extra, "--debug"]
            side.daemon_log = side.workdir / f"{side.name}-{variant}-debug.log"
            _read_every_result(side, paths)
            report.validations[variant] = _count_validations(side.daemon_log)
    finally:
        side.daemon_log = normal_log
        side.extra = base


# --------------------------------------------------------------------------- the run


def run(
    count: int,
    rounds: int = 3,
    mount_args: Sequence[str] = (),
    deadline: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Build a store of ``count`` results and measure it; always unmounts and cleans up."""
    if count < 10:
        raise SystemExit("the scale benchmark needs at least 10 results")
    started = time.monotonic()
    report = Report(count, max(3, rounds), tuple(mount_args))
    tmp = Path(tempfile.mkdtemp(prefix="resultsfs-scale-bench-"))
    store = tmp / "store"
    side = fuse_bench.Resultsfs(
        store, tmp / "mnt", tmp, mount_args, name="resultsfs-scale", keep_verdicts=True
    )
    sides: list[fuse_bench.Side] = [side]
    # A mount reading every result costs about 0.2-0.6 ms per result on 2 cores; build and
    # check about as much again. Generous: the watchdog is there for hangs, not for speed.
    seconds = deadline if deadline is not None else 600 + count * 0.003 * (2 * report.rounds + 6)
    timeout = 120 + count * 0.005
    env = {**os.environ, "RESULTSFS_STATE_DIR": str(tmp / "state" / "check")}
    with fuse_bench._terminate_cleanly(), fuse_bench.Watchdog(seconds, sides) as watchdog:
        try:
            progress(f"scale: building a store of {count} results")
            rels = fuse_bench.make_store(store, count)
            empty = tmp / "empty"
            FileBackend(empty).close()
            sizes = [(store / rel).stat().st_size for rel in rels]
            report.store = {
                "results": len(rels),
                "leaf_directories": len({str(Path(rel).parent) for rel in rels}),
                "mean_bytes": statistics.mean(sizes),
            }
            progress("scale: list_ids against find")
            _listing(report, store, timeout)
            watchdog.check()
            progress("scale: resultsfs check")
            _checking(report, store, empty, env, timeout)
            watchdog.check()
            paths = [str(side.root / rel) for rel in rels]
            _remount(report, side, paths, watchdog, progress)
        except BaseException:
            watchdog.check()  # an overrun shows as such, not as the ENOTCONN it caused
            raise
        finally:
            fuse_bench._cleanup(tmp, sides)
    report.seconds = time.monotonic() - started
    return report


# --------------------------------------------------------------------------- printing


def _mb(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB ({kib * 1024 / 1e6:,.1f} MB)"


def _line(out: IO[str], title: str, *cells: str, widths: Sequence[int] = (9, 11, 8)) -> None:
    """One table line: the title, then right-aligned cells."""
    padded = (f"{cell:>{width}}" for cell, width in zip(cells, widths[: len(cells)], strict=True))
    print(f"{title:<58} " + " ".join(padded), file=out)


def print_report(report: Report, out: IO[str] = sys.stdout) -> None:
    """The scale tables: listing, check, remount and memory, each against its yardstick."""
    n, store = report.results, report.store
    print(
        f"\nStore scale: {n:,} results (mean {store.get('mean_bytes', 0):.0f} B) in "
        f"{store.get('leaf_directories', 0)} leaf directories; median of {report.rounds} rounds "
        f"({report.seconds / 60:.1f} min)",
        file=out,
    )
    list_s, find_s = report.median(report.list_ids_seconds), report.median(report.find_seconds)
    _line(out, "listing every ID", "seconds", "IDs/s", "x find")
    _line(
        out,
        "ResultStore.list_ids() (sorted)",
        f"{list_s:.3f}",
        f"{n / list_s:,.0f}",
        f"{list_s / find_s:.2f}x",
    )
    _line(
        out, "find STORE -name '*.json' (the same directory)", f"{find_s:.3f}", f"{n / find_s:,.0f}", "1.00x"
    )
    print("(issue 9 target: list_ids within 1.5x of find)", file=out)

    check_s, empty_s = report.median(report.check_seconds), report.median(report.check_empty_seconds)
    print(file=out)
    _line(out, "resultsfs check, warm page cache", "seconds", "results/s")
    _line(
        out,
        "python -m resultsfs check -s STORE --models ... (all of it)",
        f"{check_s:.3f}",
        f"{n / check_s:,.0f}",
    )
    _line(out, "the same command on an empty store (start-up)", f"{empty_s:.3f}", "")
    if check_s > empty_s:
        _line(
            out,
            "the difference: checking the results",
            f"{check_s - empty_s:.3f}",
            f"{n / (check_s - empty_s):,.0f}",
        )
    print(f"(issue 9 target: >= 10,000 results/s; check said: {report.check_summary})", file=out)

    print("\nRemount: a cold read of every result (open, read, close; one reader) on a fresh mount", file=out)
    widths = (9, 12, 26)
    _line(out, "mount", "files/s", "validations", "peak RSS (VmHWM)", widths=widths)
    rows = (
        ("first mount (no verdicts kept yet)", [report.first_read_seconds], "first"),
        ("fresh mount, verdicts kept (the default)", report.remount_seconds["kept"], "kept"),
        ("fresh mount, --revalidate", report.remount_seconds["revalidate"], "revalidate"),
    )
    for title, seconds, key in rows:
        counted = report.validations.get(key)
        rss = report.rss_kib.get(key)
        _line(
            out,
            title,
            f"{report.rate(seconds):,.0f}",
            "-" if counted is None else f"{counted:,}",
            _mb(max(rss)) if rss else "-",
            widths=widths,
        )
    kept, revalidate = (report.rate(report.remount_seconds[v]) for v in VARIANTS)
    _line(out, "ratio verdicts kept / --revalidate", f"{kept / revalidate:.2f}x")
    largest = _mb(report.peak_rss_kib())
    print(
        f"(validations: lines saying '{VALIDATION_LINE}' in the --debug log of an untimed mount of\n"
        " each kind. Issue 9 targets: a remount validates nothing an earlier mount validated; the\n"
        f" daemon's RSS after reading every result <= 150 MB; the largest here: {largest})",
        file=out,
    )
