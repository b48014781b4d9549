"""What a training step costs and what a device can do: FLOPs per image, and device rates.

The bench turns these into MFU; the grid into a first estimate of a run's time on a device that has
no earlier record (reproduce.grids.estimates).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import torch

from reproduce.nets.layers import GroupedLRN
from reproduce.nets.models import MODEL_DEFAULTS, build_model, input_side
from reproduce.spec.params import DATASETS

# Dense peak TFLOP/s from NVIDIA's datasheets: (bf16 tensor cores, tf32 tensor cores). fp32
# runs are held against tf32, which cuDNN uses for fp32 convolutions by default. A CPU has no
# such table here: its peak is measured, as the fp32 GEMM rate torch reaches on it.
PEAK_TFLOPS = (("H100 80GB HBM3", 989.4, 494.7), ("H100 PCIe", 756.5, 378.0), ("H200", 989.4, 494.7),
               ("A100", 312.0, 156.0))


def training_flops_per_image(config: dict[str, Any], in_channels: int = 1, num_classes: int = 10) -> float:
    """FLOPs of one training image: the forward pass, counted by torch's FlopCounterMode, times 3
    (forward, weight gradients, input gradients), less the first layer's input gradient, which the
    images do not need. Not FlopCounterMode on the backward pass: it counts a grouped conv's
    backward as if ungrouped (measured: 3x the forward for conv2 at groups 2, not 2x), which would
    inflate the paper net's count by 21%. Nor the LRN layers' matrix products: their band matrix is
    mostly zeros, a way to add up a few neighbours fast, not the network's arithmetic."""
    return _training_flops(_architecture_key(config), in_channels, num_classes)


def _architecture_key(config: dict[str, Any]) -> tuple:
    return tuple((key, config.get(key, default)) for key, default in MODEL_DEFAULTS.items()
                 if key not in ("in_channels", "num_classes", "bias_init", "weight_init"))


@lru_cache(maxsize=None)
def _training_flops(architecture: tuple, in_channels: int, num_classes: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode


    config = dict(architecture)
    model = build_model({**config, "in_channels": in_channels, "num_classes": num_classes})
    side = input_side(config)
    images = torch.randn(2, in_channels, side, side)
    with torch.no_grad(), FlopCounterMode(display=False) as whole:
        model(images)
    with torch.no_grad(), FlopCounterMode(display=False) as stem:
        next(iter(model.children()))(images)
    counts = whole.get_flop_counts()
    lrn = sum(sum(counts.get(f"Sequential.{name}", {}).values()) for name, module in model.named_children()
              if isinstance(module, GroupedLRN))
    return (3 * (whole.get_total_flops() - lrn) - stem.get_total_flops()) / 2


def parameter_count(config: dict[str, Any]) -> int:
    """Weights and biases of the config's network, on its dataset's channels and classes."""
    dataset = config.get("dataset", "fashion-mnist")
    return _parameter_count(_architecture_key(config), DATASETS[dataset], 1000 if dataset == "imagenet-folder" else 10)


@lru_cache(maxsize=None)
def _parameter_count(architecture: tuple, in_channels: int, num_classes: int) -> int:
    model = build_model({**dict(architecture), "in_channels": in_channels, "num_classes": num_classes})
    return sum(p.numel() for p in model.parameters())


def peak_tflops(name: str, precision: str) -> float | None:
    for pattern, bf16, tf32 in PEAK_TFLOPS:
        if pattern in name:
            return bf16 if precision == "bf16" else tf32
    return None


def measured_gemm_tflops(size: int = 2048, seconds: float = 2.0) -> float:
    """fp32 matrix-multiply rate on the CPU, with torch's current threads: the most its convolutions
    could hope for."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * size ** 3 * count / (time.perf_counter() - started) / 1e12


def best_gemm_tflops(trials: int = 3, seconds: float = 0.3, size: int = 2048) -> float:
    """The fastest of a few short fp32 GEMM timings with torch's current threads: a rate the machine
    demonstrably reaches at that moment."""
    return max(measured_gemm_tflops(size, seconds) for _ in range(trials))


def device_peak(device: torch.device, name: str, precision: str) -> tuple[float | None, str]:
    """(peak TFLOP/s, where that number comes from) for the MFU's denominator."""
    if device.type == "cuda":
        peak = peak_tflops(name, precision)
        source = "datasheet, dense " + ("bf16" if precision == "bf16" else "tf32")
        return peak, source if peak else f"no datasheet peak on file for {name}"
    return measured_gemm_tflops(), "measured fp32 GEMM (2048x2048) on this CPU"
