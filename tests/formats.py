"""Writers of small files in the real dataset formats, for tests that must not download."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: 0, 0, type code 0x08 (uint8), ndim, then big-endian dims, then data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_mnist(folder: Path, train_n: int = 20, test_n: int = 10) -> dict[str, np.ndarray]:
    """Gzipped idx files named as Debian's dataset-fashion-mnist installs them; random pixels."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train_n, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(train_n) * 7 % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test_n, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(test_n) * 3 % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        with gzip.open(folder / f"{name}.gz", "wb") as handle:
            handle.write(idx_bytes(array))
    return arrays
