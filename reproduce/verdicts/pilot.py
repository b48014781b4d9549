"""What every pilot of the CPU studies shares: where their runs go (results/pilot/, seeds no verdict uses), the
proxies' base configs, and how a pilot reads a run it finished.

Study v2's pilot (seeds 900-902) chose v2's design; its records stay in results/pilot/ and its numbers in
results/v2/registration.toml (the code that printed them is commit 0f699b0's reproduce/verdicts/pilot.py).
Study v3's pilot is reproduce/verdicts/pilot_v3.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reproduce.records import results

PILOT_DIR = "pilot"  # under the results folder
V2_PILOT_SEEDS = (900, 901, 902)  # study v2's pilot: never a verdict's

# The AlexNet proxy every design shares: the narrow small-image net of the v1 study (He init, inputs at unit
# scale, zero biases), tested on all 10,000 test images after its last epoch.
ALEXNET_BASE = {"model": "alexnet-small", "width": 0.125, "weight_init": "he", "input_scale": "unit",
                "bias_init": "zero", "log_every": 10, "test_every_epoch": False}
# The four-layer net of C1, one epoch.
FOUR_LAYER_BASE = {"model": "cifar-18pct", "width": 0.5, "epochs": 1, "log_every": 5, "test_every_epoch": False}


def finished(results_dir: str | Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The run's record where it finished, whichever training code made it: a pilot is exploratory,
    and its records name their code (the earliest were made by an earlier, slower trainer)."""
    try:
        record = results.read_record(results.record_path(results_dir, config))
    except (OSError, ValueError):
        return None
    return record if record.get("status") == "complete" else None
