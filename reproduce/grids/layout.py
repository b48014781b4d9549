"""How runs share this machine: worker processes per GPU (pinned to it) or on the CPU, and how many runs
a GPU holds at once by their FLOPs per step (the paper's net alone, until the bench measures more to pay).
A dry run asked for CUDA on a machine without it plans for the GPU the device tool lends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from reproduce.grids.estimates import GPU_STEP_FLOPS, large_net, runs_at_once
from reproduce.grids.flops import training_flops_per_image
from reproduce.spec import params, plan
from reproduce.training.execution import device_kind

# A net whose step is smaller than estimates.GPU_STEP_FLOPS shares a GPU with other runs (the four-layer
# net's step is ~8 GFLOP, the paper net's ~490), up to MAX_RUNS_PER_GPU. Memory never binds first for these
# nets: the paper net at batch 128 peaked at 2.2 GB on an H100.
MAX_RUNS_PER_GPU = 4


GPU_PRESETS = ("gpu", "paper")  # sized for a GPU: a CPU would take days


ASSUMED_GPU = "NVIDIA H200"  # the GPU the device tool lends: what a dry run plans for on a machine without one


@dataclass
class Layout:
    """How runs share this machine: a pool of `groups[g]` workers per group g (a GPU id, or None for
    the CPU), each group holding a load of 1: a run takes one worker's part of it, or with
    `by_network` (GPUs) 1 / runs_per_gpu of its network."""
    groups: dict[int | None, int]
    why: str
    by_network: bool = False
    paper_at_once: int = 1  # paper-net runs at once on one GPU (runs_per_gpu)

    @property
    def workers(self) -> int:
        return sum(self.groups.values())

    @property
    def in_process(self) -> bool:
        return self.workers == 1

    def share(self, config: dict[str, Any], group: int | None) -> float:
        """The part of its group one run of this config takes."""
        return 1.0 / (runs_per_gpu(config, self.paper_at_once) if self.by_network else self.groups[group])

    def place(self, config: dict[str, Any], loads: dict[int | None, float]) -> int | None | bool:
        """The least loaded group with room for this run, or False when none has room now."""
        fits = [group for group in self.groups if loads[group] + self.share(config, group) <= 1.0 + 1e-9]
        return min(fits, key=lambda group: loads[group]) if fits else False


def runs_per_gpu(config: dict[str, Any], paper_at_once: int = 1) -> int:
    """Runs of this config that share one GPU: as many as it takes to fill it, by FLOPs per step; a net as
    large as the paper's as many as the bench measured to give the most images a second (paper_at_once)."""
    if large_net(config):
        return paper_at_once
    step = training_flops_per_image(config) * config["batch_size"]
    return max(1, min(MAX_RUNS_PER_GPU, int(GPU_STEP_FLOPS // step)))


@dataclass(frozen=True)
class PlanDevice:
    """The device the grid plans for: this machine's, or in a dry run the GPU one asked for."""
    type: str  # "cuda" or "cpu"
    kind: str  # execution.device_kind's words: what estimates are matched on
    gpus: tuple[int, ...] = ()  # the visible GPU ids
    warnings: tuple[str, ...] = ()


def plan_device(config: dict[str, Any], dry_run: bool, gpu_preset: bool = False) -> PlanDevice:
    """CUDA where the config asks for it (or auto finds it), else the CPU. A dry run asked for CUDA on a
    machine without it plans for ASSUMED_GPU, and says so; a real grid refuses at once."""
    import torch

    here = torch.cuda.is_available()
    if config["device"] == "cuda" or (config["device"] == "auto" and here):
        if here:
            return PlanDevice("cuda", device_kind(torch.device("cuda", 0)), tuple(_visible_gpus(torch.cuda.device_count())))
        if not dry_run:
            raise params.ParamError("device: cuda was asked for but torch sees no CUDA device here; --dry-run plans "
                                    f"for one {ASSUMED_GPU}, a grid needs one")
        return PlanDevice("cuda", ASSUMED_GPU, (0,), (
            f"  no CUDA device here: this dry run plans for one {ASSUMED_GPU} (the GPU the device tool lends)",))
    warnings = ()
    if gpu_preset:
        warnings = ("  warning: a GPU preset on a machine without CUDA: these runs would train on the CPU, for days; "
                    "run it where torch sees a GPU (or --device cuda --dry-run to plan for one)",)
    return PlanDevice("cpu", device_kind(torch.device("cpu")), (), warnings)


def worker_layout(options: dict[str, Any], config: dict[str, Any], runs: list[plan.PlannedRun] = (),
                  device: PlanDevice | None = None) -> Layout:
    """Workers per GPU with CUDA (per_gpu, or auto: as many as the planned networks share a GPU
    with), else cores / cpu_threads on the CPU; an explicit number of workers wins."""
    device = device or plan_device(config, dry_run=False)
    if device.type == "cuda":
        visible = list(device.gpus)
        if options["workers"] != "auto":
            count = options["workers"]
            groups = {gpu: count // len(visible) + (i < count % len(visible)) for i, gpu in enumerate(visible)}
            groups = {gpu: n for gpu, n in groups.items() if n}
            return Layout(groups, f"{count} on {len(groups)} GPU(s), one run per worker")
        by_network = options["per_gpu"] == "auto"
        at_once = runs_at_once(config["results_dir"], device.kind).runs
        size = max((runs_per_gpu(run.config, at_once) for run in runs), default=1) if by_network else options["per_gpu"]
        how = (f"runs per GPU by network (runs_per_gpu; the paper net {at_once} at once"
               f"{', as the bench measured best' if at_once > 1 else ' until the bench measures more to pay'})"
               if by_network else f"{size} runs per GPU")
        return Layout({gpu: size for gpu in visible}, f"{size * len(visible)} on {len(visible)} GPU(s), {how}",
                      by_network, at_once)
    cores = os.cpu_count() or 1
    workers = max(1, cores // config["cpu_threads"]) if options["workers"] == "auto" else options["workers"]
    why = f"{workers} on the CPU, {config['cpu_threads']} thread(s) each ({cores} cores)"
    if workers * config["cpu_threads"] > cores:
        why += "; more threads than cores: the runs slow each other down"
    return Layout({None: workers}, why)


def _visible_gpus(count: int) -> list[int]:
    """The GPU ids this process may use, as CUDA_VISIBLE_DEVICES names them (or 0..count-1)."""
    named = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return [int(g) for g in named if g.isdigit()][:count] or list(range(count))
