"""The shards of a split's cache as one array: row r of the split is row r - start of the shard whose
rows [start, stop) hold it, so a loader sees the images in the order one array would give them.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch


class ShardedImages:
    """uint8 [N, C, S, S] held in several memory-mapped shard tensors, laid end to end.

    It answers what the training code asks of an image tensor (len, shape, dtype, device, dim, numel,
    element_size, to) and is indexed like one: by an int, by a slice, or by an index tensor, array or list;
    each returns a tensor, a view of the shard when the rows lie in one (no copy), else gathered."""

    def __init__(self, shards: list[torch.Tensor]):
        self.shards = shards
        self.stops = torch.tensor([len(shard) for shard in shards]).cumsum(0)
        self.starts = self.stops - torch.tensor([len(shard) for shard in shards])
        first = shards[0]
        self.shape = torch.Size((int(self.stops[-1]), *first.shape[1:]))
        self.dtype, self.device = first.dtype, first.device

    def __len__(self) -> int:
        return self.shape[0]

    def dim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return math.prod(self.shape)

    def element_size(self) -> int:
        return self.shards[0].element_size()

    def to(self, *args, **kwargs) -> torch.Tensor:
        """All rows in one tensor, then moved (what batches.to_device_if_fits does with a split that fits)."""
        return torch.cat(self.shards).to(*args, **kwargs)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, Integral) or (isinstance(index, torch.Tensor) and index.dim() == 0):
            return self._row(int(index))
        if isinstance(index, slice):
            return self._range(*index.indices(len(self)))
        return self._gather(torch.as_tensor(index))

    def _row(self, row: int) -> torch.Tensor:
        row = int(self._checked(torch.tensor([row]))[0])
        shard = int(self._shard_of(torch.tensor(row)))
        return self.shards[shard][row - int(self.starts[shard])]

    def _range(self, start: int, stop: int, step: int) -> torch.Tensor:
        if step == 1 and start < stop:
            shard = int(self._shard_of(torch.tensor(start)))
            if stop <= self.stops[shard]:
                offset = int(self.starts[shard])
                return self.shards[shard][start - offset:stop - offset]
        return self._gather(torch.arange(start, stop, step))

    def _gather(self, index: torch.Tensor) -> torch.Tensor:
        if index.dtype == torch.bool or index.is_floating_point():
            raise IndexError(f"ShardedImages is indexed by integers, not {index.dtype}")
        rows = self._checked(index.long().cpu().flatten())
        shard_of = self._shard_of(rows)
        batch = torch.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for shard in shard_of.unique().tolist():
            places = (shard_of == shard).nonzero().squeeze(1)
            batch[places] = self.shards[shard][rows[places] - self.starts[shard]]
        return batch.view(*index.shape, *self.shape[1:])

    def _checked(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows with negative ones counted from the end, as a tensor's indexing does; out of range raises."""
        rows = torch.where(rows < 0, rows + len(self), rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} rows")
        return rows

    def _shard_of(self, rows: torch.Tensor) -> torch.Tensor:
        # The first shard whose stop is past the row: an empty shard (stop == start) never holds one.
        return torch.searchsorted(self.stops, rows, right=True)
