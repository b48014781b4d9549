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

from reproduce import params, plan, results, runner, runs_index, slurm_options
from reproduce.data import load_dataset
from reproduce.budget import Budget, Worker, play_out, workers_of, yield_line
from reproduce.estimates import GPU_STEP_FLOPS, Estimator, Split, data_key, large_net, runs_at_once
from reproduce.runner import RunResult, train_planned
from reproduce.execution import device_kind, pick_device
from reproduce.flops import training_flops_per_image

MAX_POOL_DEATHS = 3
EXIT_FAILED, EXIT_STOPPED = 1, 75  # 75: EX_TEMPFAIL, "try again later" (the time budget ran out)
# A net whose step is smaller than estimates.GPU_STEP_FLOPS shares a GPU with other runs (the four-layer
# net's step is ~8 GFLOP, the paper net's ~490), up to MAX_RUNS_PER_GPU. Memory never binds first for these
# nets: the paper net at batch 128 peaked at 2.2 GB on an H100.
MAX_RUNS_PER_GPU = 4
GPU_PRESETS = ("gpu", "paper")  # sized for a GPU: a CPU would take days
ASSUMED_GPU = "NVIDIA H200"  # the GPU the device tool lends: what a dry run plans for on a machine without one


@dataclass
class Layout:
    """How runs share this machine: a pool of `groups[g]` workers per group g (a GPU id, or None for
    the CPU), each group holding a load of 1: a run takes one worker's part of it, or with
    `by_network` (GPUs) 1 / runs_per_gpu of its network."""
    groups: dict[int | None, int]
    why: str
    by_network: bool = False
    paper_at_once: int = 1  # paper-net runs at once on one GPU (runs_per_gpu)

    @property
    def workers(self) -> int:
        return sum(self.groups.values())

    @property
    def in_process(self) -> bool:
        return self.workers == 1

    def share(self, config: dict[str, Any], group: int | None) -> float:
        """The part of its group one run of this config takes."""
        return 1.0 / (runs_per_gpu(config, self.paper_at_once) if self.by_network else self.groups[group])

    def place(self, config: dict[str, Any], loads: dict[int | None, float]) -> int | None | bool:
        """The least loaded group with room for this run, or False when none has room now."""
        fits = [group for group in self.groups if loads[group] + self.share(config, group) <= 1.0 + 1e-9]
        return min(fits, key=lambda group: loads[group]) if fits else False


def runs_per_gpu(config: dict[str, Any], paper_at_once: int = 1) -> int:
    """Runs of this config that share one GPU: as many as it takes to fill it, by FLOPs per step; a net as
    large as the paper's as many as the bench measured to give the most images a second (paper_at_once)."""
    if large_net(config):
        return paper_at_once
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
    for line in [*device.warnings, *plan_lines(title, runs, states, estimator, layout, options)]:
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
    with _Progress(work, log) as progress:
        def finished(run: plan.PlannedRun, result: RunResult) -> None:
            summary.results.append(result)
            progress.done(result)
            if result.action == "trained" and result.state == "complete":
                estimator.finished(results.read_record(results.record_path(results_dir, run.config)))

        if options["executor"] == "submitit":
            from reproduce import submitit_jobs  # lazy: submitit is not on every machine (the lent GPU has none)

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

@dataclass(frozen=True)
class PlanDevice:
    """The device the grid plans for: this machine's, or in a dry run the GPU one asked for."""
    type: str  # "cuda" or "cpu"
    kind: str  # execution.device_kind's words: what estimates are matched on
    gpus: tuple[int, ...] = ()  # the visible GPU ids
    warnings: tuple[str, ...] = ()


def plan_device(config: dict[str, Any], dry_run: bool, gpu_preset: bool = False) -> PlanDevice:
    """CUDA where the config asks for it (or auto finds it), else the CPU. A dry run asked for CUDA on a
    machine without it plans for ASSUMED_GPU, and says so; a real grid refuses at once."""
    import torch

    here = torch.cuda.is_available()
    if config["device"] == "cuda" or (config["device"] == "auto" and here):
        if here:
            return PlanDevice("cuda", device_kind(torch.device("cuda", 0)), tuple(_visible_gpus(torch.cuda.device_count())))
        if not dry_run:
            raise params.ParamError("device: cuda was asked for but torch sees no CUDA device here; --dry-run plans "
                                    f"for one {ASSUMED_GPU}, a grid needs one")
        return PlanDevice("cuda", ASSUMED_GPU, (0,), (
            f"  no CUDA device here: this dry run plans for one {ASSUMED_GPU} (the GPU the device tool lends)",))
    warnings = ()
    if gpu_preset:
        warnings = ("  warning: a GPU preset on a machine without CUDA: these runs would train on the CPU, for days; "
                    "run it where torch sees a GPU (or --device cuda --dry-run to plan for one)",)
    return PlanDevice("cpu", device_kind(torch.device("cpu")), (), warnings)


def worker_layout(options: dict[str, Any], config: dict[str, Any], runs: list[plan.PlannedRun] = (),
                  device: PlanDevice | None = None) -> Layout:
    """Workers per GPU with CUDA (per_gpu, or auto: as many as the planned networks share a GPU
    with), else cores / cpu_threads on the CPU; an explicit number of workers wins."""
    device = device or plan_device(config, dry_run=False)
    if device.type == "cuda":
        visible = list(device.gpus)
        if options["workers"] != "auto":
            count = options["workers"]
            groups = {gpu: count // len(visible) + (i < count % len(visible)) for i, gpu in enumerate(visible)}
            groups = {gpu: n for gpu, n in groups.items() if n}
            return Layout(groups, f"{count} on {len(groups)} GPU(s), one run per worker")
        by_network = options["per_gpu"] == "auto"
        at_once = runs_at_once(config["results_dir"], device.kind).runs
        size = max((runs_per_gpu(run.config, at_once) for run in runs), default=1) if by_network else options["per_gpu"]
        how = (f"runs per GPU by network (runs_per_gpu; the paper net {at_once} at once"
               f"{', as the bench measured best' if at_once > 1 else ' until the bench measures more to pay'})"
               if by_network else f"{size} runs per GPU")
        return Layout({gpu: size for gpu in visible}, f"{size * len(visible)} on {len(visible)} GPU(s), {how}",
                      by_network, at_once)
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
    lines = [f"grid: {title}: {len(runs)} distinct runs, {len(runs) - len(todo)} done, "
             f"{len(todo)} to train", "  network     runs  done  to train  estimated run time (compile aside)"]
    for network in dict.fromkeys(run.network for run in runs):
        mine = [run for run in runs if run.network == network]
        left = [run for run in todo if run.network == network]
        lines.append(f"  {network:10} {len(mine):5} {len(mine) - len(left):5} {len(left):9}  "
                     f"{_estimate_text(left, estimator)}")
    tiers = Counter(run.priority[0] for run in todo)
    first = f"the seeds' d2l recipe ({tiers[-1]} to train), " if tiers[-1] else ""
    lines.append(f"  order: {first}the baseline ({tiers[0]} to train), the other arms of "
                 f"{', '.join(plan.NAMED_ABLATIONS)} ({tiers[1]}), the rest ({tiers[2]}); seed by seed within each")
    executor = ("submitit" if options["executor"] == "submitit" else
                "in this process" if layout.in_process else "a pool of worker processes")
    lines.append(f"  workers: {layout.why}; {executor}")
    if todo and options["executor"] == "local":
        _, wall = play_out(todo, estimator, layout)
        lines.append(f"  time left: about {wall / 60:.1f} min on {layout.workers} worker(s), compiles included")
    if options["time_budget"]:
        lines.append(f"  time budget: {options['time_budget']:.0f} s")
        if todo and options["executor"] == "local":
            lines.append(yield_line(todo, estimator, layout, options["time_budget"]))
    return lines


def _estimate_text(runs: list[plan.PlannedRun], estimator: Estimator) -> str:
    if not runs:
        return "-"
    found = [estimator.seconds(run.config) for run in runs]
    sources = sorted({estimate.source for estimate in found})
    return f"{sum(e.seconds for e in found) / 60:.1f} min ({'; '.join(sources)})"


class _Progress:
    """One bar over the grid and one line per finished run (in a notebook, `log` given, the lines alone), with
    the time left refreshed as runs finish: the estimated seconds of the runs still to finish (their epochs,
    images and width: reproduce.estimates), at the pace the finished ones kept against their estimates."""

    def __init__(self, work: dict[str, float], log: Callable[[str], None] | None):
        self.work, self.log, self.count = work, log, 0
        self.done_work, self.started = 0.0, time.perf_counter()
        # disable=None: no bar where stderr is not a terminal (a log file would keep every redraw).
        self.bar = tqdm(total=len(work), unit="run", desc="grid", disable=True if log is not None else None,
                        file=sys.stderr, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}{postfix}]")

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()

    def left(self) -> str:
        remaining = sum(self.work.values()) - self.done_work
        if self.done_work <= 0 or remaining <= 0:
            return ""
        pace = (time.perf_counter() - self.started) / self.done_work
        return f"about {remaining * pace / 60:.1f} min left"

    def done(self, result: RunResult) -> None:
        self.count += 1
        self.done_work += self.work.get(result.run_id, 0.0)
        spent = f", {result.seconds:.0f} s" if result.action == "trained" else ""
        left = self.left()
        line = (f"[{self.count}/{len(self.work)}] {result.state} ({result.action}{spent}): {result.settings}: "
                f"{result.detail}" + (f"; {left}" if left else ""))
        if self.log is not None:
            self.log(line)
        else:
            self.bar.write(line)
            self.bar.set_postfix_str(left, refresh=False)
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
