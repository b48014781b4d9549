"""What the paper preset needs at cluster scale, from measured rates: how many CPU cores, how much storage
bandwidth and page cache keep one GPU fed, how long the cache takes to build, and how long the paper grid
takes on 8 and on 64 GPUs. docs/scale-out.md's table is `table()` of the loader bench's record
(`nox -s bench -- --loader`); tests/test_scale_model.py checks the arithmetic and that the page says what
the committed record gives.

Measured here: the loader's images a second per worker core (gathering uint8 256x256 batches from a memory-
mapped cache, cold and warm) and JPEG decoding a second per core (the cache's build). Not measured here: a
GPU's training rate for the paper's net, taken from published figures (GPU_IMAGES_PER_S) and said so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reproduce.grids.estimates import wall_time
from reproduce.spec import plan

IMAGE_BYTES = 3 * 256 * 256  # the cache's uint8 image: the paper's 256x256 RGB
IMAGENET_TRAIN = 1_281_167  # ILSVRC-2012's training JPEGs (the held-out 10,000 among them)
IMAGENET_VAL = 50_000
# A GPU training the paper's net, images a second, as published (not measured here): the fastest single-GPU
# AlexNet rate reported is about 16,500 img/s on an A100 in fp16; an H100 is put at 20,000-30,000.
GPU_IMAGES_PER_S = {"H100, low": 20_000, "H100, high": 30_000}
GPUS_PER_NODE = 8


@dataclass(frozen=True)
class Rates:
    """The loader bench's measurements: images a second per core."""
    loader_cold: float  # gathering batches from a cache read from storage
    loader_warm: float  # ... from the page cache
    decode: float  # JPEG to cache image (the build)
    measured_on: str  # the machine, in words


def cores_per_gpu(rates: Rates, gpu_rate: float) -> dict[str, int]:
    """Loader cores one GPU needs at this rate, reading cold and warm."""
    return {"cold": math.ceil(gpu_rate / rates.loader_cold), "warm": math.ceil(gpu_rate / rates.loader_warm)}


def bandwidth_gb_s(gpu_rate: float, gpus: int = 1) -> float:
    """GB/s of cache images the GPUs read (every epoch reads every image once)."""
    return gpu_rate * IMAGE_BYTES * gpus / 1e9


def cache_gb() -> float:
    """The whole cache: the training images (with the held-out ones) and the validation images."""
    return (IMAGENET_TRAIN + IMAGENET_VAL) * IMAGE_BYTES / 1e9


def build_hours(rates: Rates, shards: int, cores_per_task: int) -> float:
    """Wall hours of the cache's build as a job array of `shards` tasks running at once."""
    return (IMAGENET_TRAIN + IMAGENET_VAL) / shards / (rates.decode * cores_per_task) / 3600


def paper_run_hours(gpu_rate: float) -> list[float]:
    """Each ImageNet run of the paper grid, in hours on one GPU, in the grid's order (its epochs over the
    training images left after the held-out ones, at gpu_rate)."""
    runs = [run for run in plan.grid_plan("paper", 1) if run.config["dataset"] == "imagenet-folder"]
    return [run.config["epochs"] * (IMAGENET_TRAIN - 10_000) / gpu_rate / 3600 for run in runs]


def paper_grid_hours(gpu_rate: float, gpus: int) -> float:
    """Wall hours of the paper grid's ImageNet runs, one GPU each, side by side on `gpus` GPUs."""
    return wall_time(paper_run_hours(gpu_rate), gpus)


def table(rates: Rates) -> list[str]:
    """docs/scale-out.md's table: per GPU, per node and for the grid, at each published GPU rate."""
    lines = ["| | " + " | ".join(GPU_IMAGES_PER_S) + " |", "|---|" + "---|" * len(GPU_IMAGES_PER_S)]

    def row(name: str, value) -> None:
        lines.append(f"| {name} | " + " | ".join(value(rate) for rate in GPU_IMAGES_PER_S.values()) + " |")

    row("a GPU trains the paper's net at (images/s, published)", lambda r: f"{r:,}")
    row("loader cores per GPU, cache in the page cache (warm)", lambda r: str(cores_per_gpu(rates, r)["warm"]))
    row("loader cores per GPU, cache read from storage (cold)", lambda r: str(cores_per_gpu(rates, r)["cold"]))
    row("storage read per GPU, cold (GB/s)", lambda r: f"{bandwidth_gb_s(r):.1f}")
    row(f"storage read per node of {GPUS_PER_NODE} GPUs, cold (GB/s)", lambda r: f"{bandwidth_gb_s(r, GPUS_PER_NODE):.1f}")
    row("one 90-epoch run on one GPU (hours)", lambda r: f"{paper_run_hours(r)[0]:.1f}")
    row(f"the paper grid ({len(paper_run_hours(1.0))} ImageNet runs) on 8 GPUs (hours)",
        lambda r: f"{paper_grid_hours(r, 8):.1f}")
    row("the paper grid on 64 GPUs (hours)", lambda r: f"{paper_grid_hours(r, 64):.1f}")
    lines += ["", f"Measured on {rates.measured_on}: the loader gathers {rates.loader_warm:,.0f} images a second per "
              f"worker core from the page cache and {rates.loader_cold:,.0f} from storage; JPEG decoding to the cache "
              f"runs at {rates.decode:,.0f} images a second per core. The cache is {cache_gb():.0f} GB: a node whose "
              f"runs all read it holds it in its page cache only with that much memory free (`--slurm-mem`), or "
              f"stages it to local storage. Built as an array of 64 tasks of 16 cores, its JPEG decoding takes "
              f"{60 * build_hours(rates, 64, 16):.1f} minutes ({60 * build_hours(rates, 1, 16):.0f} on one such task): "
              f"the build is bound by reading the JPEGs and writing the {cache_gb():.0f} GB, at the storage's rate; "
              "the GPU rates are published figures, not measured here."]
    return lines
