"""Batches of a dataset kept on the host (ImageNet's memory-mapped cache) gathered by DataLoader worker
processes, so that reading the images keeps up with a GPU: each worker gathers whole batches (x[index],
y[index]) straight from the memory map, in pinned memory, a few batches ahead of the training step.

The batches are exactly reproduce.datasets.batches.iterate_batches': the same slices of the epoch's order
(`order[s:s + batch]`, this rank's share of each, the last one partial), in the same order, holding the
same bytes - only who gathers them changes, so the weights do not. One HostBatches serves a whole run: its
workers stay up from epoch to epoch (persistent), and each epoch gives them its order.
"""

from __future__ import annotations

import os
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

PREFETCH = 4  # batches each worker gathers ahead


def batch_indices(order: torch.Tensor, batch_size: int, part: tuple[int, int] = (0, 1),
                  start_step: int = 0) -> Iterator[torch.Tensor]:
    """The rows of each batch, from step `start_step` on: consecutive slices of `order`, and of each only
    this rank's share (torch.tensor_split's: even sizes, the first ones one larger; possibly empty)."""
    rank, ranks = part
    for start in range(start_step * batch_size, len(order), batch_size):
        index = order[start:start + batch_size]
        yield torch.tensor_split(index, ranks)[rank] if ranks > 1 else index


class EpochSlices(Sampler):
    """batch_indices of the epoch that `set_epoch` last gave, for a DataLoader that outlives the epoch."""

    def __init__(self, batch_size: int, part: tuple[int, int]):
        self.batch_size, self.part = batch_size, part
        self.order, self.start_step = torch.empty(0, dtype=torch.long), 0

    def set_epoch(self, order: torch.Tensor, start_step: int = 0) -> None:
        self.order, self.start_step = order.cpu(), start_step

    def __iter__(self) -> Iterator[torch.Tensor]:
        return batch_indices(self.order, self.batch_size, self.part, self.start_step)

    def __len__(self) -> int:
        return max(0, -(-len(self.order) // self.batch_size) - self.start_step)


class Gather(Dataset):
    """One item is one batch: the rows an index tensor names, images and labels."""

    def __init__(self, x, y: torch.Tensor):
        self.x, self.y = x, y

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __len__(self) -> int:
        return len(self.y)


class HostBatches:
    """A run's batches from the host by `workers` processes; iterate(order) gives an epoch's batches on
    `device` (pinned and copied without waiting when it is a GPU)."""

    def __init__(self, x, y: torch.Tensor, batch_size: int, device: torch.device, workers: int,
                 part: tuple[int, int] = (0, 1)):
        self.device = torch.device(device)
        self.slices = EpochSlices(batch_size, part)
        # fork: the workers inherit the memory map (no copy of the cache, whatever its size) and open nothing.
        # A generator of its own: a DataLoader draws its workers' base seed from it, which from the global one
        # would shift every dropout mask after it.
        self.loader = DataLoader(Gather(x, y), batch_size=None, sampler=self.slices, num_workers=workers,
                                 generator=torch.Generator().manual_seed(0),
                                 pin_memory=self.device.type == "cuda", prefetch_factor=PREFETCH if workers else None,
                                 persistent_workers=workers > 0,
                                 multiprocessing_context="fork" if workers else None)

    def iterate(self, order: torch.Tensor, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.slices.set_epoch(order, start_step)
        for images, labels in self.loader:
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


def auto_workers(device: torch.device, ranks_here: int = 1) -> int:
    """Workers for a run that reads from the host: this process's CPUs shared by the ranks on this node, one
    kept for the training process itself; none on the CPU, where the training process has the cores."""
    if device.type != "cuda":
        return 0
    return max(1, len(os.sched_getaffinity(0)) // max(1, ranks_here) - 1)
