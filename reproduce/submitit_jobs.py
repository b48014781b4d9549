"""The grid on submitit: one job per run, on Slurm (one job array for the grid) or, where Slurm is
not installed, on submitit's local executor - submitit's AutoExecutor decides (it looks for srun).

A job that Slurm preempts, or that reaches its time limit, gets submitit's signal (USR2) before it
is killed; submitit then calls RunJob.checkpoint and requeues the job. Since every run checkpoints
itself at each epoch end, the requeued job resumes there (the epoch in progress is trained again)
and ends with the weights an uninterrupted run has. A run longer than slurm_time therefore goes on
in several jobs, up to MAX_TIMEOUTS of them. A job requeued by an administrator (scontrol requeue)
starts the same call again, and resumes the same way.

A job of gpus_per_run tasks trains one run on that many GPUs (ranks of DistributedDataParallel, see
reproduce.distributed), its ranks set up from submitit's job environment.

The options (partition, ranks, GPUs and CPUs per task, time, array parallelism, extra sbatch arguments)
are declared in params.GRID_PARAMS; this module checks them and translates them for submitit. What can
be checked without a cluster is checked when the grid parses its options (check_options); what needs
one (the partition and its nodes, from sinfo) before anything is submitted; what sbatch still refuses
is one line naming the option to change. submitit's local executor has no queue - every job it is given
starts at once - so on it the grid keeps at most as many jobs running as the pool would have workers.
"""

from __future__ import annotations

import getpass
import math
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import submitit
from submitit.core.utils import FailedJobError
from submitit.slurm.slurm import SlurmInfoWatcher

from reproduce import params, plan, results, runner

MAX_TIMEOUTS = 1000
POLL_S = 1.0
SQUEUE_POLL_S = 10.0  # under MinJobAge (300 s by default), the time squeue keeps listing a finished job
CPUS_BESIDE_A_GPU = 4  # slurm_cpus_per_task auto, for a task with a GPU
ENDED_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT",
                "ENDED"}  # Slurm's, and ours for a job squeue has forgotten

# sbatch options the grid writes itself: set through slurm_extra they would fight its own.
SET_BY_THE_GRID = {"partition": "--slurm-partition", "time": "--slurm-time", "cpus-per-task": "--slurm-cpus-per-task",
                   "gpus-per-node": "--slurm-gpus-per-task", "ntasks-per-node": "--gpus-per-run",
                   "nodes": "the grid (one node per run)", "array": "--slurm-array-parallelism",
                   "signal": "submitit (its requeue signal)", "job-name": "the grid",
                   "output": "submitit (its logs)", "error": "submitit (its logs)"}

# What sbatch says when it refuses a job array -> the option to change, and how.
REFUSALS = (
    ("generic resource", "slurm_gpus_per_task", "the partition's nodes have no such GPUs: use --slurm-gpus-per-task "
                                               "0 (auto does for runs on the CPU) or a GPU partition (--slurm-partition)"),
    ("time limit", "slurm_time", "the partition allows less time (sinfo shows its TIMELIMIT)"),
    ("node configuration is not available", "slurm_cpus_per_task", "no node of the partition has that many CPUs or "
                                                                   "GPUs for one run: lower them, or --gpus-per-run"),
    ("account", "slurm_extra", "name one of your accounts as account=... (sacctmgr show associations user=$USER)"),
    ("qos", "slurm_extra", "name a QOS you may use as qos=... (sacctmgr show associations user=$USER)"),
    ("unrecognized option", "slurm_extra", "each of its keys must be an sbatch option (sbatch --help)"),
)


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


# ----------------------------------------------------------------------------- the options

def check_options(options: dict[str, Any]) -> None:
    """Refuse what no cluster would take, when the grid parses its options (grid.parse_options)."""
    for key in sbatch_extra(options["slurm_extra"]):
        owner = SET_BY_THE_GRID.get(key.replace("_", "-"))
        if owner:
            raise params.ParamError(f"slurm_extra: {key} is set by {owner}; expected other sbatch options "
                                    "(e.g. account=abc,qos=high)")


def sbatch_extra(text: str) -> dict[str, str]:
    """slurm_extra's "key=value,key=value" as submitit's additional sbatch parameters."""
    extra = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise params.ParamError(f"slurm_extra: {item!r} is not key=value; expected sbatch options as "
                                    "key=value,key=value (e.g. account=abc,qos=high)")
        extra[key.strip()] = value.strip()
    return extra


def job_options(options: dict[str, Any], config: dict[str, Any], cluster: str, gpus_here: int) -> dict[str, Any]:
    """The options with `auto` resolved for these runs on this cluster (GPUs only where the runs can use
    them); on Slurm, checked against the partition's nodes first."""
    partition = find_partition(options["slurm_partition"]) if cluster == "slurm" else None
    gpus_there = partition.gpus if partition else gpus_here
    gpus = options["slurm_gpus_per_task"]
    if gpus == "auto":
        gpus = int(config["device"] == "cuda" or (config["device"] == "auto" and gpus_there > 0))
    cpus = options["slurm_cpus_per_task"]
    if cpus == "auto":
        cpus = CPUS_BESIDE_A_GPU if gpus else config["cpu_threads"]
    chosen = {**options, "slurm_gpus_per_task": gpus, "slurm_cpus_per_task": cpus}
    if partition:
        check_fits(chosen, partition)
    return chosen


def job_parameters(options: dict[str, Any], gpus_here: int = 0) -> dict[str, Any]:
    """submitit's names for the grid's Slurm options (`auto` resolved: job_options)."""
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
    extra = sbatch_extra(options["slurm_extra"])
    if extra:
        chosen["slurm_additional_parameters"] = extra
    return chosen


# ----------------------------------------------------------------------------- the cluster, from sinfo

@dataclass(frozen=True)
class Partition:
    name: str
    cpus: int  # the most CPUs one of its nodes has
    gpus: int  # the most GPUs one of its nodes has
    minutes: float  # its time limit (inf: none)


def find_partition(name: str) -> Partition:
    """The partition the jobs go to (the cluster's default for ""), as sinfo describes its nodes."""
    nodes: dict[str, list[tuple[int, int, float]]] = {}
    default = ""
    for line in _slurm("sinfo", "--noheader", "--Node", "--format=%P|%c|%G|%l").splitlines():
        part, cpus, gres, limit = line.split("|")
        if part.endswith("*"):
            part = default = part[:-1]
        nodes.setdefault(part, []).append((int(cpus), _gpus(gres), _minutes(limit)))
    if (name or default) not in nodes:
        said = f"{name!r} is not a partition of this cluster" if name else "this cluster has no default partition"
        raise params.ParamError(f"slurm_partition: {said}; expected one of {', '.join(nodes)}")
    found = nodes[name or default]
    return Partition(name or default, max(n[0] for n in found), max(n[1] for n in found), found[0][2])


def check_fits(options: dict[str, Any], partition: Partition) -> None:
    """sbatch refuses GPUs a partition lacks, but accepts a job of more CPUs than any of its nodes has, or
    of more time than it allows, and leaves it pending for ever (unless the cluster sets EnforcePartLimits)."""
    ranks, per_task = options["gpus_per_run"], options["slurm_cpus_per_task"]
    if ranks * per_task > partition.cpus:
        raise params.ParamError(f"slurm_cpus_per_task: {ranks} task(s) x {per_task} CPUs on one node, and the nodes of "
                                f"partition {partition.name} have at most {partition.cpus}; lower "
                                "--slurm-cpus-per-task (or --gpus-per-run)")
    if options["slurm_time"] > partition.minutes:
        raise params.ParamError(f"slurm_time: {options['slurm_time']} minutes, and partition {partition.name} allows "
                                f"at most {partition.minutes:.0f}; lower --slurm-time (a run longer than a job goes "
                                "on in the next one)")


def _slurm(*command: str) -> str:
    """A Slurm client's output; a cluster that does not answer is a user error, in one line."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        said = (getattr(error, "stderr", None) or str(error)).strip().splitlines()[-1:]
        raise params.ParamError(f"executor: submitit found Slurm (srun) but {command[0]} fails ({''.join(said)}); "
                                "run the grid where the cluster answers, or without --executor submitit") from None


def _gpus(gres: str) -> int:
    """GPUs in sinfo's GRES column: gpu:4, gpu:a100:4(S:0-1), gpu:a100:2,gpu:v100:2, (null)."""
    return sum(int(count) for count in re.findall(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)", gres))


def _minutes(limit: str) -> float:
    """sinfo's time limit ([days-]hours:minutes:seconds, or minutes:seconds, or infinite) in minutes."""
    if not limit[:1].isdigit():
        return math.inf
    days, _, clock = limit.rpartition("-")
    hours, minutes, seconds = ([0, 0] + [int(part) for part in clock.split(":")])[-3:]
    return int(days or 0) * 1440 + hours * 60 + minutes + seconds / 60


def refusal(error: Exception) -> params.ParamError:
    """sbatch's refusal of the job array as one line naming the option to change."""
    lines = [line.removeprefix("sbatch: ").removeprefix("error: ") for line in str(error).strip().splitlines()]
    said = next((line for line in lines if line), type(error).__name__)
    for words, option, remedy in REFUSALS:
        if words in str(error).lower():
            return params.ParamError(f"{option}: sbatch refused the job array ({said}); {remedy}")
    return params.ParamError(f"slurm: sbatch refused the job array ({said}); see the --slurm-* options")


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
    said = _slurm("scontrol", "show", "config")
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
