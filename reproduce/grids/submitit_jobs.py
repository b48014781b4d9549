"""The grid on submitit: one job per run, on Slurm (one job array for the grid) or, where Slurm is
not installed, on submitit's local executor - submitit's AutoExecutor decides (it looks for srun).

A job that Slurm preempts, or that reaches its time limit, gets submitit's signal (USR2) before it
is killed; submitit then calls RunJob.checkpoint and requeues the job. Since every run checkpoints
itself at each epoch end, the requeued job resumes there (the epoch in progress is trained again)
and ends with the weights an uninterrupted run has. A run longer than slurm_time therefore goes on
in several jobs, up to MAX_TIMEOUTS of them. A job requeued by an administrator (scontrol requeue)
starts the same call again, and resumes the same way.

A job of gpus_per_run tasks trains one run on that many GPUs (ranks of DistributedDataParallel, see
reproduce.training.distributed), its ranks set up from submitit's job environment.

The options are checked and translated by reproduce.grids.slurm_options, which the grid imports on every
machine; this module, and submitit with it, only with --executor submitit. submitit's local executor has no queue - every job it is given
starts at once - so on it the grid keeps at most as many jobs running as the pool would have workers.
"""

from __future__ import annotations

import getpass
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import submitit
from submitit.core.utils import FailedJobError
from submitit.slurm.slurm import SlurmInfoWatcher

from reproduce.grids.slurm_options import job_options, job_parameters, refusal, slurm
from reproduce.records import results
from reproduce.runs import runner
from reproduce.spec import params, plan

MAX_TIMEOUTS = 1000
POLL_S = 1.0
SQUEUE_POLL_S = 10.0  # under MinJobAge (300 s by default), the time squeue keeps listing a finished job
ENDED_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT",
                "ENDED"}  # Slurm's, and ours for a job squeue has forgotten


class RunJob(submitit.helpers.Checkpointable):
    """One planned run as a submitit job."""

    def __call__(self, run: plan.PlannedRun, deadline: float | None, estimate: float | None) -> runner.RunResult:
        if submitit.JobEnvironment().num_tasks > 1:
            # Several tasks train this run together: each learns its rank from the job's environment,
            # as torchrun's ranks do from torchrun's (they all see the node's GPUs: rank r takes GPU r).
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return runner.train_planned(run, deadline, estimate)

    def checkpoint(self, run: plan.PlannedRun, deadline: float | None,
                   estimate: float | None) -> submitit.helpers.DelayedSubmission:
        """Preempted or out of time: requeue this same call, which resumes the run from its last
        epoch checkpoint (nothing else to save: the run saved itself at its last epoch end)."""
        return submitit.helpers.DelayedSubmission(self, run, deadline, estimate)


# ----------------------------------------------------------------------------- submitting and waiting

def make_executor(options: dict[str, Any], results_dir: str | Path, cluster: str | None = None,
                  gpus_here: int = 0, config: dict[str, Any] | None = None) -> submitit.AutoExecutor:
    """An AutoExecutor writing its scripts and logs to results/submitit/<time>/, for runs of `config`."""
    cluster = cluster or submitit.AutoExecutor.which()
    chosen = job_options(options, config or params.resolve({}), cluster, gpus_here)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    executor = submitit.AutoExecutor(folder=Path(results_dir) / "submitit" / stamp, cluster=cluster,
                                     slurm_max_num_timeout=MAX_TIMEOUTS)
    executor.update_parameters(**job_parameters(chosen, gpus_here))
    return executor


def run_jobs(runs: list[plan.PlannedRun], options: dict[str, Any], deadline: float | None,
             estimates: dict[str, float | None], results_dir: str | Path, finished: Callable[[runner.RunResult], None],
             say: Callable[[str], None], local_limit: int, gpus_here: int = 0, cluster: str | None = None) -> None:
    """Submit every run and report each as its job ends."""
    executor = make_executor(options, results_dir, cluster, gpus_here, runs[0].config)
    if executor.cluster == "slurm":
        runs, accounting = _reuse_here(runs, finished), accounting_on()
        if not runs:
            return
        jobs = submit_array(executor, runs, deadline, estimates)
        say(f"submitit: Slurm, one job array of {len(runs)} jobs ({jobs[0].job_id.split('_')[0]}), at most "
            f"{options['slurm_array_parallelism']} at once, each {describe_job(executor)}; scripts and logs in "
            f"{executor.folder}")
        if not accounting:
            watch_with_squeue(jobs)
        _collect(list(zip(runs, jobs)), finished)
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


def _reuse_here(runs: list[plan.PlannedRun], finished: Callable[[runner.RunResult], None]) -> list[plan.PlannedRun]:
    """Report the runs already done from this process (the runner reuses them in a moment) rather than queue
    a job for each, which could wait hours on a busy cluster to say so. Not a run whose final weights are
    measured: if its measures are missing, a job takes them, not the machine the grid runs on. Returns the
    runs left to train."""
    left = []
    for run in runs:
        if not run.analyse and results.run_state(run.config["results_dir"], run.config).done:
            finished(runner.train_planned(run, None, None))
        else:
            left.append(run)
    return left


def describe_job(executor: submitit.AutoExecutor) -> str:
    """What each job asks Slurm for, as the sbatch script says it."""
    chosen = executor.parameters
    return (f"{chosen['ntasks_per_node']} task(s) x {chosen['cpus_per_task']} CPU(s), "
            f"{chosen.get('gpus_per_node') or 0} GPU(s), {chosen['time']} min, partition "
            f"{chosen.get('partition', '(the default)')}")


def submit_array(executor: submitit.AutoExecutor, runs: list[plan.PlannedRun], deadline: float | None,
                 estimates: dict[str, float | None]) -> list[Any]:
    """The whole grid as one job array (Slurm queues it; array parallelism bounds what runs at once)."""
    try:
        return executor.map_array(RunJob(), runs, [deadline] * len(runs), [estimates.get(r.run_id) for r in runs])
    except FailedJobError as error:  # sbatch refused it: nothing was submitted
        raise refusal(error) from None


def accounting_on() -> bool:
    """Whether the cluster keeps accounting, which submitit's job states (sacct) need."""
    said = slurm("scontrol", "show", "config")
    return re.search(r"^AccountingStorageType\s*=\s*accounting_storage/none\b", said, re.M) is None


class SqueueWatcher(SlurmInfoWatcher):
    """Job states from squeue, for a cluster without accounting storage. There submitit's sacct fails (and
    says so at every poll), so a job that ended without a result - a task killed, a node lost - would
    look pending for ever. squeue lists a job while it is queued or running and for MinJobAge after it
    ends; a job it no longer lists has ended (its result, if any, is in its folder)."""

    def _make_command(self) -> list[str] | None:
        if not self._registered - self._finished:
            return None
        return ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", f"--user={getpass.getuser()}"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        listed = dict(line.split("|", 1) for line in text.split())
        states = {}
        for job_id in self._registered:
            state = listed.get(job_id, "ENDED")  # no longer listed: it ended MinJobAge ago or more
            # Whatever is not an end (configuring, suspended, held for a requeue...) is a job on its way:
            # submitit would take the states it does not know for ends.
            states[job_id] = {"State": state if state in ENDED_STATES else "RUNNING"}
        return states


def watch_with_squeue(jobs: list[Any]) -> None:
    watcher = SqueueWatcher(delay_s=SQUEUE_POLL_S)
    for job in jobs:
        for one in [job, *(job.task(k) for k in range(job.num_tasks))]:  # a job of several tasks asks each
            one.watcher = watcher


def _collect(jobs: list[tuple[plan.PlannedRun, Any]], finished: Callable[[runner.RunResult], None],
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


def _result(run: plan.PlannedRun, job: Any) -> runner.RunResult:
    try:
        return job.task(0).result()  # with several tasks (ranks of one run), rank 0's account of it
    except Exception as exc:  # noqa: BLE001 - a job that died (killed, node failure): reported, the grid goes on
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return runner.RunResult(run.run_id, "failed", "trained", 0.0, f"job {job.job_id}: {last}", run.settings)
