"""The on-disk record: ``{"model_type", "namespace", "data"}`` as JSON.

This is results_manager's FileBackend format (JSON, indent 2), so stores written by either
library read back in the other. We add a trailing newline (text tools expect one; JSON
readers ignore it) and keep ``ensure_ascii`` so the files are plain ASCII whatever the
reader's locale. Serialisation lives here, apart from storage, so the mount and the store
produce the same canonical bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from resultsfs.errors import CorruptResultError, InvalidJSONError
from resultsfs.registry import DEFAULT_NAMESPACE

_ENVELOPE_KEYS = frozenset({"model_type", "namespace", "data"})


@dataclass(frozen=True)
class Envelope:
    """A decoded result record. ``data`` is the JSON value of the model's fields."""

    model_type: str
    namespace: str
    data: Any

    def to_bytes(self) -> bytes:
        """The canonical file content of this record."""
        return encode(self.model_type, self.namespace, self.data)


def encode(model_type: str, namespace: str, data: Any) -> bytes:
    """Canonical bytes of an envelope: JSON, indent 2, ASCII, trailing newline.

    Raises ``ValueError`` for NaN and infinities, which are not JSON (``jq`` and most
    readers refuse them) although Python's ``json`` would write them.
    """
    record = {"model_type": model_type, "namespace": namespace, "data": data}
    return (json.dumps(record, indent=2, allow_nan=False) + "\n").encode("ascii")


def encode_model(model: BaseModel, namespace: str) -> tuple[Envelope, bytes]:
    """The envelope and canonical bytes storing ``model``.

    ``model_dump(mode="json")`` makes datetimes, UUIDs, Decimals, paths, enums, tuples and sets
    JSON values that validate back to equal objects.
    """
    envelope = Envelope(type(model).__name__, namespace, model.model_dump(mode="json"))
    return envelope, envelope.to_bytes()


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptResultError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJSONError(
            f"{where}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            doc=exc.doc,
            pos=exc.pos,
            reason=exc.msg,
        ) from exc
    except RecursionError as exc:
        raise CorruptResultError(f"{where}: JSON nested too deeply") from exc


def _envelope_from(obj: dict[str, Any], where: str) -> Envelope:
    model_type = obj.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise CorruptResultError(f"{where}: stored data missing model type information (no 'model_type')")
    namespace = obj.get("namespace", DEFAULT_NAMESPACE)
    if namespace is None:
        namespace = DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or not namespace:
        raise CorruptResultError(f"{where}: 'namespace' must be a non-empty string")
    if "data" not in obj:
        raise CorruptResultError(f"{where}: missing 'data'")
    return Envelope(model_type, namespace, obj["data"])


def decode(raw: bytes, where: str) -> Envelope:
    """Decode stored bytes; anything but a well-formed envelope is :class:`CorruptResultError`.

    ``where`` names the result or path in the message.
    """
    obj = _parse_json(raw, where)
    if not isinstance(obj, dict):
        raise CorruptResultError(f"{where}: a result file holds a JSON object, not {type(obj).__name__}")
    return _envelope_from(obj, where)


def decode_submission(raw: bytes, where: str) -> Envelope | dict[str, Any]:
    """Decode bytes written by a user: a full envelope, or the bare data object of a model.

    An object is an envelope when it has ``model_type`` and ``data`` and no keys besides the
    three envelope keys; any other object is bare data, whose model the caller must know.
    """
    obj = _parse_json(raw, where)
    if not isinstance(obj, dict):
        raise CorruptResultError(
            f"{where}: expected a JSON object (an envelope or the model's data), not {type(obj).__name__}"
        )
    if "model_type" in obj and "data" in obj and obj.keys() <= _ENVELOPE_KEYS:
        return _envelope_from(obj, where)
    return obj


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` as a JSON Merge Patch (RFC 7386).

    Objects merge key by key, ``null`` removes a key, anything else replaces what was there.
    """
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def same_as_written(raw: bytes, written: Envelope, validated: Envelope) -> bool:
    """True if ``raw`` (which decoded as ``written``) may be stored as it is for ``validated``.

    So it may when validation changed no value the writer wrote: same model type and
    namespace, and every value written is in the validated data unchanged, types included
    (``1`` and ``1.0``, ``true`` and ``1`` differ). Fields the writer left out may have been
    filled in with their defaults: the bytes still read back as the same result. Bytes with a
    duplicate key are never kept (parsers disagree on which one wins).
    """
    if (written.model_type, written.namespace) != (validated.model_type, validated.namespace):
        return False
    if not _unchanged(written.data, validated.data):
        return False
    try:
        json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except ValueError:
        return False
    return True


def _unchanged(written: Any, validated: Any) -> bool:
    """True if validation kept every value of ``written`` as it is (it may only add defaults)."""
    if isinstance(written, dict):
        return isinstance(validated, dict) and all(
            key in validated and _unchanged(value, validated[key]) for key, value in written.items()
        )
    if isinstance(written, list):
        return (
            isinstance(validated, list)
            and len(written) == len(validated)
            and all(_unchanged(w, v) for w, v in zip(written, validated, strict=True))
        )
    return type(written) is type(validated) and bool(written == validated)


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("duplicate key")
    return found


def looks_like_json_object_start(prefix: bytes) -> bool:
    """False if no JSON object can start with ``prefix`` (its first non-blank byte is not ``{``).

    The mount uses this to refuse ``echo garbage > x.json`` at the first ``write``.
    """
    stripped = prefix.lstrip(b" \t\r\n")
    if stripped.startswith(b"\xef\xbb\xbf"):
        return False
    return not stripped or stripped.startswith(b"{")
