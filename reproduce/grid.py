"""The grid: every run a preset needs (reproduce.plan), trained by a pool of workers on this machine
or by submitit jobs, each run through reproduce.runner - so its lock, reuse and resume hold
whoever trains it, and two grids (or a grid and a notebook) on one results folder never train a
run twice.

- One worker: the runs train in this process, one after another (what a notebook does).
- Several: a concurrent.futures.ProcessPoolExecutor (spawned processes), runs handed out in the
  plan's priority order. With CUDA, `per_gpu` workers per visible GPU, each pinned to its GPU with
  CUDA_VISIBLE_DEVICES before CUDA starts; on the CPU, `auto` is cores / cpu_threads workers. Each
  run sets its own cpu_threads (params), so the number of workers never changes a run's weights.
- submitit (reproduce.submitit_jobs): one job per run; Slurm where it is installed (one job array),
  else submitit's local executor.

A worker that dies (SIGKILL, out of memory) breaks a ProcessPoolExecutor, and every run in it goes
back to its last epoch checkpoint. The grid then starts a new pool for the runs not finished, which
resume there with the same weights; after MAX_POOL_DEATHS deaths with no run finished in between,
the runs left are reported as failed. A run that raises is reported and the others go on; the
grid exits 1 when any run failed, after all the others ran.

With a time budget no run starts that its estimate (from earlier records of the same config, or
failing that of the same network, on this kind of device) says cannot finish in time, and running
runs stop at the last epoch end before the deadline; the grid then exits 75 ("try again"), and a
rerun goes on where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from reproduce import analysis, distributed, params, plan, results, runner
from reproduce.data import load_dataset
from reproduce.execution import device_kind, pick_device

MAX_POOL_DEATHS = 3
EXIT_FAILED, EXIT_STOPPED = 1, 75  # 75: EX_TEMPFAIL, "try again later" (the time budget ran out)
FINISHED = ("trained", "reused", "diverged")  # a diverged run is a result: retraining it diverges again
GRID_DIR = "grid"  # under the results folder: one record per grid that trained


@dataclass(frozen=True)
class RunResult:
    """What one planned run came to: status is one of trained, reused, diverged, failed, stopped
    (at the deadline, checkpointed) or deferred (not started: it could not finish in the budget)."""
    run_id: str
    status: str
    seconds: float
    detail: str
    settings: str


@dataclass
class Layout:
    """How many runs train at once, and the GPU each worker is pinned to (None: the CPU)."""
    workers: int
    gpus: list[int | None]
    why: str

    @property
    def in_process(self) -> bool:
        return self.workers == 1


@dataclass
class GridSummary:
    results: list[RunResult] = field(default_factory=list)
    wall_s: float = 0.0

    def count(self) -> Counter:
        return Counter(r.status for r in self.results)

    @property
    def exit_code(self) -> int:
        counts = self.count()
        if counts["failed"]:
            return EXIT_FAILED
        return EXIT_STOPPED if counts["stopped"] or counts["deferred"] else 0


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
             log: Callable[[str], None] | None = None) -> GridSummary:
    """Plan, print the plan, train it (unless a dry run) and write the grid's record.

    `log` gets one line per finished run instead of a progress bar (a notebook's stored output
    would keep every redraw of a bar)."""
    options = parse_options(options)
    # One bar over the grid: the runs' per-batch bars would write over it (and over each other).
    overrides = {"progress": False, **params.validate(overrides or {})}
    runs = plan.grid_plan(preset, seeds, options["only"] or None, overrides)
    sample = params.resolve(overrides, preset=preset)
    results_dir = sample["results_dir"]
    layout = worker_layout(options, sample)
    states = {run.run_id: results.run_state(results_dir, run.config) for run in runs}
    estimates = {run_id: (None if states[run_id].done else seconds)  # a finished run costs nothing
                 for run_id, seconds in estimate_seconds(runs, results_dir, sample).items()}
    say = log or print
    for line in plan_lines(preset, seeds, runs, states, estimates, layout, options):
        say(line)
    if options["dry_run"] or not runs:
        return GridSummary()
    preflight(runs)
    deadline = time.time() + options["time_budget"] if options["time_budget"] else None
    started = time.perf_counter()
    summary = GridSummary()
    with _Progress(len(runs), log) as progress:
        def finished(result: RunResult) -> None:
            summary.results.append(result)
            progress.done(result)

        if options["executor"] == "submitit":
            from reproduce import submitit_jobs

            submitit_jobs.run_jobs(runs, options, deadline, estimates, results_dir, finished, say,
                                   local_limit=layout.workers, gpus_here=len(set(layout.gpus) - {None}))
        elif layout.in_process:
            for run in runs:
                finished(train_planned(run, deadline, estimates.get(run.run_id)))
        else:
            run_pool(runs, layout, deadline, estimates, finished, say)
    summary.wall_s = time.perf_counter() - started
    for line in summary_lines(summary, layout, options):
        say(line)
    if set(summary.count()) - {"reused"}:  # a grid that only found its runs done measured nothing
        write_grid_record(results_dir, preset, seeds, options, layout, sample, summary)
    return summary


# ----------------------------------------------------------------------------- one run, in a worker

def train_planned(run: plan.PlannedRun, deadline: float | None, estimate: float | None) -> RunResult:
    """Train (or reuse) one planned run, and measure its final weights when a claim needs that.
    Whatever happens is returned, never raised: the grid goes on with the other runs."""
    started = time.perf_counter()
    settings = plan.describe_run(run.config)
    if deadline is not None and estimate is not None and time.time() + estimate > deadline:
        left = max(0.0, deadline - time.time())
        return RunResult(run.run_id, "deferred", 0.0, f"needs about {estimate:.0f} s, {left:.0f} s left", settings)
    try:
        record, trained = runner.run(run.config, deadline)
        if run.analyse and record["status"] == "complete" and distributed.speaks():  # once, not per rank
            analysis.ensure(run.config)
    except Exception as exc:  # noqa: BLE001 - reported by the grid, which goes on
        return RunResult(run.run_id, "failed", time.perf_counter() - started, f"{type(exc).__name__}: {exc}",
                         settings)
    return RunResult(run.run_id, _status(record, trained), time.perf_counter() - started, _detail(record), settings)


def _status(record: dict[str, Any], trained: bool) -> str:
    if not trained:
        return "reused"
    return {"running": "stopped", "diverged": "diverged"}.get(record["status"], "trained")


def _detail(record: dict[str, Any]) -> str:
    if record["status"] == "running":
        return f"stopped after epoch {len(record['epochs'])} of {record['config']['epochs']}, checkpointed"
    if record["status"] != "complete":
        return f"{record['status']}: {record.get('error')}"
    return f"test top-1 error {record['epochs'][-1]['test_top1_error']:.4f}"


# ----------------------------------------------------------------------------- the pool

def worker_layout(options: dict[str, Any], config: dict[str, Any]) -> Layout:
    """Workers per GPU with CUDA, else cores / cpu_threads on the CPU; an explicit number wins."""
    import torch

    cuda = config["device"] == "cuda" or (config["device"] == "auto" and torch.cuda.is_available())
    if cuda:
        visible = _visible_gpus(torch.cuda.device_count())
        slots = [gpu for gpu in visible for _ in range(options["per_gpu"])]
        workers = len(slots) if options["workers"] == "auto" else options["workers"]
        gpus = [slots[i % len(slots)] for i in range(workers)]
        return Layout(workers, gpus, f"{workers} on {len(visible)} GPU(s), {options['per_gpu']} per GPU")
    cores = os.cpu_count() or 1
    workers = max(1, cores // config["cpu_threads"]) if options["workers"] == "auto" else options["workers"]
    why = f"{workers} on the CPU, {config['cpu_threads']} thread(s) each ({cores} cores)"
    if workers * config["cpu_threads"] > cores:
        why += "; more threads than cores: the runs slow each other down"
    return Layout(workers, [None] * workers, why)


def _visible_gpus(count: int) -> list[int]:
    """The GPU ids this process may use, as CUDA_VISIBLE_DEVICES names them (or 0..count-1)."""
    named = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return [int(g) for g in named if g.isdigit()][:count] or list(range(count))


def run_pool(runs: list[plan.PlannedRun], layout: Layout, deadline: float | None,
             estimates: dict[str, float | None], finished: Callable[[RunResult], None],
             say: Callable[[str], None]) -> None:
    """Hand the runs to a pool of spawned workers, in order; start a new pool when a worker dies."""
    pending, deaths = list(runs), 0
    while pending:
        context = multiprocessing.get_context("spawn")
        slots = context.Queue()
        for gpu in layout.gpus:
            slots.put(gpu)
        lost = []
        with ProcessPoolExecutor(layout.workers, mp_context=context, initializer=_start_worker,
                                 initargs=(slots,)) as pool:
            futures = {pool.submit(train_planned, run, deadline, estimates.get(run.run_id)): run for run in pending}
            for future in as_completed(futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(futures[future])
                    continue
                finished(result)
                deaths = 0
        pending = sorted(lost, key=lambda run: run.priority)
        if not pending:
            break
        deaths += 1
        if deaths > MAX_POOL_DEATHS:
            for run in pending:
                finished(RunResult(run.run_id, "failed", 0.0, f"workers died {deaths} times in a row with no run "
                                   "finished in between (killed, or out of memory?)", plan.describe_run(run.config)))
            break
        say(f"a worker died (killed, or out of memory): a new pool takes the {len(pending)} runs not finished; "
            "the ones in flight resume from their last epoch checkpoint")


def _start_worker(slots) -> None:
    """Pin this worker to its GPU before anything in it starts CUDA."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


# ----------------------------------------------------------------------------- before training

def preflight(runs: list[plan.PlannedRun]) -> None:
    """Fail once, before any worker starts, on what would fail every run: a results folder that
    cannot be written, data that is missing or corrupt. Loading each dataset here also unpacks it
    (or builds an image folder's cache) once, by one process, before workers would race to."""
    for config in {run.config["results_dir"]: run.config for run in runs}.values():
        runner.check_writable(Path(config["results_dir"]))
    keys = ("dataset", "data_dir", "train_limit", "test_limit")
    for config in {tuple(run.config[k] for k in keys): run.config for run in runs}.values():
        load_dataset(config["dataset"], config["data_dir"], train_limit=config["train_limit"],
                     test_limit=config["test_limit"])


def estimate_seconds(runs: list[plan.PlannedRun], results_dir: str | Path,
                     config: dict[str, Any]) -> dict[str, float | None]:
    """Seconds each run should take: the mean of earlier records of the same config but the seed,
    else of the same network (the config without what the claims vary), on this kind of device."""
    kind = device_kind(pick_device(config["device"]))
    same_config: dict[str, list[float]] = {}
    same_network: dict[str, list[float]] = {}
    for record in _complete_records(results_dir):
        if _kind_of(record.get("device", "")) != kind:
            continue
        seconds = record["totals"].get("train_time_s", 0.0) + record["totals"].get("eval_time_s", 0.0)
        same_config.setdefault(_config_key(record["config"]), []).append(seconds)
        same_network.setdefault(_network_key(record["config"]), []).append(seconds)
    estimates = {}
    for run in runs:
        found = same_config.get(_config_key(run.config)) or same_network.get(_network_key(run.config))
        estimates[run.run_id] = sum(found) / len(found) if found else None
    return estimates


def _complete_records(results_dir: str | Path) -> list[dict[str, Any]]:
    found = []
    for path in results.runs_dir(results_dir).glob("*.json"):
        try:
            record = results.read_record(path)
        except (OSError, ValueError):
            continue
        if record.get("status") == "complete" and record.get("totals"):
            found.append(record)
    return found


def _kind_of(device: str) -> str:
    return re.sub(r", \d+ threads\)$", ")", device)


def _config_key(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.result_config(config).items() if k != "seed"}, sort_keys=True)


def _network_key(config: dict[str, Any]) -> str:
    varied = plan.compared_anywhere() | {"seed"}
    return json.dumps({k: v for k, v in params.result_config(config).items() if k not in varied}, sort_keys=True)


# ----------------------------------------------------------------------------- what it says

def plan_lines(preset: str, seeds: int, runs: list[plan.PlannedRun], states: dict[str, results.RunState],
               estimates: dict[str, float | None], layout: Layout, options: dict[str, Any]) -> list[str]:
    todo = [run for run in runs if not states[run.run_id].done]
    lines = [f"grid: preset {preset}, {seeds} seeds: {len(runs)} distinct runs, {len(runs) - len(todo)} done, "
             f"{len(todo)} to train", "  network     runs  done  to train  estimated run time"]
    for network in params.NETWORKS:
        mine = [run for run in runs if run.network == network]
        if mine:
            left = [run for run in todo if run.network == network]
            lines.append(f"  {network:10} {len(mine):5} {len(mine) - len(left):5} {len(left):9}  "
                         f"{_estimate_text(left, estimates)}")
    tiers = Counter(run.priority[0] for run in todo)
    lines.append(f"  order: the baseline ({tiers[0]} to train), the other arms of {', '.join(plan.NAMED_ABLATIONS)} "
                 f"({tiers[1]}), the rest ({tiers[2]}); seed by seed within each")
    executor = ("submitit" if options["executor"] == "submitit" else
                "in this process" if layout.in_process else "a pool of worker processes")
    lines.append(f"  workers: {layout.why}; {executor}")
    known = [estimates[run.run_id] for run in todo if estimates[run.run_id] is not None]
    if known and options["executor"] == "local":
        lines.append(f"  time left: about {sum(known) / layout.workers / 60:.1f} min on {layout.workers} worker(s)"
                     + (f", for the {len(known)} runs with an estimate" if len(known) < len(todo) else ""))
    if options["time_budget"]:
        lines.append(f"  time budget: {options['time_budget']:.0f} s")
    return lines


def _estimate_text(runs: list[plan.PlannedRun], estimates: dict[str, float | None]) -> str:
    known = [estimates[run.run_id] for run in runs if estimates[run.run_id] is not None]
    if not runs:
        return "-"
    if not known:
        return "no earlier record on this device"
    text = f"{sum(known) / 60:.1f} min"
    return text if len(known) == len(runs) else text + f" for {len(known)} of {len(runs)} runs"


class _Progress:
    """One bar over the grid (runs done / total, ETA) and one line per finished run; in a notebook
    (`log` given) the lines alone."""

    def __init__(self, total: int, log: Callable[[str], None] | None):
        self.total, self.log, self.count = total, log, 0
        self.bar = tqdm(total=total, unit="run", desc="grid", disable=log is not None, file=sys.stderr)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()

    def done(self, result: RunResult) -> None:
        self.count += 1
        spent = "" if result.status in ("reused", "deferred") else f" ({result.seconds:.0f} s)"
        line = f"[{self.count}/{self.total}] {result.status}: {result.settings}: {result.detail}{spent}"
        if self.log is not None:
            self.log(line)
        else:
            self.bar.write(line)
            self.bar.update(1)


def summary_lines(summary: GridSummary, layout: Layout, options: dict[str, Any]) -> list[str]:
    counts = summary.count()
    shown = ", ".join(f"{counts[s]} {s}" for s in ("trained", "reused", "diverged", "failed", "stopped", "deferred")
                      if counts[s] or s in ("trained", "reused", "failed"))
    lines = [f"grid: {len(summary.results)} runs: {shown}, in {summary.wall_s / 60:.1f} min "
             f"({layout.why if options['executor'] == 'local' else 'submitit'})"]
    lines += [f"  FAILED {r.run_id} ({r.settings}): {r.detail}" for r in summary.results if r.status == "failed"]
    if counts["stopped"] or counts["deferred"]:
        lines.append(f"  the time budget ran out: {counts['stopped']} runs stopped at an epoch end (checkpointed), "
                     f"{counts['deferred']} not started; rerun the same command to go on")
    return lines


def write_grid_record(results_dir: str | Path, preset: str, seeds: int, options: dict[str, Any], layout: Layout,
                      config: dict[str, Any], summary: GridSummary) -> Path:
    """What this grid did and how long it took, beside the run records (the book's environment page)."""
    counts = summary.count()
    record = {
        "preset": preset, "seeds": seeds, "options": options, "workers": layout.workers, "layout": layout.why,
        "cpu_threads": config["cpu_threads"], "device": device_kind(pick_device(config["device"])),
        "finished_at": results.now_utc(), "wall_s": summary.wall_s, "counts": dict(counts),
        "from_empty": counts["reused"] == 0,
        "runs": [asdict(r) for r in summary.results], "code": results.git_state(),
        "versions": results.package_versions(),
    }
    stamp = record["finished_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = Path(results_dir) / GRID_DIR / f"{preset}-{stamp}.json"
    results.atomic_write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())
    return path


def load_grid_records(results_dir: str | Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted((Path(results_dir) / GRID_DIR).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found
