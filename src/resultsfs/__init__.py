"""resultsfs: a typed, validated results store for pydantic models, mountable as a filesystem."""

from resultsfs.envelope import Envelope
from resultsfs.errors import (
    CorruptResultError,
    InvalidResultIdError,
    LockNotHeldError,
    LockTimeoutError,
    ModelConflictError,
    ModelLoadError,
    ModelNotRegisteredError,
    MountError,
    ReadOnlyStoreError,
    ResultConflictError,
    ResultExistsError,
    ResultLockedError,
    ResultNotFoundError,
    ResultsError,
    ResultTooLargeError,
    ResultValidationError,
    StoreNotFoundError,
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
from resultsfs.store import CheckReport, FileBackend, Problem, ResultStore, SetBehavior, StoredResult

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_NAMESPACE",
    "CheckReport",
    "CorruptResultError",
    "Envelope",
    "FileBackend",
    "InvalidResultIdError",
    "IsolationLevel",
    "Lease",
    "LockNotHeldError",
    "LockTimeoutError",
    "ModelConflictError",
    "ModelLoadError",
    "ModelNotRegisteredError",
    "MountError",
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
    "ResultsError",
    "ResultsManager",
    "SetBehavior",
    "StoreNotFoundError",
    "StoredResult",
    "UnsafePathError",
    "__version__",
    "clear_registry",
    "default_holder",
    "find_model_in_all_namespaces",
    "find_model_namespace",
    "get_model_class",
    "get_models_in_namespace",
    "get_namespaces",
    "load_models",
    "register_model",
]
