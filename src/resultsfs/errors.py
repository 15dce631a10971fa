"""The one exception hierarchy of resultsfs.

Every error derives from :class:`ResultsError` and also from the builtin exception that
``results_manager`` raised in the same situation, so code written against that library keeps
catching what it caught (``FileNotFoundError``, ``FileExistsError``, ``ValueError``, ...).
Each message names the result ID or path and the reason. Errors pickle, so they cross process
pools unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError


class ResultsError(Exception):
    """Base of every error raised by resultsfs."""

    def __init__(self, message: str, *, result_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.result_id = result_id

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.result_id))


def _rebuild(cls: type[ResultsError], message: str, result_id: str | None) -> ResultsError:
    return cls(message, result_id=result_id)


class InvalidResultIdError(ResultsError, ValueError):
    """A result ID (or a path through the mount) that cannot name a result."""


class ResultNotFoundError(ResultsError, FileNotFoundError):
    """No result is stored under the ID."""


class ResultExistsError(ResultsError, FileExistsError):
    """A result is already stored under the ID and the set behaviour forbids replacing it."""


class ResultConflictError(ResultExistsError):
    """``RAISE_IF_DIFFERENT``: a different result (type, namespace or data) is stored."""


class ModelNotRegisteredError(ResultsError, ValueError):
    """A model type name (or class) is not in the registry where it was looked for."""


class ModelConflictError(ResultsError, ValueError):
    """Registry misuse: a name taken by another class, or an ambiguous namespace."""


class ModelLoadError(ResultsError, ImportError):
    """A ``--models`` module or file could not be imported."""


class CorruptResultError(ResultsError, ValueError):
    """A stored file (or submitted bytes) is not a readable result envelope."""


class InvalidJSONError(CorruptResultError, json.JSONDecodeError):
    """Stored or submitted bytes are not JSON.

    Also a :class:`json.JSONDecodeError`, which results_manager let escape from ``get``, so
    code that catches that keeps working. ``msg``, ``lineno`` and ``colno`` say where.
    """

    def __init__(
        self, message: str, *, result_id: str | None = None, doc: str = "", pos: int = 0, reason: str = ""
    ) -> None:
        ValueError.__init__(self, message)
        self.message = message
        self.result_id = result_id
        self.msg = reason or message
        self.doc = doc
        self.pos = pos
        self.lineno = doc.count("\n", 0, pos) + 1
        self.colno = pos - doc.rfind("\n", 0, pos)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.result_id))


class ResultValidationError(ResultsError, ValidationError):
    """Result data does not validate against its model (or cannot be stored as JSON).

    Also a :class:`pydantic.ValidationError` (hence a ``ValueError``), which results_manager
    let escape from ``get``: ``errors()`` gives pydantic's structured errors, ``title`` the
    model, and the original pydantic error is the ``__cause__``. A refusal that is not about
    a field (NaN, a lossy round trip) has no structured errors.
    """

    def __new__(
        cls,
        message: str,
        *pydantic_args: Any,
        result_id: str | None = None,
        title: str = "result",
        line_errors: Iterable[Any] = (),
    ) -> ResultValidationError:
        if pydantic_args:  # pydantic's from_exception_data building the instance
            built: ResultValidationError = ValidationError.__new__(cls, message, *pydantic_args)
            return built
        made: ResultValidationError = super().from_exception_data(title, _details(line_errors))
        return made

    def __init__(
        self,
        message: str,
        *pydantic_args: Any,
        result_id: str | None = None,
        title: str = "result",
        line_errors: Iterable[Any] = (),
    ) -> None:
        if pydantic_args:
            return
        self.message = message
        self.result_id = result_id

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_validation,
            (type(self), self.message, self.result_id, self.title, _details(self.errors())),
        )


def _details(errors: Iterable[Any]) -> list[Any]:
    """pydantic's ``errors()`` as the ``line_errors`` its ``from_exception_data`` takes."""
    return [{key: error[key] for key in ("type", "loc", "input", "ctx") if key in error} for error in errors]


def _rebuild_validation(
    cls: type[ResultValidationError], message: str, result_id: str | None, title: str, line_errors: list[Any]
) -> ResultValidationError:
    return cls(message, result_id=result_id, title=title, line_errors=line_errors)


class ResultTooLargeError(ResultsError, ValueError):
    """A result is larger than the store's size limit."""


class ResultLockedError(ResultsError, ValueError):
    """Another holder has a lease on the result (``ValueError`` as in Prefect's record store)."""


class LockNotHeldError(ResultsError, ValueError):
    """Releasing a lease that the caller does not hold (or that has expired)."""


class LockTimeoutError(ResultsError, TimeoutError):
    """Waiting for a lease or for the short per-result file lock took too long."""


class UnsafePathError(ResultsError, PermissionError):
    """A path inside the store leads elsewhere (a planted symlink, a non-directory)."""


class MetadataRefusedError(ResultsError, PermissionError):
    """A change of mode, owner or times that would reach outside the store (a hard-linked file)."""


class NotSupportedError(ResultsError, OSError):
    """The backend cannot do this (a capability it lacks); the message says which and why."""


class StoreURLError(ResultsError, ValueError):
    """A store URL cannot name a store: a host in a ``file:``/``sqlite:`` URL, or no path."""


class StoreNotFoundError(ResultsError, FileNotFoundError):
    """The store's base directory does not exist and may not be created."""


class ReadOnlyStoreError(ResultsError, PermissionError):
    """A change was asked of a store opened read-only."""


class MountError(ResultsError, RuntimeError):
    """Mounting or unmounting failed; the message says why and what to do."""


class StoreReplacedError(ResultsError, OSError):
    """The store's directory was replaced or removed while it was open (a mount must restart)."""
