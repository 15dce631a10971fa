"""resultsfs copy: every result from one store into another, across backends."""

from __future__ import annotations

import json
from pathlib import Path

from contract import plant
from models import Counter, Metrics
from mounting import MODELS, resultsfs, sh
from pgserver import PostgresServer
from resultsfs import MetaChange, ResultStore, SetBehavior


def test_results_travel_through_all_three_backends_unchanged(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    origin = ResultStore(tmp_path / "files")
    origin.set("a/x", Counter(writer="w", value=1))
    origin.set("a/y", Metrics(loss=0.5, accuracy=0.75))
    origin.set_meta("a/x", MetaChange(mode=0o600, times=(10**18, 10**18)))
    sqlite, pg, back = f"sqlite://{tmp_path}/copy.db", postgres.url(), str(tmp_path / "back")
    for source, target in ((str(tmp_path / "files"), sqlite), (sqlite, pg), (pg, back)):
        done = resultsfs("copy", source, target, "--models", MODELS)
        assert done.stdout.strip().endswith(f"-> {ResultStore(target).backend.url})")
        assert done.stdout.startswith("2 copied, 0 left as they were, 0 failed")
    final = ResultStore(back)
    assert final.list_ids() == ["a/x", "a/y"]
    assert final.read("a/x").raw == origin.read("a/x").raw
    meta = final.meta("a/x")
    assert meta is not None and (meta.mode, meta.mtime_ns) == (0o600, 10**18)


def test_conflicts_and_invalid_results_are_reported_and_the_rest_copied(tmp_path: Path) -> None:
    source, target = ResultStore(tmp_path / "src"), ResultStore(tmp_path / "dst")
    source.set("same", Counter(writer="w", value=1))
    source.set("clash", Counter(writer="src", value=1))
    source.set("new", Counter(writer="w", value=2))
    plant(source, "broken", {"model_type": "Metrics", "namespace": "default", "data": {"loss": "x"}})
    target.set("same", Counter(writer="w", value=1))
    target.set("clash", Counter(writer="dst", value=9))
    done = resultsfs(
        "copy", str(tmp_path / "src"), str(tmp_path / "dst"), "--models", MODELS, "--json", check=False
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["copied"] == ["new"] and report["kept"] == []
    assert {rid for rid, _ in report["failed"]} == {"broken", "clash", "same"}
    assert sh(f"echo '{done.stdout}' | jq -r '.failed[][0]'").stdout.split() == ["broken", "clash", "same"]
    done = resultsfs(
        "copy",
        str(tmp_path / "src"),
        str(tmp_path / "dst"),
        "--models",
        MODELS,
        "--behavior",
        "skip",
        check=False,
    )
    assert "0 copied, 3 left as they were, 1 failed" in done.stdout and "failed  broken: " in done.stdout
    assert target.get("clash") == Counter(writer="dst", value=9)
    source.copy_to(target, SetBehavior.OVERWRITE, prefix="clash")
    assert target.get("clash") == Counter(writer="src", value=1)
