"""The commands about models: ``models``, ``schema``, ``bind`` and ``unbind``.

They let a writer that is not Python learn what to write: which models are registered and
their fields (``models``), the JSON Schema of one (``schema``), and which model bare data in
a directory becomes (``bind``/``unbind``). ``bind`` works on a store (``--store``: DIR is an
ID prefix) or, without a store, on a directory of a resultsfs mount, through the mount's
``user.results.model`` attribute, so that mount users need not know where the store is.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import click
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from resultsfs import registry, schemas
from resultsfs.cli import completion, hints, output
from resultsfs.cli.options import (
    Command,
    given_store,
    json_option,
    load_models,
    models_option,
    open_store,
    store_option,
)

#: The attribute of a mount's directories that names their model (see docs/mount.md).
MODEL_XATTR = "user.results.model"
#: The file system type of a resultsfs mount in ``/proc/self/mountinfo``.
MOUNT_TYPE = "fuse.resultsfs"


@click.command(cls=Command)
@models_option
@json_option
def models(models: Sequence[str], as_json: bool) -> None:
    """List the registered models (from --models and RESULTSFS_MODELS): NS:Model, then its fields."""
    load_models(models)
    found: list[dict[str, Any]] = [
        {
            "namespace": namespace,
            "model": name,
            "ref": registry.model_ref(namespace, name),
            "fields": [_field(field_name, info) for field_name, info in cls.model_fields.items()],
        }
        for namespace, name, cls in registry.all_models()
    ]
    if not found:
        output.note("no model is registered: load them with --models SPEC (or RESULTSFS_MODELS)")
    if as_json:
        output.emit_json([{**model, "fields": [_public(f) for f in model["fields"]]} for model in found])
        return
    for model in found:
        click.echo(model["ref"])
        fields: list[dict[str, Any]] = model["fields"]
        for field in fields:
            default = f" = {field['shown']}" if "shown" in field else ""
            click.echo(f"  {field['name']}: {field['type']}{default}")


def _field(name: str, info: FieldInfo) -> dict[str, Any]:
    """One field of a model: its name, type as written in Python, whether required, and its default.

    ``default`` (JSON) is given for a plain default; ``shown`` is how the text output writes it
    (``= 0``, ``= list()`` for a default factory).
    """
    field: dict[str, Any] = {"name": name, "type": type_name(info.annotation), "required": info.is_required()}
    if info.default_factory is not None:
        field["shown"] = f"{getattr(info.default_factory, '__name__', 'factory')}()"
    elif not info.is_required() and info.default is not PydanticUndefined:
        field["default"] = to_jsonable_python(info.default, fallback=repr)
        field["shown"] = repr(info.default)
    return field


def _public(field: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in field.items() if key != "shown"}


def type_name(annotation: Any) -> str:
    """A field's type as a reader writes it: ``float``, ``datetime | None``, ``list[float]``."""
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    # typing.Optional[x], datetime.datetime, models.Inner -> Optional[x], datetime, Inner
    return re.sub(r"\b(?:[A-Za-z_][A-Za-z0-9_]*\.)+([A-Za-z_][A-Za-z0-9_]*)", r"\1", str(annotation))


@click.command(cls=Command)
@models_option
@click.option("--envelope", "whole", is_flag=True, help="The schema of a full envelope, not of the data.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for uniformity: the output is JSON anyway.")
@click.argument("model_ref", metavar="NS:Model")
def schema(models: Sequence[str], whole: bool, as_json: bool, model_ref: str) -> None:
    """Print the JSON Schema of model NS:Model's data (what a bound directory takes).

    --envelope: the schema of a whole result {"model_type", "namespace", "data"}.
    """
    del as_json
    load_models(models)
    namespace, name = registry.parse_model_ref(model_ref)
    cls = registry.get_model_class(name, namespace)
    assert cls is not None  # parse_model_ref checked it
    made = schemas.envelope_schema if whole else schemas.data_schema
    sys.stdout.buffer.write(schemas.to_bytes(made(namespace, name, cls)))
    sys.stdout.buffer.flush()


@click.command(cls=Command)
@store_option
@models_option
@json_option
@click.argument("directory", metavar="DIR", shell_complete=completion.ids(results=False))
@click.argument("model_ref", metavar="NS:Model")
def bind(store: str | None, models: Sequence[str], as_json: bool, directory: str, model_ref: str) -> None:
    """Make bare data written below DIR a NS:Model result (subdirectories inherit it).

    With a store (--store or RESULTSFS_STORE), DIR is an ID prefix ("/" for the whole store).
    Without one, or as an absolute path, DIR is a directory of a resultsfs mount, bound through
    its user.results.model attribute (the mount must have NS:Model registered).
    """
    if not _on_mount(directory, store):
        load_models(models)
        with open_store(store) as opened:
            bound = opened.bind(directory, model_ref)
        where, model = bound.prefix or "/", bound.model
    else:
        _mount_of(directory, store)
        try:
            os.setxattr(directory, MODEL_XATTR, model_ref.encode())
        except OSError as exc:
            hint = ""
            if exc.errno == errno.EINVAL:
                hint = " (is it registered in the mount? ls MOUNT/.schemas lists the mount's models)"
            raise hints.CommandError(f"cannot bind {directory} to {model_ref}: {exc.strerror}{hint}") from exc
        where, model = directory, os.getxattr(directory, MODEL_XATTR).decode()
    if as_json:
        output.emit_json({"directory": where, "model": model})
    else:
        click.echo(f"{where}: bound to {model}")


@click.command(cls=Command)
@store_option
@json_option
@click.argument("directory", metavar="DIR", shell_complete=completion.ids(results=False))
def unbind(store: str | None, as_json: bool, directory: str) -> None:
    """Remove DIR's own binding (a parent's binding, if any, then applies).

    DIR is an ID prefix with a store, a directory of a resultsfs mount without one or as an
    absolute path (as for bind).
    """
    if not _on_mount(directory, store):
        with open_store(store) as opened:
            removed = opened.unbind(directory)
            if removed is None:
                inherited = opened.binding(directory)
                also = (
                    f" (it inherits {inherited.model} from {inherited.prefix or '/'!r})" if inherited else ""
                )
                raise hints.CommandError(f"directory {directory!r} has no binding of its own{also}")
        where, model = removed.prefix or "/", removed.model
    else:
        _mount_of(directory, store)
        try:
            model = os.getxattr(directory, MODEL_XATTR).decode()
            os.removexattr(directory, MODEL_XATTR)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                raise hints.CommandError(f"directory {directory} has no binding of its own") from exc
            raise hints.CommandError(f"cannot unbind {directory}: {exc.strerror}") from exc
        where = directory
    if as_json:
        output.emit_json({"directory": where, "model": model, "unbound": True})
    else:
        click.echo(f"{where}: no longer bound to {model}")


def _on_mount(directory: str, store: str | None) -> bool:
    """True if DIR names a directory of a mount: no store is given, or DIR is an absolute path
    (no ID prefix but ``/`` starts with ``/``), so that a path into a mount works even with
    ``RESULTSFS_STORE`` set."""
    return not given_store(store) or (directory.startswith("/") and directory.strip("/") != "")


def _mount_of(directory: str, store: str | None) -> str:
    """The resultsfs mount point ``directory`` is in; a usage error (exit 2) if it is in none.

    The mounts are read from ``/proc/self/mountinfo``; ``directory`` is resolved first (through
    the mount, which must answer), so that a relative path or a symlink finds its mount.
    """
    path = os.path.realpath(directory)
    best, best_type = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
            for line in table:
                fields, _, rest = line.partition(" - ")
                where = fields.split()
                if not rest or len(where) < 5:
                    continue
                point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), where[4])
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):  # the longest; of equal ones, the last (on top)
                    best, best_type = point, rest.split()[0]
    except OSError:
        best_type = ""
    if best_type != MOUNT_TYPE:
        if given_store(store):
            raise hints.MissingStoreError(
                f"{directory} is not in a resultsfs mount: an absolute DIR names a directory of a mount; "
                "to name an ID prefix of the store, leave out the leading /"
            )
        raise hints.MissingStoreError(
            f"no store given and {directory} is not in a resultsfs mount: name the store with --store "
            "PATH_OR_URL (-s) or RESULTSFS_STORE to use DIR as an ID prefix, or name a directory of a mount"
        )
    return best
