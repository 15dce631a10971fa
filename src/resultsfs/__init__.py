"""resultsfs: a typed, validated results store for pydantic models, mountable as a filesystem."""

import importlib.metadata

from resultsfs.aio import (
    AsyncFileBackend,
    AsyncPostgresBackend,
    AsyncResultsBackend,
    AsyncResultsManager,
    AsyncSqliteBackend,
)
from resultsfs.backends import backend_class, open_backend
from resultsfs.backends.base import Listing, Meta, MetaChange, ResultsBackend, Transaction, Version
from resultsfs.backends.files import FileBackend
from resultsfs.envelope import Envelope
from resultsfs.errors import (
    CorruptResultError,
    InvalidJSONError,
    InvalidResultIdError,
    LockNotHeldError,
    LockTimeoutError,
    MetadataRefusedError,
    ModelConflictError,
    ModelLoadError,
    ModelNotRegisteredError,
    MountError,
    NotSupportedError,
    ReadOnlyStoreError,
    ResultConflictError,
    ResultExistsError,
    ResultLockedError,
    ResultNotFoundError,
    ResultsError,
    ResultTooLargeError,
    ResultValidationError,
    StoreNotFoundError,
    StoreReplacedError,
    StoreURLError,
    UnsafePathError,
)
from resultsfs.ids import ResultId
from resultsfs.leases import IsolationLevel, Lease, default_holder
from resultsfs.manager import ResultsManager
from resultsfs.registry import (
    DEFAULT_NAMESPACE,
    clear_registry,
    find_model_in_all_namespaces,
    find_model_namespace,
    get_model_class,
    get_models_in_namespace,
    get_namespaces,
    load_models,
    register_model,
)
from resultsfs.store import Binding, CheckReport, CopyReport, Problem, ResultStore, SetBehavior, StoredResult

try:
    __version__ = importlib.metadata.version("resultsfs")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> object:
    # The SQL backends are imported when first asked for: programs that never use them do not
    # pay for their drivers.
    if name in ("SqliteBackend", "PostgresBackend"):
        return backend_class("sqlite" if name == "SqliteBackend" else "postgresql")
    raise AttributeError(f"module 'resultsfs' has no attribute {name!r}")


__all__ = [
    "DEFAULT_NAMESPACE",
    "AsyncFileBackend",
    "AsyncPostgresBackend",
    "AsyncResultsBackend",
    "AsyncResultsManager",
    "AsyncSqliteBackend",
    "Binding",
    "CheckReport",
    "CopyReport",
    "CorruptResultError",
    "Envelope",
    "FileBackend",
    "InvalidJSONError",
    "InvalidResultIdError",
    "IsolationLevel",
    "Lease",
    "Listing",
    "LockNotHeldError",
    "LockTimeoutError",
    "Meta",
    "MetaChange",
    "MetadataRefusedError",
    "ModelConflictError",
    "ModelLoadError",
    "ModelNotRegisteredError",
    "MountError",
    "NotSupportedError",
    "PostgresBackend",
    "Problem",
    "ReadOnlyStoreError",
    "ResultConflictError",
    "ResultExistsError",
    "ResultId",
    "ResultLockedError",
    "ResultNotFoundError",
    "ResultStore",
    "ResultTooLargeError",
    "ResultValidationError",
    "ResultsBackend",
    "ResultsError",
    "ResultsManager",
    "SetBehavior",
    "SqliteBackend",
    "StoreNotFoundError",
    "StoreReplacedError",
    "StoreURLError",
    "StoredResult",
    "Transaction",
    "UnsafePathError",
    "Version",
    "__version__",
    "clear_registry",
    "default_holder",
    "find_model_in_all_namespaces",
    "find_model_namespace",
    "get_model_class",
    "get_models_in_namespace",
    "get_namespaces",
    "load_models",
    "open_backend",
    "register_model",
]
