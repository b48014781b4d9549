"""The paper's preprocessing of one image (sec. 2: shorter side to 256, centre 256x256 crop, RGB), and
the parallel writer that puts many of them into one uint8 .npy array on disk.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from reproduce.datasets.image_data import DataCorrupt, _one_line

IMAGENET_SIZE = 256  # paper sec. 2: "down-sampled the images to a fixed resolution of 256 x 256"


# Bump when the preprocessing changes, so an old cache is rebuilt instead of reused.
CACHE_FORMAT = "shorter-side-bilinear-centre-crop-rgb-v1"


IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


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
