"""Datasets as uint8 image tensors, plus the mean image of their training set.

Every loader returns the same thing: `ImageData` with uint8 [N, C, S, S] images, int64
labels and the per-pixel mean of the *training* images on the 0-255 scale. The paper
(sec. 2) subtracts "the mean activity over the training set from each pixel"; the mean
is taken over the training examples actually used (after `train_limit`), never the test set.

Sources, in order of preference:
- fashion-mnist: <data_dir>/FashionMNIST/raw/, else the Debian package
  `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist, overridable with
  $REPRODUCE_FASHION_MNIST_SYSTEM_DIR), else torchvision's download.
- cifar10: torchvision's files in <data_dir> (extracted or the tar.gz), else its download.
- imagenet-folder: <data_dir>/train/<class>/* and <data_dir>/val/<class>/*, preprocessed
  once as in the paper (shorter side to 256, centre 256x256 crop, RGB) into a uint8 .npy
  cache under <data_dir>/.reproduce-cache/ that later loads memory-map.
Anything missing or unreadable raises `DataUnavailable` with a message that says what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
import os
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, FashionMNIST
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.datasets.mnist import read_image_file, read_label_file
from tqdm import tqdm

from reproduce import locks


FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_DIR_ENV = "REPRODUCE_FASHION_MNIST_SYSTEM_DIR"
IMAGENET_SIZE = 256  # paper sec. 2: "down-sampled the images to a fixed resolution of 256 x 256"
CACHE_DIR_NAME = ".reproduce-cache"
# Bump when the preprocessing changes, so an old cache is rebuilt instead of reused.
CACHE_FORMAT = "shorter-side-bilinear-centre-crop-rgb-v1"
# Errors that mean "could not fetch it": no network, DNS failure, server error, bad checksum.
DOWNLOAD_ERRORS = (URLError, RuntimeError, OSError)
# Errors torchvision's idx parser raises on a truncated or malformed file.
IDX_ERRORS = (AssertionError, RuntimeError, TypeError, ValueError, KeyError, IndexError)
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
# Training images held out as the validation split: the lr schedule watches their error, as the
# paper's watched validation error, so that the test images are only ever reported. In-memory sets
# hold out their last images (both store them in no class order); an image folder holds out images
# spread evenly over its class-sorted list, so that every class is in both. A set smaller than ten
# times this (a test's stand-in) holds out a tenth of its images instead.
VALIDATION_IMAGES = {"fashion-mnist": 5_000, "cifar10": 5_000, "imagenet-folder": 10_000}


class DataUnavailable(Exception):
    """A dataset cannot be found or fetched; the message names it and the remedies."""


class DataCorrupt(DataUnavailable):
    """A dataset file exists but cannot be read; the message names the file."""


@dataclass
class ImageData:
    name: str
    train_x: torch.Tensor  # uint8 [N, C, S, S], possibly backed by a numpy memmap
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor  # uint8 [M, C, S, S]
    test_y: torch.Tensor  # int64 [M]
    classes: list[str]
    mean: torch.Tensor  # float32 [C, S, S], training set only, 0-255 scale
    val_x: torch.Tensor  # uint8 [V, C, S, S]: held out of the training images (VALIDATION_IMAGES)
    val_y: torch.Tensor  # int64 [V]
    splits: dict[str, str]  # which images each split holds, in words: what the run record says

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def stored_size(self) -> int:
        return self.train_x.shape[-1]


def pixel_std(data: ImageData, sample: int = 10_000) -> float:
    """Std of the mean-subtracted training pixels (over the first `sample` images): the one
    number that brings inputs to unit scale."""
    images = data.train_x[:sample].float() - data.mean
    return float(images.std())


def load_dataset(name: str, data_dir: str | Path, *, train_limit: int = 0, test_limit: int = 0) -> ImageData:
    """Load `name` from `data_dir`; a limit > 0 keeps only that many examples (deterministic)."""
    loaders = {
        "fashion-mnist": _load_fashion_mnist,
        "cifar10": _load_cifar10,
        "imagenet-folder": _load_image_folder,
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(loaders)}")
    return loaders[name](Path(data_dir).expanduser(), train_limit, test_limit)


def per_pixel_mean(images: torch.Tensor, chunk_bytes: int = 16 << 20) -> torch.Tensor:
    """Mean image of uint8 [N, C, S, S], summed in float64 chunks so that a memmap-backed
    dataset is never held in memory at once."""
    if len(images) == 0:
        raise ValueError("cannot take the mean of an empty training set")
    per_image = max(1, images[0].numel())
    chunk = max(1, chunk_bytes // per_image)
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    for start in range(0, len(images), chunk):
        total += images[start : start + chunk].sum(0, dtype=torch.float64)
    return (total / len(images)).float()


def _first(tensor: torch.Tensor, limit: int) -> torch.Tensor:
    return tensor[:limit] if limit > 0 else tensor


def held_out_count(name: str, training_images: int) -> int:
    return min(VALIDATION_IMAGES[name], max(1, training_images // 10))


def _in_memory(name, train_x, train_y, test_x, test_y, classes, train_limit, test_limit) -> ImageData:
    """Hold out the validation images, apply the limits, then take the mean of the training images
    that remain."""
    total = len(train_y)
    kept = total - held_out_count(name, total)
    val_x, val_y = train_x[kept:], train_y[kept:]
    train_x, train_y = _first(train_x[:kept], train_limit), _first(train_y[:kept], train_limit)
    test_x, test_y = _first(test_x, test_limit), _first(test_y, test_limit)
    splits = {"train": f"{name} training images 0-{len(train_y) - 1}",
              "validation": f"{name} training images {kept}-{total - 1} (held out; the lr schedule watches them)",
              "test": f"{name} test images 0-{len(test_y) - 1} (reported only)"}
    return ImageData(name, train_x, train_y, test_x, test_y, list(classes), per_pixel_mean(train_x), val_x, val_y,
                     splits)


# ---------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_HELP = (
    "Remedies: `apt-get install dataset-fashion-mnist` (installs {system}; "
    "${env} points elsewhere), or run once with internet so torchvision downloads it into {raw}."
)


def _fashion_raw_names() -> list[str]:
    return [gz_name.removesuffix(".gz") for gz_name, _md5 in FashionMNIST.resources]


def _load_fashion_mnist(data_dir: Path, train_limit: int, test_limit: int) -> ImageData:
    raw_dir = data_dir / "FashionMNIST" / "raw"
    if not all((raw_dir / name).is_file() for name in _fashion_raw_names()):
        if not _gunzip_system_fashion_mnist(raw_dir):
            _download_fashion_mnist(data_dir, raw_dir)
    train, test = _parse_fashion_mnist(data_dir, True), _parse_fashion_mnist(data_dir, False)
    return _in_memory(
        "fashion-mnist", train.data.unsqueeze(1), train.targets, test.data.unsqueeze(1), test.targets,
        FashionMNIST.classes, train_limit, test_limit,
    )


def _fashion_system_dir() -> Path:
    return Path(os.environ.get(FASHION_MNIST_DIR_ENV) or FASHION_MNIST_SYSTEM_DIR)


def _gunzip_system_fashion_mnist(raw_dir: Path) -> bool:
    """Gunzip the Debian package's files into raw_dir; False when they are not installed."""
    system_dir = _fashion_system_dir()
    sources = [system_dir / f"{name}.gz" for name in _fashion_raw_names()]
    if not all(source.is_file() for source in sources):
        return False
    raw_dir.mkdir(parents=True, exist_ok=True)
    for source in sources:
        _gunzip(source, raw_dir / source.name.removesuffix(".gz"))
    return True


def _gunzip(source: Path, target: Path) -> None:
    # Through a temporary name: a half-written file must never pass for a complete one,
    # since torchvision only checks that the raw files exist. One name per process: two runs
    # (or grids) unpacking at once each write their own copy, and the last rename wins.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        with gzip.open(source, "rb") as compressed, open(partial, "wb") as plain:
            shutil.copyfileobj(compressed, plain)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        partial.unlink(missing_ok=True)
        raise DataCorrupt(
            f"fashion-mnist: {source} is corrupt ({error}). Reinstall it with "
            "`apt-get install --reinstall dataset-fashion-mnist`, or point "
            f"${FASHION_MNIST_DIR_ENV} at a good copy."
        ) from None
    os.replace(partial, target)


def _download_fashion_mnist(data_dir: Path, raw_dir: Path) -> None:
    try:
        FashionMNIST(str(data_dir), train=True, download=True)
    except DOWNLOAD_ERRORS as error:
        help_text = FASHION_MNIST_HELP.format(system=FASHION_MNIST_SYSTEM_DIR, env=FASHION_MNIST_DIR_ENV, raw=raw_dir)
        raise DataUnavailable(
            f"fashion-mnist: not found in {raw_dir} nor in {_fashion_system_dir()}, "
            f"and the download failed ({_one_line(error)}). {help_text}"
        ) from None


def _parse_fashion_mnist(data_dir: Path, train: bool) -> FashionMNIST:
    """Parse with torchvision's own reader; name the bad file when it fails."""
    try:
        dataset = FashionMNIST(str(data_dir), train=train, download=False)
        if len(dataset.data) != len(dataset.targets):
            raise ValueError(f"{len(dataset.data)} images but {len(dataset.targets)} labels")
        return dataset
    except IDX_ERRORS as error:
        split = "train" if train else "t10k"
        raw_dir = data_dir / "FashionMNIST" / "raw"
        image_file, label_file = raw_dir / f"{split}-images-idx3-ubyte", raw_dir / f"{split}-labels-idx1-ubyte"
        culprit = _unreadable_idx_file(image_file, label_file) or f"{image_file} / {label_file}"
        raise DataCorrupt(
            f"fashion-mnist: {culprit} is corrupt ({_one_line(error) or type(error).__name__}). "
            f"Delete {raw_dir} and run again to re-create it."
        ) from None


def _unreadable_idx_file(image_file: Path, label_file: Path) -> Path | None:
    for path, reader in ((image_file, read_image_file), (label_file, read_label_file)):
        try:
            reader(str(path))
        except IDX_ERRORS:
            return path
    return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


# ---------------------------------------------------------------- CIFAR-10


def _load_cifar10(data_dir: Path, train_limit: int, test_limit: int) -> ImageData:
    train, test = _open_cifar10(data_dir, True), _open_cifar10(data_dir, False)
    return _in_memory(
        "cifar10", _nhwc_to_nchw(train.data), torch.tensor(train.targets, dtype=torch.int64),
        _nhwc_to_nchw(test.data), torch.tensor(test.targets, dtype=torch.int64),
        train.classes, train_limit, test_limit,
    )


def _nhwc_to_nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def _open_cifar10(data_dir: Path, train: bool) -> CIFAR10:
    """Use the files when they pass torchvision's MD5 check, else let it download/extract."""
    try:
        return CIFAR10(str(data_dir), train=train, download=False)
    except RuntimeError:
        pass  # missing or failed the MD5 check: fetch (or extract a present tar.gz) below
    try:
        return CIFAR10(str(data_dir), train=train, download=True)
    except DOWNLOAD_ERRORS as error:
        raise DataUnavailable(
            f"cifar10: {data_dir / CIFAR10.base_folder} is missing or fails torchvision's MD5 check, "
            f"and the download failed ({_one_line(error)}). Remedies: run once with internet so "
            f"torchvision downloads it into {data_dir}, or copy {CIFAR10.filename} "
            f"(from {CIFAR10.url}) into {data_dir}."
        ) from None


# ---------------------------------------------------------------- ImageNet-style folder


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
    """Hold the cache's build lock (reproduce.locks: no timeout, however long the build takes)."""
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
