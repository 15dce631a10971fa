"""The namespaced model registry, API-compatible with ``results_manager.model_registry``.

Stored results name their model by class name and namespace; the registry maps those names
back to pydantic classes so that results validate on the way in and out. It is process-wide
(models register themselves at import time with :func:`register_model`) and thread-safe.
:func:`load_models` imports the modules or files that register a user's models; this is how
the CLI and the mount daemon learn them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from resultsfs.errors import ModelConflictError, ModelLoadError, ModelNotRegisteredError

DEFAULT_NAMESPACE = "default"

ModelT = TypeVar("ModelT", bound=type[BaseModel])

_lock = threading.RLock()
# namespace -> model type name -> class
_registry: dict[str, dict[str, type[BaseModel]]] = {}


def _register(model_class: type[BaseModel], namespace: str) -> None:
    if not (isinstance(model_class, type) and issubclass(model_class, BaseModel)):
        raise TypeError(f"Registered model must be a subclass of BaseModel, not {model_class!r}")
    if not isinstance(namespace, str) or not namespace:
        raise ModelConflictError(f"cannot register {model_class.__name__}: bad namespace {namespace!r}")
    name = model_class.__name__
    with _lock:
        models = _registry.setdefault(namespace, {})
        taken = models.get(name)
        if taken is not None and taken is not model_class:
            _check_same_structure(taken, model_class, namespace)
            # A notebook cell run twice defines an equal class again: replace it, as
            # results_manager does, and say so.
            warnings.warn(
                f"Model {name!r} is already registered in namespace {namespace!r}. Replacing with a new "
                f"class with the same structure ({model_class.__module__}.{model_class.__qualname__}).",
                UserWarning,
                stacklevel=4,
            )
        models[name] = model_class


def _check_same_structure(taken: type[BaseModel], new: type[BaseModel], namespace: str) -> None:
    """Raise :class:`ModelConflictError` unless ``new`` has ``taken``'s field names and types."""
    name = new.__name__
    old_fields, new_fields = taken.model_fields, new.model_fields
    where = f"Model {name!r} is already registered in namespace {namespace!r}"
    taken_by = f"(by {taken.__module__}.{taken.__qualname__})"
    if set(old_fields) != set(new_fields):
        raise ModelConflictError(
            f"{where} {taken_by} with different fields. Existing fields: {sorted(old_fields)}, "
            f"New fields: {sorted(new_fields)}"
        )
    for field_name, info in new_fields.items():
        before = old_fields[field_name].annotation
        if before != info.annotation:
            raise ModelConflictError(
                f"{where} {taken_by} with different type for field {field_name!r}. Existing type: {before}, "
                f"New type: {info.annotation}"
            )


@overload
def register_model(model_or_namespace: ModelT, namespace: str = ...) -> ModelT: ...
@overload
def register_model(
    model_or_namespace: str | None = None, namespace: str | None = None
) -> Callable[[ModelT], ModelT]: ...


def register_model(model_or_namespace: Any = None, namespace: str | None = None) -> Any:
    """Register a model class, usable in every way ``results_manager`` allowed.

    ``@register_model``, ``@register_model(namespace="x")``, ``@register_model("x")`` and
    ``register_model(Model, namespace="x")`` all work. Registering the same class again is a
    no-op. A different class under a taken name replaces it with a ``UserWarning`` if its
    fields have the same names and types (a notebook cell run twice), and raises
    :class:`ModelConflictError` otherwise.
    """
    if isinstance(model_or_namespace, type):
        _register(model_or_namespace, namespace or DEFAULT_NAMESPACE)
        return model_or_namespace
    chosen = namespace if namespace is not None else model_or_namespace
    chosen = chosen if chosen is not None else DEFAULT_NAMESPACE

    def decorator(model_class: ModelT) -> ModelT:
        _register(model_class, chosen)
        return model_class

    return decorator


def get_model_class(model_name: str, namespace: str = DEFAULT_NAMESPACE) -> type[BaseModel] | None:
    """The class registered as ``model_name`` in ``namespace``, or ``None``."""
    with _lock:
        return _registry.get(namespace, {}).get(model_name)


def find_model_namespace(model_class: type[BaseModel], strict: bool = False) -> str | None:
    """The namespace ``model_class`` is registered in, or ``None`` if it is in none.

    A class registered in several namespaces gives the first non-default one; with
    ``strict``, several non-default ones raise :class:`ModelConflictError`.
    """
    with _lock:
        found = [ns for ns, models in _registry.items() if models.get(model_class.__name__) is model_class]
    if not found:
        return None
    non_default = [ns for ns in found if ns != DEFAULT_NAMESPACE]
    if strict and len(non_default) > 1:
        raise ModelConflictError(
            f"Model {model_class.__name__!r} is registered in multiple non-default namespaces: "
            f"{', '.join(non_default)}. Specify a namespace explicitly."
        )
    return non_default[0] if non_default else found[0]


def find_model_in_all_namespaces(model_name: str) -> list[tuple[str, type[BaseModel]]]:
    """Every ``(namespace, class)`` registered under ``model_name``."""
    with _lock:
        return [(ns, models[model_name]) for ns, models in _registry.items() if model_name in models]


def resolve_model(model_name: str, namespace: str | None) -> type[BaseModel]:
    """The class for a stored result: its own namespace first, then any namespace.

    This is the lookup ``get`` and the mount use; raises :class:`ModelNotRegisteredError`.
    """
    if namespace is not None:
        found = get_model_class(model_name, namespace)
        if found is not None:
            return found
    matches = find_model_in_all_namespaces(model_name)
    if matches:
        return matches[0][1]
    where = f"namespace {namespace!r} or any other" if namespace is not None else "any namespace"
    raise ModelNotRegisteredError(
        f"model type {model_name!r} is not registered in {where}; is --models (or RESULTSFS_MODELS) "
        "missing the module that registers it?"
    )


def get_namespaces() -> list[str]:
    """Every namespace that has at least one model, sorted."""
    with _lock:
        return sorted(ns for ns, models in _registry.items() if models)


def get_models_in_namespace(namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """The model type names registered in ``namespace``, sorted."""
    with _lock:
        return sorted(_registry.get(namespace, {}))


def all_models() -> list[tuple[str, str, type[BaseModel]]]:
    """Every registered ``(namespace, model type name, class)``, sorted."""
    with _lock:
        return sorted(
            ((ns, name, cls) for ns, models in _registry.items() for name, cls in models.items()),
            key=lambda entry: (entry[0], entry[1]),
        )


def model_ref(namespace: str, model_name: str) -> str:
    """How users name a model: ``NAMESPACE:Model`` (``Model`` alone means the default namespace)."""
    return f"{namespace}:{model_name}"


def parse_model_ref(ref: str) -> tuple[str, str]:
    """``"sweep:Run"`` -> ``("sweep", "Run")``; ``"Run"`` -> ``("default", "Run")``.

    The model name is the part after the last ``:`` (class names hold none); raises
    :class:`ModelNotRegisteredError` if no such model is registered, naming where it is.
    """
    namespace, colon, name = ref.rpartition(":")
    if not colon:
        namespace = DEFAULT_NAMESPACE
    if not name or (colon and not namespace):
        raise ModelNotRegisteredError(f"{ref!r} does not name a model: write NAMESPACE:Model (or Model)")
    if get_model_class(name, namespace) is None:
        elsewhere = [ns for ns, _ in find_model_in_all_namespaces(name)]
        hint = (
            f"; it is registered as {', '.join(model_ref(ns, name) for ns in elsewhere)}"
            if elsewhere
            else "; is --models missing? (resultsfs models lists what is registered)"
        )
        raise ModelNotRegisteredError(f"model {model_ref(namespace, name)!r} is not registered{hint}")
    return namespace, name


def clear_registry(namespace: str | None = None) -> None:
    """Forget every model, or only those of ``namespace``."""
    with _lock:
        if namespace is None:
            _registry.clear()
        else:
            _registry.pop(namespace, None)


def load_models(spec: str) -> None:
    """Import ``spec`` so that the models it defines register themselves.

    ``spec`` is a dotted module path (``mypkg.models``) or the path of a ``.py`` file. A file is
    imported once per process under a name derived from its absolute path, so loading it twice
    does not register new classes that would clash with the first ones.
    """
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ModelLoadError(f"cannot load models from {spec!r}: no such file")
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        module_name = f"_resultsfs_models_{path.stem}_{digest}"
        if module_name in sys.modules:
            return
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ModelLoadError(f"cannot load models from {spec!r}: not an importable file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[module_name]
            raise ModelLoadError(f"cannot load models from {spec!r}: {type(exc).__name__}: {exc}") from exc
        return
    try:
        importlib.import_module(spec)
    except Exception as exc:
        raise ModelLoadError(f"cannot load models from module {spec!r}: {type(exc).__name__}: {exc}") from exc
