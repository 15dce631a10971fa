"""JSON Schemas of the registered models, so that programs in any language can check a result
before they write it (R's ``jsonvalidate``, Julia's ``JSONSchema``, ``check-jsonschema``).

Two schemas per model: the schema of its *data* (what a bound directory takes, see
:meth:`resultsfs.store.ResultStore.bind`) and the schema of a full *envelope*
``{"model_type", "namespace", "data"}`` (what any directory takes). Both are pydantic's own
validation schema, so a document they accept is one pydantic accepts, with the exceptions
JSON Schema cannot express (custom validators).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

from pydantic import BaseModel

from resultsfs import registry

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def data_schema(namespace: str, model_name: str, cls: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a model's data (pydantic's validation schema)."""
    schema = cls.model_json_schema(mode="validation")
    return {"$schema": DIALECT, "$id": f"resultsfs:{registry.model_ref(namespace, model_name)}", **schema}


def envelope_schema(namespace: str, model_name: str, cls: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a full envelope of the model's results."""
    data = cls.model_json_schema(mode="validation")
    defs = data.pop("$defs", None)  # references are "#/$defs/...": they must stay at the root
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"resultsfs:{registry.model_ref(namespace, model_name)}:envelope",
        "title": f"{registry.model_ref(namespace, model_name)} result",
        "type": "object",
        "properties": {
            "model_type": {"const": model_name},
            "namespace": {"const": namespace},
            "data": data,
        },
        "required": ["model_type", "namespace", "data"],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def to_bytes(schema: dict[str, Any]) -> bytes:
    """A schema as a file: indented JSON with a trailing newline."""
    return (json.dumps(schema, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def namespace_dir(namespace: str) -> str:
    """A namespace as one safe file name (``/``, ``%`` and a leading ``.`` percent-encoded)."""
    name = quote(namespace, safe=" !$&'()*+,;=:@-_~.")
    return "%2E" + name[1:] if name.startswith(".") else name


def namespace_of_dir(name: str) -> str:
    """The namespace :func:`namespace_dir` made ``name`` from."""
    return unquote(name)
