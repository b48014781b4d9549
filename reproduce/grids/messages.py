"""What the grid says: its plan (runs, states, estimates, the yield of a budget), one line per finished run
with the time left, its summary, and the record it keeps of what it did.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from tqdm.auto import tqdm

from reproduce.grids.budget import play_out, yield_line
from reproduce.grids.estimates import Estimator
from reproduce.grids.layout import Layout
from reproduce.records import provenance, results
from reproduce.runs import runner
from reproduce.runs.runner import RunResult
from reproduce.spec import plan
from reproduce.training.execution import device_kind, pick_device

EXIT_FAILED, EXIT_STOPPED = 1, 75  # 75: EX_TEMPFAIL, "try again later" (the time budget ran out)


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


class Progress:
    """One bar over the grid and one line per finished run (in a notebook, `log` given, the lines alone), with
    the time left refreshed as runs finish: the estimated seconds of the runs still to finish (their epochs,
    images and width: reproduce.grids.estimates), at the pace the finished ones kept against their estimates."""

    def __init__(self, work: dict[str, float], log: Callable[[str], None] | None):
        self.work, self.log, self.count = work, log, 0
        self.done_work, self.started = 0.0, time.perf_counter()
        # disable=None: no bar where stderr is not a terminal (a log file would keep every redraw).
        self.bar = tqdm(total=len(work), unit="run", desc="grid", disable=True if log is not None else None,
                        file=sys.stderr, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} runs [{elapsed}{postfix}]")

    def __enter__(self) -> "Progress":
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
        "runs": [asdict(r) for r in summary.results], "code": provenance.git_state(),
        "versions": provenance.package_versions(),
    }


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
