"""The grid's time budget: which runs may start, and what a budget buys, said before it is spent.

A run starts only when its estimate (reproduce.grids.estimates) fits in the time left: the run itself, plus
the compile of its network where its worker has not compiled that network yet, plus a fresh worker's
start. A pool of N workers over one group may hand a network's first N runs to N different workers,
so each of those is charged a compile. The same rules, played out on the estimates alone, give the
budget's expected yield: the runs of each network that fit, in the plan's priority order.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from reproduce.grids.estimates import WORKER_START_S, Estimator
from reproduce.records import results
from reproduce.spec import plan


class Places(Protocol):
    """What the budget needs of the grid's Layout."""
    groups: dict[int | None, int]

    @property
    def in_process(self) -> bool: ...

    def share(self, config: dict[str, Any], group: int | None) -> float: ...

    def place(self, config: dict[str, Any], loads: dict[int | None, float]) -> int | None | bool: ...


Worker = tuple  # (group, slot): one worker process of the grid's pool; (None, 0) is the grid's own process


@dataclass
class Budget:
    """The grid's deadline (time.time() seconds, or None), its estimates, and what each worker has done."""
    deadline: float | None
    estimator: Estimator
    layout: Places
    compiled: set = field(default_factory=set)  # (worker, network): that worker holds the network's graphs
    warm: set = field(default_factory=set)  # workers that have started

    def cost(self, run: plan.PlannedRun, worker: Worker | None = None) -> tuple[float, str]:
        """(seconds, where they come from) of this run if it started now on `worker` (None: one not known yet,
        a submitit job's)."""
        estimate = self.estimator.seconds(run.config)
        seconds, extra = estimate.seconds, []
        if estimate.compile_s and (worker, run.network) not in self.compiled:
            seconds += estimate.compile_s
            extra.append(f"{estimate.compile_s:.0f} s to compile")
        if not self.layout.in_process and worker not in self.warm:
            seconds += WORKER_START_S[self.estimator.device_type]
            extra.append("a worker's start")
        return seconds, estimate.source + "".join(f" + {words}" for words in extra)

    def pick(self, run: plan.PlannedRun, free: list[Worker]) -> Worker:
        """The free worker to give this run: one that has compiled its network, else a warm one, else the first."""
        return min(free, key=lambda worker: ((worker, run.network) not in self.compiled, worker not in self.warm))

    def admit(self, run: plan.PlannedRun, worker: Worker = (None, 0)) -> str | None:
        """Let the run start on `worker` (which then holds its network's graphs), or say why it must not start
        now. A finished run costs nothing: it is reused."""
        if results.run_state(run.config["results_dir"], run.config).done:
            return None
        if self.deadline is not None:
            left = self.deadline - time.time()
            if left <= 0:
                return "the time budget has run out"
            seconds, source = self.cost(run, worker)
            if seconds > left:
                return f"needs about {seconds:.0f} s ({source}), {left:.0f} s left"
        self.compiled.add((worker, run.network))
        self.warm.add(worker)
        return None

    def new_workers(self) -> None:
        """The pool was replaced (a worker died): its workers start, and compile, afresh."""
        self.compiled.clear()
        self.warm.clear()

    def lines(self, todo: list[plan.PlannedRun]) -> list[str]:
        """The estimate of each network's first run left to train, and the yield, said before training."""
        if self.deadline is None:
            return []
        left = self.deadline - time.time()
        return [f"  what the budget counts on ({left:.0f} s left):", *first_run_lines(todo, self.estimator, self.layout),
                yield_line(todo, self.estimator, self.layout, left)]


def workers_of(layout: Places) -> dict[int | None, list[Worker]]:
    return {group: [(group, slot) for slot in range(size)] for group, size in layout.groups.items()}


def first_run_lines(todo: list[plan.PlannedRun], estimator: Estimator, layout: Places) -> list[str]:
    budget, lines = Budget(None, estimator, layout), []
    first_worker = next(iter(workers_of(layout).values()))[0]
    for run in {run.network: run for run in reversed(todo)}.values():
        seconds, source = budget.cost(run, first_worker)
        lines.append(f"    {run.network}: about {seconds:.0f} s for its first run ({source})")
    return lines[::-1]


def play_out(todo: list[plan.PlannedRun], estimator: Estimator, layout: Places,
             seconds: float = float("inf")) -> tuple[Counter, float]:
    """(runs of each network that start and finish within `seconds`, when the last of them ends): the grid's
    rules of placement, worker choice and refusal, played out on the estimates."""
    budget = Budget(None, estimator, layout)
    free = workers_of(layout)
    clock, loads, running, fits = 0.0, dict.fromkeys(layout.groups, 0.0), [], Counter()
    queue = list(todo)
    while queue:
        group = layout.place(queue[0].config, loads)
        if group is False:  # wait for the first run to end
            running.sort(key=lambda item: item[0])
            clock, worker, share = running.pop(0)
            loads[worker[0]] -= share
            free[worker[0]].append(worker)
            continue
        run = queue.pop(0)
        worker = budget.pick(run, free[group])
        cost, _ = budget.cost(run, worker)
        if clock + cost > seconds:
            continue  # refused, as the grid would: a later, shorter run may still fit
        budget.admit(run, worker)
        free[group].remove(worker)
        share = layout.share(run.config, group)
        loads[group] += share
        running.append((clock + cost, worker, share))
        fits[run.network] += 1
    return fits, max((end for end, _, _ in running), default=clock)


def yield_line(todo: list[plan.PlannedRun], estimator: Estimator, layout: Places, seconds: float) -> str:
    fits, _ = play_out(todo, estimator, layout, seconds)
    totals = Counter(run.network for run in todo)
    said = ", ".join(f"{network} {fits[network]} of {count}" for network, count in totals.items())
    return f"  expected yield of {seconds:.0f} s, from the estimates: {said or 'nothing to train'}"
