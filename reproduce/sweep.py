"""Train every run an ablation needs: its claims' two arms over the seeds, finished runs skipped;
then measure the final weights of the runs a "within" claim needs (reproduce.analysis).

Used by the notebooks and by `python -m reproduce ablation NAME` (which needs no papermill:
the same runs on a GPU machine that has only torch).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from tqdm.auto import tqdm

from reproduce import analysis, claims, params, results, runner


def ablation_runs(ablation: str, preset: str, seeds: int, overrides: dict[str, Any] | None = None,
                  kinds: tuple[str, ...] = ("difference", "ratio", "within")) -> list[dict[str, Any]]:
    """The distinct run configs of the ablation's claims of these kinds (arms shared by two claims run once)."""
    unique: dict[str, dict[str, Any]] = {}
    for claim in claims.claims_of(ablation):
        if claim.kind not in kinds:
            continue
        for by_seed in claims.planned_runs(claim, preset, seeds, overrides).values():
            for config in by_seed.values():
                unique.setdefault(results.run_id(config), config)
    return list(unique.values())


def run_ablation(ablation: str, preset: str, seeds: int, overrides: dict[str, Any] | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train (or reuse) each run; a failed run is recorded and the others still train.

    `progress` shows a bar over the runs (a terminal); `log` instead gets one line per finished
    run (a notebook, whose stored output would keep every redraw of a bar). Returns the records.
    Raises at the end, naming the failed runs, so that a notebook or a command that calls this
    never looks finished when a run is not."""
    configs = ablation_runs(ablation, preset, seeds, overrides)
    records, failures = [], []
    bar = tqdm(configs, desc=f"{ablation} ({preset}, {seeds} seeds)", unit="run",
               disable=not progress or log is not None)
    for index, config in enumerate(bar, start=1):
        bar.set_postfix_str(describe_run(config))
        started = time.perf_counter()
        reused = False
        try:
            record, trained = runner.run(config)
            records.append(record)
            reused = not trained
        except Exception as exc:  # noqa: BLE001 - recorded by train.run; reported below
            failures.append(f"{results.run_id(config)}: {type(exc).__name__}: {exc}")
        if log is not None:
            spent = "reused" if reused else f"{time.perf_counter() - started:.0f} s"
            log(f"[{index}/{len(configs)}] {describe_run(config)}: {_outcome_line(records, failures, config)} "
                f"({spent})")
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(configs)} runs failed:\n" + "\n".join(failures))
    analyse_runs(ablation, preset, seeds, overrides, log or print)
    return records


def analyse_runs(ablation: str, preset: str, seeds: int, overrides: dict[str, Any] | None,
                 log: Callable[[str], None]) -> None:
    """10-crop errors, features and kernels of each run a "within" claim needs (kept when current)."""
    for config in ablation_runs(ablation, preset, seeds, overrides, kinds=("within",)):
        started = time.perf_counter()
        found = analysis.ensure(config)
        measures = ", ".join(f"{name} {value:.4f}" for name, value in found["measures"].items())
        log(f"analysed {describe_run(config)}: {measures} ({time.perf_counter() - started:.0f} s)")


def _outcome_line(records: list[dict[str, Any]], failures: list[str], config: dict[str, Any]) -> str:
    if failures and failures[-1].startswith(results.run_id(config)):
        return "FAILED"
    record = records[-1]
    if record["status"] != "complete":
        return f"{record['status']}: {record.get('error')}"
    return f"test top-1 error {record['epochs'][-1]['test_top1_error']:.4f}"


def describe_run(config: dict[str, Any]) -> str:
    """The settings that tell a run apart from its preset's defaults, for progress lines."""
    base = params.defaults()
    shown = ("model", "activation", "lrn", "pooling", "dropout", "groups", "kernels", "remove_conv", "lr", "augment",
             "weight_decay", "lighting", "seed")
    return " ".join(f"{k}={params.show_value(config[k])}" for k in shown if k == "seed" or config[k] != base[k]
                    or k == "model")
