"""Example models for the demo: what a hyper-parameter sweep might record."""

from __future__ import annotations

import datetime

from pydantic import BaseModel, Field

from resultsfs import register_model


@register_model(namespace="demo")
class TrainingRun(BaseModel):
    """One training run of a sweep."""

    learning_rate: float = Field(gt=0)
    seed: int
    final_loss: float
    accuracy: float = Field(ge=0, le=1)
    finished: datetime.datetime
    loss_curve: list[float] = []
