"""`nox -s bench -- --loader`: how fast the DataLoader path reads ImageNet's cache, per worker core, from
storage (cold) and from the page cache (warm), and how fast JPEGs decode into it, per core. A synthetic cache
(a memory-mapped uint8 [N, 3, 256, 256] of random bytes, `loader_gb` of it) stands in for ImageNet's; a cold
epoch first asks the kernel to drop the file's pages (posix_fadvise DONTNEED), which needs no privilege. The
record goes to results/bench/<device>/loader.json and docs/scale-out.md's table is remade from it
(reproduce.grids.scale_model).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from reproduce.base.paths import PROJECT_ROOT
from reproduce.datasets.image_preprocess import preprocess_image
from reproduce.datasets.loader import HostBatches
from reproduce.grids import scale_model
from reproduce.records import provenance, results
from reproduce.training.execution import device_kind

BATCH = 128
EPOCH_IMAGES = 4_096  # images a timed epoch gathers, in a random order over the whole cache
DECODE_IMAGES = 96  # ImageNet-sized JPEGs decoded to time the build
DOC = PROJECT_ROOT / "docs" / "scale-out.md"
TABLE_BEGIN, TABLE_END = "<!-- scale table: begin (nox -s bench -- --loader) -->", "<!-- scale table: end -->"


def synthetic_cache(folder: Path, gigabytes: float) -> Path:
    """A .npy of random uint8 images, `gigabytes` of it, written once per folder."""
    rows = max(BATCH, int(gigabytes * 1e9 // scale_model.IMAGE_BYTES))
    path = folder / f"synthetic-{rows}.npy"
    if not path.exists():
        images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, 3, 256, 256))
        generator = np.random.default_rng(0)
        for start in range(0, rows, 1024):
            images[start:start + 1024] = generator.integers(0, 256, images[start:start + 1024].shape, dtype=np.uint8)
        images.flush()
        del images
    return path


def drop_pages(path: Path) -> None:
    with open(path, "rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def images_per_s(path: Path, workers: int, cold: bool) -> float:
    """Images a second a HostBatches of `workers` gathers over EPOCH_IMAGES rows in a random order."""
    x = torch.from_numpy(np.load(path, mmap_mode="c"))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(workers))[:EPOCH_IMAGES]
    loader = HostBatches(x, torch.zeros(len(x), dtype=torch.long), BATCH, torch.device("cpu"), workers)
    list(loader.iterate(order[:BATCH]))  # the workers start: not what is timed
    if cold:
        drop_pages(path)
    started = time.perf_counter()
    seen = sum(len(images) for images, _ in loader.iterate(order))
    return seen / (time.perf_counter() - started)


def decode_per_s(folder: Path) -> float:
    """JPEGs of ImageNet's typical size (500x375, quality 90) into 256x256 cache images, a second, one core."""
    generator = np.random.default_rng(0)
    paths = []
    for index in range(DECODE_IMAGES):
        # smooth random pictures compress like photographs, unlike noise
        small = generator.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        picture = Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC)
        paths.append(folder / f"decode-{index}.jpg")
        picture.save(paths[-1], quality=90)
    started = time.perf_counter()
    for path in paths:
        preprocess_image(str(path))
    return DECODE_IMAGES / (time.perf_counter() - started)


def run_loader_bench(gigabytes: float, results_dir: str | Path, workers: tuple[int, ...] | None = None,
                     doc: Path = DOC) -> dict[str, Any]:
    """Measure, write the record and docs/scale-out.md's table, print the rates; returns the record."""
    cores = len(os.sched_getaffinity(0))
    workers = workers or tuple(sorted({1, cores}))
    device = device_kind(torch.device("cpu"))
    with tempfile.TemporaryDirectory(dir=os.environ.get("REPRODUCE_BENCH_TMP")) as scratch:
        path = synthetic_cache(Path(scratch), gigabytes)
        rates = {f"{how}, {n} worker(s)": images_per_s(path, n, how == "cold") for n in workers for how in ("cold", "warm")}
        decode = decode_per_s(Path(scratch))
    per_core = {how: max(rate / int(re.search(r"(\d+) worker", name)[1]) for name, rate in rates.items()
                         if name.startswith(how)) for how in ("cold", "warm")}
    record = {"what": "loader", "device": device, "cores": cores, "cache_gb": gigabytes, "batch": BATCH,
              "epoch_images": EPOCH_IMAGES, "images_per_s": rates, "per_core": per_core, "decode_per_core": decode,
              "code": {**provenance.git_state(), "source_sha256": provenance.source_digest()},
              "measured_at": results.now_utc()}
    folder = Path(results_dir) / "bench" / re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    folder.mkdir(parents=True, exist_ok=True)
    results.atomic_write_bytes(folder / "loader.json", (json.dumps(record, indent=1) + "\n").encode())
    write_table(rates_of(record), doc)
    for name, rate in rates.items():
        print(f"loader, {name}: {rate:,.0f} images/s")
    print(f"per worker core: cold {per_core['cold']:,.0f}, warm {per_core['warm']:,.0f} images/s; JPEG decoding "
          f"{decode:,.0f} images/s per core")
    return record


def rates_of(record: dict[str, Any]) -> scale_model.Rates:
    return scale_model.Rates(record["per_core"]["cold"], record["per_core"]["warm"], record["decode_per_core"],
                             f"{record['device']} ({record['cores']} cores, a {record['cache_gb']:g} GB synthetic cache)")


def write_table(rates: scale_model.Rates, doc: Path = DOC) -> None:
    """docs/scale-out.md between its table markers, remade from the rates."""
    text = doc.read_text()
    start, end = text.index(TABLE_BEGIN) + len(TABLE_BEGIN), text.index(TABLE_END)
    doc.write_text(text[:start] + "\n" + "\n".join(scale_model.table(rates)) + "\n" + text[end:])
