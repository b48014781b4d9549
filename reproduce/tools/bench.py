"""`nox -s bench`: the trainer's training throughput against the seeds' d2l loop, side by side.

Same network, data (Fashion-MNIST), batch size and device for both loops, and for a third where asked:
the trainer of another commit (`--against REV`, e.g. the code before a speed change), in the same run.
Each loop runs in a fresh process, so none inherits another's warm caches, threads or peak memory:
warm-up steps (compilation, cuDNN autotuning, DataLoader workers starting) are not timed; a 3-step
probe sets how many steps fill the timed window; timings are synchronised with the device.

The networks as the studies run them: on a CPU the cpu preset's 32 px AlexNet and four-layer net with
one thread per run, alone and two runs at once (the grid's layout on two cores), and the paper's net
with all threads; on a GPU one run of each. A record per network and layout goes to
results/bench/<device>/<network>-<layout>-b<batch>.json; the last line printed is `ratio <number>`,
the paper net's trainer over the d2l loop.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from reproduce.base.paths import PROJECT_ROOT
from reproduce.grids.flops import best_gemm_tflops
from reproduce.records import provenance
from reproduce.spec import params
from reproduce.spec.params import Param
from reproduce.tools.bench_records import (
    ALL,
    AT_ONCE,
    ONE,
    TWO,
    Layout,
    make_record,
    record_path,
    summary_lines,
    write_record,
)
from reproduce.tools.d2l_baseline import D2LLoop
from reproduce.tools.equivalence import extract_tree
from reproduce.training import train
from reproduce.training.execution import (
    device_kind,
    device_name,
    peak_memory,
    pick_device,
    prepare_device,
    reset_peak_memory,
    synchronize,
)

BENCH_PARAMS: tuple[Param, ...] = (
    Param("networks", str, "all", "networks to time; all = small, four-layer, then paper",
          choices=("all", "small", "four-layer", "paper")),
    Param("device", str, "auto", "where to time", choices=("auto", "cpu", "cuda")),
    Param("batch_size", int, 128, "minibatch of every loop", minimum=1),
    Param("warmup", int, 0, "untimed steps first; 0 = 20 with CUDA, 2 on the CPU", minimum=0),
    Param("seconds", float, 20.0, "timed seconds per loop", minimum=1.0, maximum=600.0),
    Param("compile", str, "auto", "torch.compile the trainer's model", choices=("auto", "on", "off")),
    Param("against", str, "", "a git revision whose trainer is timed beside this one; empty = none"),
    Param("profile", bool, False, "also print and save a torch.profiler table of the trainer's top kernels"),
    Param("skip_measured", bool, False, "keep a network and layout whose record for this kind of device was made "
          "by the current training code, instead of measuring it again"),
    Param("loader", bool, False, "time the DataLoader path instead: images a second per worker core gathering "
          "batches from a synthetic memory-mapped ImageNet cache, cold and warm, and JPEG decoding per core; writes "
          "bench/<device>/loader.json and the table of docs/scale-out.md"),
    Param("loader_gb", float, 2.0, "size of the synthetic cache the loader is timed on (GB)", minimum=0.01,
          maximum=256.0),
    Param("data_dir", str, "data", "where Fashion-MNIST lives or is unpacked"),
    Param("results_dir", str, "results", "where bench records go (bench/ under it)"),
)
BENCH_BY_NAME = {p.name: p for p in BENCH_PARAMS}


@dataclass(frozen=True)
class Network:
    preset: str
    role: str  # the preset's network
    title: str


NETWORKS = {
    "small": Network("cpu", "alexnet", "the cpu preset's 32 px AlexNet"),
    "four-layer": Network("cpu", "four-layer", "the cpu preset's four-layer net (cuda-convnet 18%)"),
    "paper": Network("gpu", "alexnet", "the paper's AlexNet (groups 2, LRN, 227 px)"),
}


EXIT_COMPILE_FAILED = 3  # the bench's exit when the compiled trainer fails and the eager one runs


class CompileFailed(RuntimeError):
    """torch.compile failed where the eager trainer runs: the grid should train eager."""


def layouts(network: str, device: torch.device) -> tuple[Layout, ...]:
    """How each network is timed: as the studies run it (and, for the paper net on a GPU, runs at once)."""
    if device.type == "cuda":
        return (ALL, *AT_ONCE) if network == "paper" else (ALL,)
    if network == "paper":
        return (ALL,)
    return (ONE, TWO)


PROBE_STEPS, MAX_STEPS = 3, 5000


def parse_settings(values: dict[str, Any]) -> dict[str, Any]:
    defaults = {p.name: p.default for p in BENCH_PARAMS}
    return {**defaults, **params.validate(values, BENCH_BY_NAME, "bench option")}


def network_config(network: str, settings: dict[str, Any], results_dir: str, threads: int) -> dict[str, Any]:
    declared = NETWORKS[network]
    overrides = {"batch_size": settings["batch_size"], "device": settings["device"], "seed": 0,
                 "compile": settings["compile"], "cpu_threads": threads or (os.cpu_count() or 1),
                 "data_dir": settings["data_dir"], "results_dir": results_dir, "progress": False}
    return params.resolve(overrides, preset=declared.preset, network=declared.role)


def run_bench(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Measure each chosen network in each of its layouts, write and print the records; the last line is
    `ratio <number>` (the paper net's, where it was timed). Raises CompileFailed when only compiling fails."""
    settings = parse_settings(values)
    if settings["loader"]:
        from reproduce.tools.bench_loader import run_loader_bench

        return [run_loader_bench(settings["loader_gb"], settings["results_dir"])]
    device = pick_device(settings["device"])
    chosen = list(NETWORKS) if settings["networks"] == "all" else [settings["networks"]]
    with _against_tree(settings["against"]) as tree:
        records = []
        for network in chosen:
            for layout in layouts(network, device):
                kept = measured_before(network, layout, settings, device)
                records.append(kept or bench_network(network, layout, settings, device, tree,
                                                     with_baseline=layout not in AT_ONCE))
    ratios = [record["ratio"] for record in records if record.get("ratio")]
    print(f"ratio {ratios[-1]:.2f}" if ratios else "ratio none")
    return records


def measured_before(network: str, layout: Layout, settings: dict[str, Any], device: torch.device) -> dict | None:
    """With skip_measured: this network and layout's record, where the current training code made it."""
    if not settings["skip_measured"]:
        return None
    probe = {"device": device_kind(device), "network": network, "layout": asdict(layout),
             "batch": settings["batch_size"]}
    path = record_path(settings["results_dir"], probe)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("code", {}).get("training_sha256") != provenance.training_digest():
        return None
    print(f"{NETWORKS[network].title}, {layout.words}: measured by this training code before ({path}): kept")
    return record


def bench_network(network: str, layout: Layout, settings: dict[str, Any], device: torch.device,
                  against: Path | None, with_baseline: bool = True) -> dict[str, Any]:
    config = network_config(network, settings, tempfile.gettempdir(), layout.threads)
    print(f"\n{NETWORKS[network].title}: {config['model']}, batch {config['batch_size']}, {layout.words}, on "
          f"{device_name(device)}", flush=True)
    baseline = _measure(["baseline", network], settings, layout, "the d2l loop") if with_baseline else None
    trainer = _measure(["trainer", network], settings, layout, "the trainer")
    other = _measure_tree(against, config, settings, layout) if against is not None else None
    record = make_record(network, layout, config, device, baseline, trainer, other, settings["against"])
    path = write_record(record, settings["results_dir"])
    for line in summary_lines(record):
        print(line)
    if trainer.get("profile"):
        profile_path = path.with_name(path.stem + "-profile.txt")
        profile_path.write_text(trainer["profile"])
        print(f"  top kernels of the trainer's step ({profile_path}):\n{trainer['profile']}")
    print(f"  record: {path}", flush=True)
    return record


def _measure(child_args: list[str], settings: dict[str, Any], layout: Layout, label: str) -> dict[str, Any]:
    """Run the loop in `layout.runs` fresh interpreters at once; their images/s add up."""
    print(f"  measuring {label} ...", flush=True)
    command = [sys.executable, "-m", "reproduce.tools.bench", *child_args, json.dumps({**settings, "threads": layout.threads})]
    return _together([command] * layout.runs, PROJECT_ROOT, layout, label)


def _together(commands: list[list[str]], cwd: Path, layout: Layout, label: str,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=cwd, env=env) for command in commands]
    outputs = [child.communicate()[0] for child in children]
    codes = [child.returncode for child in children]
    if EXIT_COMPILE_FAILED in codes:
        said = next(json.loads(out.strip().splitlines()[-1])["compile_failed"] for out, code in zip(outputs, codes)
                    if code == EXIT_COMPILE_FAILED)
        raise CompileFailed(f"bench: {label} fails compiled and runs eager: {said}")
    if any(codes):
        raise RuntimeError(f"bench: {label} failed (exit {codes}); its output is above")
    found = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    gemm = [f.get("gemm_tflops") for f in found]
    return {**found[0], "images_per_s": sum(f["images_per_s"] for f in found), "runs": layout.runs,
            "per_run_images_per_s": [f["images_per_s"] for f in found],
            "gemm_tflops": sum(gemm) if all(gemm) else None,
            "peak_memory_bytes": max(f["peak_memory_bytes"] for f in found)}


def measure_arm(arm: str, network: str, settings: dict[str, Any]) -> dict[str, Any]:
    """In the child: build the loop, warm it up, probe, then time whole steps. On a CPU the GEMM rate the
    share is taken of is measured here too, with the same threads, best of a few trials just before and
    just after the timed window: measured apart from the run, it drifted below the net's own rate."""
    with tempfile.TemporaryDirectory() as scratch:
        config = network_config(network, settings, scratch, settings["threads"])
        device = pick_device(config["device"])
        prepare_device(device, config["cpu_threads"])
        loop = BaselineLoop(config, device) if arm == "baseline" else TrainerLoop(config)
        warmup = settings["warmup"] or (20 if device.type == "cuda" else 2)
        _warm_up(loop, warmup, config)
        probe = _timed(loop, PROBE_STEPS, device) / PROBE_STEPS
        steps = max(PROBE_STEPS, min(MAX_STEPS, math.ceil(settings["seconds"] / probe)))
        gemm = best_gemm_tflops() if device.type == "cpu" else None
        reset_peak_memory(device)
        elapsed = _timed(loop, steps, device)
        if gemm is not None:
            gemm = max(gemm, best_gemm_tflops())
        measured = {"images_per_s": steps * config["batch_size"] / elapsed, "steps": steps,
                    "warmup_steps": warmup, "seconds": elapsed, "peak_memory_bytes": peak_memory(device),
                    "gemm_tflops": gemm, "how": loop.how()}
        if settings["profile"] and arm == "trainer":
            measured["profile"] = profile_table(loop, device)
        return measured


def _warm_up(loop, steps: int, config: dict[str, Any]) -> None:
    """The first steps (which compile); a compiled trainer that fails where the eager one runs exits
    with EXIT_COMPILE_FAILED and says why, so the session script trains eager rather than not at all."""
    try:
        loop.run(steps)
    except Exception as error:  # noqa: BLE001 - told apart below: compile, or anything else
        if not (isinstance(loop, TrainerLoop) and loop.trainer.execution.compile):
            raise
        TrainerLoop({**config, "compile": "off"}).run(1)  # raises if the eager trainer fails too
        said = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(json.dumps({"compile_failed": f"{type(error).__name__}: {said}"[:300]}))
        sys.exit(EXIT_COMPILE_FAILED)


def _timed(loop, steps: int, device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    loop.run(steps)
    synchronize(device)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- another commit's trainer

# Runs in the other commit's tree: the trainer API every version has (params.resolve, train.build_trainer,
# train.train_one_epoch), on the same config less the parameters that version does not know.
_AGAINST_DRIVER = """
import json, math, sys, time, torch
from pathlib import Path
if Path("reproduce/spec/params.py").exists():  # this tree's own layout (see tools/equivalence.py's driver)
    from reproduce.spec import params
    from reproduce.training import train
else:  # a commit from before the layer folders
    from reproduce import params, train
config, seconds, warmup = json.loads(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
config = params.resolve({k: v for k, v in config.items() if k in params.BY_NAME})
torch.set_num_threads(config["cpu_threads"])
trainer = train.build_trainer(config)
draw, augment = torch.Generator().manual_seed(0), torch.Generator(device=trainer.device).manual_seed(0)
def run(steps):
    order = torch.randint(len(trainer.data.train_y), (steps * config["batch_size"],), generator=draw)
    train.train_one_epoch(trainer, 0, order, augment)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
run(warmup)
started = time.perf_counter(); run(3); probe = (time.perf_counter() - started) / 3
steps = max(3, min(5000, math.ceil(seconds / probe)))
started = time.perf_counter(); run(steps); elapsed = time.perf_counter() - started
print(json.dumps({"images_per_s": steps * config["batch_size"] / elapsed, "steps": steps, "seconds": elapsed,
                  "peak_memory_bytes": 0}))
"""


class _against_tree:
    """The package of another revision, extracted from git into a scratch folder for the bench's run."""

    def __init__(self, revision: str):
        self.revision, self.scratch = revision, None

    def __enter__(self) -> Path | None:
        if not self.revision:
            return None

        self.scratch = tempfile.TemporaryDirectory()
        return extract_tree(self.revision, Path(self.scratch.name), PROJECT_ROOT)

    def __exit__(self, *exc: Any) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()


def _measure_tree(tree: Path, config: dict[str, Any], settings: dict[str, Any], layout: Layout) -> dict[str, Any]:
    warmup = settings["warmup"] or (20 if config["device"] == "cuda" else 2)
    command = [sys.executable, "-c", _AGAINST_DRIVER, json.dumps(config), str(settings["seconds"]), str(warmup)]
    print(f"  measuring the trainer of {settings['against']} ...", flush=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}  # that tree's package, not this one
    return _together([command] * layout.runs, tree, layout, f"the trainer of {settings['against']}", env)


class BaselineLoop:
    def __init__(self, config: dict[str, Any], device: torch.device):
        self.loop = D2LLoop(config, device)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.loop.step()

    @staticmethod
    def how() -> dict[str, Any]:
        return {"loop": "d2l train_ch6", "data": "DataLoader, 4 workers, per-image PIL Resize + ToTensor",
                "precision": "fp32", "compile": False, "memory_format": "contiguous",
                "lrn": "nn.LocalResponseNorm", "host_syncs_per_step": 2}


class TrainerLoop:
    """The trainer's own epoch loop (augmentation, logging and all) over random training images."""

    def __init__(self, config: dict[str, Any]):
        self.train = train
        self.trainer = train.build_trainer(config)
        self.generator = torch.Generator().manual_seed(0)
        self.augment_rng = torch.Generator(device=self.trainer.device).manual_seed(0)

    def run(self, steps: int) -> None:
        count = steps * self.trainer.config["batch_size"]
        order = torch.randint(len(self.trainer.data.train_y), (count,), generator=self.generator)
        self.train.train_one_epoch(self.trainer, 0, order, self.augment_rng)

    def how(self) -> dict[str, Any]:
        return {"loop": "reproduce.training.train", "data": "whole dataset on the device, batched augmentation there",
                **self.trainer.execution.describe(), "lrn": "reproduce.nets.layers.GroupedLRN"}


def profile_table(loop: TrainerLoop, device: torch.device, steps: int = 3) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        loop.run(steps)
        synchronize(device)
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=15, max_name_column_width=60)


if __name__ == "__main__":
    # The child process of _measure: python -m reproduce.tools.bench ARM NETWORK SETTINGS_JSON
    arm_name, network_name, settings_json = sys.argv[1:4]
    print(json.dumps(measure_arm(arm_name, network_name, json.loads(settings_json))))
