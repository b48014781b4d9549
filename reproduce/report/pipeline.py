"""Every ablation notebook through papermill (after the grid has trained their runs: `nox -s reproduce`).

The executed notebooks are kept under results/notebooks/<preset>/, beside the run records:
they are the log of what ran. A notebook that fails is kept too (papermill writes it with the
error) and the book shows its claims as failed; the other notebooks still run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reproduce.base.paths import PROJECT_ROOT
from reproduce.report import book_inputs
from reproduce.spec import params, plan

ROOT = PROJECT_ROOT
EXPERIMENTS = ROOT / "experiments"
# papermill's metadata that changes at every execution: left out when an executed notebook is compared with
# the one already kept, so that a notebook whose outputs are the same stays as it is on disk.
VOLATILE = ("start_time", "end_time", "duration")


def notebook_names(only: str | None) -> list[str]:
    """The notebooks to run, in book order; `only` is a comma-separated subset."""
    known = plan.ablations()
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
    out_dir = book_inputs.notebooks_dir(results_dir) / preset
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names, start=1):
        output = out_dir / f"{name}.ipynb"
        print(f"[{index}/{len(names)}] {name}: preset {preset}, at most {seeds} seeds a claim -> {output}", flush=True)
        started = time.perf_counter()
        fresh = Path(tempfile.mkstemp(suffix=".ipynb", dir=out_dir)[1])
        failed = None
        try:
            # In one order whatever the caller's: papermill writes them into the notebook as given.
            given = {**overrides, "preset": preset, "seeds": seeds, "train": train, "results_dir": str(results_dir)}
            papermill.execute_notebook(str(EXPERIMENTS / f"{name}.ipynb"), str(fresh), cwd=str(Path.cwd()),
                                       parameters=dict(sorted(given.items())), progress_bar=True)
        except Exception as exc:  # noqa: BLE001 - papermill's error carries the cell's traceback
            failed = f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
            failures.append(failed)
        written = settle(fresh, output)
        took = f"{time.perf_counter() - started:.0f} s"
        if failed:
            print(f"    FAILED after {took}: {failed}", flush=True)
        else:
            print(f"    done in {took}" + ("" if written else " (the same outputs: the kept notebook stays)"), flush=True)
    return failures


ADHOC = Path("results") / "notebooks" / "adhoc"  # one notebook run by hand: not the book's, not in git


def run_one(name: str, parameters: dict[str, str], folder: Path = ADHOC) -> tuple[str | None, Path]:
    """Execute one ablation notebook with these parameters (strings, as typed: the notebook parses them);
    returns (the error in one line, or None; the executed notebook)."""
    import papermill

    if name not in plan.ablations():
        raise params.ParamError(f"ablation: {name!r} is not allowed; expected one of {', '.join(plan.ablations())}")
    output = folder / f"{name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    # papermill warns of every parameter the notebook's cell does not list; the notebook itself refuses the
    # unknown ones, in one line with the nearest known name.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    try:
        papermill.execute_notebook(str(EXPERIMENTS / f"{name}.ipynb"), str(output), parameters=parameters,
                                   cwd=str(Path.cwd()), progress_bar=sys.stderr.isatty())
    except papermill.PapermillExecutionError as error:  # the cell's own exception, without papermill's frames
        return f"{error.ename}: {error.evalue}", output
    return None, output


def settle(fresh: Path, output: Path) -> bool:
    """Keep the freshly executed notebook at `output`, its paths relative to the project and its cell ids
    stable, unless the notebook already there has the same content but for papermill's timings (then the
    old file stays, untouched). Returns whether `output` was written."""
    notebook = _portable(json.loads(fresh.read_text()))
    notebook.setdefault("metadata", {}).setdefault("papermill", {})["output_path"] = str(output)
    try:
        if output.exists() and _comparable(json.loads(output.read_text())) == _comparable(notebook):
            return False
        text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        fresh.write_text(text)
        os.replace(fresh, output)
        return True
    finally:
        fresh.unlink(missing_ok=True)


def _portable(notebook: dict[str, Any]) -> dict[str, Any]:
    """Paths relative to the project root, and the injected parameters cell's id fixed (papermill draws one)."""
    meta = notebook.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            path = Path(meta[key])
            if path.is_absolute():  # a relative path is already the project's
                meta[key] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    for cell in notebook.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)  # the kernel's message timestamps
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"
    return notebook


def _comparable(notebook: dict[str, Any]) -> dict[str, Any]:
    copy = _portable(json.loads(json.dumps(notebook)))  # a copy first: _portable edits in place
    meta = copy.get("metadata", {}).get("papermill", {})
    for key in VOLATILE:
        meta.pop(key, None)
    for cell in copy.get("cells", []):
        for key in VOLATILE:
            cell.get("metadata", {}).get("papermill", {}).pop(key, None)
    return copy


# ----------------------------------------------------------------------------- a new ablation's notebook

STANDARD_CELLS = (  # (tags, source) of the code cells every ablation notebook runs
    (("hide-output",), 'from reproduce.report import notebook\n\nstudy = notebook.start("{ablation}", globals())\nstudy.run()'),
    ((), "study.headline()"),
    ((), "study.figures();"),
    ((), "study.per_seed_figures();"),
    ((), "notebook.describe_preset(study)"),
    (("hide-output",), "study.verdicts()"),
    (("hide-output",), "study.plan()"),
)
PARAMETERS_CELL = ('preset = "auto"\nseeds = 0\nresults_dir = "results"\ndata_dir = "data"\ndevice = "auto"\n'
                   "train = True  # off: only read the results folder (after a grid)")


def write_notebook(ablation: str, folder: Path = EXPERIMENTS) -> Path:
    """experiments/<ablation>.ipynb for an ablation of the registry: a title from its claims, the
    parameters cell and the standard calls into reproduce.report.notebook (`python -m reproduce new-notebook`)."""
    import nbformat

    claims = plan.claims_of(ablation)
    if not claims:
        raise params.ParamError(f"ablation: {ablation!r} is in no claim of reproduce/spec/claims.toml; add its claims "
                                "there first (README: Add a claim)")
    path = Path(folder) / f"{ablation}.ipynb"
    if path.exists():
        raise params.ParamError(f"ablation: {path} exists already; edit it, or delete it to write it anew")
    ids = ", ".join(claim.id for claim in claims)
    intro = [f"# {ablation.replace('_', ' ').capitalize()} ({ids})", ""]
    intro += [f"**{c.id}** (section {c.section}): {c.title}.\n\n> {c.quote}\n" for c in claims]
    intro.append(f"Decides {ids} by the rule in `reproduce/spec/claims.toml`.")
    cells = [nbformat.v4.new_markdown_cell("\n".join(intro)),
             nbformat.v4.new_code_cell(PARAMETERS_CELL, metadata={"tags": ["parameters"]})]
    cells += [nbformat.v4.new_code_cell(source.format(ablation=ablation), metadata={"tags": list(tags)})
              for tags, source in STANDARD_CELLS]
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
    nbformat.write(notebook, str(path))
    return path

