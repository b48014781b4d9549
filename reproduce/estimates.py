"""How long a run will take, for the grid's time budget: no run starts that cannot finish in time.

The first source that has an answer wins:
1. this grid: the mean time of the runs of the same network that finished here (start-up, compile
   and analysis included), so a first estimate that was too pessimistic stops costing runs;
2. earlier records on this kind of device: the mean of the same config but the seed, else of the
   same network (the config without what the claims vary);
3. a first-run estimate, for a device that has trained nothing yet (a lent GPU): the run's FLOPs
   (training, and the evaluation passes) at a conservative share of the device's rate (its
   datasheet peak on a GPU, the fp32 GEMM rate measured here on a CPU), never faster than a floor
   per step (small nets are bound by per-step overhead, not FLOPs), plus start-up and compile time.

The constants are pessimistic on purpose: a run that starts and cannot finish is lost with a lent
machine, while one deferred too eagerly only waits for the next loan. Measured on an H100
(../shared/design/performance-notes.md): the paper net at 5-10% of the datasheet peak, the four-layer
net at about 5 ms a step in eager mode.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from reproduce import params, plan, results
from reproduce.execution import device_kind, pick_device, plan_execution
from reproduce.flops import measured_gemm_tflops, peak_tflops, training_flops_per_image

# Of the datasheet bf16/tf32 peak on a GPU (the paper net ran eager fp32 at 5% of an H100's, compiled bf16 at
# 6-10%), of the measured fp32 GEMM rate on a CPU (the small net at 22%, the paper net at 28%).
SHARE_OF_PEAK = {"cuda": 0.05, "cpu": 0.10}
UNKNOWN_GPU_TFLOPS = 50.0  # a GPU with no datasheet entry: taken for a slow one
STEP_FLOOR_S = {"cuda": 0.008, "cpu": 0.001}  # per training step; an evaluation batch counts half
START_UP_S = {"cuda": 30.0, "cpu": 5.0}  # building the trainer: data onto the device, the model, its first step
COMPILE_S = 60.0  # torch.compile of a network's training and evaluation graphs, once per worker
FIT_IMAGES = 5_000  # the last epoch's error on training images (reproduce.train.FIT_EVAL_IMAGES)


@dataclass(frozen=True)
class Split:
    """Images in each split of one dataset, as loaded (limits applied)."""
    train: int
    val: int
    test: int


@dataclass
class Estimator:
    """Seconds a run should take on this device, and where that number comes from."""
    device: torch.device
    splits: dict[tuple, Split]  # data_key(config) -> its splits
    from_config: dict[str, list[float]] = field(default_factory=dict)
    from_network: dict[str, list[float]] = field(default_factory=dict)
    finished_here: dict[str, list[float]] = field(default_factory=dict)
    _rate: float | None = None

    @classmethod
    def from_records(cls, results_dir: str | Path, config: dict[str, Any],
                     splits: dict[tuple, Split] | None = None) -> "Estimator":
        device = pick_device(config["device"])
        estimator = cls(device, splits or {})
        kind = device_kind(device)
        for record in complete_records(results_dir):
            if _kind_of(record.get("device", "")) == kind:
                seconds = record["totals"].get("train_time_s", 0.0) + record["totals"].get("eval_time_s", 0.0)
                estimator.from_config.setdefault(config_key(record["config"]), []).append(seconds)
                estimator.from_network.setdefault(network_key(record["config"]), []).append(seconds)
        return estimator

    def from_earlier_runs(self, config: dict[str, Any]) -> tuple[float, str] | None:
        """(seconds, source) from this grid's finished runs or earlier records; None when neither has one."""
        for source, table, key in (("runs finished in this grid", self.finished_here, network_key(config)),
                                   ("earlier records of this config", self.from_config, config_key(config)),
                                   ("earlier records of this network", self.from_network, network_key(config))):
            found = table.get(key)
            if found:
                return sum(found) / len(found), source
        return None

    def seconds(self, config: dict[str, Any]) -> tuple[float, str]:
        """(seconds, source): earlier runs where there are any, else the first-run estimate."""
        return self.from_earlier_runs(config) or (self.first_run(config), "first-run estimate from FLOPs")

    def finished(self, config: dict[str, Any], seconds: float) -> None:
        self.finished_here.setdefault(network_key(config), []).append(seconds)

    def first_run(self, config: dict[str, Any]) -> float:
        split = self.splits.get(data_key(config))
        if split is None:  # data not loaded yet: count the training set only
            split = Split(config["train_limit"] or 0, 0, 0)
        per_image = training_flops_per_image(config)
        epochs, batch = config["epochs"], config["batch_size"]
        tests = epochs if config["test_every_epoch"] else 1
        evaluated = epochs * split.val + tests * split.test + min(FIT_IMAGES, split.train)
        work = epochs * split.train * per_image + evaluated * per_image / 3  # evaluation: the forward only
        # Evaluation batches are twice the training batch and cost about half a step each.
        steps = epochs * math.ceil(split.train / batch) + math.ceil(evaluated / (2 * batch)) / 2
        kind = self.device.type
        compute = max(work / (self.rate() * 1e12), steps * STEP_FLOOR_S[kind])
        compiled = plan_execution(config, self.device).compile
        return START_UP_S[kind] + (COMPILE_S if compiled else 0.0) + compute

    def rate(self) -> float:
        """TFLOP/s a run can count on here: a conservative share of the peak."""
        if self._rate is None:
            if self.device.type == "cuda":
                precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
                peak = peak_tflops(torch.cuda.get_device_name(self.device), precision) or UNKNOWN_GPU_TFLOPS
            else:
                peak = measured_gemm_tflops(size=1024, seconds=0.5)
            self._rate = peak * SHARE_OF_PEAK[self.device.type]
        return self._rate


def data_key(config: dict[str, Any]) -> tuple:
    return tuple(config[k] for k in ("dataset", "data_dir", "train_limit", "test_limit"))


def complete_records(results_dir: str | Path) -> list[dict[str, Any]]:
    return [r for r in results.readable_records(results_dir) if r.get("status") == "complete" and r.get("totals")]


def _kind_of(device: str) -> str:
    return re.sub(r", \d+ threads\)$", ")", device)


def config_key(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.result_config(config).items() if k != "seed"}, sort_keys=True)


def network_key(config: dict[str, Any]) -> str:
    varied = _compared_anywhere() | {"seed"}
    return json.dumps({k: v for k, v in params.result_config(config).items() if k not in varied}, sort_keys=True)


@lru_cache(maxsize=1)
def _compared_anywhere() -> frozenset[str]:
    return frozenset(plan.compared_anywhere())


def wall_time(seconds: list[float], workers: int) -> float:
    """How long runs of these durations take, started in this order, each on the first worker free: the grid's
    local pool. The estimate for another number of workers assumes each trains as fast as one did here."""
    free = [0.0] * max(1, workers)
    for duration in seconds:
        start = min(free)
        free[free.index(start)] = start + duration
    return max(free, default=0.0)
