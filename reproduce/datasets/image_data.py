"""What every loader returns: uint8 [N, C, S, S] images and int64 labels of the training, validation and
test splits, and the per-pixel mean of the training images (the paper subtracts it, section 2); the
validation images are held out of the training set (VALIDATION_IMAGES), so that the test images never
steer training; and the errors a loader raises, each saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
