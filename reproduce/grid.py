"""The grid: every run a preset needs (reproduce.plan), trained by a pool of workers on this machine
or by submitit jobs, each run through reproduce.runner - so its lock, reuse and resume hold
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
- submitit (reproduce.submitit_jobs): one job per run; Slurm where it is installed (one job array),
  else submitit's local executor.

A worker that dies (SIGKILL, out of memory) breaks its pool, and every run in it goes back to its
last epoch checkpoint. The grid then starts new pools for the runs not finished, which resume there
with the same weights; after MAX_POOL_DEATHS deaths with no run finished in between, the runs left
are reported as failed. A run that raises is reported and the others go on; the grid exits 1 when
any run failed, after all the others ran.

With a time budget no run starts after the deadline, nor when its estimate (reproduce.estimates:
this grid's finished runs, earlier records on this kind of device, or its FLOPs) says it cannot
finish in time; running runs stop at the last epoch end before the deadline; the grid then exits 75
("try again"), and a rerun goes on where it stopped. A run the grid has finished (and measured,
where a claim needs its final weights) has its checkpoint deleted: a paper-net checkpoint is 456 MB.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from reproduce import params, plan, results, runner, runs_index
from reproduce.data import load_dataset
from reproduce.estimates import Estimator, Split, data_key
from reproduce.runner import RunResult, train_planned
from reproduce.execution import device_kind, pick_device
from reproduce.flops import training_flops_per_image

MAX_POOL_DEATHS = 3
EXIT_FAILED, EXIT_STOPPED = 1, 75  # 75: EX_TEMPFAIL, "try again later" (the time budget ran out)
# A GPU is kept busy by one training step of about this many FLOPs: a net whose step is smaller shares
# it with other runs (the four-layer net's step is ~8 GFLOP, the paper net's ~490), up to MAX_RUNS_PER_GPU.
# Memory never binds first for these nets: the paper net at batch 128 peaked at 2.2 GB on an H100.
GPU_STEP_FLOPS = 200e9
MAX_RUNS_PER_GPU = 4


@dataclass
class Layout:
    """How runs share this machine: a pool of `groups[g]` workers per group g (a GPU id, or None for
    the CPU), each group holding a load of 1: a run takes one worker's part of it, or with
    `by_network` (GPUs) 1 / runs_per_gpu of its network."""
    groups: dict[int | None, int]
    why: str
    by_network: bool = False

    @property
    def workers(self) -> int:
        return sum(self.groups.values())

    @property
    def in_process(self) -> bool:
        return self.workers == 1

    def share(self, config: dict[str, Any], group: int | None) -> float:
        """The part of its group one run of this config takes."""
        return 1.0 / (runs_per_gpu(config) if self.by_network else self.groups[group])

    def place(self, config: dict[str, Any], loads: dict[int | None, float]) -> int | None | bool:
        """The least loaded group with room for this run, or False when none has room now."""
        fits = [group for group in self.groups if loads[group] + self.share(config, group) <= 1.0 + 1e-9]
        return min(fits, key=lambda group: loads[group]) if fits else False


def runs_per_gpu(config: dict[str, Any]) -> int:
    """Runs of this config that share one GPU: as many as it takes to fill it, by FLOPs per step."""
    step = training_flops_per_image(config) * config["batch_size"]
    return max(1, min(MAX_RUNS_PER_GPU, int(GPU_STEP_FLOPS // step)))


@dataclass
class GridSummary:
    results: list[RunResult] = field(default_factory=list)
    wall_s: float = 0.0

    def count(self) -> Counter:
        """How many runs the grid left in each state (results.RUN_STATES)."""
        return Counter(r.state for r in self.results)

    def actions(self) -> Counter:
        """How many runs it trained, reused, or did not start."""
        return Counter(r.action for r in self.results)

    @property
    def exit_code(self) -> int:
        counts = self.count()
        if counts["failed"]:
            return EXIT_FAILED
        return EXIT_STOPPED if counts["running"] or counts["missing"] else 0


def parse_options(values: dict[str, Any]) -> dict[str, Any]:
    """The grid's options with their defaults, each checked against params.GRID_PARAMS."""
    defaults = {p.name: p.default for p in params.GRID_PARAMS}
    options = {**defaults, **params.validate(values, params.GRID_BY_NAME, "grid option")}
    from reproduce import submitit_jobs  # the Slurm options' checks live with the code that submits them

    submitit_jobs.check_options(options)
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
    return train_runs(runs, options, params.resolve(overrides, preset=preset), f"preset {preset}, at most {seeds} seeds a claim",
                      log, started, record_as=(preset, seeds))


def train_runs(runs: list[plan.PlannedRun], options: dict[str, Any], sample: dict[str, Any], title: str,
               log: Callable[[str], None] | None = None, started: float | None = None,
               record_as: tuple[str, int] | None = None) -> GridSummary:
    """Train planned runs as the grid does (plan lines, layout, budget, pool or submitit, summary): a preset's
    grid, or another list of runs (the pilot's). `sample`: a config of the runs, for what they share (results
    folder, device, threads); `record_as` (preset, seeds): keep a grid record under that name."""
    deadline = (started or time.time()) + options["time_budget"] if options["time_budget"] else None
    results_dir = sample["results_dir"]
    layout = worker_layout(options, sample, runs)
    states = {run.run_id: results.run_state(results_dir, run.config) for run in runs}
    estimator = Estimator.from_records(results_dir, sample)
    say = log or print
    for line in plan_lines(title, runs, states, estimator, layout, options):
        say(line)
    if options["dry_run"] or not runs:
        return GridSummary()
    estimator.splits = preflight(runs)
    budget = Budget(deadline, estimator)
    for line in budget.lines([run for run in runs if not states[run.run_id].done]):
        say(line)
    started = time.perf_counter()
    summary = GridSummary()
    with _Progress(len(runs), log) as progress:
        def finished(run: plan.PlannedRun, result: RunResult) -> None:
            summary.results.append(result)
            progress.done(result)
            if result.action == "trained" and result.state == "complete":
                estimator.finished(run.config, result.seconds)

        if options["executor"] == "submitit":
            from reproduce import submitit_jobs

            estimates = {run.run_id: estimator.seconds(run.config)[0] for run in runs}
            submitit_jobs.run_jobs(runs, options, deadline, estimates, results_dir,
                                   lambda result: finished(_by_id(runs, result.run_id), result), say,
                                   local_limit=layout.workers, gpus_here=len(set(layout.groups) - {None}))
        elif layout.in_process:
            for run in runs:
                refusal = budget.refusal(run)
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


@dataclass
class Budget:
    """The grid's deadline (time.time() seconds, or None) and what each run is expected to take."""
    deadline: float | None
    estimator: Estimator

    def refusal(self, run: plan.PlannedRun) -> str | None:
        """Why this run must not start now, or None. A finished run costs nothing: it is reused."""
        if self.deadline is None or results.run_state(run.config["results_dir"], run.config).done:
            return None
        left = self.deadline - time.time()
        if left <= 0:
            return "the time budget has run out"
        seconds, source = self.estimator.seconds(run.config)
        if seconds > left:
            return f"needs about {seconds:.0f} s ({source}), {left:.0f} s left"
        return None

    def lines(self, todo: list[plan.PlannedRun]) -> list[str]:
        """The estimate of each network's first run left to train, said before training starts."""
        if self.deadline is None:
            return []
        seen, lines = set(), [f"  what the budget counts on ({self.deadline - time.time():.0f} s left):"]
        for run in todo:
            if run.network not in seen:
                seen.add(run.network)
                seconds, source = self.estimator.seconds(run.config)
                lines.append(f"    {run.network}: about {seconds:.0f} s a run ({source})")
        return lines


def deferred(run: plan.PlannedRun, why: str) -> RunResult:
    """A run the budget does not start: it stays as it was (missing, or running from a checkpoint)."""
    return RunResult(run.run_id, results.run_state(run.config["results_dir"], run.config).state, "not started", 0.0,
                     why, run.settings)


# ----------------------------------------------------------------------------- the pool

def worker_layout(options: dict[str, Any], config: dict[str, Any], runs: list[plan.PlannedRun] = ()) -> Layout:
    """Workers per GPU with CUDA (per_gpu, or auto: as many as the planned networks share a GPU
    with), else cores / cpu_threads on the CPU; an explicit number of workers wins."""
    import torch

    cuda = config["device"] == "cuda" or (config["device"] == "auto" and torch.cuda.is_available())
    if cuda:
        visible = _visible_gpus(torch.cuda.device_count())
        if options["workers"] != "auto":
            count = options["workers"]
            groups = {gpu: count // len(visible) + (i < count % len(visible)) for i, gpu in enumerate(visible)}
            groups = {gpu: n for gpu, n in groups.items() if n}
            return Layout(groups, f"{count} on {len(groups)} GPU(s), one run per worker")
        by_network = options["per_gpu"] == "auto"
        size = max((runs_per_gpu(run.config) for run in runs), default=1) if by_network else options["per_gpu"]
        how = "runs per GPU by network (runs_per_gpu)" if by_network else f"{size} runs per GPU"
        return Layout({gpu: size for gpu in visible}, f"{size * len(visible)} on {len(visible)} GPU(s), {how}",
                      by_network)
    cores = os.cpu_count() or 1
    workers = max(1, cores // config["cpu_threads"]) if options["workers"] == "auto" else options["workers"]
    why = f"{workers} on the CPU, {config['cpu_threads']} thread(s) each ({cores} cores)"
    if workers * config["cpu_threads"] > cores:
        why += "; more threads than cores: the runs slow each other down"
    return Layout({None: workers}, why)


def _visible_gpus(count: int) -> list[int]:
    """The GPU ids this process may use, as CUDA_VISIBLE_DEVICES names them (or 0..count-1)."""
    named = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return [int(g) for g in named if g.isdigit()][:count] or list(range(count))


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
    """Train the runs on fresh pools until they are done or a worker dies. Returns the runs left (those
    lost with a dead worker, then those not started) and whether any run finished."""
    context = multiprocessing.get_context("spawn")
    pools = {group: ProcessPoolExecutor(size, mp_context=context, initializer=_pin_worker, initargs=(group,))
             for group, size in layout.groups.items()}
    loads = dict.fromkeys(layout.groups, 0.0)
    queue, lost, progressed = list(runs), [], False
    in_flight: dict[Future, tuple[plan.PlannedRun, int | None]] = {}
    try:
        while queue or in_flight:
            if not lost:  # a dead worker: start nothing more on these pools
                _start_what_fits(queue, layout, loads, pools, in_flight, budget, finished)
            if not in_flight:
                break
            for future in wait(in_flight, return_when=FIRST_COMPLETED).done:
                run, group = in_flight.pop(future)
                loads[group] -= layout.share(run.config, group)
                try:
                    finished(run, future.result())
                    progressed = True
                except BrokenProcessPool:
                    lost.append(run)
    finally:
        for pool in pools.values():
            pool.shutdown(cancel_futures=True)
    return sorted(lost, key=lambda run: run.priority) + queue, progressed


def _start_what_fits(queue: list[plan.PlannedRun], layout: Layout, loads: dict[int | None, float],
                     pools: dict[int | None, ProcessPoolExecutor], in_flight: dict[Future, tuple],
                     budget: Budget, finished: Callable[[plan.PlannedRun, RunResult], None]) -> None:
    """Start runs in priority order while the next one has room; one the budget refuses is deferred.
    A run that must wait for room holds back the runs after it: the order is the plan's priority."""
    while queue:
        group = layout.place(queue[0].config, loads)
        if group is False:
            return
        run = queue.pop(0)
        refusal = budget.refusal(run)
        if refusal:
            finished(run, deferred(run, refusal))
            continue
        loads[group] += layout.share(run.config, group)
        in_flight[pools[group].submit(train_planned, run, budget.deadline)] = (run, group)


def _pin_worker(gpu: int | None) -> None:
    """Pin this worker to its GPU before anything in it starts CUDA."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


# ----------------------------------------------------------------------------- before training

def preflight(runs: list[plan.PlannedRun]) -> dict[tuple, Split]:
    """Fail once, before any worker starts, on what would fail every run: a results folder that
    cannot be written, data that is missing or corrupt. Loading each dataset here also unpacks it
    (or builds an image folder's cache) once, by one process, before workers would race to.
    Returns the size of each dataset's splits, for the first-run estimates."""
    for config in {run.config["results_dir"]: run.config for run in runs}.values():
        runner.check_writable(Path(config["results_dir"]))
    splits = {}
    for key, config in {data_key(run.config): run.config for run in runs}.items():
        data = load_dataset(config["dataset"], config["data_dir"], train_limit=config["train_limit"],
                            test_limit=config["test_limit"])
        splits[key] = Split(len(data.train_y), len(data.val_y), len(data.test_y))
    return splits


# ----------------------------------------------------------------------------- what it says

def plan_lines(title: str, runs: list[plan.PlannedRun], states: dict[str, results.RunState],
               estimator: Estimator, layout: Layout, options: dict[str, Any]) -> list[str]:
    todo = [run for run in runs if not states[run.run_id].done]
    known = {run.run_id: found[0] for run in todo if (found := estimator.from_earlier_runs(run.config))}
    lines = [f"grid: {title}: {len(runs)} distinct runs, {len(runs) - len(todo)} done, "
             f"{len(todo)} to train", "  network     runs  done  to train  estimated run time"]
    for network in dict.fromkeys(run.network for run in runs):
        mine = [run for run in runs if run.network == network]
        left = [run for run in todo if run.network == network]
        lines.append(f"  {network:10} {len(mine):5} {len(mine) - len(left):5} {len(left):9}  "
                     f"{_estimate_text(left, known)}")
    tiers = Counter(run.priority[0] for run in todo)
    first = f"the seeds' d2l recipe ({tiers[-1]} to train), " if tiers[-1] else ""
    lines.append(f"  order: {first}the baseline ({tiers[0]} to train), the other arms of "
                 f"{', '.join(plan.NAMED_ABLATIONS)} ({tiers[1]}), the rest ({tiers[2]}); seed by seed within each")
    executor = ("submitit" if options["executor"] == "submitit" else
                "in this process" if layout.in_process else "a pool of worker processes")
    lines.append(f"  workers: {layout.why}; {executor}")
    if known and options["executor"] == "local":
        lines.append(f"  time left: about {sum(known.values()) / layout.workers / 60:.1f} min on {layout.workers} "
                     "worker(s)" + (f", for the {len(known)} runs with an estimate" if len(known) < len(todo) else ""))
    if options["time_budget"]:
        lines.append(f"  time budget: {options['time_budget']:.0f} s")
    return lines


def _estimate_text(runs: list[plan.PlannedRun], known: dict[str, float]) -> str:
    found = [known[run.run_id] for run in runs if run.run_id in known]
    if not runs:
        return "-"
    if not found:
        return "no earlier record on this device (a first-run estimate from FLOPs when training starts)"
    text = f"{sum(found) / 60:.1f} min"
    return text if len(found) == len(runs) else text + f" for {len(found)} of {len(runs)} runs"


class _Progress:
    """One bar over the grid (runs done / total, ETA) and one line per finished run; in a notebook
    (`log` given) the lines alone."""

    def __init__(self, total: int, log: Callable[[str], None] | None):
        self.total, self.log, self.count = total, log, 0
        # disable=None: no bar where stderr is not a terminal (a log file would keep every redraw).
        self.bar = tqdm(total=total, unit="run", desc="grid", disable=True if log is not None else None,
                        file=sys.stderr)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()

    def done(self, result: RunResult) -> None:
        self.count += 1
        spent = f", {result.seconds:.0f} s" if result.action == "trained" else ""
        line = f"[{self.count}/{self.total}] {result.state} ({result.action}{spent}): {result.settings}: {result.detail}"
        if self.log is not None:
            self.log(line)
        else:
            self.bar.write(line)
            self.bar.update(1)


def summary_lines(summary: GridSummary, layout: Layout, options: dict[str, Any]) -> list[str]:
    counts, actions = summary.count(), summary.actions()
    states = ", ".join(f"{counts[state]} {state}" for state in results.RUN_STATES if counts[state])
    done = ", ".join(f"{actions[action]} {action}" for action in runner.ACTIONS if actions[action])
    lines = [f"grid: {len(summary.results)} runs: {states or 'none'} ({done or 'nothing done'}), in "
             f"{summary.wall_s / 60:.1f} min ({layout.why if options['executor'] == 'local' else 'submitit'})"]
    lines += [f"  {r.state.upper()} {r.run_id} ({r.settings}): {r.detail}" for r in summary.results
              if r.state in ("failed", "unmeasured")]
    if counts["running"] or counts["missing"]:
        lines.append(f"  the time budget ran out: {counts['running']} runs stopped at an epoch end (checkpointed), "
                     f"{actions['not started']} not started; rerun the same command to go on")
    return lines


def grid_record(preset: str, seeds: int, options: dict[str, Any], layout: Layout, config: dict[str, Any],
                summary: GridSummary, deadline: float | None = None) -> dict[str, Any]:
    """What this grid did and how long it took (results.write_grid_record keeps it for the book)."""
    return {
        "preset": preset, "seeds": seeds, "options": options, "workers": layout.workers, "layout": layout.why,
        "cpu_threads": config["cpu_threads"], "device": device_kind(pick_device(config["device"])),
        "finished_at": results.now_utc(), "wall_s": summary.wall_s, "states": dict(summary.count()),
        "actions": dict(summary.actions()),
        "deadline": None if deadline is None else datetime.fromtimestamp(deadline, timezone.utc).isoformat(
            timespec="seconds"),
        "from_empty": summary.actions()["reused"] == 0,
        "runs": [asdict(r) for r in summary.results], "code": results.git_state(),
        "versions": results.package_versions(),
    }
