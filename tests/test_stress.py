"""Short runs of the stress scenarios (the long ones: make stress). Each must find nothing wrong."""

from __future__ import annotations

import stress


def test_concurrency_through_the_mount_and_the_api() -> None:
    tally = stress.concurrency(seconds=6)
    print(stress.table([tally]))
    assert tally.operations > 500 and tally.processes == 13
    assert (tally.invalid_reads, tally.lost_writes, tally.escapes) == (0, 0, 0), tally.notes


def test_crashes() -> None:
    tally = stress.crashes(rounds=3)
    print(stress.table([tally]))
    assert tally.faults >= 6 and tally.operations > 20
    assert (tally.invalid_reads, tally.lost_writes, tally.escapes) == (0, 0, 0), tally.notes


def test_escapes() -> None:
    tally = stress.escapes(rounds=3)
    assert tally.operations == 36
    assert tally.escapes == 0, tally.notes
