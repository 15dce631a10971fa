"""Verdicts outlive a mount: a remount does not validate again what an earlier mount validated.

The verdicts of a store live in this host's state directory, keyed by each result's version,
in a file named by the fingerprint of the models (their schemas and source files): a changed
result, or changed models, are validated again.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from models import Counter
from mounting import mounted, start, stop
from resultsfs import FileBackend, SetBehavior


def _validations(log: str) -> int:
    return log.count("validated version")


def _read_all(mnt: Path) -> None:
    for path in sorted(mnt.rglob("*.json")):
        with contextlib.suppress(OSError):  # the invalid one
            path.read_bytes()


def test_a_remount_trusts_the_verdicts_of_the_last_mount(tmp_path: Path) -> None:
    store = tmp_path / "store"
    backend = FileBackend(store)
    for i in range(20):
        backend.set(f"d{i % 3}/r{i}", Counter(writer="v", value=i))
    (store / "d0" / "bad.json").write_text('{"model_type": "Counter", "data": {"value": "x"}}')
    with mounted(store, tmp_path / "mnt") as m:
        _read_all(m.mnt)
    assert _validations(m.log()) == 21
    m.log_file.unlink()

    with mounted(store, tmp_path / "mnt") as m:
        _read_all(m.mnt)
        with_error = os.getxattr(m.path("d0/bad.json"), "user.results.error").decode()
    assert _validations(m.log()) == 0
    assert "value" in with_error  # the kept verdict of an invalid result keeps its reason
    m.log_file.unlink()

    # A changed result is a new version: validated again, and only it.
    backend.set("d1/r1", Counter(writer="changed", value=1), SetBehavior.OVERWRITE)
    with mounted(store, tmp_path / "mnt") as m:
        _read_all(m.mnt)
    assert _validations(m.log()) == 1


def test_changed_models_start_over(tmp_path: Path) -> None:
    models = tmp_path / "notes.py"
    models.write_text(
        "from pydantic import BaseModel\nfrom resultsfs import register_model\n\n\n"
        "@register_model(namespace='fp')\nclass Note(BaseModel):\n    text: str\n"
    )
    store = tmp_path / "store"
    store.mkdir()
    (store / "r.json").write_text('{"model_type": "Note", "namespace": "fp", "data": {"text": "hi"}}')
    logs = []
    for edit in ("", "\n# an edit: the fingerprint changes\n"):
        models.write_text(models.read_text() + edit)
        mount = start(store, tmp_path / "mnt", extra=["--models", str(models), "--trust-models"])
        try:
            assert (mount.mnt / "r.json").read_bytes().startswith(b"{")
        finally:
            stop(mount)
        logs.append(mount.log())
        mount.log_file.unlink()
    assert [_validations(text) for text in logs] == [1, 1]
