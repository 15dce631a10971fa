"""Lease locks: holder and expiration, race-free acquisition, no stale answers."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import FakeClock
from models import Counter, Metrics
from resultsfs import (
    FileBackend,
    LockNotHeldError,
    LockTimeoutError,
    ResultLockedError,
    ResultStore,
    SetBehavior,
    default_holder,
)

FORK = multiprocessing.get_context("fork")


class TestBasics:
    def test_default_holder_is_host_pid_thread(self) -> None:
        assert default_holder() == f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def test_acquire_and_release(self, store: ResultStore) -> None:
        assert not store.is_locked("r")
        assert store.acquire_lock("r") is True
        assert store.is_locked("r")
        assert store.is_lock_holder("r")
        assert not store.is_lock_holder("r", holder="other")
        store.release_lock("r")
        assert not store.is_locked("r")

    def test_record_holds_holder_acquisition_and_expiration_in_utc(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        clocked_store.acquire_lock("r", holder="me", hold_timeout=90)
        (record,) = (clocked_store.backend.base_dir / ".resultsfs" / "leases").glob("*.lease")
        data = json.loads(record.read_text())
        assert data["holder"] == "me"
        assert data["result_id"] == "r"
        assert data["acquired"] == "2026-11-21T12:00:00Z"
        assert data["expiration"] == "2026-11-21T12:01:30Z"
        clocked_store.acquire_lock("forever", holder="me")
        lease = clocked_store.lease("forever")
        assert lease is not None and lease.expires is None

    def test_release_by_another_holder_is_refused(self, store: ResultStore) -> None:
        store.acquire_lock("r", holder="a")
        with pytest.raises(LockNotHeldError, match="'r'.*held by 'a'.*not 'b'") as info:
            store.release_lock("r", holder="b")
        assert isinstance(info.value, ValueError)
        assert store.is_lock_holder("r", holder="a")

    def test_release_of_a_free_result_is_refused(self, store: ResultStore) -> None:
        with pytest.raises(LockNotHeldError, match="held by nobody"):
            store.release_lock("r")

    def test_second_holder_cannot_acquire_without_waiting(self, store: ResultStore) -> None:
        store.acquire_lock("r", holder="a")
        started = time.monotonic()
        assert store.acquire_lock("r", holder="b", acquire_timeout=0) is False
        assert store.acquire_lock("r", holder="b", acquire_timeout=0.2) is False
        assert time.monotonic() - started < 5

    def test_reacquiring_renews(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        clocked_store.acquire_lock("r", holder="a", hold_timeout=10)
        clock.advance(8)
        assert clocked_store.acquire_lock("r", holder="a", hold_timeout=10) is True
        clock.advance(8)
        assert clocked_store.is_lock_holder("r", holder="a")

    def test_context_manager(self, store: ResultStore) -> None:
        with store.lock("r", holder="a"):
            assert store.is_lock_holder("r", holder="a")
            with (
                pytest.raises(LockTimeoutError, match="'r'"),
                store.lock("r", holder="b", acquire_timeout=0.05),
            ):
                pass
        assert not store.is_locked("r")

    def test_bad_hold_timeout(self, store: ResultStore) -> None:
        with pytest.raises(ValueError, match="hold_timeout"):
            store.acquire_lock("r", hold_timeout=0)


class TestExpiry:
    def test_expired_lease_is_free_and_can_be_taken(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        clocked_store.acquire_lock("r", holder="a", hold_timeout=30)
        clock.advance(29.9)
        assert clocked_store.is_locked("r")
        assert clocked_store.acquire_lock("r", holder="b", acquire_timeout=0) is False
        clock.advance(0.2)
        assert not clocked_store.is_locked("r")
        assert clocked_store.acquire_lock("r", holder="b", acquire_timeout=0) is True
        assert clocked_store.is_lock_holder("r", holder="b")

    def test_releasing_an_expired_lease_says_so(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        clocked_store.acquire_lock("r", holder="a", hold_timeout=5)
        clock.advance(6)
        with pytest.raises(LockNotHeldError, match="expired at 2026-11-21T12:00:05Z"):
            clocked_store.release_lock("r", holder="a")
        assert not clocked_store.is_locked("r")

    @pytest.mark.parametrize("content", [b"", b"{", b'{"holder": 3, "expiration": "never"}', b"\x00\xff"])
    def test_empty_or_corrupt_record_counts_as_expired(self, store: ResultStore, content: bytes) -> None:
        name = hashlib.sha256(b"r").hexdigest()[:40] + ".lease"  # the documented record name
        record = store.backend.base_dir / ".resultsfs" / "leases" / name
        record.write_bytes(content)
        assert not store.is_locked("r")
        assert store.acquire_lock("r", holder="b", acquire_timeout=0) is True
        assert store.is_lock_holder("r", holder="b")


class TestLeasesGuardWrites:
    def test_non_holder_writes_and_deletes_are_refused(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("r", metrics)
        store.acquire_lock("r", holder="owner")
        other = Metrics(loss=1, accuracy=0)
        with pytest.raises(ResultLockedError, match="'r'.*leased by 'owner'"):
            store.set("r", other, SetBehavior.OVERWRITE, holder="intruder")
        with pytest.raises(ResultLockedError):
            store.set("r", other, SetBehavior.OVERWRITE)  # this thread's default holder is not 'owner'
        with pytest.raises(ResultLockedError):
            store.delete("r", holder="intruder")
        assert store.get("r") == metrics
        assert store.set("r", other, SetBehavior.OVERWRITE, holder="owner") is True
        assert store.get("r") == other

    def test_default_holder_writes_its_own_lease(self, store: ResultStore, metrics: Metrics) -> None:
        with store.lock("r"):
            assert store.set("r", metrics) is True

    def test_no_answer_is_cached_per_instance(self, store: ResultStore) -> None:
        second = FileBackend(store.backend.base_dir)
        assert not second.is_locked("r")
        store.acquire_lock("r", holder="a")
        assert second.is_locked("r")
        assert second.acquire_lock("r", holder="b", acquire_timeout=0) is False
        store.release_lock("r", holder="a")
        assert not second.is_locked("r")
        assert second.acquire_lock("r", holder="b", acquire_timeout=0) is True


class TestWaiting:
    def test_wait_for_lock_returns_when_released(self, store: ResultStore) -> None:
        store.acquire_lock("r", holder="a")
        timer = threading.Timer(0.2, store.release_lock, args=("r", "a"))
        timer.start()
        started = time.monotonic()
        assert store.wait_for_lock("r", timeout=10) is True
        assert 0.1 < time.monotonic() - started < 9
        timer.join()

    def test_wait_for_lock_times_out(self, store: ResultStore) -> None:
        store.acquire_lock("r", holder="a")
        assert store.wait_for_lock("r", timeout=0.1) is False

    def test_acquire_waits_for_release(self, store: ResultStore) -> None:
        store.acquire_lock("r", holder="a")
        threading.Timer(0.2, store.release_lock, args=("r", "a")).start()
        assert store.acquire_lock("r", holder="b", acquire_timeout=10) is True


def _take_over(base: str, barrier: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = FileBackend(base)
    barrier.wait()
    won = store.acquire_lock("r", holder=f"waiter-{os.getpid()}", acquire_timeout=2.0, hold_timeout=60)
    queue.put(won)


def _hold_and_die(base: str, ready: multiprocessing.synchronize.Event) -> None:
    store = FileBackend(base)
    store.acquire_lock("r", hold_timeout=0.5)
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


class TestAcrossProcesses:
    def test_an_expired_lease_is_taken_over_by_exactly_one_of_six_waiters(self, store: ResultStore) -> None:
        store.acquire_lock("r", holder="dead-holder", hold_timeout=0.4)
        barrier = FORK.Barrier(6)
        queue = FORK.Queue()
        procs = [
            FORK.Process(target=_take_over, args=(str(store.backend.base_dir), barrier, queue))
            for _ in range(6)
        ]
        for proc in procs:
            proc.start()
        outcomes = [queue.get(timeout=30) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        assert sorted(outcomes) == [False] * 5 + [True]
        lease = store.lease("r")
        assert lease is not None and re.fullmatch(r"waiter-\d+", lease.holder)

    def test_a_killed_holder_s_lease_expires_at_its_ttl(self, store: ResultStore) -> None:
        ready = FORK.Event()
        proc = FORK.Process(target=_hold_and_die, args=(str(store.backend.base_dir), ready))
        proc.start()
        proc.join(timeout=30)
        assert proc.exitcode == -signal.SIGKILL and ready.is_set()
        assert store.is_locked("r")
        assert store.acquire_lock("r", holder="next", acquire_timeout=0) is False
        assert store.acquire_lock("r", holder="next", acquire_timeout=5) is True


def test_leases_dir_is_inside_the_store(store: ResultStore) -> None:
    store.acquire_lock("x")
    assert Path(store.backend.base_dir, ".resultsfs", "leases").is_dir()
    assert len(list(Path(store.backend.base_dir, ".resultsfs", "leases").iterdir())) == 1
    store.set("x", Counter(writer="w", value=1))
