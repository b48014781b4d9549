"""The bench's records: one per network, layout and batch under results/bench/<device>/, the share of the
peak (a GPU's datasheet; on a CPU the GEMM rate measured in the runs' own processes), its targets, and
the lines that say them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from reproduce.grids.flops import device_peak, training_flops_per_image
from reproduce.records import provenance, results
from reproduce.spec import params
from reproduce.training.execution import device_kind

# Targets: the trainer over the d2l loop, its share of the peak
# (the measured fp32 GEMM rate on a CPU, the datasheet on a GPU), and its speed over the `--against` trainer.
TARGETS = {("cpu", "small"): {"ratio": 4.5, "share": 0.45, "speedup": 2.0},
           ("cpu", "four-layer"): {"speedup": 2.0},
           ("cpu", "paper"): {"share": 0.50},
           ("cuda", "paper"): {"ratio": 5.0, "share": 0.40}}


def make_record(network: str, layout: Layout, config: dict[str, Any], device: torch.device,
                baseline: dict[str, Any] | None, trainer: dict[str, Any], other: dict[str, Any] | None,
                against: str) -> dict[str, Any]:
    name = device_kind(device)  # the threads are the layout's, said apart
    flops = training_flops_per_image(config)
    base_rate = baseline["images_per_s"] if baseline else None
    record = {
        "network": network, "model": config["model"], "model_config": params.result_config(config),
        "layout": asdict(layout), "device": name, "device_type": device.type, "batch": config["batch_size"],
        "images_per_s": trainer["images_per_s"], "baseline_images_per_s": base_rate,
        "ratio": trainer["images_per_s"] / base_rate if base_rate else None,
        "peak_memory": trainer["peak_memory_bytes"],
        "baseline_peak_memory": baseline["peak_memory_bytes"] if baseline else None,
        "peak_memory_kind": "device memory allocated" if device.type == "cuda" else "process peak RSS",
        "flops_per_image": flops, "tflops": flops * trainer["images_per_s"] / 1e12,
        "baseline_tflops": flops * base_rate / 1e12 if base_rate else None,
        "trainer": {k: v for k, v in trainer.items() if k != "profile"}, "baseline": baseline,
        "against": None if other is None else {"revision": against, "images_per_s": other["images_per_s"],
                                               "speedup": trainer["images_per_s"] / other["images_per_s"]},
        "versions": provenance.package_versions(), "code": provenance.git_state(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    peak, source = layout_peak(device, name, trainer, layout)
    mfu = record["tflops"] / peak if peak else None
    record.update(peak_tflops=peak, peak_source=source, mfu=None if mfu is None or mfu > 1 else mfu,
                  baseline_mfu=record["baseline_tflops"] / peak if peak and base_rate else None,
                  mfu_fault=f"the net ran at {mfu:.0%} of the rate measured as its peak: a measurement fault, "
                            "not a result" if mfu is not None and mfu > 1 else None)
    return record


def layout_peak(device: torch.device, name: str, trainer: dict[str, Any], layout: Layout) -> tuple[float | None, str]:
    """The peak the layout's runs share: the datasheet's on a GPU; on a CPU the fp32 GEMM rate each run's
    process measured with its own threads around its timed window, summed over the runs at once."""
    if device.type == "cuda":
        return device_peak(device, name, trainer["how"]["precision"])
    threads = layout.threads or (os.cpu_count() or 1)
    return trainer["gemm_tflops"], (f"fp32 GEMM (2048x2048) measured in each run's process, {threads} thread(s) x "
                                    f"{layout.runs} run(s), best of 3 before and after its timed window")


def summary_lines(record: dict[str, Any]) -> list[str]:
    gb = 1e9
    lines = [] if record["baseline_images_per_s"] is None else [
        f"  d2l loop  {record['baseline_images_per_s']:10.1f} images/s   peak memory "
        f"{record['baseline_peak_memory'] / gb:.2f} GB   ({record['baseline_tflops']:.3f} TFLOP/s)"]
    lines.append(f"  trainer   {record['images_per_s']:10.1f} images/s   peak memory "
                 f"{record['peak_memory'] / gb:.2f} GB   ({record['tflops']:.3f} TFLOP/s; "
                 f"{describe_how(record['trainer']['how'])}, {record['trainer']['how']['memory_format']})")
    if record.get("against"):
        lines.append(f"  trainer of {record['against']['revision']} {record['against']['images_per_s']:10.1f} "
                     f"images/s: this trainer is {record['against']['speedup']:.2f}x as fast")
    ratio = f"ratio {record['ratio']:.2f}; " if record["ratio"] else ""
    if record.get("mfu_fault"):
        share = f"{record['mfu_fault']} ({record['peak_tflops']:.3g} TFLOP/s, {record['peak_source']})"
    elif record["mfu"] is not None:
        share = (f"{share_word(record)} {record['mfu']:.1%}" + (f" (d2l loop {record['baseline_mfu']:.1%})"
                 if record["baseline_mfu"] is not None else "") + f" of {record['peak_tflops']:.3g} TFLOP/s, "
                 f"{record['peak_source']}")
    else:
        share = record["peak_source"]
    lines += [f"  {ratio}{record['flops_per_image'] / 1e9:.3f} GFLOP per training image; {share}",
              "  " + target_verdict(record)]
    return lines


def share_word(record: dict[str, Any]) -> str:
    return "MFU" if record["device_type"] == "cuda" else "share of the GEMM rate"


def describe_how(how: dict[str, Any]) -> str:
    return f"{how['precision']}, {'compiled' if how['compile'] else 'eager'}"


def target_verdict(record: dict[str, Any]) -> str:
    targets = TARGETS.get((record["device_type"], record["network"]), {})
    measured = {"ratio": record["ratio"], "share": record["mfu"],
                "speedup": (record.get("against") or {}).get("speedup")}
    parts = [_versus(what, measured[what], target) for what, target in targets.items()]
    return "; ".join(parts) if parts else "no target for this network here"


def _versus(what: str, value: float | None, target: float) -> str:
    shown = f"{target:.0%}" if what == "share" else f"{target:g}x"
    if value is None:
        return f"target {what} >= {shown}: not measured" + (" (no --against)" if what == "speedup" else "")
    gap = f"{(target - value):.0%}" if what == "share" else f"{target - value:.2f}x"
    return f"target {what} >= {shown}: {'met' if value >= target else f'missed by {gap}'}"


def record_path(results_dir: str, record: dict[str, Any]) -> Path:
    device = re.sub(r"[^A-Za-z0-9]+", "-", record["device"]).strip("-").lower()
    layout = record.get("layout", {}).get("key", "all")
    return Path(results_dir) / "bench" / device / f"{record['network']}-{layout}-b{record['batch']}.json"


def write_record(record: dict[str, Any], results_dir: str) -> Path:
    path = record_path(results_dir, record)
    results.atomic_write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())
    return path


def load_bench_records(results_dir: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, problems): every training-speed record of results/bench (the loader's, bench --loader, are
    not), and one line per file that does not parse."""
    found, problems = [], []
    for path in sorted((Path(results_dir) / "bench").glob("*/*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            problems.append(f"{path}: unreadable ({error})")
            continue
        if record.get("what") != "loader":
            found.append({**record, "path": str(path)})
    return found, problems


@dataclass(frozen=True)
class Layout:
    key: str
    words: str
    runs: int  # processes timed at once; their images/s add up
    threads: int  # torch threads of each; 0 = all the machine's


ONE, TWO, ALL = (Layout("one", "one run, 1 thread", 1, 1), Layout("two", "two runs at once, 1 thread each", 2, 1),
                 Layout("all", "one run, all threads", 1, 0))


# On a GPU, runs of the paper net at once: batch 128 may not fill it. The grid runs as many at once as
# gave the most images a second (estimates.runs_at_once); until this is measured, one.
AT_ONCE = (Layout("two-at-once", "two runs at once on the GPU", 2, 0),
           Layout("four-at-once", "four runs at once on the GPU", 4, 0))
