"""`nox -s bench`: the trainer's training throughput against the seeds' d2l loop, side by side.

Same network, data (Fashion-MNIST), batch size and device for both loops. Each loop runs in
a fresh process, so neither inherits the other's warm caches, threads or peak memory:
warm-up steps (compilation, cuDNN autotuning, DataLoader workers starting) are not timed; a
3-step probe sets how many steps fill the timed window; timings are synchronised with the
device. The record goes to results/bench/<device>/<network>-b<batch>.json; the last line
printed is `ratio <number>` for the paper's AlexNet.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from reproduce import params, results
from reproduce.flops import device_peak, training_flops_per_image
from reproduce.execution import (device_name, peak_memory, pick_device, prepare_device, reset_peak_memory,
                                 synchronize)
from reproduce.params import Param

BENCH_PARAMS: tuple[Param, ...] = (
    Param("networks", str, "all", "paper = the paper's AlexNet (groups 2, LRN) at 227 px, as in the gpu preset; "
          "small = the cpu preset's 32 px AlexNet; all = both, the paper's last",
          choices=("all", "paper", "small")),
    Param("device", str, "auto", "auto = cuda when available, else cpu", choices=("auto", "cpu", "cuda")),
    Param("batch_size", int, 128, "minibatch of both loops (the paper's 128)", minimum=1),
    Param("warmup", int, 0, "untimed steps first (compiling, cuDNN autotuning, workers starting); "
          "0 = 20 with CUDA, 2 on the CPU", minimum=0),
    Param("seconds", float, 20.0, "timed seconds per loop; a 3-step probe sets the step count",
          minimum=1.0, maximum=600.0),
    Param("compile", str, "auto", "torch.compile the trainer's model: auto = on with CUDA, off on the CPU",
          choices=("auto", "on", "off")),
    Param("profile", bool, False, "also print and save a torch.profiler table of the trainer's top kernels"),
    Param("data_dir", str, "data", "where Fashion-MNIST lives or is unpacked"),
    Param("results_dir", str, "results", "bench records go to <results_dir>/bench/"),
)
BENCH_BY_NAME = {p.name: p for p in BENCH_PARAMS}

# Which preset's config each network takes (its "alexnet" role).
NETWORK_PRESETS = {"small": "cpu", "paper": "gpu"}
NETWORK_TITLES = {"paper": "the paper's AlexNet (groups 2, LRN, 227 px)", "small": "the cpu preset's 32 px AlexNet"}

# The targets: on a CPU, 2x the baseline; on an H100, 5x and 40% of the peak.
CPU_TARGET_RATIO, GPU_TARGET_RATIO, GPU_TARGET_MFU = 2.0, 5.0, 0.40

PROBE_STEPS, MAX_STEPS = 3, 5000


def parse_settings(values: dict[str, Any]) -> dict[str, Any]:
    defaults = {p.name: p.default for p in BENCH_PARAMS}
    return {**defaults, **params.validate(values, BENCH_BY_NAME, "bench option")}


def network_config(network: str, settings: dict[str, Any], results_dir: str) -> dict[str, Any]:
    # All the machine's threads, as the d2l loop has them: the bench measures speed, not bits.
    overrides = {"batch_size": settings["batch_size"], "device": settings["device"], "seed": 0,
                 "compile": settings["compile"],
                 "cpu_threads": torch.get_num_threads(),
                 "data_dir": settings["data_dir"], "results_dir": results_dir, "progress": False}
    return params.resolve(overrides, preset=NETWORK_PRESETS[network], network="alexnet")


def run_bench(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Measure each chosen network, write and print its record; the last line is `ratio <number>`."""
    settings = parse_settings(values)
    device = pick_device(settings["device"])
    networks = ["small", "paper"] if settings["networks"] == "all" else [settings["networks"]]
    records = [bench_network(network, settings, device) for network in networks]
    print(f"ratio {records[-1]['ratio']:.2f}")
    return records


def bench_network(network: str, settings: dict[str, Any], device: torch.device) -> dict[str, Any]:
    config = network_config(network, settings, tempfile.gettempdir())
    print(f"\n{NETWORK_TITLES[network]}: {config['model']}, batch {config['batch_size']}, on {device_name(device)}",
          flush=True)
    baseline = _measure_in_child("baseline", network, settings)
    trainer = _measure_in_child("trainer", network, settings)
    record = make_record(network, config, device, baseline, trainer)
    path = write_record(record, settings["results_dir"])
    for line in summary_lines(record):
        print(line)
    if trainer.get("profile"):
        profile_path = path.with_name(path.stem + "-profile.txt")
        profile_path.write_text(trainer["profile"])
        print(f"  top kernels of the trainer's step ({profile_path}):\n{trainer['profile']}")
    print(f"  record: {path}", flush=True)
    return record


def _measure_in_child(arm: str, network: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Run one loop in a fresh interpreter; its last line of output is its measurement as JSON."""
    label = "d2l loop" if arm == "baseline" else "trainer"
    print(f"  measuring the {label} ...", flush=True)
    command = [sys.executable, "-m", "reproduce.bench", arm, network, json.dumps(settings)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=results.PROJECT_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"bench: the {label} on {network} failed (exit {done.returncode}); its output is above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_arm(arm: str, network: str, settings: dict[str, Any]) -> dict[str, Any]:
    """In the child: build the loop, warm it up, probe, then time whole steps."""
    with tempfile.TemporaryDirectory() as scratch:
        config = network_config(network, settings, scratch)
        device = pick_device(config["device"])
        prepare_device(device, config["cpu_threads"])
        loop = BaselineLoop(config, device) if arm == "baseline" else TrainerLoop(config)
        warmup = settings["warmup"] or (20 if device.type == "cuda" else 2)
        loop.run(warmup)
        probe = _timed(loop, PROBE_STEPS, device) / PROBE_STEPS
        steps = max(PROBE_STEPS, min(MAX_STEPS, math.ceil(settings["seconds"] / probe)))
        reset_peak_memory(device)
        elapsed = _timed(loop, steps, device)
        measured = {"images_per_s": steps * config["batch_size"] / elapsed, "steps": steps,
                    "warmup_steps": warmup, "seconds": elapsed, "peak_memory_bytes": peak_memory(device),
                    "how": loop.how()}
        if settings["profile"] and arm == "trainer":
            measured["profile"] = profile_table(loop, device)
        return measured


def _timed(loop, steps: int, device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    loop.run(steps)
    synchronize(device)
    return time.perf_counter() - started


class BaselineLoop:
    def __init__(self, config: dict[str, Any], device: torch.device):
        from reproduce.d2l_baseline import D2LLoop

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
        from reproduce import train

        self.train = train
        self.trainer = train.build_trainer(config)
        self.generator = torch.Generator().manual_seed(0)
        self.augment_rng = torch.Generator(device=self.trainer.device).manual_seed(0)

    def run(self, steps: int) -> None:
        count = steps * self.trainer.config["batch_size"]
        order = torch.randint(len(self.trainer.data.train_y), (count,), generator=self.generator)
        self.train.train_one_epoch(self.trainer, 0, order, self.augment_rng)

    def how(self) -> dict[str, Any]:
        return {"loop": "reproduce.train", "data": "whole dataset on the device, batched augmentation there",
                **self.trainer.execution.describe(), "lrn": "reproduce.layers.GroupedLRN"}


def profile_table(loop: TrainerLoop, device: torch.device, steps: int = 3) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        loop.run(steps)
        synchronize(device)
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=15, max_name_column_width=60)


def make_record(network: str, config: dict[str, Any], device: torch.device, baseline: dict[str, Any],
                trainer: dict[str, Any]) -> dict[str, Any]:
    name = device_name(device)
    flops = training_flops_per_image(config)
    record = {
        "network": network, "model": config["model"], "model_config": params.result_config(config),
        "device": name, "device_type": device.type, "batch": config["batch_size"],
        "images_per_s": trainer["images_per_s"], "baseline_images_per_s": baseline["images_per_s"],
        "ratio": trainer["images_per_s"] / baseline["images_per_s"],
        "peak_memory": trainer["peak_memory_bytes"], "baseline_peak_memory": baseline["peak_memory_bytes"],
        "peak_memory_kind": "device memory allocated" if device.type == "cuda" else "process peak RSS",
        "flops_per_image": flops, "tflops": flops * trainer["images_per_s"] / 1e12,
        "baseline_tflops": flops * baseline["images_per_s"] / 1e12,
        "trainer": {k: v for k, v in trainer.items() if k != "profile"}, "baseline": baseline,
        "versions": results.package_versions(), "code": results.git_state(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    peak, source = device_peak(device, name, trainer["how"]["precision"])
    record.update(peak_tflops=peak, peak_source=source, mfu=record["tflops"] / peak if peak else None,
                  baseline_mfu=record["baseline_tflops"] / peak if peak else None)
    return record


def summary_lines(record: dict[str, Any]) -> list[str]:
    gb = 1e9
    lines = [
        f"  d2l loop  {record['baseline_images_per_s']:10.1f} images/s   peak memory "
        f"{record['baseline_peak_memory'] / gb:.2f} GB   ({record['baseline_tflops']:.3f} TFLOP/s)",
        f"  trainer   {record['images_per_s']:10.1f} images/s   peak memory "
        f"{record['peak_memory'] / gb:.2f} GB   ({record['tflops']:.3f} TFLOP/s; "
        f"{describe_how(record['trainer']['how'])}, {record['trainer']['how']['memory_format']})",
        f"  ratio {record['ratio']:.2f}; {record['flops_per_image'] / 1e9:.2f} GFLOP per training image; "
        + (f"MFU {record['mfu']:.1%} (d2l loop {record['baseline_mfu']:.1%}) of {record['peak_tflops']:.3g} "
           f"TFLOP/s, {record['peak_source']}" if record["mfu"] is not None else record["peak_source"]),
        "  " + target_verdict(record),
    ]
    return lines


def describe_how(how: dict[str, Any]) -> str:
    return f"{how['precision']}, {'compiled' if how['compile'] else 'eager'}"


def target_verdict(record: dict[str, Any]) -> str:
    if record["device_type"] != "cuda":
        return _versus("ratio", record["ratio"], CPU_TARGET_RATIO, "x")
    parts = [_versus("ratio", record["ratio"], GPU_TARGET_RATIO, "x")]
    if record["mfu"] is not None:
        parts.append(_versus("MFU", record["mfu"] * 100, GPU_TARGET_MFU * 100, "%"))
    return "; ".join(parts)


def _versus(what: str, value: float, target: float, unit: str) -> str:
    met = "met" if value >= target else f"missed by {target - value:.2f}{unit}"
    return f"target {what} >= {target:g}{unit}: {met}"


def record_path(results_dir: str, record: dict[str, Any]) -> Path:
    device = re.sub(r"[^A-Za-z0-9]+", "-", record["device"]).strip("-").lower()
    return Path(results_dir) / "bench" / device / f"{record['network']}-b{record['batch']}.json"


def write_record(record: dict[str, Any], results_dir: str) -> Path:
    path = record_path(results_dir, record)
    results.atomic_write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())
    return path


def load_bench_records(results_dir: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, problems): every results/bench record, and one line per file that does not parse."""
    found, problems = [], []
    for path in sorted((Path(results_dir) / "bench").glob("*/*.json")):
        try:
            found.append({**json.loads(path.read_text()), "path": str(path)})
        except (OSError, ValueError) as error:
            problems.append(f"{path}: unreadable ({error})")
    return found, problems


if __name__ == "__main__":
    # The child process of _measure_in_child: python -m reproduce.bench ARM NETWORK SETTINGS_JSON
    arm_name, network_name, settings_json = sys.argv[1:4]
    print(json.dumps(measure_arm(arm_name, network_name, json.loads(settings_json))))
