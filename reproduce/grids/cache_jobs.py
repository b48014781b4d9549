"""An image folder's cache built as a Slurm job array (or by submitit's local executor where there is no
Slurm): one task per shard, each building its shard of every split (`python -m reproduce cache --executor
submitit --shards N`). The folder is listed once, here, before the array starts, so that no task walks it;
a task that dies leaves its shard unfinished and a rerun builds only what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import submitit

from reproduce.datasets.image_plan import SPLITS, plan_cache
from reproduce.datasets.image_shards import build_shard
from reproduce.grids.submitit_jobs import make_executor
from reproduce.spec import params


def build_shard_of_every_split(data_dir: str, index: int, count: int, limits: dict[str, int]) -> int:
    """One array task: shard `index` of `count` of each split; returns the index it built."""
    for split in SPLITS:
        build_shard(data_dir, split, index, count, **limits)
    return index


def build_array(data_dir: str | Path, count: int, options: dict[str, Any], results_dir: str | Path,
                limits: dict[str, int], say: Callable[[str], None] = print) -> list[str]:
    """Plan the cache in `count` shards, submit one task per shard and wait; returns what failed (one line a
    task). The tasks ask for the CPUs `options` give (decoding uses every CPU a task has)."""
    if count < 1:
        raise params.ParamError("shards: --executor submitit needs --shards N, the number of array tasks (N >= 1)")
    plan_cache(Path(data_dir), count, **limits)
    executor = make_executor(options, results_dir, config=params.resolve({"device": "cpu"}))
    executor.update_parameters(name="alexnet-cache")
    tasks = list(range(count))
    jobs = executor.map_array(build_shard_of_every_split, [str(data_dir)] * count, tasks, [count] * count,
                              [limits] * count)
    say(f"submitit ({executor.cluster}): {count} cache tasks, job array {jobs[0].job_id.split('_')[0]}; logs in "
        f"{executor.folder}")
    failed = []
    for index, job in zip(tasks, jobs):
        try:
            job.result()
            say(f"  shard {index}/{count}: built")
        except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as exc:
            failed.append(f"shard {index}/{count}: {str(exc).splitlines()[0]}")
            say(f"  {failed[-1]}")
    return failed
