"""One exception hierarchy; each error is also the builtin results_manager raised, and pickles."""

from __future__ import annotations

import pickle

import pytest

from resultsfs import errors

ALL_ERRORS = [
    cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.ResultsError)
]


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_pickles_with_message_and_id(cls: type[errors.ResultsError]) -> None:
    error = cls("result 'a/b': reason", result_id="a/b")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert str(again) == "result 'a/b': reason"
    assert again.result_id == "a/b"


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.ResultNotFoundError, FileNotFoundError),
        (errors.ResultExistsError, FileExistsError),
        (errors.ResultConflictError, FileExistsError),
        (errors.ModelNotRegisteredError, ValueError),
        (errors.InvalidResultIdError, ValueError),
        (errors.CorruptResultError, ValueError),
        (errors.ResultValidationError, ValueError),
        (errors.ResultLockedError, ValueError),
        (errors.LockNotHeldError, ValueError),
        (errors.LockTimeoutError, TimeoutError),
        (errors.ModelLoadError, ImportError),
        (errors.UnsafePathError, PermissionError),
    ],
)
def test_builtin_bases(cls: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(cls, builtin)
    assert issubclass(cls, errors.ResultsError)


def test_oserror_subclasses_keep_their_message() -> None:
    error = errors.ResultNotFoundError("no result found for ID 'x'", result_id="x")
    assert str(error) == "no result found for ID 'x'"
    assert error.errno is None
