"""The store's contract: each behaviour stated once, run against every backend.

pyfilesystem2's ``FSTestCases`` is the model: a backend passes when a test class that says
how to make a fresh store of it (``make_url``) passes every test here:

    class TestMyBackend(StoreContract):
        def make_url(self, request, tmp_path): return "mybackend://..."

The tests talk to the store (:class:`~resultsfs.store.ResultStore`) and the managers only,
never to a backend's storage, so they hold for any backend. What can only be seen in one
backend's storage (file layout, SQL schema compatibility) is tested beside that backend.
Processes that race one another open the store again from its URL, as separate programs do.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import errno
import json
import math
import multiprocessing
import os
import pickle
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError, field_serializer

from models import Color, Counter, Inner, Metrics, RunConfig
from mounting import Mount, mounted, sh, wait_until, write_errno
from resultsfs import (
    AsyncResultsManager,
    InvalidResultIdError,
    IsolationLevel,
    LockNotHeldError,
    LockTimeoutError,
    MetaChange,
    ModelNotRegisteredError,
    ReadOnlyStoreError,
    ResultConflictError,
    ResultExistsError,
    ResultLockedError,
    ResultNotFoundError,
    ResultsError,
    ResultsManager,
    ResultStore,
    ResultTooLargeError,
    ResultValidationError,
    SetBehavior,
    open_backend,
    register_model,
)
from resultsfs.envelope import encode_model

FORK = multiprocessing.get_context("fork")


def _errno_of(call: Callable[[], object]) -> int | None:
    try:
        call()
    except OSError as exc:
        return exc.errno
    return None


def run_config() -> RunConfig:
    return RunConfig(
        lr=0.1,
        seed=7,
        started=datetime.datetime(2026, 11, 21, 12, 30, tzinfo=datetime.timezone.utc),
        day=datetime.date(2026, 11, 21),
        run_uuid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        budget=decimal.Decimal("12.50"),
        output=Path("/data/out"),
        color=Color.BLUE,
        shape=(3, 4),
        tags={"a", "b"},
        inner=Inner(name="x", weights=(0.5, 1.5)),
    )


def plant(store: ResultStore, rid: str, record: dict[str, object]) -> None:
    """Store an envelope as it is, without validation (what another program may have written)."""
    raw = json.dumps(record).encode()
    store.backend.atomically([rid], lambda txn: txn.write(rid, raw))


# -- what the racing processes run (module level: they are started with fork) -----------------


def _race_create(url: str, rids: list[str], barrier: object, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = ResultStore(url)
    me, wins = str(os.getpid()), []
    barrier.wait()  # type: ignore[attr-defined]
    for rid in rids:
        try:
            if store.set(rid, Counter(writer=me, value=1)):
                wins.append(rid)
        except ResultExistsError:
            pass
    queue.put((me, wins))


def _take_over(url: str, barrier: object, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = ResultStore(url)
    barrier.wait()  # type: ignore[attr-defined]
    queue.put(store.acquire_lock("r", holder=f"waiter-{os.getpid()}", acquire_timeout=2.0, hold_timeout=60))


def _payload(value: int) -> str:
    # Sizes vary from ~10 bytes to ~40 KiB, so that a torn write would show.
    return f"{value:08d}" * (1 + (value * 7919) % 5000)


def _writer(url: str, deadline: float, name: str) -> None:
    store, value = ResultStore(url), 0
    while time.monotonic() < deadline:
        value += 1
        store.set(
            "hot/result", Counter(writer=name, value=value, payload=_payload(value)), SetBehavior.OVERWRITE
        )


def _reader(url: str, deadline: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store, reads, bad = ResultStore(url), 0, []
    while time.monotonic() < deadline:
        try:
            result = store.get("hot/result")
        except ResultsError as exc:
            bad.append(repr(exc))
            continue
        reads += 1
        if result.payload != _payload(result.value):  # type: ignore[attr-defined]
            bad.append(f"torn: {result.writer} {result.value}")  # type: ignore[attr-defined]
    queue.put((reads, bad))


def _hold_and_die(url: str, ready: object) -> None:
    ResultStore(url).acquire_lock("r", hold_timeout=0.5)
    ready.set()  # type: ignore[attr-defined]
    os.kill(os.getpid(), signal.SIGKILL)


def _in_child(store: ResultStore, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(store.get("p") == Counter(writer="parent", value=1))


class StoreContract:
    """Every behaviour of a store. Subclasses say how to make a fresh, empty store's URL."""

    def make_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        raise NotImplementedError

    @pytest.fixture
    def url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        return self.make_url(request, tmp_path)

    @pytest.fixture
    def store(self, url: str) -> Iterator[ResultStore]:
        with ResultStore(url) as opened:
            yield opened

    # ------------------------------------------------------------ writing and reading

    def test_a_result_reads_back_equal_whatever_its_json_awkward_types(self, store: ResultStore) -> None:
        config = run_config()
        assert store.set("cfg", config) is True
        assert store.get("cfg") == config
        assert store.get(["cfg"]) == config
        stored = store.read("cfg")
        assert (stored.envelope.model_type, stored.envelope.namespace) == ("RunConfig", "sweep")

    def test_a_model_class_or_namespace_given_to_get_is_used(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.set("m", metrics)

        @register_model(namespace="v2")
        class Metrics2(BaseModel):
            loss: float

        assert store.get("m", model_class=Metrics2) == Metrics2(loss=0.25)
        assert store.get("m", namespace="elsewhere") == metrics  # falls back to any namespace

    def test_raise_if_exists_is_the_default(self, store: ResultStore, metrics: Metrics) -> None:
        assert store.set("x", metrics) is True
        with pytest.raises(ResultExistsError, match="Data already exists for ID: x") as info:
            store.set("x", metrics)
        assert isinstance(info.value, FileExistsError)

    def test_skip_if_exists_never_touches_a_stored_result(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("x", metrics)
        before = store.read("x")
        assert store.set("x", Metrics(loss=9, accuracy=0.1), SetBehavior.SKIP_IF_EXISTS) is False
        assert store.set("x", metrics, SetBehavior.SKIP_IF_EXISTS) is False
        after = store.read("x")
        assert (after.raw, after.meta.mtime_ns, after.meta.version) == (
            before.raw,
            before.meta.mtime_ns,
            before.meta.version,
        )
        assert store.set("new", metrics, SetBehavior.SKIP_IF_EXISTS) is True

    def test_raise_if_different_accepts_equal_data_and_refuses_anything_else(
        self, store: ResultStore
    ) -> None:
        store.set("cfg", run_config())
        assert store.set("cfg", run_config(), SetBehavior.RAISE_IF_DIFFERENT) is False  # tuples, sets: equal
        with pytest.raises(ResultConflictError, match="Different data already exists for ID: cfg"):
            store.set("cfg", run_config().model_copy(update={"seed": 8}), SetBehavior.RAISE_IF_DIFFERENT)

        @register_model
        class Twin(BaseModel):
            writer: str
            value: int
            payload: str = ""

        store.set("c", Counter(writer="w", value=1))
        with pytest.raises(ResultConflictError):
            store.set("c", Twin(writer="w", value=1), SetBehavior.RAISE_IF_DIFFERENT)

    def test_overwrite_replaces_and_keeps_the_results_mode(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.set("x", metrics)
        store.set_meta("x", MetaChange(mode=0o640))
        other = Metrics(loss=1, accuracy=0.5)
        assert store.set("x", other, SetBehavior.OVERWRITE) is True
        assert store.get("x") == other
        meta = store.meta("x")
        assert meta is not None and meta.mode == 0o640

    def test_a_behavior_may_be_given_by_value_and_an_unknown_one_is_refused(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.set("x", metrics)
        assert store.set("x", Metrics(loss=1, accuracy=0.5), "overwrite") is True
        with pytest.raises(ValueError, match="unknown set behavior 'replace'"):
            store.set("x", metrics, "replace")

    # ------------------------------------------------------------ what is refused

    def test_an_unregistered_model_is_refused_and_nothing_is_stored(self, store: ResultStore) -> None:
        class Loose(BaseModel):
            x: int

        with pytest.raises(ModelNotRegisteredError, match="'a'.*Loose is not registered"):
            store.set("a", Loose(x=1))
        with pytest.raises(ModelNotRegisteredError, match="namespace 'nope'"):
            store.set("a", Counter(writer="w", value=1), namespace="nope")
        assert not store.exists("a")

    def test_data_json_cannot_hold_or_read_back_the_same_is_refused(self, store: ResultStore) -> None:
        @register_model
        class Lossy(BaseModel):
            n: int

            @field_serializer("n")
            def _as_words(self, n: int) -> str:
                return f"number {n}"

        with pytest.raises(ResultValidationError, match="'lossy'.*Lossy"):
            store.set("lossy", Lossy(n=1))
        with pytest.raises(ResultValidationError, match="not representable in JSON"):
            store.set("nan", Metrics(loss=math.nan, accuracy=0.5))
        assert store.list_ids() == []

    def test_a_result_over_the_size_limit_is_refused(self, url: str) -> None:
        small = ResultStore(url, max_result_bytes=200)
        with pytest.raises(ResultTooLargeError, match="'big'.*limit of 200"):
            small.set("big", Counter(writer="w", value=1, payload="x" * 500))
        assert not small.exists("big")

    @pytest.mark.parametrize("bad", ["", "/abs", "a//b", "a/../b", ".hidden", "a\nb", "dir.json/x"])
    def test_an_invalid_id_is_refused_before_anything_is_stored(self, store: ResultStore, bad: str) -> None:
        with pytest.raises(InvalidResultIdError):
            store.set(bad, Counter(writer="w", value=1))
        assert store.list_ids() == []

    def test_a_stored_result_that_does_not_validate_says_why(self, store: ResultStore) -> None:
        plant(
            store,
            "v",
            {"model_type": "Metrics", "namespace": "default", "data": {"loss": "high", "accuracy": 2}},
        )
        with pytest.raises(ResultValidationError, match="'v'.*loss.*accuracy") as info:
            store.get("v")
        assert isinstance(info.value.__cause__, ValidationError)
        plant(store, "u", {"model_type": "Ghost", "namespace": "x", "data": {}})
        with pytest.raises(ModelNotRegisteredError, match="'u'.*'Ghost'"):
            store.get("u")
        with pytest.raises(ResultNotFoundError, match="'nope/x'") as missing:
            store.get("nope/x")
        assert isinstance(missing.value, FileNotFoundError)

    # ------------------------------------------------------------ bytes written by users

    def test_set_bytes_takes_a_full_envelope_or_the_bare_data_of_an_existing_result(
        self, store: ResultStore
    ) -> None:
        envelope = {"model_type": "Counter", "namespace": "default", "data": {"writer": "sh", "value": 1}}
        assert store.set_bytes("r", json.dumps(envelope).encode()) is True
        assert store.set_bytes("r", b'{"writer": "sh", "value": 2}') is True
        assert store.get("r") == Counter(writer="sh", value=2)
        with pytest.raises(
            ResultValidationError, match=r"bare data .* names no model, and directory '/' is not bound"
        ):
            store.set_bytes("new", b'{"writer": "sh", "value": 2}')
        with pytest.raises(ResultExistsError):
            store.set_bytes("r", json.dumps(envelope).encode(), exclusive=True)
        with pytest.raises(ResultsError, match="invalid JSON"):
            store.set_bytes("r", b"{nope")

    def test_a_bound_directory_takes_bare_data_for_new_results(self, store: ResultStore, url: str) -> None:
        binding = store.bind("runs", "default:Counter")
        assert (binding.prefix, binding.model) == ("runs", "default:Counter")
        store.set_bytes("runs/a/x", b'{"writer": "sh", "value": 3}')
        assert store.get("runs/a/x") == Counter(writer="sh", value=3)
        assert store.envelope_of("runs/a/x").model_type == "Counter"
        assert store.binding("runs/a") == binding and store.binding("runs") == binding
        assert store.binding("other") is None and store.binding(None) is None
        # A nearer binding wins; a full envelope of any model is still taken below a binding.
        store.bind(["runs", "m"], Metrics)
        store.set_bytes("runs/m/y", b'{"loss": 0.5, "accuracy": 0.5}')
        assert store.get("runs/m/y") == Metrics(loss=0.5, accuracy=0.5)
        envelope = {"model_type": "Counter", "namespace": "default", "data": {"writer": "e", "value": 1}}
        store.set_bytes("runs/m/z", json.dumps(envelope).encode())
        assert store.get("runs/m/z") == Counter(writer="e", value=1)
        # Bare data against the bound model's rules is refused like any invalid result.
        with pytest.raises(ResultValidationError, match="'runs/m/w'"):
            store.set_bytes("runs/m/w", b'{"loss": 0.5, "accuracy": 7}')
        # Kept in the store: another opening sees the bindings; unbind removes only its own.
        with ResultStore(url) as again:
            assert [(b.prefix, b.model) for b in again.bindings()] == [
                ("runs", "default:Counter"),
                ("runs/m", "default:Metrics"),
            ]
            assert again.unbind("runs/m") is not None and again.unbind("runs/m") is None
        assert store.binding("runs/m").model == "default:Counter"

    def test_binding_names_a_registered_model_and_a_valid_directory(self, store: ResultStore) -> None:
        with pytest.raises(ModelNotRegisteredError, match=r"'default:Ghost' is not registered.*--models"):
            store.bind("runs", "Ghost")
        with pytest.raises(ModelNotRegisteredError, match=r"registered as sweep:RunConfig"):
            store.bind("runs", "default:RunConfig")
        with pytest.raises(InvalidResultIdError):
            store.bind("../up", "Counter")
        whole = store.bind(None, Counter)
        assert whole.prefix == "" and store.binding("any/where") == whole

    def test_a_directory_moves_with_its_bindings(self, store: ResultStore) -> None:
        store.bind("old/sub", Counter)
        store.set_bytes("old/sub/x", b'{"writer": "m", "value": 1}')
        store.rename_dir(["old"], ["new"])
        assert [(b.prefix, b.model) for b in store.bindings()] == [("new/sub", "default:Counter")]
        store.set_bytes("new/sub/y", b'{"writer": "m", "value": 2}')
        assert store.list_ids() == ["new/sub/x", "new/sub/y"]

    def test_bare_data_that_would_silently_reset_a_stored_field_is_refused(self, store: ResultStore) -> None:
        store.set("m", Metrics(loss=0.5, accuracy=0.5, step=3))
        with pytest.raises(ResultValidationError, match=r"leaves out 'step' \(stored 3, would become 0\)"):
            store.set_bytes("m", b'{"loss": 0.4, "accuracy": 0.6}')
        assert store.get("m").step == 3
        # Fields left out that come back as they are stored (None here) are not lost.
        store.set_bytes("m", b'{"loss": 0.4, "accuracy": 0.6, "step": 3}')
        assert store.get("m") == Metrics(loss=0.4, accuracy=0.6, step=3)

    def test_merge_patches_the_stored_data(self, store: ResultStore) -> None:
        store.set("m", Metrics(loss=0.5, accuracy=0.5, step=3, inner=Inner(name="a", weights=(1.0,))))
        store.set_bytes("m", b'{"loss": 0.25, "inner": {"name": "b"}}', merge=True)
        assert store.get("m") == Metrics(
            loss=0.25, accuracy=0.5, step=3, inner=Inner(name="b", weights=(1.0,))
        )
        store.set_bytes("m", b'{"inner": null}', merge=True)
        assert store.get("m").inner is None
        envelope = {"model_type": "Metrics", "namespace": "default", "data": {"step": 9}}
        store.set_bytes("m", json.dumps(envelope).encode(), merge=True)
        assert store.get("m").step == 9
        with pytest.raises(
            ResultValidationError, match="cannot merge a default:Counter envelope into a default:Metrics"
        ):
            store.set_bytes(
                "m", b'{"model_type": "Counter", "data": {"writer": "x", "value": 1}}', merge=True
            )
        with pytest.raises(ResultValidationError, match="'m'"):
            store.set_bytes("m", b'{"accuracy": 2}', merge=True)
        assert store.get("m").step == 9

    def test_the_bytes_read_back_are_exactly_those_stored(self, store: ResultStore) -> None:
        """A valid envelope keeps its writer's layout (key order, spacing) on every backend;
        values validation changed, or bare data, are stored canonically."""
        written = (
            b'{"data": {"value": 1, "writer": "sh"},\n "model_type": "Counter", "namespace": "default"}\n'
        )
        store.set_bytes("kept", written)
        assert store.read("kept").raw == written
        store.set_bytes("changed", b'{"model_type": "Counter", "data": {"writer": "sh", "value": true}}')
        assert store.read("changed").raw == encode_model(Counter(writer="sh", value=1), "default")[1]
        store.set("api", Counter(writer="api", value=1))
        assert store.read("api").raw == encode_model(Counter(writer="api", value=1), "default")[1]

    # ------------------------------------------------------------ listing

    def test_list_ids_is_sorted_and_a_prefix_is_an_exact_subtree(self, store: ResultStore) -> None:
        rids = ["a", "a/x", "a/y/z", "ab/c", "a_b/x", "aXb/y", "A/z", "a%/q", "b/2", "b/1/x"]
        for rid in rids:
            store.set(rid, Counter(writer="t", value=0))
        assert store.list_ids() == sorted(rids)
        assert store.list_ids("a") == ["a", "a/x", "a/y/z"]
        assert store.list_ids(["a", "y"]) == ["a/y/z"]
        assert store.list_ids("a/") == ["a/x", "a/y/z"]
        assert store.list_ids("a_b") == ["a_b/x"]  # no LIKE wildcards, no case folding
        assert store.list_ids("a%") == ["a%/q"]
        assert store.list_ids("missing") == []

    def test_listdir_shows_the_results_and_directories_of_one_level(self, store: ResultStore) -> None:
        for rid in ["top", "d/one", "d/two", "d/sub/deep"]:
            store.set(rid, Counter(writer="t", value=0))
        root = store.listdir(())
        assert root is not None and (root.results, root.dirs) == (["top"], ["d"])
        level = store.listdir(("d",))
        assert level is not None and (sorted(level.results), level.dirs) == (["one", "two"], ["sub"])
        assert store.listdir(("nope",)) is None
        assert store.dir_meta(("d", "sub")) is not None and store.dir_meta(("top",)) is None

    # ------------------------------------------------------------ deleting

    def test_delete_says_whether_it_deleted(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("x", metrics)
        assert store.delete("x") is True
        assert store.delete("x") is False
        assert not store.exists("x")

    def test_delete_prunes_the_directories_it_empties_unless_told_to_keep_them(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.set("a/b/c", metrics)
        store.set("a/d", metrics)
        store.delete("a/b/c")
        assert store.dir_meta(("a", "b")) is None and store.dir_meta(("a",)) is not None
        store.delete("a/d")
        assert store.dir_meta(("a",)) is None
        store.set("k/x", metrics)
        store.delete("k/x", prune=False)
        assert store.dir_meta(("k",)) is not None
        assert store.listdir(()) is not None

    def test_clear_deletes_every_result_but_those_leased_by_others(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        for rid in ["a", "b/c", "b/d/e", "kept"]:
            store.set(rid, metrics)
        store.acquire_lock("kept", holder="someone-else")
        with pytest.raises(ResultLockedError, match="'kept'"):
            store.clear()
        assert store.list_ids() == ["kept"]

    # ------------------------------------------------------------ moving

    def test_rename_moves_the_bytes_and_metadata(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("a/x", metrics)
        store.set_meta("a/x", MetaChange(mode=0o600, times=(10**18, 10**18)))
        before = store.read("a/x")
        store.rename("a/x", "new/dir/y")
        assert store.list_ids() == ["new/dir/y"]
        after = store.read("new/dir/y")
        assert after.raw == before.raw
        assert (after.meta.mode, after.meta.mtime_ns) == (0o600, 10**18)

    def test_rename_replaces_a_result_only_when_told(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("x", metrics)
        store.set("y", Metrics(loss=1, accuracy=0))
        with pytest.raises(ResultExistsError, match="'y'"):
            store.rename("x", "y", SetBehavior.RAISE_IF_EXISTS)
        store.rename("x", "y", SetBehavior.OVERWRITE)
        assert store.list_ids() == ["y"] and store.get("y") == metrics
        with pytest.raises(ResultNotFoundError):
            store.rename("nope", "z")

    def test_rename_dir_moves_a_subtree(self, store: ResultStore, metrics: Metrics) -> None:
        for rid in ["src/a", "src/b/c", "other"]:
            store.set(rid, metrics)
        store.mkdir(("empty",))
        store.rename_dir(("src",), ("empty",))  # an empty directory is replaced, as rename(2) does
        assert store.list_ids() == ["empty/a", "empty/b/c", "other"]
        store.set("full/x", metrics)
        with pytest.raises(OSError) as info:
            store.rename_dir(("empty",), ("full",))
        assert info.value.errno == errno.ENOTEMPTY
        store.acquire_lock("empty/a", holder="someone-else")
        with pytest.raises(ResultLockedError, match="'empty/a'"):
            store.rename_dir(("empty",), ("moved",))
        assert store.list_ids() == ["empty/a", "empty/b/c", "full/x", "other"]

    def test_take_hands_the_result_over_and_deletes_exactly_that(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.set("t", metrics)
        raw = store.read("t").raw
        got: list[bytes] = []
        store.take("t", lambda data, meta: got.append(data))
        assert got == [raw] and not store.exists("t")
        store.set("t", metrics)

        def refuse(data: bytes, meta: object) -> None:
            raise OSError(errno.ENOSPC, "no room for the backup")

        with pytest.raises(OSError, match="no room"):
            store.take("t", refuse)
        assert store.get("t") == metrics

    # ------------------------------------------------------------ directories and metadata

    def test_directories_are_made_listed_and_removed_when_empty(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.mkdir(("d",), MetaChange(mode=0o750))
        store.mkdir(("d", "e"))
        meta = store.dir_meta(("d",))
        assert meta is not None and meta.mode == 0o750
        listing = store.listdir(("d",))
        assert listing is not None and (listing.results, listing.dirs) == ([], ["e"])
        with pytest.raises(FileExistsError):
            store.mkdir(("d",))
        with pytest.raises(FileNotFoundError):
            store.mkdir(("no", "parent"))
        store.set("d/e/r", metrics)
        with pytest.raises(OSError) as info:
            store.rmdir(("d", "e"))
        assert info.value.errno == errno.ENOTEMPTY
        store.delete("d/e/r", prune=False)
        store.rmdir(("d", "e"))
        store.rmdir(("d",))
        assert store.dir_meta(("d",)) is None
        with pytest.raises(FileNotFoundError):
            store.rmdir(("d",))

    def test_metadata_changes_are_kept(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("m", metrics)
        store.set_meta("m", MetaChange(mode=0o600, owner=(1234, 5678), times=(10**18, 2 * 10**18)))
        meta = store.meta("m")
        assert meta is not None
        assert (meta.mode, meta.uid, meta.gid, meta.atime_ns, meta.mtime_ns) == (
            0o600,
            1234,
            5678,
            10**18,
            2 * 10**18,
        )
        store.mkdir(("d",))
        store.set_dir_meta(("d",), MetaChange(mode=0o700))
        assert store.dir_meta(("d",)).mode == 0o700  # type: ignore[union-attr]

    def test_a_new_result_gets_the_metadata_it_is_written_with(self, store: ResultStore) -> None:
        raw = json.dumps(
            {"model_type": "Counter", "namespace": "default", "data": {"writer": "w", "value": 1}}
        )
        store.set_bytes("n", raw.encode(), change=MetaChange(mode=0o604, owner=(42, 43)))
        meta = store.meta("n")
        assert meta is not None and (meta.mode, meta.uid, meta.gid) == (0o604, 42, 43)
        store.set_bytes("n", raw.encode(), change=MetaChange(mode=0o640, owner=(44, 45)))
        meta = store.meta("n")
        assert meta is not None and (meta.mode, meta.uid) == (0o604, 42)  # an in-place write keeps them
        store.set_bytes("n", raw.encode(), change=MetaChange(mode=0o640, owner=(44, 45)), replace_meta=True)
        meta = store.meta("n")
        assert meta is not None and (meta.mode, meta.uid, meta.gid) == (0o640, 44, 45)

    # ------------------------------------------------------------ versions

    def test_a_reader_keeps_its_version_while_the_result_is_replaced(self, store: ResultStore) -> None:
        store.set("v", Counter(writer="first", value=1))
        version = store.open("v")
        assert version is not None
        with version:
            first = version.read_all(1 << 20)
            store.set("v", Counter(writer="second", value=2, payload="x" * 100), SetBehavior.OVERWRITE)
            assert version.read_all(1 << 20) == first
            assert version.read(5, 0) == first[:5]
        replaced = store.meta("v")
        assert replaced is not None and replaced.version != version.meta.version
        assert store.get("v") == Counter(writer="second", value=2, payload="x" * 100)

    # ------------------------------------------------------------ leases

    def test_a_lease_has_a_holder_and_is_released_by_it_only(self, store: ResultStore) -> None:
        assert not store.is_locked("r")
        assert store.acquire_lock("r", holder="a", hold_timeout=60) is True
        assert store.is_locked("r") and store.is_lock_holder("r", "a") and not store.is_lock_holder("r", "b")
        lease = store.lease("r")
        assert lease is not None and lease.holder == "a" and lease.expires is not None
        with pytest.raises(LockNotHeldError, match="No lock held by b for transaction with key r") as info:
            store.release_lock("r", holder="b")
        assert isinstance(info.value, ValueError)
        assert store.acquire_lock("r", holder="b", acquire_timeout=0) is False
        assert store.acquire_lock("r", holder="a", hold_timeout=120) is True  # renews
        store.release_lock("r", holder="a")
        assert not store.is_locked("r")
        with pytest.raises(LockNotHeldError, match="held by nobody"):
            store.release_lock("r", holder="a")

    def test_the_lock_context_manager_holds_for_the_block_and_times_out(self, store: ResultStore) -> None:
        with store.lock("r", holder="a"):
            assert store.is_lock_holder("r", "a")
            with (
                pytest.raises(LockTimeoutError, match="'r'.*leased by 'a'"),
                store.lock("r", "b", acquire_timeout=0.05),
            ):
                pass
        assert not store.is_locked("r")

    def test_an_expired_lease_is_free_and_its_release_says_when_it_expired(self, store: ResultStore) -> None:
        store.acquire_lock("r", holder="a", hold_timeout=0.3)
        assert store.acquire_lock("r", holder="b", acquire_timeout=0) is False
        time.sleep(0.4)
        assert not store.is_locked("r")
        with pytest.raises(LockNotHeldError, match="'a''s lease expired at"):
            store.release_lock("r", holder="a")
        assert store.acquire_lock("r", holder="b", acquire_timeout=0) is True

    def test_leases_guard_writes_deletes_and_moves(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("r", metrics)
        store.acquire_lock("r", holder="owner")
        other = Metrics(loss=1, accuracy=0)
        with pytest.raises(ResultLockedError, match="'r'.*locked by another holder.*leased by 'owner'"):
            store.set("r", other, SetBehavior.OVERWRITE, holder="intruder")
        with pytest.raises(ResultLockedError):
            store.set("r", other, SetBehavior.OVERWRITE)  # this thread's default holder is not 'owner'
        for refused in (
            lambda: store.delete("r", holder="intruder"),
            lambda: store.rename("r", "s", holder="intruder"),
            lambda: store.set_bytes("r", b'{"loss": 2, "accuracy": 0}', holder="intruder"),
        ):
            with pytest.raises(ResultLockedError):
                refused()
        assert store.get("r") == metrics
        assert store.set("r", other, SetBehavior.OVERWRITE, holder="owner") is True

    def test_a_write_may_wait_for_a_lease_to_end(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("r", metrics)
        store.acquire_lock("r", holder="owner")
        timer = threading.Timer(0.3, store.release_lock, args=("r", "owner"))
        timer.start()
        assert store.set_bytes("r", b'{"loss": 2, "accuracy": 0, "step": 3}', holder="writer", lock_wait=10)
        timer.join()
        assert store.get("r") == Metrics(loss=2, accuracy=0, step=3)

    def test_no_answer_about_leases_is_cached(self, store: ResultStore, url: str) -> None:
        second = ResultStore(url)
        assert not second.is_locked("r")
        store.acquire_lock("r", holder="a")
        assert second.is_locked("r")
        assert second.acquire_lock("r", holder="b", acquire_timeout=0) is False
        store.release_lock("r", holder="a")
        assert not second.is_locked("r")
        assert second.acquire_lock("r", holder="b", acquire_timeout=0) is True

    def test_waiting_for_a_lease_returns_when_it_is_released_or_times_out(self, store: ResultStore) -> None:
        store.acquire_lock("r", holder="a")
        assert store.wait_for_lock("r", timeout=0.1) is False
        timer = threading.Timer(0.2, store.release_lock, args=("r", "a"))
        timer.start()
        assert store.wait_for_lock("r", timeout=10) is True
        timer.join()
        store.acquire_lock("r", holder="a")
        threading.Timer(0.2, store.release_lock, args=("r", "a")).start()
        assert store.acquire_lock("r", holder="b", acquire_timeout=10) is True

    def test_live_leases_are_listed_and_any_may_be_broken(self, store: ResultStore) -> None:
        store.acquire_lock("a/x", holder="h1", hold_timeout=60)
        store.acquire_lock("a/y", holder="h2")
        store.acquire_lock("b", holder="h3", hold_timeout=0.1)
        time.sleep(0.2)
        assert [(lease.result_id, lease.holder) for lease in store.leases()] == [("a/x", "h1"), ("a/y", "h2")]
        assert [lease.result_id for lease in store.leases("a/x")] == ["a/x"]
        broken = store.break_lease("a/y")
        assert broken is not None and broken.holder == "h2"
        assert store.break_lease("a/y") is None
        assert not store.is_locked("a/y")

    def test_a_serializable_read_waits_for_the_holder_to_commit(self, url: str, metrics: Metrics) -> None:
        manager = ResultsManager(url, isolation=IsolationLevel.SERIALIZABLE, lock_timeout=10)
        manager.set("r", metrics)
        manager.acquire_lock("r", holder="writer")
        final = Metrics(loss=0.01, accuracy=1.0)

        def transaction() -> None:
            time.sleep(0.3)
            manager.set("r", final, SetBehavior.OVERWRITE, holder="writer")
            manager.release_lock("r", holder="writer")

        thread = threading.Thread(target=transaction)
        thread.start()
        assert manager.get("r") == final
        thread.join()
        manager.acquire_lock("r", holder="stuck")
        quick = ResultsManager(url, isolation=IsolationLevel.SERIALIZABLE, lock_timeout=0.2)
        with pytest.raises(LockTimeoutError, match="'r'.*'stuck'.*SERIALIZABLE"):
            quick.get("r")

    # ------------------------------------------------------------ many processes

    def test_eight_processes_racing_raise_if_exists_have_exactly_one_winner_per_id(
        self, store: ResultStore, url: str
    ) -> None:
        rids = [f"race/{i}" for i in range(30)]
        barrier, queue = FORK.Barrier(8), FORK.Queue()
        procs = [FORK.Process(target=_race_create, args=(url, rids, barrier, queue)) for _ in range(8)]
        for proc in procs:
            proc.start()
        outcomes = [queue.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        winners: dict[str, str] = {}
        for writer, wins in outcomes:
            for rid in wins:
                assert rid not in winners, f"{rid} won by {winners[rid]} and {writer}"
                winners[rid] = writer
        assert sorted(winners) == sorted(rids)
        for rid, writer in winners.items():
            assert store.get(rid).writer == writer  # type: ignore[attr-defined]

    def test_an_expired_lease_is_taken_over_by_exactly_one_of_six_waiters(
        self, store: ResultStore, url: str
    ) -> None:
        store.acquire_lock("r", holder="dead-holder", hold_timeout=0.4)
        barrier, queue = FORK.Barrier(6), FORK.Queue()
        procs = [FORK.Process(target=_take_over, args=(url, barrier, queue)) for _ in range(6)]
        for proc in procs:
            proc.start()
        outcomes = [queue.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        assert sorted(outcomes) == [False] * 5 + [True]
        lease = store.lease("r")
        assert lease is not None and re.fullmatch(r"waiter-\d+", lease.holder)

    def test_a_killed_holders_lease_expires_at_its_ttl(self, store: ResultStore, url: str) -> None:
        ready = FORK.Event()
        proc = FORK.Process(target=_hold_and_die, args=(url, ready))
        proc.start()
        proc.join(timeout=60)
        assert proc.exitcode == -signal.SIGKILL and ready.is_set()
        assert store.is_locked("r")
        assert store.acquire_lock("r", holder="next", acquire_timeout=0) is False
        assert store.acquire_lock("r", holder="next", acquire_timeout=5) is True

    def test_readers_racing_writers_never_see_a_partial_or_invalid_result(
        self, store: ResultStore, url: str
    ) -> None:
        store.set("hot/result", Counter(writer="init", value=0, payload=_payload(0)))
        deadline = time.monotonic() + 2.0
        queue = FORK.Queue()
        writers = [FORK.Process(target=_writer, args=(url, deadline, f"w{i}")) for i in range(2)]
        readers = [FORK.Process(target=_reader, args=(url, deadline, queue)) for _ in range(2)]
        for proc in writers + readers:
            proc.start()
        outcomes = [queue.get(timeout=120) for _ in readers]
        for proc in writers + readers:
            proc.join(timeout=60)
        assert all(proc.exitcode == 0 for proc in writers)
        assert sum(reads for reads, _ in outcomes) > 50
        assert [b for _, bad in outcomes for b in bad] == []

    # ------------------------------------------------------------ checking, opening, shipping

    def test_check_reports_bad_results_and_fixes_dead_leases(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.set("good", metrics)
        plant(store, "ghost", {"model_type": "Ghost", "namespace": "default", "data": {}})
        plant(store, "invalid", {"model_type": "Metrics", "namespace": "default", "data": {"loss": "x"}})
        store.acquire_lock("good", holder="h", hold_timeout=0.1)
        time.sleep(0.2)
        report = store.check()
        kinds = {(p.kind, p.path) for p in report.problems}
        assert {("unregistered", "ghost.json"), ("invalid", "invalid.json")} <= kinds
        assert any(kind == "dead-lease" for kind, _ in kinds)
        assert report.results == 3
        fixed = store.check(fix=True)
        assert {p.kind for p in fixed.fixed} == {"dead-lease"}
        assert {p.kind for p in store.check().problems} == {"unregistered", "invalid"}

    def test_a_read_only_store_refuses_every_change(
        self, store: ResultStore, url: str, metrics: Metrics
    ) -> None:
        store.set("x", metrics)
        read_only = ResultStore(open_backend(url, read_only=True))
        assert read_only.get("x") == metrics and read_only.list_ids() == ["x"]
        for change in (
            lambda: read_only.set("y", metrics),
            lambda: read_only.delete("x"),
            read_only.clear,
            lambda: read_only.acquire_lock("x"),
            lambda: read_only.mkdir(("d",)),
        ):
            with pytest.raises(ReadOnlyStoreError, match="read-only"):
                change()

    def test_stores_and_backends_pickle_and_work_in_another_process(self, store: ResultStore) -> None:
        store.set("p", Counter(writer="parent", value=1))
        again = pickle.loads(pickle.dumps(store))
        assert again.get("p") == Counter(writer="parent", value=1)
        backend = pickle.loads(pickle.dumps(store.backend))
        assert backend.get("p") == Counter(writer="parent", value=1)
        queue = FORK.Queue()
        proc = FORK.Process(target=_in_child, args=(again, queue))
        proc.start()
        assert queue.get(timeout=60) is True
        proc.join(timeout=60)
        manager = pickle.loads(pickle.dumps(ResultsManager(backend=store.backend)))
        assert manager.list_ids() == ["p"]

    def test_a_manager_switches_backends_by_assignment(
        self, url: str, tmp_path: Path, metrics: Metrics
    ) -> None:
        manager = ResultsManager(url)
        manager.set("users/john", metrics)
        manager.backend = open_backend(tmp_path / "other-store")
        assert manager._get_backend_type() == "FileBackend"
        assert not manager.exists("users/john")
        manager.set("users/jane", metrics)
        assert manager.list_ids() == ["users/jane"]
        assert ResultsManager(url).list_ids() == ["users/john"]

    # ------------------------------------------------------------ async

    def test_the_async_manager_stores_and_reads_concurrently(self, url: str, metrics: Metrics) -> None:
        async def scenario() -> list[str]:
            manager = AsyncResultsManager(url)
            await asyncio.gather(*(manager.set(f"concurrent/item{i}", metrics) for i in range(10)))
            assert await manager.get("concurrent/item3") == metrics
            assert await manager.exists("concurrent/item3")
            assert await manager.delete("concurrent/item3") is True
            async with manager.lock("concurrent/item4", hold_timeout=60):
                assert await manager.is_locked("concurrent/item4")
            return await manager.list_ids("concurrent")

        assert len(asyncio.run(scenario())) == 9

    def test_a_cancelled_set_leaves_the_old_or_the_new_result(self, url: str) -> None:
        async def scenario() -> None:
            manager = AsyncResultsManager(url)
            await manager.set("c", Counter(writer="old", value=0, payload=_payload(0)))
            for value in range(1, 30):
                task = asyncio.create_task(
                    manager.set("c", Counter(writer="new", value=value, payload=_payload(value)), "overwrite")
                )
                await asyncio.sleep(0.0005 * (value % 7))
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await asyncio.sleep(0.05)  # a set that had started finishes in its thread
                stored = await manager.get("c")
                assert stored.payload == _payload(stored.value)  # type: ignore[attr-defined]

        asyncio.run(scenario())

    def test_a_cancelled_wait_for_a_lease_holds_no_lease(self, url: str) -> None:
        async def scenario() -> None:
            manager = AsyncResultsManager(url)
            await manager.acquire_lock("l", holder="first", hold_timeout=0.5)
            waiter = asyncio.create_task(manager.acquire_lock("l", holder="second", acquire_timeout=30))
            await asyncio.sleep(0.2)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            await asyncio.sleep(0.6)  # the first lease expires
            await asyncio.sleep(0.2)
            assert not await manager.is_locked("l")

        asyncio.run(scenario())

    def test_asyncio_tasks_are_different_holders_even_in_one_thread(self, url: str) -> None:
        async def scenario() -> list[bool]:
            manager = AsyncResultsManager(url)

            async def try_lock() -> bool:
                return await manager.acquire_lock("t", acquire_timeout=0, hold_timeout=60)

            return [await asyncio.create_task(try_lock()), await asyncio.create_task(try_lock())]

        assert asyncio.run(scenario()) == [True, False]


def _envelope(step: int, loss: float = 0.5) -> str:
    return json.dumps(
        {
            "model_type": "Metrics",
            "namespace": "default",
            "data": {"loss": loss, "accuracy": 0.5, "step": step},
        }
    )


class MountContract:
    """The Unix-tool workflows through a mount, on every backend: one mount per class.

    Each test works in a directory of its own, so the tests share the mount without
    disturbing each other, and checks what was stored through the Python API.
    """

    def make_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def mounted_store(
        cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[tuple[Mount, ResultStore]]:
        root = tmp_path_factory.mktemp("mount-contract")
        root.chmod(0o755)
        url = cls().make_url(request, root)
        store = ResultStore(url)
        with mounted(
            url if "://" in url or url.startswith("sqlite:") else Path(url), root / "mnt", workdir=root
        ) as mount:
            yield mount, store
        store.close()

    @pytest.fixture
    def space(
        self, mounted_store: tuple[Mount, ResultStore], request: pytest.FixtureRequest
    ) -> tuple[Path, ResultStore, str]:
        """``(directory in the mount, store, ID prefix)``: a fresh directory for this test."""
        mount, store = mounted_store
        prefix = request.node.name.removeprefix("test_")[:60]
        store.set(f"{prefix}/seed7", Metrics(loss=0.5, accuracy=0.9, step=7))
        store.set(f"{prefix}/seed8", Metrics(loss=0.4, accuracy=0.8, step=8))
        wait_until((mount.mnt / prefix / "seed8.json").exists, 5, "seeded results did not show")
        return mount.mnt / prefix, store, prefix

    def test_cat_jq_grep_and_find_read_the_stored_results(self, space: tuple[Path, ResultStore, str]) -> None:
        here, store, prefix = space
        assert (here / "seed7.json").read_bytes() == store.read(f"{prefix}/seed7").raw
        assert sh(f"jq .data.step {here}/seed7.json").stdout == "7\n"
        assert sh(f"grep -rl '\"step\": 8' {here}").stdout.strip() == f"{here}/seed8.json"
        assert sh(f"cd {here} && find . -name '*.json' | sort").stdout.split() == [
            "./seed7.json",
            "./seed8.json",
        ]

    def test_ls_lR_tar_and_du_walk_the_tree(
        self, space: tuple[Path, ResultStore, str], tmp_path: Path
    ) -> None:
        here, store, prefix = space
        listing = sh(f"ls -lR {here}")
        assert listing.returncode == 0 and "seed7.json" in listing.stdout
        size = store.meta(f"{prefix}/seed7").size  # type: ignore[union-attr]
        assert f" {size} " in listing.stdout
        assert sh(f"tar -C {here} -cf {tmp_path}/out.tar .").returncode == 0
        assert (
            sh(f"tar -xOf {tmp_path}/out.tar ./seed7.json").stdout.encode()
            == store.read(f"{prefix}/seed7").raw
        )
        assert sh(f"du -ab {here}").returncode == 0

    def test_cp_tee_cat_and_dd_commit_new_and_existing_results(
        self, space: tuple[Path, ResultStore, str], tmp_path: Path
    ) -> None:
        here, store, prefix = space
        source = tmp_path / "r.json"
        source.write_text(_envelope(11))
        assert sh(f"cp {source} {here}/new.json").returncode == 0
        source.write_text(_envelope(12))
        assert sh(f"cp {source} {here}/new.json").returncode == 0
        assert sh(f"echo '{_envelope(21)}' | tee {here}/t.json > /dev/null").returncode == 0
        assert sh(f"echo '{_envelope(22)}' | cat > {here}/c.json").returncode == 0
        assert sh(f"echo '{_envelope(23)}' | dd of={here}/d.json status=none").returncode == 0
        steps = [store.get(f"{prefix}/{name}").step for name in ("new", "t", "c", "d")]  # type: ignore[attr-defined]
        assert steps == [12, 21, 22, 23]

    def test_bare_data_written_to_a_result_replaces_its_data_and_loses_nothing(
        self, space: tuple[Path, ResultStore, str]
    ) -> None:
        here, store, prefix = space
        assert sh(f'echo \'{{"loss": 0.01, "accuracy": 1, "step": 7}}\' > {here}/seed7.json').returncode == 0
        assert store.get(f"{prefix}/seed7") == Metrics(loss=0.01, accuracy=1, step=7)
        # Leaving out a field would reset it (step 8 -> 0): refused, and the result kept.
        assert write_errno(here / "seed8.json", b'{"loss": 0.3, "accuracy": 0.3}') == errno.EINVAL
        assert store.get(f"{prefix}/seed8").step == 8  # type: ignore[attr-defined]
        why = sh(f"getfattr --only-values -n user.results.error {here}/seed8.json").stdout
        assert "leaves out 'step' (stored 8, would become 0)" in why

    def test_a_bound_directory_takes_bare_data_from_tee(self, space: tuple[Path, ResultStore, str]) -> None:
        here, store, prefix = space
        (here / "bound" / "deep").mkdir(parents=True)
        assert sh(f"setfattr -n user.results.model -v default:Metrics {here}/bound").returncode == 0
        shown = sh(f"getfattr --only-values -n user.results.model {here}/bound/deep").stdout
        assert shown == "default:Metrics"
        assert (
            sh(f'echo \'{{"loss": 0.2, "accuracy": 0.7}}\' | tee {here}/bound/deep/r1.json').returncode == 0
        )
        assert store.get(f"{prefix}/bound/deep/r1") == Metrics(loss=0.2, accuracy=0.7)
        assert store.binding(f"{prefix}/bound/deep").model == "default:Metrics"  # type: ignore[union-attr]
        # Unbound again: bare data for a new result is refused, with the way out in the error.
        assert sh(f"setfattr -x user.results.model {here}/bound").returncode == 0
        assert write_errno(here / "bound" / "r2.json", b'{"loss": 0.2, "accuracy": 0.7}') == errno.EINVAL
        why = sh(f"getfattr --only-values -n user.results.error {here}/bound/r2.json").stdout
        assert "is not bound to one" in why
        refused = sh(f"setfattr -n user.results.model -v default:Ghost {here}/bound")
        assert refused.returncode != 0 and "Invalid argument" in refused.stderr

    def test_schemas_let_any_program_check_a_result_before_writing_it(
        self, space: tuple[Path, ResultStore, str], tmp_path: Path
    ) -> None:
        here, _, _ = space
        mnt, check = here.parent, Path(sys.executable).parent / "check-jsonschema"
        schemas = mnt / ".schemas"
        assert ".schemas" not in os.listdir(mnt)
        assert "default" in os.listdir(schemas) and "sweep" in os.listdir(schemas)
        assert {"Metrics.json", "Metrics.envelope.json"} <= set(os.listdir(schemas / "default"))
        assert json.loads((schemas / "default" / "Metrics.json").read_text())["title"] == "Metrics"
        # A writer in any language checks bare data (or an envelope) first, then writes it.
        good, bad = tmp_path / "good.json", tmp_path / "bad.json"
        good.write_text('{"loss": 0.1, "accuracy": 0.5}')
        bad.write_text('{"loss": "low", "accuracy": 5}')
        assert sh(f"{check} --schemafile {schemas}/default/Metrics.json {good}").returncode == 0
        refused = sh(f"{check} --schemafile {schemas}/default/Metrics.json {bad}")
        assert refused.returncode == 1 and "accuracy" in refused.stdout + refused.stderr
        envelope_schema = schemas / "default" / "Metrics.envelope.json"
        assert sh(f"{check} --schemafile {envelope_schema} {here}/seed7.json").returncode == 0
        # Generated and read-only; find, grep -r and du over the mount never see it.
        assert write_errno(schemas / "default" / "Metrics.json", b"{}") == errno.EROFS
        assert write_errno(schemas / "default" / "Mine.json", b"{}") == errno.EROFS
        assert _errno_of(lambda: os.mkdir(schemas / "x")) == errno.EROFS
        assert _errno_of(lambda: os.unlink(schemas / "default" / "Metrics.json")) == errno.EROFS
        assert ".schemas" not in sh(f"find {mnt}").stdout
        assert sh(f"grep -rl '\"properties\"' {mnt}").stdout == ""

    def test_jq_to_a_temp_file_then_mv_commits_by_the_rename(
        self, space: tuple[Path, ResultStore, str]
    ) -> None:
        here, store, prefix = space
        done = sh(
            f"jq '.data.step = 70' {here}/seed7.json > {here}/seed7.json.tmp && mv {here}/seed7.json.tmp {here}/seed7.json"
        )
        assert done.returncode == 0, done.stderr
        assert store.get(f"{prefix}/seed7").step == 70  # type: ignore[attr-defined]
        assert sorted(os.listdir(here)) == ["seed7.json", "seed8.json"]
        assert store.list_ids(prefix) == [f"{prefix}/seed7", f"{prefix}/seed8"]

    def test_sed_in_place(self, space: tuple[Path, ResultStore, str]) -> None:
        here, store, prefix = space
        done = sh(f'sed -i \'s/"step": 8/"step": 80/\' {here}/seed8.json')
        assert done.returncode == 0, done.stderr
        assert store.get(f"{prefix}/seed8").step == 80  # type: ignore[attr-defined]
        assert sorted(os.listdir(here)) == ["seed7.json", "seed8.json"]

    def test_rsync_of_a_directory_of_envelopes_twice(
        self, space: tuple[Path, ResultStore, str], tmp_path: Path
    ) -> None:
        here, store, prefix = space
        source = tmp_path / "envelopes"
        for i in range(5):
            (source / f"run{i % 2}").mkdir(parents=True, exist_ok=True)
            (source / f"run{i % 2}" / f"seed{i}.json").write_text(_envelope(i))
        done = sh(f"rsync -a {source}/ {here}/imported/")
        assert done.returncode == 0, done.stderr
        assert store.list_ids(f"{prefix}/imported") == sorted(
            f"{prefix}/imported/run{i % 2}/seed{i}" for i in range(5)
        )
        (source / "run0" / "seed0.json").write_text(_envelope(100))
        assert sh(f"rsync -a {source}/ {here}/imported/").returncode == 0
        assert store.get(f"{prefix}/imported/run0/seed0").step == 100  # type: ignore[attr-defined]

    def test_refused_content_leaves_the_result_and_says_why(
        self, space: tuple[Path, ResultStore, str]
    ) -> None:
        here, store, prefix = space
        before = store.read(f"{prefix}/seed7").raw
        assert write_errno(here / "seed7.json", b"garbage\n") == errno.EINVAL
        assert (
            write_errno(here / "seed7.json", _envelope(1).replace('"loss": 0.5', '"loss": "high"').encode())
            == errno.EINVAL
        )
        assert store.read(f"{prefix}/seed7").raw == before
        reason = os.getxattr(here / "seed7.json", "user.results.error").decode()
        assert reason.startswith("commit refused") and "loss" in reason

    def test_extended_attributes_show_the_type_and_the_live_lease(
        self, space: tuple[Path, ResultStore, str]
    ) -> None:
        here, store, prefix = space
        path = here / "seed7.json"
        assert os.getxattr(path, "user.results.model_type") == b"Metrics"
        assert os.getxattr(path, "user.results.namespace") == b"default"
        assert os.getxattr(path, "user.results.lock.state") == b"unlocked"
        store.acquire_lock(f"{prefix}/seed7", holder="nightly", hold_timeout=600)
        assert os.getxattr(path, "user.results.lock.state") == b"locked"
        assert os.getxattr(path, "user.results.lock.holder") == b"nightly"
        assert write_errno(path, _envelope(99).encode()) == errno.EBUSY
        assert sh(f"rm {path}").returncode != 0
        store.release_lock(f"{prefix}/seed7", holder="nightly")
        assert os.getxattr(path, "user.results.lock.state") == b"unlocked"
        assert write_errno(path, _envelope(99).encode()) is None
        assert store.get(f"{prefix}/seed7").step == 99  # type: ignore[attr-defined]

    def test_directories_moves_and_removal(self, space: tuple[Path, ResultStore, str]) -> None:
        here, store, prefix = space
        assert sh(f"mkdir -p {here}/a/b && mv {here}/seed7.json {here}/a/b/moved.json").returncode == 0
        assert store.list_ids(prefix) == [f"{prefix}/a/b/moved", f"{prefix}/seed8"]
        assert sh(f"mv {here}/a {here}/renamed").returncode == 0
        assert store.list_ids(prefix) == [f"{prefix}/renamed/b/moved", f"{prefix}/seed8"]
        assert sh(f"rm {here}/renamed/b/moved.json && rmdir {here}/renamed/b {here}/renamed").returncode == 0
        assert store.list_ids(prefix) == [f"{prefix}/seed8"]
        assert sorted(os.listdir(here)) == ["seed8.json"]
        assert (
            sh(
                f"mv {here}/seed8.json {here}/seed8.json~ && mv {here}/seed8.json~ {here}/back.json"
            ).returncode
            == 0
        )
        assert store.list_ids(prefix) == [f"{prefix}/back"]

    def test_times_and_modes_reach_the_store(
        self, space: tuple[Path, ResultStore, str], tmp_path: Path
    ) -> None:
        here, store, prefix = space
        assert (
            sh(
                f"touch -d '2020-01-02 03:04:05 UTC' {here}/seed7.json && chmod 600 {here}/seed7.json"
            ).returncode
            == 0
        )
        meta = store.meta(f"{prefix}/seed7")
        assert meta is not None and meta.mode == 0o600
        assert meta.mtime_ns == 1577934245 * 10**9
        source = tmp_path / "old.json"
        source.write_text(_envelope(3))
        os.utime(source, (1_500_000_000, 1_500_000_000))
        assert sh(f"cp -p {source} {here}/kept.json").returncode == 0
        assert store.meta(f"{prefix}/kept").mtime_ns == 1_500_000_000 * 10**9  # type: ignore[union-attr]

    def test_writes_by_the_api_show_within_a_second(self, space: tuple[Path, ResultStore, str]) -> None:
        here, store, prefix = space
        store.set(f"{prefix}/late", Counter(writer="api", value=1))
        wait_until((here / "late.json").exists, 2, "a new result did not show")
        store.set(f"{prefix}/late", Counter(writer="api", value=2), SetBehavior.OVERWRITE)
        wait_until(
            lambda: json.loads((here / "late.json").read_bytes())["data"]["value"] == 2,
            3,
            "a change did not show",
        )
