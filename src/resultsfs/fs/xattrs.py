"""Extended attributes of results: their names and how each value is computed.

Every result shows ``user.results.model_type`` and ``user.results.namespace`` (from its
envelope), ``user.results.lock.state`` (``unlocked`` or ``locked``), while leased
``user.results.lock.holder`` and ``user.results.lock.expires`` (ISO 8601 UTC, or ``never``),
and after a rejected commit ``user.results.error``. Directories show ``user.results.model``
(``NAMESPACE:Model``) where bound, their own binding or a parent's; setting it binds the
directory, removing it unbinds it. Lease values are read from the lease
record at every call, so they are live. The attributes are computed: setting or removing
them is accepted and ignored, so that ``cp -a``, ``rsync -aX`` and ``tar --xattrs`` can copy
a tree out of the mount and back in without errors.
"""

from __future__ import annotations

from resultsfs.leases import Lease

PREFIX = "user.results."
MODEL_TYPE = PREFIX + "model_type"
NAMESPACE = PREFIX + "namespace"
LOCK_STATE = PREFIX + "lock.state"
LOCK_HOLDER = PREFIX + "lock.holder"
LOCK_EXPIRES = PREFIX + "lock.expires"
ERROR = PREFIX + "error"
#: On a directory: the model its bare data is stored as (set it to bind, remove it to unbind).
MODEL = PREFIX + "model"

ALL = (MODEL_TYPE, NAMESPACE, LOCK_STATE, LOCK_HOLDER, LOCK_EXPIRES, ERROR)


def is_ours(name: str) -> bool:
    """True for names in the ``user.results.`` family."""
    return name.startswith(PREFIX)


def names(model: tuple[str, str] | None, lease: Lease | None, error: str | None) -> list[str]:
    """The attribute names a result has now (``model``: its ``(namespace, model_type)``)."""
    listed = [MODEL_TYPE, NAMESPACE] if model is not None else []
    listed.append(LOCK_STATE)
    if lease is not None:
        listed += [LOCK_HOLDER, LOCK_EXPIRES]
    if error is not None:
        listed.append(ERROR)
    return listed


def value(name: str, model: tuple[str, str] | None, lease: Lease | None, error: str | None) -> str | None:
    """The value of attribute ``name``, or ``None`` if the result does not have it."""
    if name == MODEL_TYPE:
        return model[1] if model is not None else None
    if name == NAMESPACE:
        return model[0] if model is not None else None
    if name == LOCK_STATE:
        return "locked" if lease is not None else "unlocked"
    if name == LOCK_HOLDER:
        return lease.holder if lease is not None else None
    if name == LOCK_EXPIRES:
        if lease is None:
            return None
        return lease.expires.to_iso8601_string() if lease.expires is not None else "never"
    if name == ERROR:
        return error
    return None


def needs_model(name: str) -> bool:
    """True if computing ``name`` needs the result's model."""
    return name in (MODEL_TYPE, NAMESPACE)


def needs_lease(name: str) -> bool:
    """True if computing ``name`` needs the lease record."""
    return name in (LOCK_STATE, LOCK_HOLDER, LOCK_EXPIRES)
