"""One run, safely: what the CLI, the sweeps and the notebooks call instead of train.run.

- A lock per run (flock on results/locks/<run_id>.lock): two processes on one results folder
  never train the same run twice nor write one record together; the second waits, then
  reuses. The kernel drops a dead process's lock, so a kill -9 leaves nothing to clean.
- This is the one place that decides reuse, from results.run_state: a complete record of the
  current training code (or of code declared numerically equivalent) is reused, and so is a
  diverged one (a result: retraining it diverges again); a record (and checkpoint) made by other
  code is moved to results/stale/, never overwritten, and the run trains again; a failed or
  interrupted run trains again, from its last epoch checkpoint when there is one.
- A results folder that cannot be written is reported before any training, and a write that
  fails mid-run (a full disk) says which file, with the last whole-epoch checkpoint kept.
- A checkpoint is loaded as tensors only (weights_only): one that would need code to load is
  refused before the run starts, and nothing in it is executed.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from reproduce.base import locks
from reproduce.records import results
from reproduce.runs import analysis
from reproduce.spec import run_ids
from reproduce.spec.plan import PlannedRun
from reproduce.training import distributed, train


class ResultsUnwritable(Exception):
    """The results folder cannot take a file: a user-facing error, with the folder named."""


class CheckpointUnreadable(Exception):
    """A checkpoint that is not plain tensors, or is damaged: refused, nothing in it executed."""


WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}


def run(config: dict[str, Any], deadline: float | None = None,
        finish: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], bool]:
    """(record, trained): train the run `config` describes, or reuse its record. With a deadline
    (time.time() seconds) the run may stop early at an epoch end: its record then says "running".
    `finish(record)` runs on rank 0 while the run's lock is still held (a grid measures the final
    weights and deletes the checkpoint there, so that no other process reads them meanwhile).

    Under torchrun every rank calls this: rank 0 takes the lock and decides (reuse, or train from
    what is there), every rank learns the decision, and a refusal on rank 0 stops every rank with
    the same error, at once."""
    world = distributed.join(config)
    results_dir = Path(config["results_dir"])
    with ExitStack() as held:
        decision: tuple[str, Any] = ("train", None)
        if world.leader:
            try:
                check_writable(results_dir)
                held.enter_context(run_lock(results_dir, run_ids.run_id(config)))
                decision = _decide(results_dir, config)
            except Exception as exc:  # noqa: BLE001 - every rank raises it
                decision = ("raise", exc)
        kind, payload = world.share(decision)
        if kind == "raise":
            raise payload
        record, trained = (payload, False) if kind == "reuse" else (_train(config, deadline, world), True)
        if finish is not None and world.leader:
            finish(record)
        return record, trained


def _train(config: dict[str, Any], deadline: float | None, world: distributed.World) -> dict[str, Any]:
    try:
        return train.run(config, deadline, world)
    except OSError as error:
        if error.errno in WRITE_ERRORS and _inside(error.filename, Path(config["results_dir"])):
            raise ResultsUnwritable(
                f"results: cannot write {error.filename}: {error.strerror}. The last whole-epoch "
                f"checkpoint is kept; free space (or fix permissions) and rerun to resume.") from None
        raise


def _decide(results_dir: Path, config: dict[str, Any]) -> tuple[str, Any]:
    found = results.run_state(results_dir, config)
    if found.done:
        return "reuse", found.record
    if found.state == "stale":
        set_aside(results_dir, config)
    check_checkpoint(results.checkpoint_path(results_dir, config))
    return "train", None


def check_writable(results_dir: Path) -> None:
    """Create the folders and write a probe file now, rather than fail after an epoch of training."""
    try:
        results.runs_dir(results_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=results.runs_dir(results_dir)):
            pass
    except OSError as error:
        raise ResultsUnwritable(f"results_dir: {results_dir} cannot be written ({error.strerror or error}); "
                                "choose another with --results-dir") from None


def run_lock(results_dir: Path, run_id: str):
    """Hold the run's lock (reproduce.base.locks): its file names the holder's pid, so that people (and tests)
    can find it."""
    return locks.held(lock_path(results_dir, run_id), f"{run_id}: another process is training this run")


def lock_path(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "locks" / f"{run_id}.lock"


def set_aside(results_dir: Path, config: dict[str, Any]) -> Path:
    """Move a stale record and its checkpoint to results/stale/<time>/: never overwritten, never reused."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    target = Path(results_dir) / "stale" / stamp
    target.mkdir(parents=True, exist_ok=True)
    for path in (results.record_path(results_dir, config), results.checkpoint_path(results_dir, config)):
        if path.exists():
            shutil.move(str(path), str(target / path.name))
    return target


def drop_checkpoint(config: dict[str, Any]) -> None:
    """Delete a finished run's checkpoint: its record holds the results, and a grid of paper-net runs
    would otherwise keep 456 MB a run (the grid calls this once the final weights are measured)."""
    results.checkpoint_path(config["results_dir"], config).unlink(missing_ok=True)


def check_checkpoint(path: Path) -> None:
    if not path.exists():
        return
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever the unpickler says, the file is refused
        raise CheckpointUnreadable(
            f"checkpoint {path} is not a plain-tensor checkpoint or is damaged ({type(error).__name__}); "
            "refused and not executed. Delete it to start this run afresh.") from None


def _inside(filename: str | None, folder: Path) -> bool:
    if not filename:
        return False
    return Path(os.path.abspath(filename)).is_relative_to(Path(os.path.abspath(folder)))


# ----------------------------------------------------------------------------- one planned run, in a grid

@dataclass(frozen=True)
class RunResult:
    """What one planned run came to in a grid: the state it was left in (results.RUN_STATES), what the
    grid did with it (ACTIONS), the seconds that took, and a line saying more."""
    run_id: str
    state: str
    action: str
    seconds: float
    detail: str
    settings: str


ACTIONS = ("trained", "reused", "not started")


def train_planned(planned: PlannedRun, deadline: float | None, estimate: float | None = None) -> RunResult:
    """Train (or reuse) one planned run, measure its final weights when a claim needs that, then delete
    its checkpoint. Whatever happens is returned, never raised: the grid goes on with the other runs.
    `estimate` (submitit's jobs, which start when Slurm says): not started when the deadline has passed
    or the estimate overruns it."""
    started = time.perf_counter()
    config = planned.config
    late = deadline is not None and (time.time() >= deadline or time.time() + (estimate or 0.0) > deadline)
    found = results.run_state(config["results_dir"], config)
    if late and not found.done:
        left = max(0.0, deadline - time.time())
        return RunResult(planned.run_id, found.state, "not started", 0.0,
                         f"needs about {estimate or 0:.0f} s, {left:.0f} s left", planned.settings)
    missing: list[str] = []

    def finish(record: dict[str, Any]) -> None:  # under the run's lock, on rank 0 alone
        if record["status"] not in ("complete", "diverged"):
            return
        why = _measure(planned) if record["status"] == "complete" else None
        if why:
            missing.append(why)
        else:
            drop_checkpoint(config)

    try:
        record, trained = run(config, deadline, finish)
    except Exception as exc:  # noqa: BLE001 - reported by the grid, which goes on
        return RunResult(planned.run_id, "failed", "trained", time.perf_counter() - started,
                         f"{type(exc).__name__}: {exc}", planned.settings)
    state, detail = ("unmeasured", missing[0]) if missing else (_state(record), _detail(record))
    return RunResult(planned.run_id, state, "trained" if trained else "reused", time.perf_counter() - started,
                     detail, planned.settings)


def _measure(planned: PlannedRun) -> str | None:
    """Measure the run's final weights where a claim needs them; why that cannot be done, or None.
    A run killed between its record and this step is measured by the next grid from its checkpoint;
    where the checkpoint is gone (a run trained on a lent GPU), it is reported, not failed."""
    if not planned.analyse:
        return None
    try:
        analysis.ensure(planned.config)
    except analysis.AnalysisUnavailable as exc:
        return f"its final weights cannot be measured: {exc}"
    return None


def _state(record: dict[str, Any]) -> str:
    return "running" if record["status"] == "running" else record["status"]


def _detail(record: dict[str, Any]) -> str:
    if record["status"] == "running":
        return f"stopped at the deadline after epoch {len(record['epochs'])} of {record['config']['epochs']}, " \
               "checkpointed"
    if record["status"] != "complete":
        return f"{record.get('error')}"
    return f"test top-1 error {record['epochs'][-1]['test_top1_error']:.4f}"
