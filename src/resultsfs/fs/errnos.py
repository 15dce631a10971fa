"""The one table from store errors to the errno a program sees through the mount.

A subclass gets its base's errno (``ResultConflictError`` gives ``EEXIST``); an ``OSError``
keeps its own; anything else is ``EIO``. Reads turn validation errors into ``EIO`` instead
(see ``ResultsOperations.open``). Importable without the FUSE binding, so the docs' table and
its test need no libfuse.
"""

from __future__ import annotations

import errno

from resultsfs.errors import (
    CorruptResultError,
    InvalidResultIdError,
    LockNotHeldError,
    LockTimeoutError,
    MetadataRefusedError,
    ModelConflictError,
    ModelLoadError,
    ModelNotRegisteredError,
    NotSupportedError,
    ReadOnlyStoreError,
    ResultExistsError,
    ResultLockedError,
    ResultNotFoundError,
    ResultsError,
    ResultTooLargeError,
    ResultValidationError,
    StoreNotFoundError,
    StoreReplacedError,
    UnsafePathError,
)

ERRNO: dict[type[ResultsError], int] = {
    InvalidResultIdError: errno.EINVAL,
    ResultNotFoundError: errno.ENOENT,
    ResultExistsError: errno.EEXIST,
    ModelNotRegisteredError: errno.EINVAL,
    CorruptResultError: errno.EINVAL,
    ResultValidationError: errno.EINVAL,
    ResultTooLargeError: errno.EFBIG,
    ResultLockedError: errno.EBUSY,
    LockTimeoutError: errno.EBUSY,
    LockNotHeldError: errno.EPERM,
    UnsafePathError: errno.EACCES,
    MetadataRefusedError: errno.EPERM,
    NotSupportedError: errno.EOPNOTSUPP,
    ReadOnlyStoreError: errno.EROFS,
    StoreNotFoundError: errno.ENOENT,
    StoreReplacedError: errno.ESTALE,
    ModelConflictError: errno.EINVAL,
    ModelLoadError: errno.EINVAL,
}


def errno_of(exc: BaseException) -> int:
    """The errno a program sees for ``exc``."""
    if isinstance(exc, ResultsError):
        for cls in type(exc).__mro__:
            code = ERRNO.get(cls)
            if code is not None:
                return code
    if isinstance(exc, OSError) and exc.errno:
        return int(exc.errno)
    return errno.EIO
