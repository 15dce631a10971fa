"""A store that follows results_manager's FileBackend strategy, for side-by-side benchmarks.

File lock (in the system temp directory) around every operation, ``json.dump`` to a fixed
``.tmp`` name, rename, no fsync; reads and ``exists`` lock too; ``list_ids`` walks the tree
with ``rglob("*.json")`` and takes no lock. Kept only as a yardstick.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel

from resultsfs import registry


class ResultsManagerStyleStore:
    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.locks_dir = Path(tempfile.mkdtemp(prefix="rm_style_locks"))

    def close(self) -> None:
        """Remove the lock directory (results_manager leaves its own behind; a benchmark should not)."""
        shutil.rmtree(self.locks_dir, ignore_errors=True)

    def _paths(self, result_id: str) -> tuple[Path, Path]:
        path = self.base_dir.joinpath(*result_id.split("/")).with_suffix(".json")
        lock = self.locks_dir / (str(path.relative_to(self.base_dir)).replace("/", "_") + ".lock")
        return path, lock

    def set(self, result_id: str, data: BaseModel) -> bool:
        path, lock = self._paths(result_id)
        with FileLock(lock, timeout=10):
            path.parent.mkdir(parents=True, exist_ok=True)
            namespace = registry.find_model_namespace(type(data)) or "default"
            record = {"model_type": type(data).__name__, "namespace": namespace, "data": data.model_dump()}
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w") as handle:
                json.dump(record, handle, indent=2)
            tmp.replace(path)
        return True

    def get(self, result_id: str) -> BaseModel:
        path, lock = self._paths(result_id)
        with FileLock(lock):
            with open(path) as handle:
                stored = json.load(handle)
            cls = registry.get_model_class(stored["model_type"], stored.get("namespace", "default"))
            assert cls is not None
        return cls.model_validate(stored["data"])

    def exists(self, result_id: str) -> bool:
        path, lock = self._paths(result_id)
        with FileLock(lock):
            return path.exists()

    def list_ids(self) -> list[str]:
        return [
            str(path.relative_to(self.base_dir).with_suffix("")) for path in self.base_dir.rglob("*.json")
        ]
