"""``make bench``: resultsfs against the backing directory and C and Python passthroughs, as tables.

Runs :mod:`fuse_bench` (the filesystem workloads side by side, FUSE request counts and CPU
time per file, the daemon's peak RSS, commits through the mount against the Python API, and
the Python API against a results_manager-style baseline), then :mod:`scale_bench` (list_ids
against find, ``resultsfs check``, a remount with kept verdicts against ``--revalidate``, the
daemon's memory after reading every result), then :mod:`backend_bench` (the directory, SQLite
and PostgreSQL backends side by side: API set, get, exists, list_ids and mount cold reads, over
the same results; PostgreSQL on a throwaway server it starts and stops), prints the tables and
writes the same figures to ``bench/results/<timestamp>.json``.

The store has 3,000 results by default. A large store (``--large``: 100,000 results, or
``BENCH_N``/``--files``) runs only the scale section (a few minutes); so does any store of more
than 20,000 results, unless ``--full`` asks for every section at that size (hours at 100,000).
``--quick`` is a smoke run (300 results, fewer commits and API operations). ``--legacy`` also
prints the older mount table (``--threads 4`` against ``--threads 1``, :mod:`mount_bench`).
The per-backend table uses the API's operation count (3,000, or 300 with ``--quick``);
``--no-backends`` skips it, ``--backends-only`` runs only it; ``--no-scale`` skips the scale
section. Mounting needs root or FUSE access; the passthrough needs gcc, pkg-config and
libfuse3-dev; the PostgreSQL column needs root and Debian's ``postgresql`` (``make
testdeps``), and is skipped, saying why, without them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backend_bench
import fuse_bench
import mount_bench
import scale_bench

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: The size of ``--large``.
LARGE_FILES = 100_000
#: Above this many results, a run is a ``--large`` one unless ``--full`` is given.
LARGE_FROM = 20_000


def table(title: str, header: tuple[str, str, str], rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}")
    print(f"{'operation':<52} {header[1]:>14} {header[2]:>14} {'ratio':>8}")
    for name, ours, other in rows:
        print(f"{name:<52} {ours:>12.0f}/s {other:>12.0f}/s {ours / other:>7.3f}x")


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 results, fewer operations")
    parser.add_argument(
        "--files", type=int, help="results in the store (default: $BENCH_N, or 3000; 100000 with --large)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; medians are reported (min 3)")
    parser.add_argument("--no-counts", action="store_true", help="skip the -o debug request-counting pass")
    parser.add_argument(
        "--mount-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `resultsfs mount` (repeatable), e.g. --mount-arg=--threads=1",
    )
    parser.add_argument("--deadline", type=float, help="seconds before the watchdog aborts the mounts")
    parser.add_argument("--legacy", action="store_true", help="also run the --threads 4/1 mount table")
    section = parser.add_mutually_exclusive_group()
    section.add_argument("--no-backends", action="store_true", help="skip the per-backend table")
    section.add_argument(
        "--backends-only", action="store_true", help="only the per-backend table (no filesystem workloads)"
    )
    section.add_argument(
        "--large",
        action="store_true",
        help=f"only the scale section, on a large store ({LARGE_FILES} results unless --files/BENCH_N)",
    )
    section.add_argument(
        "--full", action="store_true", help=f"every section even for more than {LARGE_FROM} results"
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the scale section")
    parser.add_argument("--json-dir", type=Path, default=RESULTS_DIR, help="where the JSON report goes")
    args = parser.parse_args()

    if args.files is not None:
        files = args.files
    elif args.quick:
        files = 300
    elif os.environ.get("BENCH_N"):
        files = int(os.environ["BENCH_N"])
    else:
        files = LARGE_FILES if args.large else 3000
    large = args.large or (files > LARGE_FROM and not args.full and not args.backends_only)
    if large and not args.large:
        _progress(f"{files} results: only the scale section (--large); --full runs every section")
    config = fuse_bench.Config(
        files=files,
        rounds=max(3, args.rounds),
        commits=100 if args.quick else 300,
        api_ops=min(files, 300 if args.quick else 3000),
        count_requests=not args.no_counts,
        mount_args=tuple(args.mount_arg),
        deadline=args.deadline,
    )
    started = time.monotonic()
    if args.backends_only or large:
        data: dict[str, Any] = fuse_bench.host_json()
        data["config"] = {"files": files, "rounds": config.rounds, "mount_args": list(config.mount_args)}
    else:
        report = fuse_bench.run(config, _progress)
        fuse_bench.print_report(report)
        data = report.to_json()
    data["config"]["mode"] = "large" if large else "backends-only" if args.backends_only else "default"
    if (large or not args.backends_only) and not args.no_scale:
        scale = scale_bench.run(files, config.rounds, config.mount_args, args.deadline, _progress)
        scale_bench.print_report(scale)
        data["scale"] = scale.to_json()
    if not args.no_backends and not large:
        # The same N as the API table above: its operations per round.
        backends = backend_bench.run(
            config.api_ops, config.rounds, config.mount_args, args.deadline, _progress
        )
        backend_bench.print_report(backends)
        data["backends"] = backends.to_json()
    data["seconds"] = round(time.monotonic() - started, 1)
    path = fuse_bench.save_json(data, args.json_dir)
    print(f"\nJSON: {path} ({data['seconds'] / 60:.1f} min)")

    if args.legacy:
        configs = {"4 threads (default)": [], "1 thread": ["--threads", "1"]}
        table(
            "Mount vs the backing directory, files/s (each configuration on a fresh mount)",
            ("op", "mount", "directory"),
            mount_bench.run(300 if args.quick else 2000, configs),
        )


if __name__ == "__main__":
    main()
