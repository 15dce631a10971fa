"""Fill a store with a small example sweep: ``python examples/make_store.py STORE``."""

from __future__ import annotations

import datetime
import sys

from models import TrainingRun
from resultsfs import ResultsManager

manager = ResultsManager(sys.argv[1])
for lr in (0.1, 0.01):
    for seed in range(3):
        loss = round(0.5 * lr * 10 + seed * 0.01, 4)
        manager.set(
            ["sweep3", f"lr{lr}", f"seed{seed}"],
            TrainingRun(
                learning_rate=lr,
                seed=seed,
                final_loss=loss,
                accuracy=round(1 - loss / 2, 4),
                finished=datetime.datetime(2026, 11, 21, 12, seed, tzinfo=datetime.timezone.utc),
                loss_curve=[round(loss * k, 4) for k in (4, 2, 1)],
            ),
        )
print(f"stored {len(manager.list_ids())} results in {sys.argv[1]}")
