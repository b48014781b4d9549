"""The grid: every run a preset needs (reproduce.spec.plan), trained by a pool of workers on this machine
or by submitit jobs, each run through reproduce.runs.runner - so its lock, reuse and resume hold
whoever trains it, and two grids (or a grid and a notebook) on one results folder never train a
run twice.

- One worker: the runs train in this process, one after another (what a notebook does).
- Several: concurrent.futures.ProcessPoolExecutors (spawned processes), one per visible GPU with
  its workers pinned to it (CUDA_VISIBLE_DEVICES set before CUDA starts), or one on the CPU with
  cores / cpu_threads workers. Runs are handed out in the plan's priority order, each when there is
  room for it: on a GPU a network's runs share it by its FLOPs (several four-layer runs, one paper
  net: runs_per_gpu), on the CPU one run per worker. Each run sets its own cpu_threads (params), so
  the number of workers never changes a run's weights. A worker keeps its compiled graphs from run
  to run, so a network compiles once a worker.
- submitit (reproduce.grids.submitit_jobs): one job per run; Slurm where it is installed (one job array),
  else submitit's local executor.

A worker that dies (SIGKILL, out of memory) breaks its pool, and every run in it goes back to its
last epoch checkpoint. The grid then starts new pools for the runs not finished, which resume there
with the same weights; after MAX_POOL_DEATHS deaths with no run finished in between, the runs left
are reported as failed. A run that raises is reported and the others go on; the grid exits 1 when
any run failed, after all the others ran.

With a time budget no run starts after the deadline, nor when its estimate (reproduce.grids.estimates:
this grid's finished runs, earlier records on this kind of device, or its FLOPs) says it cannot
finish in time; running runs stop at the last epoch end before the deadline; the grid then exits 75
("try again"), and a rerun goes on where it stopped. A run the grid has finished (and measured,
where a claim needs its final weights) has its checkpoint deleted: a paper-net checkpoint is 456 MB.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from reproduce.datasets.data import load_dataset
from reproduce.datasets.image_cache_state import cache_state, whole_cache_rows
from reproduce.datasets.image_data import DataUnavailable
from reproduce.datasets.image_plan import check_folders
from reproduce.grids import slurm_options
from reproduce.grids.budget import Budget, Worker, workers_of
from reproduce.grids.estimates import Estimator, Split, data_key, runs_at_once
from reproduce.grids.layout import GPU_PRESETS, Layout, plan_device, worker_layout
from reproduce.grids.messages import GridSummary, Progress, grid_record, plan_lines, summary_lines
from reproduce.records import results, runs_index
from reproduce.runs import runner
from reproduce.runs.runner import RunResult, train_planned
from reproduce.spec import params, plan

MAX_POOL_DEATHS = 3


def parse_options(values: dict[str, Any]) -> dict[str, Any]:
    """The grid's options with their defaults, each checked against params.GRID_PARAMS."""
    defaults = {p.name: p.default for p in params.GRID_PARAMS}
    options = {**defaults, **params.validate(values, params.GRID_BY_NAME, "grid option")}
    slurm_options.check_options(options)
    if options["gpus_per_run"] > 1 and options["executor"] != "submitit":
        raise params.ParamError(f"gpus_per_run: {options['gpus_per_run']} needs --executor submitit (the local pool "
                                "gives each run one device); expected 1 with --executor local")
    return options


def run_grid(preset: str, seeds: int, options: dict[str, Any], overrides: dict[str, Any] | None = None,
             log: Callable[[str], None] | None = None, started: float | None = None) -> GridSummary:
    """Plan, print the plan, train it (unless a dry run) and write the grid's record.

    `log` gets one line per finished run instead of a progress bar (a notebook's stored output
    would keep every redraw of a bar). `started` (time.time()): where the time budget counts from,
    the command's start; now by default."""
    options = parse_options(options)
    # One bar over the grid: the runs' per-batch bars would write over it (and over each other).
    overrides = {"progress": False, **params.validate(overrides or {})}
    runs = plan.grid_plan(preset, seeds, options["only"] or None, overrides)
    asked = seeds != params.get_preset(preset).seeds  # a --seeds of the user's, not the preset's own number
    title = f"preset {preset}, at most {seeds} seeds a claim" + (seeds_cap(seeds, options["only"]) if asked else "")
    return train_runs(runs, options, params.resolve(overrides, preset=preset), title, log, started,
                      record_as=(preset, seeds))


def seeds_cap(seeds: int, only: str) -> str:
    """What --seeds beyond a claim's registered seeds does: nothing; said in the plan's first line."""
    chosen = plan.parse_only(only or None)
    capped = {claim.id: claim.seeds for claim in plan.load_registry().values()
              if claim.trains and claim.ablation in chosen and claim.seeds and claim.seeds < seeds}
    if not capped:
        return ""
    counts = sorted(set(capped.values()))
    said = ", ".join(f"{', '.join(k for k, v in capped.items() if v == n)} at {n}" for n in counts)
    return f" (registered claims run their registered seeds at most: {said})"


def train_runs(runs: list[plan.PlannedRun], options: dict[str, Any], sample: dict[str, Any], title: str,
               log: Callable[[str], None] | None = None, started: float | None = None,
               record_as: tuple[str, int] | None = None) -> GridSummary:
    """Train planned runs as the grid does (plan lines, layout, budget, pool or submitit, summary): a preset's
    grid, or another list of runs (the pilot's). `sample`: a config of the runs, for what they share (results
    folder, device, threads); `record_as` (preset, seeds): keep a grid record under that name."""
    deadline = (started or time.time()) + options["time_budget"] if options["time_budget"] else None
    results_dir = sample["results_dir"]
    device = plan_device(sample, options["dry_run"], gpu_preset=bool(record_as) and record_as[0] in GPU_PRESETS)
    layout = worker_layout(options, sample, runs, device)
    states = {run.run_id: results.run_state(results_dir, run.config) for run in runs}
    estimator = Estimator.from_records(results_dir, device.type, device.kind)
    if device.type == "cuda":
        estimator.at_once = runs_at_once(results_dir, device.kind)
    say = log or print
    for line in [*device.warnings, *plan_lines(title, runs, states, estimator, layout, options), *data_lines(runs),
                 *placement_lines(runs, options)]:
        say(line)
    if options["dry_run"] or not runs:
        return GridSummary()
    estimator.splits = preflight(runs)
    budget = Budget(deadline, estimator, layout)
    for line in budget.lines([run for run in runs if not states[run.run_id].done]):
        say(line)
    started = time.perf_counter()
    summary = GridSummary()
    work = {run.run_id: 0.0 if states[run.run_id].done else estimator.seconds(run.config).seconds for run in runs}
    with Progress(work, log) as progress:
        def finished(run: plan.PlannedRun, result: RunResult) -> None:
            summary.results.append(result)
            progress.done(result)
            if result.action == "trained" and result.state == "complete":
                estimator.finished(results.read_record(results.record_path(results_dir, run.config)))

        if options["executor"] == "submitit":
            from reproduce.grids import submitit_jobs  # lazy: submitit is not on every machine (the lent GPU has none)

            estimates = {run.run_id: budget.cost(run, None)[0] for run in runs}
            submitit_jobs.run_jobs(runs, options, deadline, estimates, results_dir,
                                   lambda result: finished(_by_id(runs, result.run_id), result), say,
                                   local_limit=layout.workers, gpus_here=len(set(layout.groups) - {None}))
        elif layout.in_process:
            for run in runs:
                refusal = budget.admit(run)
                finished(run, deferred(run, refusal) if refusal else train_planned(run, deadline))
        else:
            run_pool(runs, layout, budget, finished, say)
    summary.wall_s = time.perf_counter() - started
    for line in summary_lines(summary, layout, options):
        say(line)
    if set(summary.actions()) - {"reused"}:  # a grid that only found its runs done measured nothing
        if record_as:
            results.write_grid_record(results_dir, grid_record(*record_as, options, layout, sample, summary,
                                                               deadline))
        runs_index.write(results_dir)
    return summary


def _by_id(runs: list[plan.PlannedRun], run_id: str) -> plan.PlannedRun:
    return next(run for run in runs if run.run_id == run_id)


def deferred(run: plan.PlannedRun, why: str) -> RunResult:
    """A run the budget does not start: it stays as it was (missing, or running from a checkpoint)."""
    return RunResult(run.run_id, results.run_state(run.config["results_dir"], run.config).state, "not started", 0.0,
                     why, run.settings)


# ----------------------------------------------------------------------------- the pool


def run_pool(runs: list[plan.PlannedRun], layout: Layout, budget: Budget,
             finished: Callable[[plan.PlannedRun, RunResult], None], say: Callable[[str], None]) -> None:
    """Hand the runs to pools of spawned workers, in order; start new pools when a worker dies."""
    pending, deaths = list(runs), 0
    while pending:
        pending, progressed = _pool_round(pending, layout, budget, finished)
        if not pending:
            break
        deaths = 1 if progressed else deaths + 1
        if deaths > MAX_POOL_DEATHS:
            for run in pending:
                finished(run, RunResult(run.run_id, "failed", "trained", 0.0, f"workers died {deaths} times in a row with no "
                                        "run finished in between (killed, or out of memory?)",
                                        run.settings))
            break
        say(f"a worker died (killed, or out of memory): new pools take the {len(pending)} runs not finished; "
            "the ones in flight resume from their last epoch checkpoint")


def _pool_round(runs: list[plan.PlannedRun], layout: Layout, budget: Budget,
                finished: Callable[[plan.PlannedRun, RunResult], None]) -> tuple[list[plan.PlannedRun], bool]:
    """Train the runs on fresh workers until they are done or a worker dies. Returns the runs left (those
    lost with a dead worker, then those not started) and whether any run finished. Each worker is a pool of
    one process, so that the grid chooses which worker takes a run: one that has compiled its network."""
    context = multiprocessing.get_context("spawn")
    workers = {worker: ProcessPoolExecutor(1, mp_context=context, initializer=_pin_worker, initargs=(worker[0],))
               for group_workers in workers_of(layout).values() for worker in group_workers}
    budget.new_workers()
    free = workers_of(layout)
    loads = dict.fromkeys(layout.groups, 0.0)
    queue, lost, progressed = list(runs), [], False
    in_flight: dict[Future, tuple[plan.PlannedRun, Worker]] = {}
    try:
        while queue or in_flight:
            if not lost:  # a dead worker: start nothing more on these workers
                _start_what_fits(queue, layout, loads, free, workers, in_flight, budget, finished)
            if not in_flight:
                break
            for future in wait(in_flight, return_when=FIRST_COMPLETED).done:
                run, worker = in_flight.pop(future)
                loads[worker[0]] -= layout.share(run.config, worker[0])
                free[worker[0]].append(worker)
                try:
                    finished(run, future.result())
                    progressed = True
                except BrokenProcessPool:
                    lost.append(run)
    finally:
        for pool in workers.values():
            pool.shutdown(cancel_futures=True)
    return sorted(lost, key=lambda run: run.priority) + queue, progressed


def _start_what_fits(queue: list[plan.PlannedRun], layout: Layout, loads: dict[int | None, float],
                     free: dict[int | None, list[Worker]], workers: dict[Worker, ProcessPoolExecutor],
                     in_flight: dict[Future, tuple], budget: Budget,
                     finished: Callable[[plan.PlannedRun, RunResult], None]) -> None:
    """Start runs in priority order while the next one has room; one the budget refuses is deferred.
    A run that must wait for room holds back the runs after it: the order is the plan's priority."""
    while queue:
        group = layout.place(queue[0].config, loads)
        if group is False:
            return
        run = queue.pop(0)
        worker = budget.pick(run, free[group])
        refusal = budget.admit(run, worker)
        if refusal:
            finished(run, deferred(run, refusal))
            continue
        free[group].remove(worker)
        loads[group] += layout.share(run.config, group)
        in_flight[workers[worker].submit(train_planned, run, budget.deadline)] = (run, worker)


def _pin_worker(gpu: int | None) -> None:
    """Pin this worker to its GPU before anything in it starts CUDA."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


# ----------------------------------------------------------------------------- before training

def data_lines(runs: list[plan.PlannedRun]) -> list[str]:
    """The state of each image folder's cache the runs read (from its manifests: a moment), and how to build
    what it lacks; a folder that is not there says so."""
    lines = []
    for config in {data_key(run.config): run.config for run in runs if run.config["dataset"] == "imagenet-folder"}.values():
        try:
            check_folders(Path(config["data_dir"]))
            state = cache_state(config["data_dir"], train_limit=config["train_limit"], test_limit=config["test_limit"])
            lines.append(f"  data: {state.message}")
        except DataUnavailable as exc:
            lines.append(f"  data: {exc}")
    return lines


def placement_lines(runs: list[plan.PlannedRun], options: dict[str, Any]) -> list[str]:
    """What a run of the paper's net on ImageNet gets: one GPU, or (gpus_per_run N) the paper's batch split N
    ways, which stays the paper's 128 - a larger batch would be a deviation its config names."""
    if not any(run.config["dataset"] == "imagenet-folder" for run in runs):
        return []
    ranks = options["gpus_per_run"]
    if ranks == 1:
        return ["  placement: one GPU a run, the ImageNet runs side by side (one run over N GPUs: --gpus-per-run N "
                "with --executor submitit, or torchrun; it splits the batch of 128 N ways)"]
    batch = runs[0].config["batch_size"]
    return [f"  placement: {ranks} GPUs a run (--gpus-per-run): each rank takes {batch // ranks}-{-(-batch // ranks)} "
            f"of the batch of {batch} and the gradients are averaged over all {batch}, as on one GPU"]


def preflight(runs: list[plan.PlannedRun]) -> dict[tuple, Split]:
    """Fail once, before any worker starts, on what would fail every run: a results folder that
    cannot be written, data that is missing or corrupt. Loading each dataset here also unpacks it
    once, by one process, before workers would race to. Returns the size of each dataset's splits,
    for the first-run estimates.

    An image folder's cache is checked, never built: it must be whole (its manifests say so, read in a
    moment), else DataUnavailable says how to build it (`python -m reproduce cache`, shard by shard or in
    one process). A grid is many processes, at cluster scale an allocation of GPUs, that would wait hours
    on one process preprocessing ImageNet; a single run (`python -m reproduce run`, a notebook) still builds a
    missing cache itself, which is what a small folder on a laptop wants."""
    for config in {run.config["results_dir"]: run.config for run in runs}.values():
        runner.check_writable(Path(config["results_dir"]))
    splits = {}
    for key, config in {data_key(run.config): run.config for run in runs}.items():
        limits = {"train_limit": config["train_limit"], "test_limit": config["test_limit"]}
        if config["dataset"] == "imagenet-folder":
            rows = whole_cache_rows(config["data_dir"], **limits)
            splits[key] = Split(rows["train"], rows["heldout"], rows["val"])
            continue
        data = load_dataset(config["dataset"], config["data_dir"], **limits)
        splits[key] = Split(len(data.train_y), len(data.val_y), len(data.test_y))
    return splits


# ----------------------------------------------------------------------------- what it says


