"""``make bench``: every benchmark, printed as tables of ratios measured side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mount_bench
import store_bench


def table(title: str, header: tuple[str, str, str], rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}")
    print(f"{'operation':<52} {header[1]:>14} {header[2]:>14} {'ratio':>8}")
    for name, ours, other in rows:
        print(f"{name:<52} {ours:>12.0f}/s {other:>12.0f}/s {ours / other:>7.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations (smoke run)")
    args = parser.parse_args()
    table(
        "Store API vs a results_manager-style baseline (lock per op, no fsync)",
        ("op", "resultsfs", "baseline"),
        store_bench.run(300 if args.quick else 1500),
    )
    configs = {"4 threads (default)": [], "1 thread": ["--threads", "1"]}
    table(
        "Mount vs the backing directory, files/s (each configuration on a fresh mount)",
        ("op", "mount", "directory"),
        mount_bench.run(300 if args.quick else 2000, configs),
    )


if __name__ == "__main__":
    main()
