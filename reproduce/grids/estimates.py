"""How long a run will take, for the grid's time budget and its dry run: no run starts that cannot finish
in time, and the plan says what a budget buys before it is spent.

A run's time is modelled rather than looked up whole, so that one measured run of a network tells the
time of another with other epochs, training images, width or input size:

    set-up + epochs x training images / training rate + evaluated images / evaluation rate
           + checkpoint writes                      (+ compile, once per worker and network: Budget)

The two rates (images a second) come from the first source that has them:
1. runs of the same network finished in this grid, then earlier records of it on this kind of device:
   their steady epochs (the first epoch, which compiles and warms up, left out);
2. earlier records of another network on this kind of device, scaled by FLOPs per image;
3. on a GPU with no records of its kind: the H100 measured in results/explore (eager fp32, the only GPU
   this project has timed), scaled by FLOPs and by the two GPUs' datasheet peaks;
4. FLOPs at a conservative share of the device's rate (the fp32 GEMM rate measured here on a CPU),
   never faster than a floor per step (small nets are bound by per-step overhead, not FLOPs).
A compile's time is the first epoch's excess over the steady ones, in a record of this device kind that
compiled, else COMPILE_S.

The constants are pessimistic on purpose: a run that starts and cannot finish is lost with a lent
machine, while one deferred too eagerly only waits for the next loan.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from reproduce.base.paths import PROJECT_ROOT
from reproduce.datasets.image_data import held_out_count
from reproduce.grids.flops import measured_gemm_tflops, parameter_count, peak_tflops, training_flops_per_image
from reproduce.records import results
from reproduce.spec import params, plan
from reproduce.training.execution import device_kind, plan_execution

SHARE_OF_PEAK = {"cuda": 0.05, "cpu": 0.10}  # of the datasheet peak on a GPU, of the measured GEMM rate on a CPU
UNKNOWN_GPU_TFLOPS = 50.0  # a GPU with no datasheet entry: taken for a slow one
STEP_FLOOR_S = {"cuda": 0.008, "cpu": 0.001}  # per training step; an evaluation batch counts half
SET_UP_S = {"cuda": 3.0, "cpu": 1.0}  # per run: the model, its data onto the device, the record
WORKER_START_S = {"cuda": 15.0, "cpu": 4.0}  # a fresh worker process: imports, the CUDA context
COMPILE_S = 60.0  # torch.compile of a network's graphs in a worker, until a record of the device measures it
CHECKPOINT_BYTES_PER_S = 0.5e9  # torch.save of weights and momentum, then an atomic rename
FIT_IMAGES = 5_000  # the last epoch's error on training images (reproduce.training.train.FIT_EVAL_IMAGES)
# In-memory datasets: (training, test) images, for the splits of a record whose data is not loaded.
DATASET_SIZES = {"fashion-mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}
REFERENCE_GPU = PROJECT_ROOT / "results" / "explore" / "h100-2026-11-22" / "runs"


@dataclass(frozen=True)
class Split:
    """Images in each split of one dataset, as loaded (limits applied)."""
    train: int
    val: int
    test: int


@dataclass(frozen=True)
class Rates:
    """How fast one network trains and evaluates on a device, and where that was measured."""
    train: float  # training images a second
    evaluate: float  # evaluation images a second
    flops: float  # training FLOPs per image of the network measured
    source: str
    compile_s: float | None = None  # its compile, when the measured run compiled

    def for_flops(self, flops: float, source: str | None = None) -> "Rates":
        """The same device's rates for a network of other FLOPs per image (time grows with FLOPs)."""
        scale = self.flops / flops
        return replace(self, train=self.train * scale, evaluate=self.evaluate * scale, flops=flops,
                       source=source or self.source)


@dataclass(frozen=True)
class Estimate:
    """A run's expected seconds: the run itself, and the compile it adds where its worker has not compiled
    its network yet."""
    seconds: float
    compile_s: float
    source: str


@dataclass(frozen=True)
class AtOnce:
    """Paper-net runs at once on one GPU, and how much longer each then takes than one alone."""
    runs: int = 1
    slowdown: float = 1.0


@dataclass
class Estimator:
    """Seconds a run should take on one kind of device, from the records measured on it."""
    device_type: str  # "cuda" or "cpu"
    kind: str  # execution.device_kind: what records are matched on
    splits: dict[tuple, Split] = field(default_factory=dict)  # data_key(config) -> its splits
    measured: dict[str, list[Rates]] = field(default_factory=dict)  # network_key -> earlier records' rates
    finished_here: dict[str, list[Rates]] = field(default_factory=dict)  # network_key -> this grid's runs'
    reference: list[Rates] = field(default_factory=list)  # the reference GPU's, scaled to this one
    at_once: AtOnce = AtOnce()  # paper-size nets sharing a GPU run this much slower each
    _gemm_tflops: float | None = None

    @classmethod
    def from_records(cls, results_dir: str | Path, device_type: str, kind: str,
                     splits: dict[tuple, Split] | None = None) -> "Estimator":
        estimator = cls(device_type, kind, dict(splits or {}))
        for record in complete_records(results_dir):
            if kind_of(record.get("device", "")) == kind:
                estimator._add(estimator.measured, record, "earlier records of this network")
        if device_type == "cuda" and not estimator.measured:
            estimator.reference = reference_gpu_rates(kind)
        return estimator

    def _add(self, table: dict[str, list[Rates]], record: dict[str, Any], source: str) -> None:
        rates = record_rates(record, source)
        if rates is not None:
            table.setdefault(network_key(record["config"]), []).append(rates)

    def finished(self, record: dict[str, Any]) -> None:
        """A run of this grid finished: its rates are the best estimate of its network's next runs."""
        self._add(self.finished_here, record, "runs finished in this grid")

    def from_earlier_runs(self, config: dict[str, Any]) -> Estimate | None:
        """The estimate from measured runs of the same network (this grid's, then earlier records); None
        when there are none."""
        for table in (self.finished_here, self.measured):
            found = table.get(network_key(config))
            if found:
                return self.estimate(config, _mean_rates(found).for_flops(training_flops_per_image(config)))
        return None

    def seconds(self, config: dict[str, Any]) -> Estimate:
        """The estimate from the best source there is (see the module's docstring)."""
        return self.from_earlier_runs(config) or self.estimate(config, self.rates_elsewhere(config))

    def rates_elsewhere(self, config: dict[str, Any]) -> Rates:
        """Rates for a network not measured on this device: another network's, or the reference GPU's, scaled
        by FLOPs; else FLOPs at a share of the device's rate."""
        flops = training_flops_per_image(config)
        others = [rates for found in self.measured.values() for rates in found] or self.reference
        if others:  # the measured network nearest in FLOPs: small nets run at another share of the peak
            nearest = min(others, key=lambda rates: abs(math.log(rates.flops / flops)))
            return nearest.for_flops(flops, f"{nearest.source}, scaled by FLOPs")
        rate = self.device_tflops() * 1e12 / flops
        return Rates(rate, 3 * rate, flops, "FLOPs at a share of the device's rate")

    def estimate(self, config: dict[str, Any], rates: Rates) -> Estimate:
        split = self.split(config)
        epochs, batch = config["epochs"], config["batch_size"]
        tests = epochs if config["test_every_epoch"] else 1
        evaluated = epochs * split.val + tests * split.test + min(FIT_IMAGES, split.train)
        compute = epochs * split.train / rates.train + evaluated / rates.evaluate
        if self.at_once.runs > 1 and large_net(config):
            compute *= self.at_once.slowdown
        if rates.source.startswith("FLOPs"):
            steps = epochs * math.ceil(split.train / batch) + math.ceil(evaluated / (2 * batch)) / 2
            compute = max(compute, steps * STEP_FLOOR_S[self.device_type])
        every = config["checkpoint_every_s"]
        checkpoints = 1 + int(compute // every) if every else epochs
        saving = checkpoints * checkpoint_bytes(config) / CHECKPOINT_BYTES_PER_S
        compiled = plan_execution(config, torch.device(self.device_type)).compile
        compile_s = (rates.compile_s or COMPILE_S) if compiled else 0.0
        return Estimate(SET_UP_S[self.device_type] + compute + saving, compile_s, rates.source)

    def split(self, config: dict[str, Any]) -> Split:
        return self.splits.get(data_key(config)) or planned_split(config) or Split(config["train_limit"], 0, 0)

    def device_tflops(self) -> float:
        """TFLOP/s a run can count on here: a conservative share of the peak."""
        if self._gemm_tflops is None:
            if self.device_type == "cuda":
                self._gemm_tflops = gpu_peak(self.kind)
            else:
                self._gemm_tflops = measured_gemm_tflops(size=1024, seconds=0.5)
        return self._gemm_tflops * SHARE_OF_PEAK[self.device_type]


GPU_STEP_FLOPS = 200e9  # a training step this large keeps a GPU busy alone (the paper net's is ~490 GFLOP)


def large_net(config: dict[str, Any]) -> bool:
    """A net whose step fills a GPU alone: it shares one only as the bench measured to pay (runs_at_once)."""
    return training_flops_per_image(config) * config["batch_size"] >= GPU_STEP_FLOPS


def gpu_peak(name: str) -> float:
    """The datasheet's dense tf32 peak (the rate fp32 convolutions get), or a slow GPU's."""
    return peak_tflops(name, "fp32") or UNKNOWN_GPU_TFLOPS


def reference_gpu_rates(kind: str) -> list[Rates]:
    """The reference GPU's measured rates (eager fp32, results/explore), scaled to this GPU by datasheet."""
    found = []
    for path in sorted(REFERENCE_GPU.glob("*.json")) if REFERENCE_GPU.is_dir() else ():
        record = json.loads(path.read_text())
        if record.get("status") != "complete":
            continue
        scale = gpu_peak(kind) / gpu_peak(record["device"])
        source = f"the {record['device']} measured in results/explore (eager fp32)"
        rates = record_rates(record, source)
        if rates is not None:
            found.append(replace(rates, train=rates.train * scale, evaluate=rates.evaluate * scale, compile_s=None))
    return found


def record_rates(record: dict[str, Any], source: str) -> Rates | None:
    """A finished run's training and evaluation rates, from its steady epochs; None when it has none."""
    epochs = record.get("epochs") or []
    split = record_split(record)
    if not epochs or split is None:
        return None
    steady = epochs[1:] or epochs
    train = statistics.median(epoch["images_per_s"] for epoch in steady)
    evaluated = sum(split.val + (split.test if "test_top1_error" in epoch else 0) for epoch in epochs)
    eval_time = sum(epoch["eval_time_s"] for epoch in epochs)
    evaluate = evaluated / eval_time if eval_time > 0 and evaluated else 3 * train
    compile_s = None
    if (record.get("execution") or {}).get("compile") and len(epochs) > 1:
        compile_s = max(0.0, epochs[0]["train_time_s"] - split.train / train)
    try:
        flops = training_flops_per_image(record["config"])
    except ValueError:  # a network this code no longer builds (an exploratory record's)
        return None
    return Rates(train, evaluate, flops, source, compile_s)


def _mean_rates(found: list[Rates]) -> Rates:
    compiles = [r.compile_s for r in found if r.compile_s is not None]
    return replace(found[0], train=statistics.fmean(r.train for r in found),
                   evaluate=statistics.fmean(r.evaluate for r in found),
                   compile_s=max(compiles) if compiles else None)


def record_split(record: dict[str, Any]) -> Split | None:
    """The splits a record trained on, as its `data` says them (reproduce.datasets.data's words); a record without
    one was made before the validation split existed, on the whole training set."""
    said = record.get("data")
    if not said:
        sizes = DATASET_SIZES.get(record["config"].get("dataset", "fashion-mnist"))
        if sizes is None:
            return None
        limits = record["config"].get("train_limit") or sizes[0], record["config"].get("test_limit") or sizes[1]
        return Split(min(limits[0], sizes[0]), 0, min(limits[1], sizes[1]))
    counts = [_count(said.get(name, "")) for name in ("train", "validation", "test")]
    return Split(*counts) if None not in counts else None


def _count(words: str) -> int | None:
    """Images in one of reproduce.datasets.data's split descriptions ("... images 0-54999 ...", "9000 images of ...")."""
    found = re.search(r"images (\d+)-(\d+)", words)
    if found:
        return int(found[2]) - int(found[1]) + 1
    found = re.match(r"(\d+) images", words)
    return int(found[1]) if found else None


def planned_split(config: dict[str, Any]) -> Split | None:
    """The splits of an in-memory dataset from the config alone: its validation images are held out of the
    whole training set (image_data.held_out_count), then the limits apply (reproduce.datasets.data)."""
    dataset = config.get("dataset", "fashion-mnist")
    sizes = DATASET_SIZES.get(dataset)
    if sizes is None:
        return None
    held_out = held_out_count(dataset, sizes[0])
    kept = sizes[0] - held_out
    return Split(min(config.get("train_limit") or kept, kept), held_out, min(config.get("test_limit") or sizes[1],
                                                                                   sizes[1]))


def checkpoint_bytes(config: dict[str, Any]) -> float:
    """A checkpoint's size: fp32 weights, and as much again of momentum where there is momentum."""
    return parameter_count(config) * 4 * (2 if config["momentum"] else 1)


def data_key(config: dict[str, Any]) -> tuple:
    return tuple(config[k] for k in ("dataset", "data_dir", "train_limit", "test_limit"))


def complete_records(results_dir: str | Path) -> list[dict[str, Any]]:
    return [r for r in results.readable_records(results_dir) if r.get("status") == "complete" and r.get("totals")]


def kind_of(device: str) -> str:
    """A record's device without its thread count: execution.device_kind's words."""
    return re.sub(r", \d+ threads\)$", ")", device)


def config_key(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.result_config(config).items() if k != "seed"}, sort_keys=True)


def network_key(config: dict[str, Any]) -> str:
    """A config without what the claims vary, its epochs and its training images: the network, whose
    rates a run of other epochs or images shares."""
    varied = _compared_anywhere() | {"seed", "epochs", "train_limit", "test_limit", "test_every_epoch", "log_every"}
    return json.dumps({k: v for k, v in params.result_config(config).items() if k not in varied}, sort_keys=True)


@lru_cache(maxsize=1)
def _compared_anywhere() -> frozenset[str]:
    return frozenset(plan.compared_anywhere())


def estimator_for(results_dir: str | Path, device: torch.device, kind: str | None = None) -> Estimator:
    """The estimator of this device (or of the GPU kind a dry run assumes)."""
    return Estimator.from_records(results_dir, device.type, kind or device_kind(device))


AT_ONCE_GAIN = 1.05  # runs at once must beat one run by this much to be worth the memory and the risk


def runs_at_once(results_dir: str | Path, kind: str, network: str = "paper") -> AtOnce:
    """How many runs of the paper net at once gave the most images a second on this GPU kind, by the bench's
    records (one until they exist)."""
    rates = {}
    for path in sorted((Path(results_dir) / "bench").glob("*/*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("device") == kind and record.get("device_type") == "cuda" and record.get("network") == network:
            rates[record["layout"]["runs"]] = record["images_per_s"]
    if 1 not in rates:
        return AtOnce()
    best = max(rates, key=rates.get)
    if rates[best] < AT_ONCE_GAIN * rates[1]:
        return AtOnce()
    return AtOnce(best, best * rates[1] / rates[best])


def wall_time(seconds: list[float], workers: int) -> float:
    """How long runs of these durations take, started in this order, each on the first worker free: the grid's
    local pool. The estimate for another number of workers assumes each trains as fast as one did here."""
    free = [0.0] * max(1, workers)
    for duration in seconds:
        start = min(free)
        free[free.index(start)] = start + duration
    return max(free, default=0.0)
