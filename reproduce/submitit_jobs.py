"""The grid on submitit: one job per run, on Slurm (one job array for the grid) or, where Slurm is
not installed, on submitit's local executor - submitit's AutoExecutor decides (it looks for srun).

A job that Slurm preempts, or that reaches its time limit, gets submitit's signal (USR2) before it
is killed; submitit then calls RunJob.checkpoint and requeues the job. Since every run checkpoints
itself at each epoch end, the requeued job resumes there (the epoch in progress is trained again)
and ends with the weights an uninterrupted run has. A run longer than slurm_time therefore goes on
in several jobs, up to MAX_TIMEOUTS of them.

A job of gpus_per_run tasks trains one run on that many GPUs (ranks of DistributedDataParallel, see
reproduce.distributed), its ranks set up from submitit's job environment.

The options (partition, ranks, GPUs and CPUs per task, time, array parallelism, extra sbatch arguments)
are declared in params.GRID_PARAMS. submitit's local executor has no queue - every job it is given
starts at once - so on it the grid keeps at most as many jobs running as the pool would have workers.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import submitit

from reproduce import grid, plan

MAX_TIMEOUTS = 1000
POLL_S = 1.0


class RunJob(submitit.helpers.Checkpointable):
    """One planned run as a submitit job."""

    def __call__(self, run: plan.PlannedRun, deadline: float | None, estimate: float | None) -> grid.RunResult:
        if submitit.JobEnvironment().num_tasks > 1:
            # Several tasks train this run together: each learns its rank from the job's environment,
            # as torchrun's ranks do from torchrun's (they all see the node's GPUs: rank r takes GPU r).
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return grid.train_planned(run, deadline, estimate)

    def checkpoint(self, run: plan.PlannedRun, deadline: float | None,
                   estimate: float | None) -> submitit.helpers.DelayedSubmission:
        """Preempted or out of time: requeue this same call, which resumes the run from its last
        epoch checkpoint (nothing else to save: the run saved itself at its last epoch end)."""
        return submitit.helpers.DelayedSubmission(self, run, deadline, estimate)


def make_executor(options: dict[str, Any], results_dir: str | Path, cluster: str | None = None,
                  gpus_here: int = 0) -> submitit.AutoExecutor:
    """An AutoExecutor writing its scripts and logs to results/submitit/<time>/."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    executor = submitit.AutoExecutor(folder=Path(results_dir) / "submitit" / stamp, cluster=cluster,
                                     slurm_max_num_timeout=MAX_TIMEOUTS)
    executor.update_parameters(**job_parameters(options, gpus_here))
    return executor


def job_parameters(options: dict[str, Any], gpus_here: int = 0) -> dict[str, Any]:
    """submitit's names for the grid's Slurm options."""
    ranks, gpus = options["gpus_per_run"], options["gpus_per_run"] * options["slurm_gpus_per_task"]
    chosen = {"name": "alexnet-grid", "timeout_min": options["slurm_time"], "nodes": 1, "tasks_per_node": ranks,
              "cpus_per_task": options["slurm_cpus_per_task"],
              # Per node, not per task: every rank sees all of the job's GPUs and takes its own by local rank.
              "gpus_per_node": gpus or None,
              "slurm_array_parallelism": options["slurm_array_parallelism"],
              # Without this the local executor hides every GPU (CUDA_VISIBLE_DEVICES="").
              "local_gpus_per_node": min(gpus_here, gpus)}
    if options["slurm_partition"]:
        chosen["slurm_partition"] = options["slurm_partition"]
    extra = grid.sbatch_extra(options["slurm_extra"])
    if extra:
        chosen["slurm_additional_parameters"] = extra
    return chosen


def run_jobs(runs: list[plan.PlannedRun], options: dict[str, Any], deadline: float | None,
             estimates: dict[str, float | None], results_dir: str | Path, finished: Callable[[grid.RunResult], None],
             say: Callable[[str], None], local_limit: int, gpus_here: int = 0, cluster: str | None = None) -> None:
    """Submit every run and report each as its job ends."""
    executor = make_executor(options, results_dir, cluster, gpus_here)
    if executor.cluster == "slurm":
        say(f"submitit: Slurm, one job array of {len(runs)} jobs, at most {options['slurm_array_parallelism']} "
            f"at once; scripts and logs in {executor.folder}")
        _collect(list(zip(runs, submit_array(executor, runs, deadline, estimates))), finished)
        return
    job = RunJob()
    limit = max(1, min(local_limit // options["gpus_per_run"], options["slurm_array_parallelism"]))
    say(f"submitit: {executor.cluster} executor (no Slurm here: srun not found), {limit} job(s) at once; "
        f"logs in {executor.folder}")
    pending, running = list(runs), []
    while pending or running:
        while pending and len(running) < limit:
            run = pending.pop(0)
            running.append((run, executor.submit(job, run, deadline, estimates.get(run.run_id))))
        running = _collect(running, finished, wait=False)
        if running:
            time.sleep(POLL_S)


def submit_array(executor: submitit.AutoExecutor, runs: list[plan.PlannedRun], deadline: float | None,
                 estimates: dict[str, float | None]) -> list[Any]:
    """The whole grid as one job array (Slurm queues it; array parallelism bounds what runs at once)."""
    return executor.map_array(RunJob(), runs, [deadline] * len(runs), [estimates.get(r.run_id) for r in runs])


def _collect(jobs: list[tuple[plan.PlannedRun, Any]], finished: Callable[[grid.RunResult], None],
             wait: bool = True) -> list[tuple[plan.PlannedRun, Any]]:
    """Report the jobs that are done; with `wait`, until all are. Returns those still running."""
    while True:
        still = []
        for run, job in jobs:
            if job.done():
                finished(_result(run, job))
            else:
                still.append((run, job))
        if not wait or not still:
            return still
        jobs = still
        time.sleep(POLL_S)


def _result(run: plan.PlannedRun, job: Any) -> grid.RunResult:
    try:
        return job.results()[0]  # task 0: with several tasks (ranks of one run), rank 0's account of it
    except Exception as exc:  # noqa: BLE001 - a job that died (killed, node failure): reported, the grid goes on
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return grid.RunResult(run.run_id, "failed", 0.0, f"job {job.job_id}: {last}", plan.describe_run(run.config))
