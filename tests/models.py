"""Models the tests (and their child processes) store; importing this module registers them."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from pathlib import Path

from pydantic import BaseModel, Field

from resultsfs import register_model


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Inner(BaseModel):
    name: str
    weights: tuple[float, ...] = ()


@register_model
class Metrics(BaseModel):
    """A typical result: numbers, a timestamp and a nested model."""

    loss: float
    accuracy: float = Field(ge=0, le=1)
    step: int = 0
    when: datetime.datetime | None = None
    inner: Inner | None = None


@register_model(namespace="sweep")
class RunConfig(BaseModel):
    """Every JSON-awkward type results_manager got wrong."""

    lr: float
    seed: int
    started: datetime.datetime
    day: datetime.date
    run_uuid: uuid.UUID
    budget: decimal.Decimal
    output: Path
    color: Color
    shape: tuple[int, int]
    tags: set[str]
    inner: Inner


@register_model
class Counter(BaseModel):
    """Small model for concurrency tests: who wrote it and a payload that must stay whole."""

    writer: str
    value: int
    payload: str = ""
