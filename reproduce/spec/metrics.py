"""The metrics a difference claim can compare, declared once: each one's name (what claims.toml says), its
words (what the book says) and how it is read off a finished run's last epoch (what the verdict uses).

A new metric is one entry here; the registry's schema, the verdicts, the wording and the pilot's spreads
all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Metric:
    words: str
    of_epoch: Callable[[dict[str, Any]], float]  # the value, from a record's last epoch

    def of(self, record: dict[str, Any]) -> float:
        return self.of_epoch(record["epochs"][-1])


METRICS: dict[str, Metric] = {
    "final_test_top1_error": Metric("top-1 test error after the last epoch", lambda e: e["test_top1_error"]),
    "final_fit_error": Metric("top-1 error on training images (centre view, no dropout) after the last epoch",
                              lambda e: e["fit_top1_error"]),
    # Overfitting: test error minus the error on training images seen as test images.
    "final_fit_gap": Metric("test error minus training error after the last epoch (overfitting)",
                            lambda e: e["test_top1_error"] - e["fit_top1_error"]),
}
