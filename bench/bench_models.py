"""The model the mount benchmark stores; the benchmark daemon loads this file with --models."""

from pydantic import BaseModel

from resultsfs import register_model


@register_model(namespace="bench")
class MountBenchResult(BaseModel):
    run: str
    loss: float
    accuracy: float
    history: list[float]
