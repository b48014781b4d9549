"""Every ablation notebook through papermill (after the grid has trained their runs: `nox -s reproduce`).

The executed notebooks are kept under results/notebooks/<preset>/, beside the run records:
they are the log of what ran. A notebook that fails is kept too (papermill writes it with the
error) and the book shows its claims as failed; the other notebooks still run.
"""

from __future__ import annotations

import time
from pathlib import Path

from reproduce import book, params, plan

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def notebook_names(only: str | None) -> list[str]:
    """The notebooks to run, in book order; `only` is a comma-separated subset."""
    known = [name for name in book.NOTEBOOK_ORDER if name in plan.ablations()]
    if not only:
        return known
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise params.ParamError(f"only: {unknown[0]!r} is not allowed; expected one or more of {', '.join(known)}")
    return [name for name in known if name in wanted]


def run_notebooks(names: list[str], preset: str, seeds: int, overrides: dict | None = None,
                  train: bool = True) -> list[str]:
    """Execute each notebook with these run parameters; return the failures as 'name: error' lines.
    With `train` off a notebook only reads the records (what is missing shows as missing)."""
    import papermill

    failures = []
    overrides = dict(overrides or {})
    results_dir = params.resolve(overrides)["results_dir"]
    out_dir = book.notebooks_dir(results_dir) / preset
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names, start=1):
        output = out_dir / f"{name}.ipynb"
        print(f"[{index}/{len(names)}] {name}: preset {preset}, {seeds} seeds -> {output}", flush=True)
        started = time.perf_counter()
        try:
            papermill.execute_notebook(str(EXPERIMENTS / f"{name}.ipynb"), str(output), cwd=str(Path.cwd()),
                                       parameters={**overrides, "preset": preset, "seeds": seeds, "train": train,
                                                   "results_dir": str(results_dir)},
                                       progress_bar=True)
        except Exception as exc:  # noqa: BLE001 - papermill's error carries the cell's traceback
            failures.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1]}")
            print(f"    FAILED after {time.perf_counter() - started:.0f} s: {failures[-1]}", flush=True)
            continue
        print(f"    done in {time.perf_counter() - started:.0f} s", flush=True)
    return failures
