"""Batch iteration over whole-dataset tensors, with no DataLoader and no worker processes.

A dataset that fits on the accelerator lives there and batches are indexed in place; one
that does not (a memory-mapped ImageNet cache) is gathered on the host, pinned, and copied
asynchronously so the copy overlaps the previous step's compute.
"""

from __future__ import annotations

from typing import Iterator

import torch


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    device: torch.device | str,
    order: torch.Tensor | None = None,
    drop_last: bool = False,
    part: tuple[int, int] = (0, 1),
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x[idx], y[idx]) on `device` for consecutive slices idx of `order` (default 0..N-1).

    `part` = (rank, ranks): of each slice, only this rank's share (torch.tensor_split's: even sizes,
    the first ones one larger when the slice does not split evenly, possibly empty), so that every
    rank takes as many steps as there are slices."""
    device = torch.device(device)
    if order is None:
        order = torch.arange(len(x))
    # Index each tensor with a copy of `order` on the tensor's own device, made once.
    x_order, y_order = order.to(x.device), order.to(y.device)
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    rank, ranks = part
    for start in range(0, stop, batch_size):
        x_index, y_index = x_order[start:start + batch_size], y_order[start:start + batch_size]
        if ranks > 1:
            x_index, y_index = torch.tensor_split(x_index, ranks)[rank], torch.tensor_split(y_index, ranks)[rank]
        yield _take(x, x_index, device), _take(y, y_index, device)


def _take(data: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    batch = data[index]
    if _same_device(data.device, device):
        return batch
    if device.type == "cuda":
        # Pinned memory makes the copy asynchronous; the caching host allocator keeps the
        # buffer alive until the copy has finished.
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True)


def _same_device(have: torch.device, want: torch.device) -> bool:
    # torch.device("cuda") (no index) means the current device, which data on cuda:0 is on.
    return have.type == want.type and (want.index is None or have.index == want.index)


def to_device_if_fits(x: torch.Tensor, device: torch.device | str, budget_bytes: int) -> torch.Tensor:
    """x on `device` when it takes at most `budget_bytes`; otherwise x unchanged (a memmap stays on the host)."""
    if x.numel() * x.element_size() > budget_bytes:
        return x
    return x.to(device)
