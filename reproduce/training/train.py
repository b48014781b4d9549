"""Training: one readable loop with the paper's recipe, checkpoints every epoch, resume, divergence.

`run(config)` trains one run end to end and returns its record; an interrupted run resumes
from its last epoch checkpoint. Under torchrun the same loop runs on every rank with
DistributedDataParallel (reproduce.training.distributed says what that changes); with one rank it is the
plain loop. Whether a run needs training at all is reproduce.runs.runner's
decision, not this loop's. Every epoch starts from a seed derived from (seed, epoch), so a
resumed run draws the same data order, crops, flips and dropout masks as an uninterrupted
one and ends with the same weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from reproduce.datasets.augment import BatchTransform
from reproduce.datasets.batches import iterate_batches, to_device_if_fits
from reproduce.datasets.data import load_dataset
from reproduce.datasets.image_data import ImageData, pixel_std
from reproduce.datasets.lighting import fit_colour_pca, lighting_on
from reproduce.datasets.loader import HostBatches, auto_workers
from reproduce.nets.models import build_model, canvas_size, input_side
from reproduce.records import provenance, results
from reproduce.spec.params import drop_epochs
from reproduce.training.checkpoints import resume, save_checkpoint, weights_digest
from reproduce.training.distributed import PeerLost, World
from reproduce.training.execution import (
    Execution,
    HostCopy,
    compiled_graphs,
    device_name,
    peak_memory,
    pick_device,
    plan_execution,
    prepare_device,
    reset_peak_memory,
    synchronize,
)


class Diverged(Exception):
    """The training loss became NaN or infinite."""


@dataclass
class Schedule:
    """lr / 10 when the validation error has not improved for `patience` epochs, at most `max_drops` times;
    or, with `at_epochs`, after each of those epochs and never otherwise.

    The paper divides "when the validation error rate stopped improving". The validation images are
    held out of the training images (image_data.VALIDATION_IMAGES), so the test images never steer training.
    A fixed schedule is the same in every arm: when the lr drops can then not depend on the arm.
    """
    patience: int
    max_drops: int
    at_epochs: tuple[int, ...] = ()
    best: float = math.inf
    bad_epochs: int = 0
    drops: int = 0

    def step(self, error: float, optimizer: torch.optim.Optimizer, epochs_done: int) -> None:
        if self.at_epochs:
            if epochs_done in self.at_epochs:
                self._drop(optimizer)
            return
        if error < self.best:
            self.best, self.bad_epochs = error, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience and self.drops < self.max_drops:
            self._drop(optimizer)

    def _drop(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["lr"] /= 10
        self.drops, self.bad_epochs = self.drops + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "drops": self.drops}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs, self.drops = state["best"], state["bad_epochs"], state["drops"]


@dataclass
class Trainer:
    """Everything one run needs, built once from the config."""
    config: dict[str, Any]
    device: torch.device
    execution: Execution
    data: ImageData
    model: torch.nn.Module  # its weights: what checkpoints hold
    forward: torch.nn.Module  # what is called: the model, or the model compiled
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    transform: BatchTransform
    splits: dict[str, torch.Tensor]  # train_x/_y, val_x/_y, test_x/_y: on the device when they fit
    record: dict[str, Any] = field(default_factory=dict)
    graphs_before: int = 0  # dynamo's graph count when the run started: the record says how many it compiled
    world: World = field(default_factory=World)
    host_batches: HostBatches | None = None  # DataLoader workers gathering the training batches (host-kept images)


def run(config: dict[str, Any], deadline: float | None = None, world: World = World()) -> dict[str, Any]:
    """Train the run `config` describes (a resolved config from params.resolve) and return its record.

    With a `deadline` (time.time() seconds), the run stops at the end of the last epoch that
    finishes before it, checkpointed; its record is returned with status "running", and a rerun
    goes on from there. `world`: this process's rank among a torchrun's ranks."""
    trainer = build_trainer(config, world)
    start_epoch, within = resume(trainer)
    saved = time.time()
    try:
        for epoch in range(start_epoch, config["epochs"]):
            started = time.time()
            run_epoch(trainer, epoch, within if epoch == start_epoch else None)
            stopping = world.share(_next_epoch_overruns(deadline, started, epoch + 1, config["epochs"]))
            if stopping or epoch + 1 == config["epochs"] or time.time() - saved >= config["checkpoint_every_s"]:
                save_checkpoint(trainer, epoch + 1)
                saved = time.time()
            if stopping:
                return trainer.record
    except Diverged as exc:
        return _finish(trainer, "diverged", str(exc))
    except KeyboardInterrupt:
        raise  # the checkpoint of the last whole epoch stays; a rerun resumes from it
    except Exception as exc:
        if world.lost_peer(exc):  # an interruption, not a failure of the run: it resumes like a killed one
            said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise PeerLost(f"rank {world.rank} of {world.size}: another rank of this run exited ({said}); the last "
                           f"epoch checkpoint is kept: rerun the same command with {world.size} ranks to resume") from None
        _finish(trainer, "failed", f"{type(exc).__name__}: {exc}")
        raise
    return _finish(trainer, "complete")


def _next_epoch_overruns(deadline: float | None, epoch_started: float, epochs_done: int, epochs: int) -> bool:
    """Would one more epoch, as long as the last one, end after the deadline?"""
    if deadline is None or epochs_done == epochs:
        return False
    return time.time() + (time.time() - epoch_started) > deadline


def build_trainer(config: dict[str, Any], world: World = World()) -> Trainer:
    device = pick_device(config["device"])
    prepare_device(device, config["cpu_threads"])
    execution = plan_execution(config, device)
    # Every rank loads the data; an image folder's cache is built once, under a file lock that the other
    # ranks wait on (reproduce.datasets.data), not at a barrier, whose timeout a build of hours would overrun.
    data = load_dataset(config["dataset"], config["data_dir"], train_limit=config["train_limit"],
                        test_limit=config["test_limit"], stage_dir=config["stage_dir"])
    torch.manual_seed(config["seed"])  # the initial weights depend on the seed alone
    model_config = {**config, "in_channels": data.channels, "num_classes": data.num_classes}
    model = build_model(model_config).to(device, memory_format=execution.memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"])
    pca = fit_colour_pca(data.train_x) if lighting_on(config["lighting"], data.channels) else None
    mean, scale = _input_scaling(config, data, device)
    transform = BatchTransform(input_side(config), data.stored_size, mean, config["augment"], scale, pca,
                               canvas_size(config["model"]))
    # DDP averages the ranks' gradients in buckets as the backward produces them; then compile.
    replicated = DistributedDataParallel(model) if world.distributed else model
    splits = _place_splits(data, device, transform)
    trainer = Trainer(config, device, execution, data, model, execution.compiled(replicated), optimizer,
                      Schedule(config["lr_patience"], config["lr_drops"], drop_epochs(config["lr_drop_epochs"])), transform,
                      splits, graphs_before=compiled_graphs(), world=world,
                      host_batches=_host_batches(config, splits, device, world))
    trainer.record = results.new_record(config, device_name(device))
    trainer.record["code"]["training_sha256"] = IMPORTED_TRAINING_CODE
    trainer.record["execution"] = execution.describe()
    trainer.record["data"] = data.splits
    trainer.record["world"] = world.describe()
    trainer.record["model_parameters"] = sum(p.numel() for p in model.parameters())
    return trainer


def _host_batches(config: dict[str, Any], splits: dict[str, torch.Tensor], device: torch.device,
                  world: World) -> HostBatches | None:
    """Worker processes gathering the training batches: by default (auto) where the training images stay on the
    host of a GPU (an image cache too big for it), as many as loader_workers says otherwise (on the CPU too,
    where the tests check that they give the same batches); None for none."""
    workers = config["loader_workers"]
    if workers == "auto":
        on_host = device.type == "cuda" and splits["train_x"].device.type != "cuda"
        workers = auto_workers(device, world.local_size) if on_host else 0
    if not workers:
        return None
    return HostBatches(splits["train_x"], splits["train_y"], config["batch_size"], device, workers,
                       part=(world.rank, world.size))


def _input_scaling(config: dict[str, Any], data: ImageData, device: torch.device) -> tuple[torch.Tensor, float]:
    """(image subtracted, divisor) of input_scale: the training mean and 1 (raw), or its pixel std
    (unit); nothing subtracted and 255 (zero-one: torchvision's ToTensor, as d2l)."""
    if config["input_scale"] == "zero-one":
        return torch.zeros_like(data.mean, device=device), 255.0
    return data.mean.to(device), pixel_std(data) if config["input_scale"] == "unit" else 1.0


CANVAS_BYTES = 1 << 30  # on the CPU, images up to this much as centred canvases, worked out once per run


def _place_splits(data: ImageData, device: torch.device, transform: BatchTransform) -> dict[str, torch.Tensor]:
    """Images and labels on the device when they fit in half its free memory, so that
    batches never wait on the host; a dataset too big for that stays on the host. On the CPU,
    small images are kept as their centred canvases (float32, resized once rather than every batch);
    the raw images stay in `data` (the pixels C17 compares)."""
    budget = torch.cuda.mem_get_info(device)[0] // 2 if device.type == "cuda" else 0
    names = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
    splits = {name: to_device_if_fits(getattr(data, name), device, budget) for name in names}
    images = [name for name in names if name.endswith("_x")]
    size = sum(len(splits[name]) for name in images) * data.channels * transform.canvas ** 2 * 4
    if device.type == "cpu" and size <= CANVAS_BYTES and all(isinstance(splits[n], torch.Tensor) for n in images):
        splits.update({name: transform.canvases(splits[name]) for name in images})
    return splits


def _epoch_seed(config: dict[str, Any], epoch: int) -> int:
    return config["seed"] * 1_000_003 + epoch


def run_epoch(trainer: Trainer, epoch: int, within: dict[str, Any] | None = None) -> None:
    """Train one epoch (from the place `within` of a checkpoint made inside it, if given), evaluate, record the
    metrics and let the schedule react."""
    config, device = trainer.config, trainer.device
    seed = _epoch_seed(config, epoch)
    own_seed = trainer.world.seed(seed)  # rank 0's is the one-process seed
    torch.manual_seed(own_seed)  # dropout masks
    order = torch.randperm(len(trainer.data.train_y), generator=torch.Generator().manual_seed(seed))  # shared
    augment_rng = torch.Generator(device=device).manual_seed(own_seed)
    if within is not None:
        _restore_streams(within, augment_rng, device)
    lr = trainer.optimizer.param_groups[0]["lr"]

    reset_peak_memory(device)
    started = time.perf_counter()
    train_stats = train_one_epoch(trainer, epoch, order, augment_rng, within)
    synchronize(device)
    train_time = time.perf_counter() - started

    started = time.perf_counter()
    last = epoch + 1 == config["epochs"]
    val_stats = _named("val", evaluate(trainer, trainer.splits["val_x"], trainer.splits["val_y"]))
    test_stats = _named("test", evaluate(trainer, trainer.splits["test_x"], trainer.splits["test_y"])) \
        if last or config["test_every_epoch"] else {}
    eval_time = time.perf_counter() - started

    fit_stats = fit_error(trainer) if last else {}
    trainer.record["epochs"].append({
        "epoch": epoch + 1, "lr": lr, **train_stats, **val_stats, **test_stats, **fit_stats,
        "train_time_s": train_time, "eval_time_s": eval_time,
        "images_per_s": len(order) / train_time, "peak_memory_bytes": peak_memory(device),
    })
    trainer.schedule.step(val_stats["val_top1_error"], trainer.optimizer, epoch + 1)


def _named(split: str, stats: dict[str, float]) -> dict[str, float]:
    return {f"{split}_{name}": value for name, value in stats.items()}


FIT_EVAL_IMAGES = 5_000


def fit_error(trainer: Trainer) -> dict[str, float]:
    """Top-1 error on (the first 5,000) training images, seen as test images are: centre view,
    no dropout. The error logged while training mixes in augmentation and dropout and a moving
    model, so "overfitting" (C4, C10) is measured as test error minus this one."""
    count = min(FIT_EVAL_IMAGES, len(trainer.splits["train_y"]))
    stats = evaluate(trainer, trainer.splits["train_x"][:count], trainer.splits["train_y"][:count])
    return {"fit_top1_error": stats["top1_error"]}


def train_one_epoch(trainer: Trainer, epoch: int, order: torch.Tensor, augment_rng: torch.Generator,
                    within: dict[str, Any] | None = None) -> dict[str, float]:
    """SGD over one permutation of the training set (from step `within["step"]` on, when resuming inside it),
    with no host synchronisation inside but the checkpoints every checkpoint_every_steps steps.

    Loss and error sums stay on the device; at each log point they start an asynchronous
    copy to the host, which is read one log point later, when it has long arrived.
    """
    config, device, execution, world = trainer.config, trainer.device, trainer.execution, trainer.world
    trainer.forward.train()
    batch = config["batch_size"]
    steps_per_epoch = math.ceil(len(order) / batch)
    window = _Window(device, world)
    log = _EpochLog(trainer, epoch, steps_per_epoch)
    first = 0 if within is None else within["step"]
    if within is not None:
        window.restore(within["window"])
        log.loss, log.wrong = within["log"]
    batches = trainer.host_batches.iterate(order, first) if trainer.host_batches else iterate_batches(
        trainer.splits["train_x"], trainer.splits["train_y"], batch, device=device, order=order[first * batch:],
        part=(world.rank, world.size))
    bar = tqdm(batches, total=steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{config['epochs']}",
               disable=not config["progress"], leave=False, unit="batch")
    every = config["checkpoint_every_steps"]
    for step, (images, labels) in enumerate(bar, start=first + 1):
        global_size = min(batch, len(order) - (step - 1) * batch)  # this step's images over all ranks
        images = execution.layout(trainer.transform.train(images, augment_rng))
        loss, wrong = train_step(trainer.forward, trainer.optimizer, images, labels, execution,
                                 world.size / global_size if world.distributed else None)
        window.add(loss, wrong, global_size)
        if step % config["log_every"] == 0 or step == steps_per_epoch:
            log.queue(step, window.take())
            log.read(keep=1, bar=bar)
        if every and step % every == 0 and step < steps_per_epoch:
            log.read(keep=0, bar=bar)  # the log points so far into the record the checkpoint holds
            save_checkpoint(trainer, epoch, within_epoch_state(step, augment_rng, window, log))
    log.read(keep=0, bar=bar)
    return {"train_loss": log.loss / len(order), "train_error": log.wrong / len(order)}


def within_epoch_state(step: int, augment_rng: torch.Generator, window: "_Window", log: "_EpochLog") -> dict[str, Any]:
    """This rank's place in the epoch after `step` steps: what a rerun needs to draw the same crops, flips and
    dropout masks from there on and to add the same sums (on the CPU: it travels between ranks)."""
    cuda = augment_rng.device.type == "cuda"
    return {"step": step, "global_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(augment_rng.device) if cuda else None,
            "augment_rng": augment_rng.get_state(), "window": window.state(), "log": (log.loss, log.wrong)}


def _restore_streams(within: dict[str, Any], augment_rng: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(within["global_rng"].cpu())
    if within["cuda_rng"] is not None:
        torch.cuda.set_rng_state(within["cuda_rng"].cpu(), device)
    augment_rng.set_state(within["augment_rng"].cpu())


def train_step(forward: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor, execution: Execution,
               rank_scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step; returns the summed loss and the number of wrong predictions, on the device.

    `rank_scale` (several ranks): the loss is this rank's sum times world size / global batch, so
    that DDP's average over the ranks is the mean over the global batch, whatever the slice sizes."""
    with execution.autocast():
        logits = forward(images)
    if rank_scale is None:
        loss = F.cross_entropy(logits.float(), labels)  # the loss in fp32 whatever the autocast
    else:
        loss = F.cross_entropy(logits.float(), labels, reduction="sum") * rank_scale
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    wrong = (logits.detach().argmax(dim=1) != labels).sum()
    summed = loss.detach() * len(labels) if rank_scale is None else loss.detach() / rank_scale
    return summed, wrong


class _Window:
    """Sums of loss and errors accumulated on the device between log points (over all ranks)."""

    def __init__(self, device: torch.device, world: World):
        self.device, self.world = device, world
        self._reset()

    def _reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.wrong = torch.zeros((), device=self.device)
        self.count = 0

    def add(self, loss_sum: torch.Tensor, wrong: torch.Tensor, count: int) -> None:
        self.loss += loss_sum
        self.wrong += wrong
        self.count += count

    def state(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.loss.cpu(), self.wrong.cpu(), self.count

    def restore(self, state: tuple[torch.Tensor, torch.Tensor, int]) -> None:
        self.loss, self.wrong, self.count = state[0].to(self.device), state[1].to(self.device), state[2]

    def take(self) -> tuple[HostCopy, int]:
        """(loss sum and wrong predictions on their way to the host, examples) since the last take."""
        sums = (HostCopy(self.world.total(torch.stack((self.loss, self.wrong)))), self.count)
        self._reset()
        return sums


class _EpochLog:
    """Log points of one epoch: queued as device values, written to the record once read."""

    def __init__(self, trainer: Trainer, epoch: int, steps_per_epoch: int):
        self.trainer, self.epoch, self.steps_per_epoch = trainer, epoch, steps_per_epoch
        self.pending: list[tuple[int, HostCopy, int]] = []
        self.loss = self.wrong = 0.0

    def queue(self, step: int, window: tuple[HostCopy, int]) -> None:
        self.pending.append((step, *window))

    def read(self, keep: int, bar) -> None:
        """Read all but the `keep` newest log points into the record; stop the run on a NaN."""
        while len(self.pending) > keep:
            step, sums, count = self.pending.pop(0)
            loss_sum, wrong_sum = sums.read()
            self.loss, self.wrong = self.loss + loss_sum, self.wrong + wrong_sum
            mean_loss, error = loss_sum / count, wrong_sum / count
            _check_finite(mean_loss, self.epoch, step)
            self.trainer.record["iterations"].append({
                "iteration": self.epoch * self.steps_per_epoch + step,
                "epoch": self.epoch + step / self.steps_per_epoch,
                "train_loss": mean_loss, "train_error": error})
            bar.set_postfix(loss=f"{mean_loss:.3f}", err=f"{error:.3f}")


def _check_finite(loss: float, epoch: int, step: int) -> None:
    if not math.isfinite(loss):
        raise Diverged(f"training loss became {loss} in epoch {epoch + 1} by iteration {step}")


@torch.no_grad()
def evaluate(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Loss, top-1 error and (with more than 5 classes) top-5 error of `images` on the centre view."""
    device, execution, world = trainer.device, trainer.execution, trainer.world
    trainer.forward.eval()
    sums = torch.zeros(3, device=device)  # loss, top-1 wrong, top-5 wrong
    classes = trainer.data.num_classes
    shard = torch.tensor_split(torch.arange(len(labels)), world.size)[world.rank] if world.distributed else None
    for batch, target in iterate_batches(images, labels, trainer.config["batch_size"] * 2, device=device, order=shard):
        with execution.autocast():
            logits = trainer.forward(execution.layout(trainer.transform.test(batch))).float()
        top = logits.topk(min(5, classes), dim=1).indices
        sums[0] += F.cross_entropy(logits, target, reduction="sum")
        sums[1] += (top[:, 0] != target).sum()
        sums[2] += (top != target[:, None]).all(dim=1).sum()
    loss_sum, wrong1, wrong5 = world.total(sums).tolist()
    count = len(labels)
    stats = {"loss": loss_sum / count, "top1_error": wrong1 / count}
    if classes > 5:
        stats["top5_error"] = wrong5 / count
    return stats


def _finish(trainer: Trainer, status: str, error: str | None = None) -> dict[str, Any]:
    record = trainer.record
    epochs = record["epochs"]
    record["totals"] = {
        "epochs_trained": len(epochs),
        "train_time_s": sum(e["train_time_s"] for e in epochs),
        "eval_time_s": sum(e["eval_time_s"] for e in epochs),
        "peak_memory_bytes": max((e["peak_memory_bytes"] for e in epochs), default=None),
        "weights_sha256": weights_digest(trainer.model),
    }
    if trainer.execution.compile:
        record["execution"]["compiled_graphs"] = compiled_graphs() - trainer.graphs_before
    results.finish_record(record, status, error)
    if trainer.world.leader:
        results.write_record(results.record_path(trainer.config["results_dir"], trainer.config), record)
    return record


# The training code this process runs: its digest as the modules were when imported (all of them are,
# by now), so that a record names the code that made it even if a file is edited while a grid runs.
IMPORTED_TRAINING_CODE = provenance.training_digest()
