"""Lease locks: holder and expiration, race-free acquisition, no stale answers."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import socket
import threading
from pathlib import Path

import pytest

from conftest import FakeClock
from models import Counter
from resultsfs import (
    LockNotHeldError,
    ResultStore,
    default_holder,
)

FORK = multiprocessing.get_context("fork")


class TestBasics:
    def test_default_holder_is_host_pid_thread(self) -> None:
        assert default_holder() == f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

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


def test_leases_dir_is_inside_the_store(store: ResultStore) -> None:
    store.acquire_lock("x")
    assert Path(store.backend.base_dir, ".resultsfs", "leases").is_dir()
    assert len(list(Path(store.backend.base_dir, ".resultsfs", "leases").iterdir())) == 1
    store.set("x", Counter(writer="w", value=1))
