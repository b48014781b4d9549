"""A run's checkpoint: everything a rerun needs to go on exactly where an epoch ended (weights, optimizer,
schedule, the curves so far) or, every checkpoint_every_steps steps, where it is within one (each rank's step,
random streams and partial sums too), written atomically by rank 0, loaded as tensors only, and refused when
another config or another number of ranks made it; and the digest that says two runs' weights are bit-identical.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from reproduce.records import results

# A checkpoint is of a reproduce.training.train.Trainer (annotated Any: train imports this module).


class CheckpointMismatch(Exception):
    """A checkpoint made by another config: refusing to resume from it."""


def save_checkpoint(trainer: Any, epochs_done: int, within: dict[str, Any] | None = None) -> None:
    """Everything a rerun needs to continue exactly where this epoch ended - or, with `within` (this rank's
    place in the epoch: train.within_epoch_state), where the epoch is now. Every rank takes part (each one's
    random streams are its own); rank 0 writes, streaming to a temporary file that is renamed into place."""
    every_rank = trainer.world.gather(within) if within is not None else None
    if not trainer.world.leader:
        return
    state = {
        "config_hash": trainer.record["config_hash"],
        "epochs_done": epochs_done,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.schedule.state_dict(),
        "epochs": trainer.record["epochs"],
        "iterations": trainer.record["iterations"],
        "started_at": trainer.record["started_at"],
        "world_size": trainer.world.size,
        "within_epoch": every_rank,  # None: at an epoch end; else per rank, the step and the streams
    }
    path = results.checkpoint_path(trainer.config["results_dir"], trainer.config)
    results.atomic_write(path, lambda handle: torch.save(state, handle))
    # A visible, atomically written "running" record: lets people follow a long run.
    results.write_record(results.record_path(trainer.config["results_dir"], trainer.config),
                         trainer.record)


def resume(trainer: Any) -> tuple[int, dict[str, Any] | None]:
    """Load the run's checkpoint if there is one; return the first epoch still to train and, for a checkpoint
    made within that epoch, this rank's place in it (None: from the epoch's start)."""
    path = results.checkpoint_path(trainer.config["results_dir"], trainer.config)
    if not path.exists():
        return 0, None
    # weights_only: a checkpoint is data, never code to execute.
    state = torch.load(path, map_location=trainer.device, weights_only=True)
    if state["config_hash"] != trainer.record["config_hash"]:
        raise CheckpointMismatch(f"{path} was made by config {state['config_hash'][:12]}, "
                                 f"not {trainer.record['config_hash'][:12]}: refusing to resume from it")
    made_by = state.get("world_size", 1)
    if made_by != trainer.world.size:
        raise CheckpointMismatch(f"{path} was made by {made_by} rank(s), and this run has {trainer.world.size}: "
                                 f"resume it with {made_by} (torchrun --nproc_per_node {made_by}), or delete it to "
                                 "start afresh (another world size draws other augmentation streams)")
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.schedule.load_state_dict(state["schedule"])
    trainer.record.update(epochs=state["epochs"], iterations=state["iterations"],
                          started_at=state["started_at"], resumed_at_epoch=state["epochs_done"])
    within = state.get("within_epoch")
    if within is None:
        return state["epochs_done"], None
    trainer.record["resumed_at_step"] = within[trainer.world.rank]["step"]
    return state["epochs_done"], within[trainer.world.rank]


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over all parameters and buffers: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
