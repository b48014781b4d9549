"""An image folder's cache, built shard by shard: shard i of `count` of a split is rows
[i*N//count, (i+1)*N//count) of its plan's sample list (image_plan), so the shards laid end to end are the
split's one array, row for row. Any process can build any shard, in any order: one process all of them
(`build_all`), or one Slurm array task each (`build_shard`, what `python -m reproduce cache --shard I/N`
runs for each split).

A shard named <name> is three files under <data_dir>/.reproduce-cache/: <name>.npy (uint8 [rows, 3, 256, 256]),
<name>.sum.npy (float64 [3, 256, 256], the pixel sums the split's mean image is made of) and <name>.shard.json,
its manifest: its rows, its files (path, label, size) and their digest, the plan's digest, and the .npy's
shape, size and sha256. It is built under its own lock, each file written whole or not at all
(reproduce.base.partial_files), and the manifest last: a shard is finished when its manifest says so.
A build that raises removes its temporary files; one that is killed leaves them, and the next build of
that shard, holding the lock, removes them (and any older files of the shard) before it starts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from reproduce.base import locks
from reproduce.base.partial_files import leftovers, written_atomically
from reproduce.datasets.image_data import DataUnavailable
from reproduce.datasets.image_plan import (
    CACHE_DIR_NAME,
    LAYOUT,
    SPLITS,
    files_digest,
    plan_cache,
    plan_path,
    read_or_plan,
    read_json,
    with_shard_count,
    write_json,
)
from reproduce.datasets.image_preprocess import CACHE_FORMAT, IMAGENET_SIZE, preprocess_all

SHARD_FILES = (".npy", ".sum.npy", ".shard.json")


def build_shard(data_dir: str | Path, split: str, index: int, count: int, *,
                train_limit: int = 0, test_limit: int = 0) -> None:
    """Build shard `index` of `count` of `split` ("train", "heldout" or "val") unless it is complete.
    Uses the split's plan, listing the folder only when there is none; a plan of another shard count is
    re-cut to `count` (the same rows: the shards of a Slurm array all ask for the same count)."""
    if split not in SPLITS or not 0 <= index < count:
        raise ValueError(f"no shard {index}/{count} of split {split!r}: splits are {', '.join(SPLITS)}, 0 <= I < N")
    data_dir = Path(data_dir).expanduser()
    plan = read_or_plan(data_dir, train_limit=train_limit, test_limit=test_limit)[split]
    build_planned_shard(data_dir, with_shard_count(data_dir, plan, count), index)


def build_all(data_dir: str | Path, count: int | None = None, *, train_limit: int = 0, test_limit: int = 0) -> None:
    """List the folder, plan every split (in `count` shards; None keeps a plan's count, 1 for a new one) and
    build each shard not complete, in this process: what `python -m reproduce cache` without --shard runs."""
    data_dir = Path(data_dir).expanduser()
    for plan in plan_cache(data_dir, count, train_limit=train_limit, test_limit=test_limit).values():
        for index in range(len(plan["shards"])):
            build_planned_shard(data_dir, plan, index)


def build_planned_shard(data_dir: Path, plan: dict, index: int) -> None:
    cache_dir = data_dir / CACHE_DIR_NAME
    name = plan["shards"][index]["name"]
    with locks.held(cache_dir / f"{name}.shard.lock", f"{name}: another process is building this shard"):
        if shard_status(cache_dir, plan, index) == "complete":  # built while this one waited, or before
            return
        for path in _shard_files(cache_dir, name):  # a stale shard's files, a killed build's temporaries
            path.unlink()
        _write_shard(data_dir, plan, index)


def _shard_files(cache_dir: Path, name: str) -> list[Path]:
    # The manifest first, so that no moment has a manifest without the files it describes.
    finished = [cache_dir / f"{name}{suffix}" for suffix in reversed(SHARD_FILES)]
    return [path for path in finished if path.exists()] + [p for path in finished for p in leftovers(path)]


def _write_shard(data_dir: Path, plan: dict, index: int) -> None:
    cache_dir = data_dir / CACHE_DIR_NAME
    name, rows = plan["shards"][index]["name"], plan["shards"][index]["rows"]
    samples = plan["files"][rows[0]:rows[1]]
    paths = _unchanged_paths(data_dir, samples, plan_path(cache_dir, plan["split"], plan["limit"]))
    npy = cache_dir / f"{name}.npy"
    with written_atomically(npy) as partial:
        shape = (len(samples), 3, IMAGENET_SIZE, IMAGENET_SIZE)
        np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape).flush()
        preprocess_all(paths, partial, desc=name)
        with written_atomically(cache_dir / f"{name}.sum.npy") as sum_partial, open(sum_partial, "wb") as handle:
            np.save(handle, pixel_sum(np.load(partial, mmap_mode="r")))
        with open(partial, "rb") as handle:
            npy_sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    write_json(cache_dir / f"{name}.shard.json", {
        "layout": LAYOUT, "format": CACHE_FORMAT, "split": plan["split"], "name": name, "index": index,
        "count": len(plan["shards"]), "rows": rows, "split_digest": plan["files_digest"], "shape": list(shape),
        "npy_bytes": npy.stat().st_size, "npy_sha256": npy_sha256, "files_digest": files_digest(samples),
        "files": samples})


def _unchanged_paths(data_dir: Path, samples: list[list], plan_file: Path) -> list[str]:
    """The shard's images, each checked to be the size its plan says: a manifest must not describe other files."""
    paths = []
    for relative, _, size in samples:
        path = data_dir / relative
        found = _size(path)
        if found != size:
            raise DataUnavailable(
                f"imagenet-folder: {path} is {'missing' if found is None else f'{found} bytes'}, not the {size} "
                f"bytes the cache was planned with: the folder changed. Build in one process with `python -m "
                f"reproduce cache --data-dir {data_dir}` (it lists the folder again), or remove {plan_file} before "
                "building shards.")
        paths.append(str(path))
    return paths


def pixel_sum(images: np.ndarray, chunk: int = 64) -> np.ndarray:
    """float64 [C, S, S]: the sum of uint8 [N, C, S, S], a chunk at a time (a shard is gigabytes on disk).
    Exact: integers below 2**53, so the mean made from shard sums is bit for bit the one-array mean."""
    total = np.zeros(images.shape[1:], dtype=np.float64)
    for start in range(0, len(images), chunk):
        total += images[start:start + chunk].sum(axis=0, dtype=np.float64)
    return total


def shard_status(cache_dir: Path, plan: dict, index: int) -> str:
    """"complete", "missing" (no manifest) or "stale" (one of another plan, or whose files are not there),
    from the shard's manifest and two stats: no image is looked at."""
    shard = plan["shards"][index]
    manifest = read_json(cache_dir / f"{shard['name']}.shard.json")
    if manifest is None:
        return "missing"
    expected = {"rows": shard["rows"], "count": len(plan["shards"]), "split_digest": plan["files_digest"]}
    if any(manifest.get(key) != value for key, value in expected.items()):
        return "stale"
    npy, sums = cache_dir / f"{shard['name']}.npy", cache_dir / f"{shard['name']}.sum.npy"
    whole = _size(npy) == manifest.get("npy_bytes") and _size(sums) is not None
    return "complete" if whole else "stale"


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def missing_shards(data_dir: Path, plan: dict) -> list[int]:
    """The shards of `plan` not complete."""
    cache_dir = data_dir / CACHE_DIR_NAME
    return [index for index in range(len(plan["shards"])) if shard_status(cache_dir, plan, index) != "complete"]

