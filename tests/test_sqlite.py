"""What only the SQLite backend has: results_manager's schema, read and written both ways.

The database below is made by plain ``sqlite3`` in results_manager's exact schema and way of
writing (``INSERT OR REPLACE``, ``json.dumps(model_dump())``, ``CURRENT_TIMESTAMP``), and read
back with its exact query, so no code of ours stands on either side.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from models import Counter, Inner, Metrics
from resultsfs import (
    CorruptResultError,
    MetaChange,
    ResultsManager,
    ResultStore,
    SetBehavior,
    StoreNotFoundError,
    open_backend,
)
from resultsfs.backends.sqlite import SqliteBackend

# results_manager's SqliteBackend._init_db, verbatim in substance.
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY,
    model_type TEXT NOT NULL,
    namespace TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_results_model_type_namespace ON results (model_type, namespace);
CREATE INDEX IF NOT EXISTS idx_results_id ON results (id);
"""


def results_manager_set(db: Path, rid: str, model: Counter | Metrics, namespace: str = "default") -> None:
    """What results_manager's SqliteBackend.set does to the database."""
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT OR REPLACE INTO results (id, model_type, namespace, data, updated_at) "
        "VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP)",
        (rid, type(model).__name__, namespace, json.dumps(model.model_dump())),
    )
    conn.commit()
    conn.close()


def results_manager_get(db: Path, rid: str) -> tuple[str, str, dict[str, object]]:
    """What results_manager's SqliteBackend.get reads, before it validates."""
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT model_type, namespace, data FROM results WHERE id = ?", (rid,)).fetchone()
    conn.close()
    assert row is not None, rid
    return row[0], row[1], json.loads(row[2])


class TestResultsManagerDatabases:
    def test_a_database_written_by_results_manager_opens_lists_and_reads(self, tmp_path: Path) -> None:
        db = tmp_path / "rm.db"
        results_manager_set(db, "users/john", Counter(writer="rm", value=1))
        results_manager_set(db, "users/jane", Metrics(loss=0.5, accuracy=0.75, inner=Inner(name="enc")))
        store = ResultStore(f"sqlite://{db}")
        assert store.list_ids() == ["users/jane", "users/john"]
        assert store.get("users/john") == Counter(writer="rm", value=1)
        assert store.get("users/jane") == Metrics(loss=0.5, accuracy=0.75, inner=Inner(name="enc"))
        listing = store.listdir(("users",))
        assert listing is not None and listing.results == ["jane", "john"]
        # A mount shows it as the canonical envelope: indent 2, trailing newline.
        assert (
            store.read("users/john").raw
            == (
                json.dumps(
                    {
                        "model_type": "Counter",
                        "namespace": "default",
                        "data": {"writer": "rm", "value": 1, "payload": ""},
                    },
                    indent=2,
                )
                + "\n"
            ).encode()
        )

    def test_a_read_only_store_reads_a_database_without_our_tables(self, tmp_path: Path) -> None:
        db = tmp_path / "rm.db"
        results_manager_set(db, "r", Counter(writer="rm", value=1))
        store = ResultStore(open_backend(f"sqlite://{db}", read_only=True))
        assert store.get("r") == Counter(writer="rm", value=1)
        assert store.lease("r") is None and store.check().ok
        tables = {
            name
            for (name,) in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        assert tables == {"results"}  # nothing was added to it

    def test_results_manager_reads_what_we_write(self, tmp_path: Path) -> None:
        db = tmp_path / "ours.db"
        store = ResultStore(f"sqlite://{db}")
        store.set(["a", "b"], Metrics(loss=0.5, accuracy=0.75, step=3))
        model_type, namespace, data = results_manager_get(db, "a/b")
        assert (model_type, namespace) == ("Metrics", "default")
        assert Metrics.model_validate(data) == Metrics(loss=0.5, accuracy=0.75, step=3)

    def test_an_overwrite_keeps_created_at(self, tmp_path: Path) -> None:
        db = tmp_path / "ours.db"
        store = ResultStore(f"sqlite://{db}")
        store.set("r", Counter(writer="w", value=1))
        conn = sqlite3.connect(db)
        conn.execute("UPDATE results SET created_at = '2020-01-01 00:00:00' WHERE id = 'r'")
        conn.commit()
        store.set("r", Counter(writer="w", value=2), SetBehavior.OVERWRITE)
        created, updated = conn.execute(
            "SELECT created_at, updated_at FROM results WHERE id = 'r'"
        ).fetchone()
        assert created == "2020-01-01 00:00:00" and updated > created

    def test_a_row_changed_by_another_program_is_read_as_it_is_now(self, tmp_path: Path) -> None:
        """Our metadata and kept bytes belong to the row as we wrote it; a later write by
        results_manager makes the row canonical again, with the database file's defaults."""
        db = tmp_path / "ours.db"
        store = ResultStore(f"sqlite://{db}")
        custom = b'{"model_type": "Counter", "namespace": "default", "data": {"writer": "w", "value": 1}}'
        store.set_bytes("r", custom, change=MetaChange(mode=0o600))
        assert store.meta("r").mode == 0o600  # type: ignore[union-attr]
        results_manager_set(db, "r", Counter(writer="rm", value=2))
        assert store.get("r") == Counter(writer="rm", value=2)
        assert store.meta("r").mode == db.stat().st_mode & 0o666  # type: ignore[union-attr]
        assert store.read("r").raw.startswith(b'{\n  "model_type": "Counter"')

    def test_rows_that_are_not_results_are_reported_not_listed(self, tmp_path: Path) -> None:
        db = tmp_path / "rm.db"
        results_manager_set(db, "ok", Counter(writer="rm", value=1))
        results_manager_set(db, "../escape", Counter(writer="rm", value=1))
        results_manager_set(db, "trailing/", Counter(writer="rm", value=1))
        conn = sqlite3.connect(db)
        conn.execute(
            "INSERT INTO results (id, model_type, namespace, data) VALUES ('bad', 'Counter', 'default', '{nope')"
        )
        conn.commit()
        store = ResultStore(f"sqlite://{db}")
        assert store.list_ids() == ["bad", "ok"]
        with pytest.raises(CorruptResultError, match="invalid JSON"):
            store.get("bad")
        report = store.check()
        assert {(p.kind, p.path.rpartition("#")[2]) for p in report.problems if p.kind == "foreign"} == {
            ("foreign", "../escape"),
            ("foreign", "trailing/"),
        }
        assert ("corrupt", "bad.json") in {(p.kind, p.path) for p in report.problems}

    def test_a_manager_switches_from_a_directory_to_sqlite(self, tmp_path: Path, metrics: Metrics) -> None:
        manager = ResultsManager(tmp_path / "files")
        manager.set("users/john", metrics)
        manager.backend = SqliteBackend(tmp_path / "data.db")
        assert manager._get_backend_type() == "SqliteBackend"
        assert not manager.exists("users/john")
        with pytest.raises(AttributeError, match="only available with FileBackend"):
            manager._get_path_from_id("users/john")


class TestDatabaseSettings:
    def test_wal_and_a_busy_timeout(self, tmp_path: Path) -> None:
        backend = SqliteBackend(tmp_path / "s.db", lock_timeout=7)
        conn = backend._conn()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 7000
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: durable at commit
        assert (
            SqliteBackend(tmp_path / "f.db", durable=False)
            ._conn()
            .execute("PRAGMA synchronous")
            .fetchone()[0]
            == 1
        )

    def test_a_missing_database_is_made_only_when_asked(self, tmp_path: Path) -> None:
        with pytest.raises(StoreNotFoundError, match="does not exist"):
            SqliteBackend(tmp_path / "missing.db", create_if_missing=False)
        with pytest.raises(StoreNotFoundError):
            open_backend(f"sqlite://{tmp_path}/missing.db", read_only=True)
        SqliteBackend(tmp_path / "deep" / "made.db")
        assert (tmp_path / "deep" / "made.db").is_file()

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("sqlite:///data/results.db", "/data/results.db"),
            ("sqlite:////data/results.db", "/data/results.db"),
            ("sqlite:relative.db", "relative.db"),
            ("file:///data/results", "/data/results"),
        ],
    )
    def test_store_urls_name_paths(self, url: str, expected: str) -> None:
        from resultsfs.backends import _path_of

        assert _path_of(url) == expected
