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
import os
import shutil
import zlib
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from torchvision.datasets import CIFAR10, FashionMNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from reproduce.datasets.image_data import DataCorrupt, DataUnavailable, ImageData, _in_memory, _one_line
from reproduce.datasets.image_folder import _load_image_folder

FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_DIR_ENV = "REPRODUCE_FASHION_MNIST_SYSTEM_DIR"
# Errors that mean "could not fetch it": no network, DNS failure, server error, bad checksum.
DOWNLOAD_ERRORS = (URLError, RuntimeError, OSError)
# Errors torchvision's idx parser raises on a truncated or malformed file.
IDX_ERRORS = (AssertionError, RuntimeError, TypeError, ValueError, KeyError, IndexError)


def load_dataset(name: str, data_dir: str | Path, *, train_limit: int = 0, test_limit: int = 0,
                 stage_dir: str = "") -> ImageData:
    """Load `name` from `data_dir`; a limit > 0 keeps only that many examples (deterministic); an image
    folder's cache is read from its copy in `stage_dir` (node-local) when one is given."""
    loaders = {
        "fashion-mnist": _load_fashion_mnist,
        "cifar10": _load_cifar10,
        "imagenet-folder": _load_image_folder,
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(loaders)}")
    if name == "imagenet-folder":
        return _load_image_folder(Path(data_dir).expanduser(), train_limit, test_limit, stage_dir=stage_dir)
    return loaders[name](Path(data_dir).expanduser(), train_limit, test_limit)


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


