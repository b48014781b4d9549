"""What an image folder's cache holds, decided from one listing of the folder: each split's plan.

The folder is listed once (every image's path, label and size; the classes are train/'s folder names), and
the three splits' sample lists are worked out from that listing as they always were: the held-out
("heldout") images spread evenly over train/'s class-sorted list, the rest of it for "train", val/ for "val",
and a limit spread over the classes. Each split's plan, <data_dir>/.reproduce-cache/<split>-256[-n<limit>].json,
holds its sample list, the list's digest, and the rows of each of its shards (image_shards builds them),
so that building a shard, checking the cache and loading it never list the folder again (ImageNet's is
1.33 million files: minutes on a shared filesystem).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from reproduce.base import locks
from reproduce.base.partial_files import PARTIAL, leftovers, written_atomically
from reproduce.datasets.image_data import DataUnavailable, held_out_count
from reproduce.datasets.image_preprocess import CACHE_FORMAT, IMAGENET_SIZE

CACHE_DIR_NAME = ".reproduce-cache"
LAYOUT = "shards-v1"  # the manifests' own format: a manifest of another layout is not read
SPLITS = ("train", "heldout", "val")


@dataclass(frozen=True)
class Listing:
    """One listing of the folder: [path relative to data_dir, label, size in bytes] of each image."""
    classes: list[str]
    train: list[list]
    val: list[list]

    @property
    def digest(self) -> str:
        return _digest(json.dumps(self.classes) + files_digest(self.train) + files_digest(self.val))

    @property
    def images(self) -> int:
        return len(self.train) + len(self.val)


def list_folder(data_dir: Path) -> Listing:
    """List and stat every image of <data_dir>/train and <data_dir>/val (the one walk of the folder)."""
    check_folders(data_dir)
    train_dir, val_dir = data_dir / "train", data_dir / "val"
    classes, class_to_idx = find_classes(str(train_dir))
    return Listing(classes, _files(train_dir, class_to_idx, data_dir), _files(val_dir, class_to_idx, data_dir))


def check_folders(data_dir: Path) -> None:
    train_dir, val_dir = data_dir / "train", data_dir / "val"
    for folder in (train_dir, val_dir):
        if not folder.is_dir():
            raise DataUnavailable(
                f"imagenet-folder: {folder} not found. Put images in {train_dir}/<class>/*.jpg and "
                f"{val_dir}/<class>/*.jpg (torchvision ImageFolder layout; same class folder names)."
            )


def _files(folder: Path, class_to_idx: dict[str, int], data_dir: Path) -> list[list]:
    # Labels come from the train folder's class order, so val folders must use the same names. Paths are
    # relative, so a data folder that is moved or mounted elsewhere keeps its cache.
    found = make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    return [[os.path.relpath(path, data_dir), label, os.path.getsize(path)] for path, label in found]


def files_digest(samples: list[list]) -> str:
    """Hash of a sample list (path, label, size) and of the preprocessing: a changed list is another cache."""
    return _digest(CACHE_FORMAT + "".join(f"{path}\t{label}\t{size}\n" for path, label, size in samples))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_limits(train_limit: int, test_limit: int) -> dict[str, int]:
    """Each split's limit: the held-out images are all of them, whatever the limits."""
    return {"train": train_limit, "heldout": 0, "val": test_limit}


def split_samples(data_dir: Path, listing: Listing, train_limit: int, test_limit: int) -> dict[str, list]:
    kept, held = _hold_out(listing.train, held_out_count("imagenet-folder", len(listing.train)))
    samples = {"train": _spread(kept, train_limit), "heldout": held, "val": _spread(listing.val, test_limit)}
    for split in ("train", "val"):
        if not samples[split]:
            raise DataUnavailable(f"imagenet-folder: no images found under {data_dir / split}/<class>/ "
                                  "for the train classes")
    return samples


def _hold_out(samples: list, count: int) -> tuple[list, list]:
    """(kept, held out): `count` samples spread evenly over the class-sorted list, and the rest."""
    chosen = set(np.linspace(0, len(samples) - 1, count).round().astype(int).tolist()) if count else set()
    return ([s for i, s in enumerate(samples) if i not in chosen], [s for i, s in enumerate(samples) if i in chosen])


def _spread(samples: list, limit: int) -> list:
    """`limit` samples evenly spaced over the class-sorted list, so every class appears
    (a plain prefix of an ImageFolder listing would be the first class only)."""
    if limit <= 0 or limit >= len(samples):
        return samples
    return [samples[index] for index in np.linspace(0, len(samples) - 1, limit).round().astype(int)]


# ----------------------------------------------------------------------------- names

def stem_name(split: str, limit: int) -> str:
    return f"{split}-{IMAGENET_SIZE}" + (f"-n{limit}" if limit > 0 else "")


def shard_name(stem: str, index: int, count: int) -> str:
    # A cache of one shard keeps the split's own name: the file a one-process build always wrote.
    return stem if count == 1 else f"{stem}-{index:05d}-of-{count:05d}"


def shard_rows(rows: int, index: int, count: int) -> list[int]:
    """[start, stop) of shard `index`: contiguous, in order, sizes differing by at most one."""
    return [index * rows // count, (index + 1) * rows // count]


def plan_path(cache_dir: Path, split: str, limit: int) -> Path:
    return cache_dir / f"{stem_name(split, limit)}.json"


# ----------------------------------------------------------------------------- plans

def make_plan(split: str, limit: int, samples: list[list], listing: Listing, count: int) -> dict:
    plan = {"layout": LAYOUT, "format": CACHE_FORMAT, "split": split, "limit": limit, "classes": listing.classes,
            "listing_digest": listing.digest, "folder_images": listing.images, "rows": len(samples),
            "files_digest": files_digest(samples), "files": samples}
    return resharded(plan, count)


def resharded(plan: dict, count: int) -> dict:
    """The same plan in `count` shards (the sample list, and so every row, unchanged)."""
    if count < 1:
        raise ValueError(f"a cache needs at least one shard, not {count}")
    stem = stem_name(plan["split"], plan["limit"])
    shards = [{"name": shard_name(stem, index, count), "rows": shard_rows(plan["rows"], index, count)}
              for index in range(count)]
    described = {key: value for key, value in plan.items() if key not in ("shards", "files")}
    return {**described, "shards": shards, "files": plan["files"]}  # the long list last, for a reader's sake


def read_json(path: Path) -> dict | None:
    """A manifest of this layout and preprocessing, or None (absent, unreadable, of another layout or format)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or (manifest.get("layout"), manifest.get("format")) != (LAYOUT, CACHE_FORMAT):
        return None
    return manifest


def write_json(path: Path, manifest: dict) -> None:
    with written_atomically(path) as partial:
        partial.write_text(json.dumps(manifest))


def read_plans(cache_dir: Path, train_limit: int, test_limit: int) -> dict[str, dict] | None:
    """The three splits' plans, or None when one is missing or they come from different listings (a hold-out
    worked out from another listing could overlap the training images)."""
    plans = {split: read_json(plan_path(cache_dir, split, limit))
             for split, limit in split_limits(train_limit, test_limit).items()}
    if any(plan is None for plan in plans.values()):
        return None
    return plans if len({plan["listing_digest"] for plan in plans.values()}) == 1 else None


def _plan_lock(cache_dir: Path):
    return locks.held(cache_dir / "plan.lock", f"{cache_dir}: another process is listing this image folder")


def plan_cache(data_dir: Path, count: int | None = None, *, train_limit: int = 0, test_limit: int = 0) -> dict:
    """List the folder and write each split's plan where it differs from the listing (or from `count`
    shards; None keeps a plan's shard count, 1 for a new one). A split whose sample list has not changed
    keeps its built shards. Returns the plans."""
    cache_dir = data_dir / CACHE_DIR_NAME
    with _plan_lock(cache_dir):  # one process lists at a time: the others then read what it wrote
        return _plans_from_listing(data_dir, count, train_limit, test_limit)


def read_or_plan(data_dir: Path, *, train_limit: int = 0, test_limit: int = 0) -> dict:
    """The plans on disk; where there are none (or they disagree), the plans of one listing of the folder."""
    cache_dir = data_dir / CACHE_DIR_NAME
    plans = read_plans(cache_dir, train_limit, test_limit)
    if plans is not None:
        return plans
    with _plan_lock(cache_dir):
        plans = read_plans(cache_dir, train_limit, test_limit)  # planned by another process while this one waited
        return plans if plans is not None else _plans_from_listing(data_dir, None, train_limit, test_limit)


def with_shard_count(data_dir: Path, plan: dict, count: int) -> dict:
    """`plan` in `count` shards, rewritten on disk when its count differs (no listing: the rows are the same)."""
    if len(plan["shards"]) == count:
        return plan
    cache_dir = data_dir / CACHE_DIR_NAME
    with _plan_lock(cache_dir):
        current = read_json(plan_path(cache_dir, plan["split"], plan["limit"])) or plan
        return _written(cache_dir, current, resharded(current, count))


def _plans_from_listing(data_dir: Path, count: int | None, train_limit: int, test_limit: int) -> dict:
    cache_dir = data_dir / CACHE_DIR_NAME
    listing = list_folder(data_dir)
    samples = split_samples(data_dir, listing, train_limit, test_limit)
    plans = {}
    for split, limit in split_limits(train_limit, test_limit).items():
        old = read_json(plan_path(cache_dir, split, limit))
        new = make_plan(split, limit, samples[split], listing, count or (len(old["shards"]) if old else 1))
        plans[split] = _written(cache_dir, old, new)
    return plans


def _written(cache_dir: Path, old: dict | None, new: dict) -> dict:
    """Write `new` unless it is `old` (called under the plan lock: the one writer of plans)."""
    if new != old:
        path = plan_path(cache_dir, new["split"], new["limit"])
        for leftover in leftovers(path):  # a plan write killed midway
            leftover.unlink()
        write_json(path, new)
        _remove_unplanned_shards(cache_dir, new)
    return new


def _remove_unplanned_shards(cache_dir: Path, plan: dict) -> None:
    """Delete the files of this split's shards that its plan no longer names (another shard count's)."""
    stem = re.escape(stem_name(plan["split"], plan["limit"]))
    shard_file = re.compile(rf"({stem}(-\d{{5}}-of-\d{{5}})?)\.(npy|sum\.npy|shard\.json)({re.escape(PARTIAL)}\d+)?")
    planned_names = {shard["name"] for shard in plan["shards"]}
    for path in cache_dir.iterdir():
        found = shard_file.fullmatch(path.name)
        if found and found[1] not in planned_names:
            path.unlink(missing_ok=True)
