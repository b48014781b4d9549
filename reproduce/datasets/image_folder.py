"""An ImageNet-style folder (<data_dir>/train/<class>/*, <data_dir>/val/<class>/*), preprocessed once as
the paper does (image_preprocess) into a uint8 cache under <data_dir>/.reproduce-cache/ that loads
memory-mapped: each split planned from one listing of the folder (image_plan) and stored as shards
(image_shards), which load as one array in the order one array always had (sharded_images).

A load of a whole cache reads its manifests and nothing else: no listing, no stat of an image (ImageNet's
1.33 million, on a shared filesystem, are minutes per process). A small folder (up to VERIFY_UP_TO images,
a laptop's) is listed at every load all the same, so that a changed folder rebuilds its cache, as it always
did; verify=True does that for any folder. A cache that is not whole is built here, by one process, under a
file lock the others wait on (a torchrun rank, a notebook): what a laptop wants. At cluster scale build it
first, shard by shard (`python -m reproduce cache`): the grid's preflight will not start without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from reproduce.base import locks
from reproduce.datasets.image_data import ImageData
from reproduce.datasets.image_plan import CACHE_DIR_NAME, plan_cache, read_or_plan, read_plans, stem_name
from reproduce.datasets.image_preprocess import (  # noqa: F401 (where callers have always found them)
    preprocess_all,
    preprocess_image,
    shorter_side_size,
)
from reproduce.datasets.image_shards import build_planned_shard, missing_shards
from reproduce.datasets.sharded_images import ShardedImages
from reproduce.datasets.staging import stage

# Up to this many images (train/ and val/ together) a load lists the folder to check its cache: a fraction
# of a second on a laptop's disk. Above it, a load trusts the manifests (verify=True checks them).
VERIFY_UP_TO = 50_000


def _load_image_folder(data_dir: Path, train_limit: int, test_limit: int, *, verify: bool | None = None,
                       stage_dir: str = "") -> ImageData:
    """The folder's splits from its cache, building what is missing first; verify=None lists a small folder
    only (VERIFY_UP_TO); with a stage_dir, read from the node-local copy of its shards (staging)."""
    plans = _current_plans(data_dir, train_limit, test_limit, verify)
    for plan in plans.values():
        _build_missing(data_dir, plan)
    cache_dir = data_dir / CACHE_DIR_NAME
    if stage_dir:
        cache_dir = stage(cache_dir, plans, stage_dir)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (_open(cache_dir, plans[split])
                                                            for split in ("train", "heldout", "val"))
    train_dir, val_dir = data_dir / "train", data_dir / "val"
    splits = {"train": f"{len(train_y)} images of {train_dir} (all but the held-out ones"
                       + (f", {train_limit} spread over the classes" if train_limit else "") + ")",
              "validation": f"{len(val_y)} images of {train_dir}, spread over the classes (held out; the lr schedule "
                            "watches them)",
              "test": f"{len(test_y)} images of {val_dir} (reported only)"}
    return ImageData("imagenet-folder", train_x, train_y, test_x, test_y, plans["train"]["classes"],
                     _mean(cache_dir, plans["train"]), val_x, val_y, splits)


def _current_plans(data_dir: Path, train_limit: int, test_limit: int, verify: bool | None) -> dict[str, dict]:
    """The plans on disk; with verify (or none on disk), those of a listing of the folder."""
    plans = read_plans(data_dir / CACHE_DIR_NAME, train_limit, test_limit)
    if verify is None:
        verify = plans is not None and plans["train"]["folder_images"] <= VERIFY_UP_TO
    if verify:
        return plan_cache(data_dir, train_limit=train_limit, test_limit=test_limit)
    return plans if plans is not None else read_or_plan(data_dir, train_limit=train_limit, test_limit=test_limit)


def _build_missing(data_dir: Path, plan: dict) -> None:
    if not missing_shards(data_dir, plan):
        return
    with _cache_lock(data_dir / CACHE_DIR_NAME / stem_name(plan["split"], plan["limit"])):
        for index in missing_shards(data_dir, plan):  # what another process built while this one waited is done
            build_planned_shard(data_dir, plan, index)


def _cache_lock(stem: Path):
    """Hold a split's build lock (reproduce.base.locks: no timeout, however long the build takes)."""
    return locks.held(f"{stem}.lock", f"{stem.name}: another process is building this cache")


def _open(cache_dir: Path, plan: dict) -> tuple[torch.Tensor | ShardedImages, torch.Tensor]:
    """(images, labels) of a split: one shard is the memory-mapped tensor itself, several a ShardedImages."""
    # mmap_mode "c" (copy-on-write) rather than "r": torch.from_numpy warns on read-only
    # arrays; nothing writes to the images, so the file is never changed either way.
    shards = [torch.from_numpy(np.load(cache_dir / f"{shard['name']}.npy", mmap_mode="c"))
              for shard in plan["shards"]]
    labels = torch.tensor([label for _, label, _ in plan["files"]], dtype=torch.int64)
    return (shards[0] if len(shards) == 1 else ShardedImages(shards)), labels


def _mean(cache_dir: Path, plan: dict) -> torch.Tensor:
    """The training images' mean, from their shards' pixel sums: bit for bit image_data.per_pixel_mean's."""
    total = sum(np.load(cache_dir / f"{shard['name']}.sum.npy") for shard in plan["shards"])
    return torch.from_numpy(total / plan["rows"]).float()
