"""Writers of small files in the real dataset formats, for tests that must not download."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10


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


def write_cifar10(root: Path, per_batch: int = 4, test_n: int = 3) -> dict[str, dict]:
    """cifar-10-batches-py as released: pickled dicts, data uint8 [n, 3072] (R, G, B planes).

    The release was pickled by Python 2, whose str keys torchvision reads back as str
    (pickle.load(..., encoding="latin1")); Python 3 str keys give the same result.
    """
    rng = np.random.default_rng(1)
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {}
    for name in names:
        n = test_n if name == "test_batch" else per_batch
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches[name] = batch
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def trust_generated_cifar10(monkeypatch, folder: Path) -> None:
    """torchvision compares every batch file and batches.meta with the real release's MD5
    (CIFAR10._check_integrity, _load_meta), so generated files fail it by design. Put the
    generated files' MD5s in its lists: the loader then runs its real path, check included."""
    train_list = [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)]
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(folder / "batches.meta")})
