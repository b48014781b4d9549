"""The grid's Slurm options (params.GRID_PARAMS: partition, ranks, GPUs and CPUs per task, time, array
parallelism, extra sbatch arguments), checked and translated for submitit, without importing submitit:
the grid parses its options on every machine, the lent GPU (which has no submitit) included.

What can be checked without a cluster is checked when the grid parses its options (check_options); what
needs one (the partition and its nodes, from sinfo) before anything is submitted; what sbatch still refuses
is one line naming the option to change (refusal).
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from typing import Any

from reproduce.spec import params

CPUS_BESIDE_A_GPU = 4  # slurm_cpus_per_task auto, for a task with a GPU

# sbatch options the grid writes itself: set through slurm_extra they would fight its own.
SET_BY_THE_GRID = {"partition": "--slurm-partition", "time": "--slurm-time", "cpus-per-task": "--slurm-cpus-per-task",
                   "gpus-per-node": "--slurm-gpus-per-task", "ntasks-per-node": "--gpus-per-run",
                   "nodes": "the grid (one node per run)", "mem": "--slurm-mem", "array": "--slurm-array-parallelism",
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
    chosen = {**options, "slurm_gpus_per_task": gpus, "slurm_cpus_per_task": cpus,
              "slurm_mem": cache_memory_gb(config) if options["slurm_mem"] == "auto" else options["slurm_mem"]}
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
    if options["slurm_mem"]:
        chosen["mem_gb"] = options["slurm_mem"]
    extra = sbatch_extra(options["slurm_extra"])
    if extra:
        chosen["slurm_additional_parameters"] = extra
    return chosen


MEMORY_BESIDE_THE_CACHE_GB = 16  # the training process, its loader workers' buffers and pinned batches


def cache_memory_gb(config: dict[str, Any]) -> int:
    """slurm_mem auto: for a run reading an image cache, its splits' size (from the manifests) plus what the run
    itself needs; 0 (Slurm's default) for the small datasets, or a cache not built yet."""
    if config.get("dataset") != "imagenet-folder":
        return 0
    from reproduce.datasets.image_cache_state import cache_state
    from reproduce.datasets.image_preprocess import IMAGENET_SIZE

    rows = sum(cache_state(config["data_dir"], train_limit=config["train_limit"],
                           test_limit=config["test_limit"]).rows().values())
    return math.ceil(rows * 3 * IMAGENET_SIZE ** 2 / 1e9) + MEMORY_BESIDE_THE_CACHE_GB if rows else 0


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
    for line in slurm("sinfo", "--noheader", "--Node", "--format=%P|%c|%G|%l").splitlines():
        part, cpus, gres, limit = line.split("|")
        if part.endswith("*"):
            part = default = part[:-1]
        nodes.setdefault(part, []).append((int(cpus), gpus_in_gres(gres), minutes_of(limit)))
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


def slurm(*command: str) -> str:
    """A Slurm client's output; a cluster that does not answer is a user error, in one line."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        said = (getattr(error, "stderr", None) or str(error)).strip().splitlines()[-1:]
        raise params.ParamError(f"executor: submitit found Slurm (srun) but {command[0]} fails ({''.join(said)}); "
                                "run the grid where the cluster answers, or without --executor submitit") from None


def gpus_in_gres(gres: str) -> int:
    """GPUs in sinfo's GRES column: gpu:4, gpu:a100:4(S:0-1), gpu:a100:2,gpu:v100:2, (null)."""
    return sum(int(count) for count in re.findall(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)", gres))


def minutes_of(limit: str) -> float:
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
