"""Backends: where results live. One module per kind of storage, all behind one contract.

* :mod:`.base`: :class:`ResultsBackend`, the contract a backend implements;
* :mod:`.files`: a directory of JSON envelope files (results_manager's ``FileBackend``);
* :mod:`.sqlite`: an SQLite database in results_manager's ``SqliteBackend`` schema;
* :mod:`.postgres`: PostgreSQL, for workers on several machines.

A fourth backend goes next to these, and into :data:`SCHEMES` below so that a URL can name it.
:func:`open_backend` turns what a user typed (a path or a URL) into a backend.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from resultsfs.backends.base import ResultsBackend
from resultsfs.errors import StoreURLError

#: URL schemes and the backend each names (``module:Class``, imported on first use so that
#: a driver a user does not need, such as psycopg, need not be installed).
SCHEMES = {
    "file": "resultsfs.backends.files:FileBackend",
    "sqlite": "resultsfs.backends.sqlite:SqliteBackend",
    "postgresql": "resultsfs.backends.postgres:PostgresBackend",
    "postgres": "resultsfs.backends.postgres:PostgresBackend",
}


def is_url(name: str) -> bool:
    """True if ``name`` is a URL of a known scheme rather than a path.

    ``SCHEME://...`` for every scheme, and ``sqlite:PATH`` (a relative database path).
    """
    scheme, sep, _ = name.partition("://")
    if sep:
        return scheme.lower() in SCHEMES
    return name.lower().startswith("sqlite:")


def backend_class(scheme: str) -> type[ResultsBackend]:
    """The backend class of a URL scheme (its module imported now)."""
    module_name, _, class_name = SCHEMES[scheme].partition(":")
    cls: type[ResultsBackend] = getattr(importlib.import_module(module_name), class_name)
    return cls


def open_backend(
    store: str | os.PathLike[str], *, create_if_missing: bool = True, read_only: bool = False, **options: Any
) -> ResultsBackend:
    """The backend a path or URL names.

    * ``/data/results``, ``results``, ``file:///data/results``: a directory (:class:`FileBackend`);
    * ``sqlite:///data/results.db``: the SQLite file ``/data/results.db`` (absolute, as in a
      ``file://`` URL; SQLAlchemy's ``sqlite:////data/results.db`` means the same);
      ``sqlite:results.db``: a path relative to the current directory;
    * ``postgresql://user@host/db``, ``postgresql:///db?host=/run/postgresql``: PostgreSQL (the
      URL goes to libpq as it is).
    """
    name = os.fspath(store)
    if not is_url(name):
        return backend_class("file")(name, create_if_missing, read_only=read_only, **options)  # type: ignore[call-arg]
    scheme = name.partition(":")[0].lower()
    cls = backend_class(scheme)
    if scheme in ("postgresql", "postgres"):
        return cls(name, read_only=read_only, **options)  # type: ignore[call-arg]
    return cls(_path_of(name), create_if_missing, read_only=read_only, **options)  # type: ignore[call-arg]


def _path_of(url: str) -> str:
    """The filesystem path of a ``file://`` or ``sqlite:`` URL (see :func:`open_backend`)."""
    scheme, _, rest = url.partition(":")
    if not rest.startswith("//"):
        path = unquote(rest)  # sqlite:relative.db
    else:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StoreURLError(f"{url!r}: a {scheme} URL names a local path; no host is allowed")
        path = "/" + unquote(parts.path).lstrip("/") if parts.path else ""
    if not path:
        raise StoreURLError(f"{url!r}: no path (write {scheme}:///absolute/path or sqlite:relative.db)")
    return str(Path(path))


def shown_url(store: str | os.PathLike[str]) -> str:
    """``store`` as messages and logs may show it: a URL's password replaced by ``***``.

    Both places libpq takes a password from are covered: ``user:secret@host`` and
    ``?password=secret``.
    """
    name = os.fspath(store)
    if not is_url(name) or "://" not in name:
        return name
    scheme, _, rest = name.partition("://")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, after = rest[:cut], rest[cut:]
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:***@{host}"
    path, question, query = after.partition("?")
    if question:
        query = "&".join(
            "password=***" if pair.partition("=")[0] == "password" else pair for pair in query.split("&")
        )
    return f"{scheme}://{authority}{path}{question}{query}"


__all__ = ["SCHEMES", "ResultsBackend", "backend_class", "is_url", "open_backend", "shown_url"]
