"""One run on several processes: torchrun's ranks, and what they share.

`torchrun --nproc_per_node N -m reproduce run ...` starts N ranks of one command. Each joins the
process group here (NCCL with CUDA, gloo on the CPU) and trains its share of every step with
DistributedDataParallel (reproduce.training.train). Without torchrun, a process is rank 0 of 1: nothing is
communicated, and a run computes exactly what it computed before runs could span processes.

What differs from a one-process run of the same config, and why:
- each rank computes its slice of every global batch (the config's batch_size, split evenly; a batch
  size the world size does not divide is refused), and DDP sums the gradients: the same SGD step up
  to the order in which floating-point numbers are added;
- every rank draws the same global data order per (seed, epoch) and takes its slice, but its crops,
  flips, lighting and dropout masks come from its own streams, seeded by (seed, epoch, rank): rank 0's
  are the one-process streams, the other ranks' are new, so the images of rank 1's slice are
  augmented differently from how one process would augment them;
- evaluation is split over the ranks too, and the sums are added up.
A run of N ranks is therefore statistically the run of one process, but not bit for bit. The world
size is not part of the config hash (it is the same experiment: a record made by 8 GPUs answers for
the run on 1), it is written in the record, and a checkpoint is only resumed by as many ranks as
made it, which is what makes the resumed run end with the weights of an uninterrupted one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from reproduce.training.rank_signals import launched_ranks, speaks  # noqa: F401 - speaks: distributed.speaks is what callers use

RANK_SEED_STRIDE = 7_919  # rank r draws from seed + r * this; rank 0 from the one-process seed
JOIN_TIMEOUT = timedelta(minutes=5)  # a peer that never comes fails the run in minutes, not torch's 30


class WorldError(Exception):
    """The ranks cannot be set up as asked: a user-facing line naming the cause."""


class PeerLost(Exception):
    """Another rank of the run exited mid-run: this one stops, and the run resumes like a killed one."""


# What gloo and NCCL say when the other end of a collective has gone away.
_LOST_PEER_WORDS = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Socket Timeout")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def local_size(self) -> int:
        """The ranks on this node (torchrun's LOCAL_WORLD_SIZE; 1 without it)."""
        return int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if self.distributed else 1

    def seed(self, seed: int) -> int:
        """This rank's seed for the streams it draws alone (augmentation, dropout)."""
        return seed + self.rank * RANK_SEED_STRIDE

    def share(self, value: Any) -> Any:
        """Rank 0's value, on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        found = [None] * self.size
        dist.all_gather_object(found, value)
        return found

    def total(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over the ranks, in place."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def lost_peer(self, error: BaseException) -> bool:
        """Whether `error` says another rank went away (torchrun will stop this one too)."""
        if not self.distributed:
            return False
        return isinstance(error, dist.DistNetworkError) or any(word in str(error) for word in _LOST_PEER_WORDS)

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "backend": self.backend}


def join(config: dict[str, Any]) -> World:
    """This process's place among torchrun's ranks (rank 0 of 1 without torchrun)."""
    size = launched_ranks()
    if size == 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = config["device"] == "cuda" or (config["device"] == "auto" and torch.cuda.is_available())
    backend = config["dist_backend"] if config["dist_backend"] != "auto" else ("nccl" if cuda else "gloo")
    if backend == "nccl" and not cuda:
        raise WorldError("dist_backend: nccl needs CUDA devices and this run is on the CPU; use gloo (or auto)")
    node_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    if cuda and torch.cuda.device_count() < node_ranks:
        raise WorldError(f"device: cuda with {node_ranks} ranks on this node, but it has {torch.cuda.device_count()} "
                         "GPU(s) and each rank needs one of its own: start at most "
                         f"{torch.cuda.device_count()} ranks per node (torchrun --nproc_per_node)")
    if config["batch_size"] % size:
        raise WorldError(f"batch_size: {config['batch_size']} does not split evenly over {size} ranks (the world "
                         f"size); choose a batch size divisible by {size}, or another number of ranks")
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=JOIN_TIMEOUT)
    return World(rank, size, local_rank, backend)
