"""Property tests: every generated model instance round-trips through set and get."""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from models import Inner
from resultsfs import FileBackend, ResultStore, ResultValidationError, SetBehavior, register_model
from strategies import result_ids


class Mode(enum.Enum):
    FAST = 1
    SLOW = 2


class Everything(BaseModel):
    text: str
    number: int
    ratio: float
    flag: bool
    when: datetime.datetime
    day: datetime.date
    ident: uuid.UUID
    amount: decimal.Decimal
    where: Path
    mode: Mode
    pair: tuple[int, str]
    bag: set[int]
    items: list[Inner]
    table: dict[str, float]
    maybe: int | None = None


def _offset(minutes: int) -> datetime.tzinfo:
    return datetime.timezone(datetime.timedelta(minutes=minutes))


finite = st.floats(allow_nan=False, allow_infinity=False)
everything = st.builds(
    Everything,
    text=st.text(),
    number=st.integers(),
    ratio=finite,
    flag=st.booleans(),
    when=st.datetimes(timezones=st.one_of(st.none(), st.builds(_offset, st.integers(-1439, 1439)))),
    day=st.dates(),
    ident=st.uuids(),
    amount=st.decimals(allow_nan=False, allow_infinity=False),
    where=st.builds(Path, st.text(st.characters(blacklist_characters="\x00"), min_size=1)),
    mode=st.sampled_from(Mode),
    pair=st.tuples(st.integers(), st.text()),
    bag=st.sets(st.integers()),
    items=st.lists(st.builds(Inner, name=st.text(), weights=st.tuples(finite, finite)), max_size=3),
    table=st.dictionaries(st.text(), finite, max_size=4),
    maybe=st.one_of(st.none(), st.integers()),
)


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory: pytest.TempPathFactory) -> FileBackend:
    return FileBackend(tmp_path_factory.mktemp("props"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rid=result_ids(), value=everything)
def test_every_generated_instance_round_trips(prop_store: ResultStore, rid: str, value: Everything) -> None:
    register_model(Everything, namespace="props")
    assert prop_store.set(rid, value, SetBehavior.OVERWRITE) is True
    back = prop_store.get(rid)
    assert back == value
    assert rid in prop_store.list_ids()
    assert prop_store.set(rid, value, SetBehavior.RAISE_IF_DIFFERENT) is False
    assert prop_store.delete(rid) is True


def test_values_json_cannot_hold_are_refused_not_stored(store: ResultStore) -> None:
    @register_model
    class Ratio(BaseModel):
        r: float

    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ResultValidationError, match="'bad'.*not representable in JSON"):
            store.set("bad", Ratio(r=bad))
    assert not store.exists("bad")


def test_lossy_round_trips_are_refused_not_stored(store: ResultStore) -> None:
    @register_model
    class Moment(BaseModel):
        at: datetime.datetime

    # Local mean time in 1912 was UTC-00:16:08; ISO 8601 as pydantic writes it loses the seconds.
    lmt = datetime.timezone(-datetime.timedelta(minutes=16, seconds=8))
    with pytest.raises(ResultValidationError, match="'m'.*round trip"):
        store.set("m", Moment(at=datetime.datetime(1912, 1, 1, tzinfo=lmt)))
    assert not store.exists("m")


def test_excluded_fields_do_not_count_as_loss(store: ResultStore) -> None:
    from pydantic import Field

    @register_model
    class Cached(BaseModel):
        value: int
        cache: str = Field(default="", exclude=True)

    assert store.set("c", Cached(value=1, cache="scratch")) is True
    assert store.get("c") == Cached(value=1)
