"""The storage core: format compatibility, set behaviours, reads, listing, deletes, checks."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FakeClock
from contract import run_config
from models import Counter, Inner, Metrics
from resultsfs import (
    CorruptResultError,
    FileBackend,
    InvalidResultIdError,
    ModelConflictError,
    ResultConflictError,
    ResultNotFoundError,
    ResultStore,
    SetBehavior,
    StoreNotFoundError,
    UnsafePathError,
    get_model_class,
    ids,
    register_model,
)

# Exactly what results_manager's FileBackend writes: json.dump(indent=2), no trailing newline.
RESULTS_MANAGER_FILE = """{
  "model_type": "Metrics",
  "namespace": "default",
  "data": {
    "loss": 0.5,
    "accuracy": 0.75,
    "step": 10,
    "when": null,
    "inner": {
      "name": "enc",
      "weights": [
        1.0,
        2.0
      ]
    }
  }
}"""


def files_in(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if ".resultsfs" not in p.parts)


class TestFormatCompatibility:
    def test_reads_a_store_written_by_results_manager(self, store: ResultStore) -> None:
        path = store.backend.base_dir / "sweep3" / "lr0.1" / "seed7.json"
        path.parent.mkdir(parents=True)
        path.write_text(RESULTS_MANAGER_FILE)
        result = store.get("sweep3/lr0.1/seed7")
        assert result == Metrics(
            loss=0.5, accuracy=0.75, step=10, inner=Inner(name="enc", weights=(1.0, 2.0))
        )
        assert store.list_ids() == ["sweep3/lr0.1/seed7"]

    def test_results_manager_reads_what_we_write(self, store: ResultStore) -> None:
        store.set(["sweep3", "lr0.1", "seed7"], Metrics(loss=0.5, accuracy=0.75, step=10))
        # results_manager's FileBackend.get, step by step.
        with open(store.backend.base_dir / "sweep3/lr0.1/seed7.json") as handle:
            stored = json.load(handle)
        model_class = get_model_class(stored["model_type"], namespace=stored.get("namespace", "default"))
        assert model_class is Metrics
        assert model_class.model_validate(stored["data"]) == Metrics(loss=0.5, accuracy=0.75, step=10)

    def test_file_layout_is_indent_2_envelope(self, store: ResultStore) -> None:
        store.set("a", Metrics(loss=0.5, accuracy=0.75, step=10, inner=Inner(name="enc", weights=(1.0, 2.0))))
        assert (store.backend.base_dir / "a.json").read_text() == RESULTS_MANAGER_FILE + "\n"

    def test_location_names_the_file(self, store: ResultStore) -> None:
        assert store.location(["a", "b"]) == str(store.backend.base_dir / "a" / "b.json")

    def test_namespace_is_recorded(self, store: ResultStore) -> None:
        store.set("cfg", run_config())
        stored = json.loads((store.backend.base_dir / "cfg.json").read_text())
        assert (stored["model_type"], stored["namespace"]) == ("RunConfig", "sweep")


class TestRoundTrip:
    def test_no_partial_or_temp_file_is_left(self, store: ResultStore, store_dir: Path) -> None:
        store.set("a/b", run_config())
        assert files_in(store_dir) == ["a", "a/b.json"]

    def test_model_not_in_stored_namespace_is_found_in_another(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.set("m", metrics)
        raw = json.loads((store.backend.base_dir / "m.json").read_text())
        raw["namespace"] = "gone"
        (store.backend.base_dir / "m.json").write_text(json.dumps(raw))
        assert store.get("m") == metrics


class TestSetBehavior:
    def test_skip_if_exists_leaves_the_stored_result_untouched(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        store.set("x", metrics)
        path = store.backend.base_dir / "x.json"
        before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino)
        other = Metrics(loss=9, accuracy=0.1)
        assert store.set("x", other, SetBehavior.SKIP_IF_EXISTS) is False
        assert store.set("x", metrics, SetBehavior.SKIP_IF_EXISTS) is False
        assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino) == before

    def test_raise_if_different_treats_a_corrupt_stored_file_as_different(self, store: ResultStore) -> None:
        (store.backend.base_dir / "x.json").write_text("{broken")
        with pytest.raises(ResultConflictError):
            store.set("x", Counter(writer="w", value=1), SetBehavior.RAISE_IF_DIFFERENT)
        assert (store.backend.base_dir / "x.json").read_text() == "{broken"

    def test_overwrite_replaces_and_keeps_the_file_mode(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("x", metrics)
        os.chmod(store.backend.base_dir / "x.json", 0o640)
        other = Metrics(loss=1, accuracy=0.5)
        assert store.set("x", other, SetBehavior.OVERWRITE) is True
        assert store.get("x") == other
        assert (store.backend.base_dir / "x.json").stat().st_mode & 0o777 == 0o640


class TestSetRefusals:
    def test_ambiguous_namespace_with_strict(self, store: ResultStore, metrics: Metrics) -> None:
        register_model(Metrics, namespace="second")
        store.set("a", metrics, strict_namespace=True)  # "default" and one other: not ambiguous
        assert json.loads((store.backend.base_dir / "a.json").read_text())["namespace"] == "second"
        register_model(Metrics, namespace="third")
        with pytest.raises(
            ModelConflictError,
            match="Cannot automatically determine namespace.*multiple non-default namespaces",
        ):
            store.set("b", metrics, strict_namespace=True)
        store.set("b", metrics)
        assert json.loads((store.backend.base_dir / "b.json").read_text())["namespace"] == "second"

    def test_not_a_model(self, store: ResultStore) -> None:
        with pytest.raises(TypeError, match="not a pydantic model"):
            store.set("a", {"x": 1})  # type: ignore[arg-type]


class TestGet:
    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            ("{not json", "invalid JSON"),
            ("", "invalid JSON"),
            ('{"namespace": "default", "data": {}}', "model_type"),
            ('{"model_type": "", "data": {}}', "model_type"),
            ('{"model_type": "Metrics"}', "missing 'data'"),
            ("[1, 2]", "JSON object"),
            ('{"model_type": "Metrics", "namespace": 3, "data": {}}', "namespace"),
        ],
    )
    def test_corrupt_files_raise_a_clear_error(self, store: ResultStore, content: str, reason: str) -> None:
        (store.backend.base_dir / "bad.json").write_text(content)
        with pytest.raises(CorruptResultError, match=f"'bad'.*{reason}"):
            store.get("bad")

    def test_binary_garbage(self, store: ResultStore) -> None:
        (store.backend.base_dir / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
        with pytest.raises(CorruptResultError, match="not UTF-8"):
            store.get("bin")

    def test_a_directory_named_like_a_result_is_not_one(self, store: ResultStore) -> None:
        (store.backend.base_dir / "d").mkdir()
        assert not store.exists("d")
        with pytest.raises(ResultNotFoundError):
            store.get("d")


class TestListIds:
    def test_store_files_temp_files_and_foreign_files_are_never_listed(self, store: ResultStore) -> None:
        store.set("r", Counter(writer="t", value=0))
        store.acquire_lock("r")
        (store.backend.base_dir / ".resultsfs-tmp.h.1.abc").write_text("{")
        (store.backend.base_dir / "notes.txt").write_text("hi")
        (store.backend.base_dir / ".hidden.json").write_text("{}")
        (store.backend.base_dir / "x.json.tmp").write_text("{}")
        assert store.list_ids() == ["r"]


class TestDeleteAndClear:
    def test_delete_prunes_emptied_parents_only(self, store: ResultStore, metrics: Metrics) -> None:
        store.set("a/b/c", metrics)
        store.set("a/d", metrics)
        store.delete("a/b/c")
        assert not (store.backend.base_dir / "a" / "b").exists()
        assert (store.backend.base_dir / "a").is_dir()
        store.delete("a/d")
        assert not (store.backend.base_dir / "a").exists()
        assert store.backend.base_dir.is_dir()

    def test_clear_removes_results_and_keeps_foreign_files(
        self, store: ResultStore, metrics: Metrics
    ) -> None:
        for rid in ["a", "b/c", "b/d/e"]:
            store.set(rid, metrics)
        (store.backend.base_dir / "b" / "README").write_text("keep me")
        store.clear()
        assert store.list_ids() == []
        assert (store.backend.base_dir / "b" / "README").read_text() == "keep me"
        assert not (store.backend.base_dir / "b" / "d").exists()


class TestStoreSetup:
    def test_locks_live_inside_the_store(self, store: ResultStore, metrics: Metrics) -> None:
        before = set(os.listdir(tempfile.gettempdir()))
        store.set("x", metrics)
        assert list((store.backend.base_dir / ".resultsfs" / "locks").glob("*.lock"))
        assert not {n for n in set(os.listdir(tempfile.gettempdir())) - before if "lock" in n}

    def test_missing_store_without_create(self, tmp_path: Path) -> None:
        with pytest.raises(StoreNotFoundError, match="does not exist") as info:
            FileBackend(tmp_path / "nope", create_if_missing=False)
        assert isinstance(info.value, FileNotFoundError)


class TestSymlinksAreNeverFollowed:
    def test_planted_directory_symlink(self, store: ResultStore, tmp_path: Path, metrics: Metrics) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.json").write_text(RESULTS_MANAGER_FILE)
        (store.backend.base_dir / "link").symlink_to(outside)
        with pytest.raises(UnsafePathError, match="symlink"):
            store.get("link/secret")
        with pytest.raises(UnsafePathError):
            store.set("link/planted", metrics)
        assert sorted(os.listdir(outside)) == ["secret.json"]
        assert store.list_ids() == []

    def test_planted_file_symlink_and_loop(
        self, store: ResultStore, tmp_path: Path, metrics: Metrics
    ) -> None:
        target = tmp_path / "target.json"
        target.write_text(RESULTS_MANAGER_FILE)
        (store.backend.base_dir / "x.json").symlink_to(target)
        (store.backend.base_dir / "loop").symlink_to(store.backend.base_dir / "loop")
        with pytest.raises(UnsafePathError):
            store.get("x")
        with pytest.raises(UnsafePathError):
            store.get("loop/y")
        assert store.list_ids() == []
        assert target.read_text() == RESULTS_MANAGER_FILE


class TestCleanup:
    def test_removes_abandoned_temp_files_everywhere_and_dead_leases(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        store = clocked_store
        store.set("a/b", Counter(writer="w", value=1))
        stale = [
            store.backend.base_dir / ".resultsfs-tmp.otherhost.1.aa",
            store.backend.base_dir / "a" / ".resultsfs-tmp.otherhost.2.bb",
            store.backend.base_dir / ".resultsfs" / "leases" / ".resultsfs-tmp.otherhost.3.cc",
        ]
        for path in stale:
            path.write_text("{")
            os.utime(path, (0, 0))
        fresh = store.backend.base_dir / "a" / ".resultsfs-tmp.otherhost.4.dd"
        fresh.write_text("{")  # another host's writer may still be busy with it
        store.acquire_lock("a/b", holder="gone", hold_timeout=5)
        clock.advance(6)
        removed = store.cleanup()
        assert not any(p.exists() for p in stale) and fresh.exists()
        assert len(removed) == 4
        assert store.get("a/b") == Counter(writer="w", value=1)


class TestCheck:
    def test_reports_every_kind_of_problem_and_fixes_only_safe_ones(
        self, clocked_store: ResultStore, clock: FakeClock, metrics: Metrics
    ) -> None:
        store = clocked_store
        store.set("good", metrics)
        (store.backend.base_dir / "corrupt.json").write_text("{")
        (store.backend.base_dir / "ghost.json").write_text('{"model_type": "Ghost", "data": {}}')
        (store.backend.base_dir / "invalid.json").write_text(
            '{"model_type": "Metrics", "data": {"loss": "x"}}'
        )
        (store.backend.base_dir / "notes.txt").write_text("hi")
        stale = store.backend.base_dir / ".resultsfs-tmp.otherhost.1.abc"
        stale.write_text("{")
        os.utime(stale, (0, 0))
        store.acquire_lock("good", holder="h", hold_timeout=60)
        clock.advance(61)
        report = store.check()
        kinds = {(p.kind, p.path) for p in report.problems}
        assert ("corrupt", "corrupt.json") in kinds
        assert ("unregistered", "ghost.json") in kinds
        assert ("invalid", "invalid.json") in kinds
        assert ("foreign", "notes.txt") in kinds
        assert ("stale-temp", stale.name) in kinds
        assert any(kind == "dead-lease" for kind, _ in kinds)
        assert report.results == 4
        fixed = store.check(fix=True)
        assert {p.kind for p in fixed.fixed} == {"stale-temp", "dead-lease"}
        assert not stale.exists()
        assert (store.backend.base_dir / "corrupt.json").exists()
        assert {p.kind for p in store.check().problems} == {"corrupt", "unregistered", "invalid", "foreign"}


_TRICKY_PART = st.text(alphabet="-.0a+_é", min_size=1, max_size=3)  # around "/" in code order


@settings(max_examples=60, deadline=None)
@given(rids=st.lists(st.lists(_TRICKY_PART, min_size=1, max_size=3).map("/".join), max_size=25))
def test_the_directory_walk_finds_ids_in_sorted_order(rids: list[str]) -> None:
    """scan walks each directory in key order (a subdirectory d sorts as "d/"), so list_ids
    only has to check the order: the walk alone must give exactly the sorted IDs."""
    valid = set()
    for rid in rids:
        with contextlib.suppress(InvalidResultIdError):
            valid.add(ids.normalize_id(rid))
    with tempfile.TemporaryDirectory() as base:
        for rid in valid:
            path = Path(base, ids.id_to_relpath(rid))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
        for not_a_result in ["notes.txt", ".x.json", "y.json~", "é.json.tmp", "d.json/z.json", ".h/z.json"]:
            path = Path(base, not_a_result)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
        assert list(FileBackend(base).scan(())) == sorted(valid)
