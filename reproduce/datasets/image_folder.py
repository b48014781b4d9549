"""An ImageNet-style folder (<data_dir>/train/<class>/*, <data_dir>/val/<class>/*), preprocessed once as
the paper does (shorter side to 256, centre 256x256 crop, RGB) into a uint8 .npy cache under
<data_dir>/.reproduce-cache/ that later loads memory-mapped. One process builds it, under a file lock
the others wait on; a changed folder (its file list, labels and sizes) invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from tqdm import tqdm

from reproduce.base import locks
from reproduce.datasets.image_data import (
    DataCorrupt,
    DataUnavailable,
    ImageData,
    _one_line,
    held_out_count,
    per_pixel_mean,
)

IMAGENET_SIZE = 256  # paper sec. 2: "down-sampled the images to a fixed resolution of 256 x 256"


CACHE_DIR_NAME = ".reproduce-cache"


# Bump when the preprocessing changes, so an old cache is rebuilt instead of reused.
CACHE_FORMAT = "shorter-side-bilinear-centre-crop-rgb-v1"


IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _load_image_folder(data_dir: Path, train_limit: int, test_limit: int) -> ImageData:
    train_dir, val_dir = data_dir / "train", data_dir / "val"
    for folder in (train_dir, val_dir):
        if not folder.is_dir():
            raise DataUnavailable(
                f"imagenet-folder: {folder} not found. Put images in {train_dir}/<class>/*.jpg and "
                f"{val_dir}/<class>/*.jpg (torchvision ImageFolder layout; same class folder names)."
            )
    classes, class_to_idx = find_classes(str(train_dir))
    listed = _list_images(train_dir, class_to_idx)
    kept, held = _hold_out(listed, held_out_count("imagenet-folder", len(listed)))
    train_samples = _spread(kept, train_limit)
    test_samples = _spread(_list_images(val_dir, class_to_idx), test_limit)
    for folder, samples in ((train_dir, train_samples), (val_dir, test_samples)):
        if not samples:
            raise DataUnavailable(f"imagenet-folder: no images found under {folder}/<class>/ for the train classes")
    cache_dir = data_dir / CACHE_DIR_NAME
    train_x, train_y, mean = _cached_split(cache_dir, "train", train_samples, train_limit, with_mean=True)
    val_x, val_y, _ = _cached_split(cache_dir, "heldout", held, 0, with_mean=False)
    test_x, test_y, _ = _cached_split(cache_dir, "val", test_samples, test_limit, with_mean=False)
    splits = {"train": f"{len(train_samples)} images of {train_dir} (all but the held-out ones"
                       + (f", {train_limit} spread over the classes" if train_limit else "") + ")",
              "validation": f"{len(held)} images of {train_dir}, spread over the classes (held out; the lr schedule "
                            "watches them)",
              "test": f"{len(test_samples)} images of {val_dir} (reported only)"}
    return ImageData("imagenet-folder", train_x, train_y, test_x, test_y, classes, mean, val_x, val_y, splits)


def _hold_out(samples: list, count: int) -> tuple[list, list]:
    """(kept, held out): `count` samples spread evenly over the class-sorted list, and the rest."""
    chosen = set(np.linspace(0, len(samples) - 1, count).round().astype(int).tolist()) if count else set()
    return ([s for i, s in enumerate(samples) if i not in chosen], [s for i, s in enumerate(samples) if i in chosen])


def _list_images(folder: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    # Labels come from the train folder's class order, so val folders must use the same names.
    return make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)


def _spread(samples: list, limit: int) -> list:
    """`limit` samples evenly spaced over the class-sorted list, so every class appears
    (a plain prefix of an ImageFolder listing would be the first class only)."""
    if limit <= 0 or limit >= len(samples):
        return samples
    return [samples[index] for index in np.linspace(0, len(samples) - 1, limit).round().astype(int)]


def _cached_split(cache_dir: Path, split: str, samples: list, limit: int, *, with_mean: bool):
    """Memory-map the preprocessed split, building the cache first when it is absent or stale."""
    stem = cache_dir / (f"{split}-{IMAGENET_SIZE}" + (f"-n{limit}" if limit > 0 else ""))
    fingerprint = _fingerprint(samples, relative_to=cache_dir.parent)
    if not _cache_is_complete(stem, fingerprint, with_mean):
        with _cache_lock(stem):  # one process builds it (one torchrun rank, one grid worker); the others wait
            if not _cache_is_complete(stem, fingerprint, with_mean):  # built while this one waited
                _build_cache(stem, samples, fingerprint, with_mean)
    # mmap_mode "c" (copy-on-write) rather than "r": torch.from_numpy warns on read-only
    # arrays; nothing writes to the images, so the file is never changed either way.
    images = torch.from_numpy(np.load(f"{stem}.npy", mmap_mode="c"))
    labels = torch.from_numpy(np.load(f"{stem}-labels.npy"))
    mean = torch.from_numpy(np.load(f"{stem}-mean.npy")) if with_mean else None
    return images, labels, mean


def _fingerprint(samples: list[tuple[str, int]], relative_to: Path) -> str:
    """Hash of the file list (path, label, size): a changed folder invalidates the cache.
    Paths are relative, so a data folder that is moved or mounted elsewhere keeps its cache."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    for path, label in samples:
        digest.update(f"{os.path.relpath(path, relative_to)}\t{label}\t{os.path.getsize(path)}\n".encode())
    return digest.hexdigest()


def _cache_is_complete(stem: Path, fingerprint: str, with_mean: bool) -> bool:
    # The manifest is written last, so a manifest with a matching fingerprint means every
    # other file of the cache was completely written (each through a temporary name) before it.
    manifest = Path(f"{stem}.json")
    suffixes = [".json", ".npy", "-labels.npy"] + (["-mean.npy"] if with_mean else [])
    if not all(Path(f"{stem}{suffix}").is_file() for suffix in suffixes):
        return False
    return json.loads(manifest.read_text()).get("fingerprint") == fingerprint


def _cache_lock(stem: Path):
    """Hold the cache's build lock (reproduce.base.locks: no timeout, however long the build takes)."""
    return locks.held(f"{stem}.lock", f"{stem.name}: another process is building this cache")


def _build_cache(stem: Path, samples: list, fingerprint: str, with_mean: bool) -> None:
    Path(f"{stem}.json").unlink(missing_ok=True)  # the old cache is invalid from here on
    partial = _partial_name(f"{stem}.npy")
    shape = (len(samples), 3, IMAGENET_SIZE, IMAGENET_SIZE)
    np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape).flush()
    preprocess_all([path for path, _ in samples], partial, desc=stem.name)
    images = np.load(partial, mmap_mode="c")  # "c": torch.from_numpy warns on read-only arrays
    if with_mean:
        _save_atomically(f"{stem}-mean.npy", per_pixel_mean(torch.from_numpy(images)).numpy())
    del images
    os.replace(partial, f"{stem}.npy")
    _save_atomically(f"{stem}-labels.npy", np.array([label for _, label in samples], dtype=np.int64))
    manifest = {"fingerprint": fingerprint, "count": len(samples), "format": CACHE_FORMAT}
    partial_manifest = _partial_name(f"{stem}.json")
    partial_manifest.write_text(json.dumps(manifest))
    os.replace(partial_manifest, f"{stem}.json")


def _partial_name(path: str) -> Path:
    # Per process, so two runs building the same cache at once never write one file.
    return Path(f"{path}.partial-{os.getpid()}")


def _save_atomically(path: str, array: np.ndarray) -> None:
    partial = _partial_name(path)
    with open(partial, "wb") as handle:
        np.save(handle, array)
    os.replace(partial, path)


def preprocess_all(paths: list[str], npy_path: Path, desc: str, chunk: int = 256) -> None:
    """Write image i of `paths` into the .npy array at `npy_path` (already made, [N, 3, S, S]).

    Chunks go to one worker process per core, each writing its images straight into the memory-mapped
    file, so only image counts travel back (ImageNet's 1.28 million JPEGs are hours of decoding on one
    core). One chunk or one core: in this process."""
    starts = range(0, len(paths), chunk)
    workers = min(len(os.sched_getaffinity(0)), len(starts))
    with tqdm(total=len(paths), desc=desc, unit="img") as progress:
        if workers <= 1:
            for start in starts:
                progress.update(_preprocess_chunk(paths[start:start + chunk], npy_path, start))
            return
        # forkserver, not fork: the parent holds torch's thread pools, which a fork can leave locked.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            futures = [pool.submit(_preprocess_chunk, paths[start:start + chunk], npy_path, start) for start in starts]
            try:
                for done in as_completed(futures):
                    progress.update(done.result())
            except BaseException:
                pool.shutdown(cancel_futures=True)  # an unreadable image stops the build at once
                raise


def _preprocess_chunk(paths: list[str], npy_path: Path, start: int) -> int:
    images = np.load(npy_path, mmap_mode="r+")
    for offset, path in enumerate(paths):
        images[start + offset] = preprocess_image(path)
    images.flush()
    return len(paths)


def shorter_side_size(width: int, height: int, size: int = IMAGENET_SIZE) -> tuple[int, int]:
    """(width, height) scaled so that the shorter side is exactly `size`."""
    scale = size / min(width, height)
    return max(size, round(width * scale)), max(size, round(height * scale))


def preprocess_image(path: str, size: int = IMAGENET_SIZE) -> np.ndarray:
    """Paper sec. 2: rescale the shorter side to `size`, crop the central size x size, RGB.
    Returns uint8 [3, size, size]."""
    try:
        with Image.open(path) as image:
            # JPEG only: decode at a reduced scale that is still >= the target (much faster
            # for big photos, and the bilinear resize below does the rest).
            image.draft("RGB", shorter_side_size(*image.size, size))
            image = image.convert("RGB")
            width, height = shorter_side_size(*image.size, size)
            image = image.resize((width, height), Image.Resampling.BILINEAR)
            left, top = (width - size) // 2, (height - size) // 2
            image = image.crop((left, top, left + size, top + size))
            return np.asarray(image).transpose(2, 0, 1)
    except IMAGE_ERRORS as error:
        message = f"imagenet-folder: cannot read image {path} ({_one_line(error)}); remove or replace it."
        raise DataCorrupt(message) from None
