"""What the book is built from: the executed notebooks under results/notebooks/<preset>/ (and what papermill
says of each), and every claim's outcome at each preset that has them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproduce.spec import params, plan
from reproduce.verdicts import claims, decisions


@dataclass
class ExecutedNotebook:
    """An executed notebook under results/notebooks/<preset>/, and what papermill says of it."""
    preset: str
    ablation: str
    path: Path
    parameters: dict[str, Any]
    error: str | None

    @property
    def seeds(self) -> int:
        return int(self.parameters.get("seeds") or 0) or params.get_preset(self.preset).seeds

    @property
    def overrides(self) -> dict[str, Any]:
        given = {k: v for k, v in self.parameters.items() if k in params.BY_NAME}
        return {k: v for k, v in params.validate(given).items() if params.BY_NAME[k].affects_result}


def notebooks_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "notebooks"


def executed_notebooks(results_dir: str | Path) -> list[ExecutedNotebook]:
    """The executed notebooks of each preset, in the registry's order of their ablations (plan.ablations)."""
    found = []
    for preset in params.PRESETS:
        for ablation in plan.ablations():
            path = notebooks_dir(results_dir) / preset / f"{ablation}.ipynb"
            if path.exists():
                found.append(read_notebook(path, preset, ablation))
    return found


def read_notebook(path: Path, preset: str, ablation: str) -> ExecutedNotebook:
    """papermill marks a notebook whose cell raised; its error output names the exception."""
    try:
        notebook = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return ExecutedNotebook(preset, ablation, path, {}, f"unreadable notebook: {exc}")
    meta = notebook.get("metadata", {}).get("papermill", {})
    error = None
    if meta.get("exception") or _error_output(notebook):
        error = _error_output(notebook) or "a cell raised (see the notebook)"
    elif meta.get("end_time") is None:
        error = "did not finish (no end time recorded: interrupted or still running)"
    return ExecutedNotebook(preset, ablation, path, meta.get("parameters", {}), error)


def _error_output(notebook: dict[str, Any]) -> str | None:
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}"
    return None


@dataclass
class PresetOutcomes:
    preset: str
    seeds: int
    outcomes: dict[str, claims.Outcome]
    versions: dict[str, list[decisions.RegisteredVersion]] = field(default_factory=dict)
    forest: str = ""  # the forest plot's file, beside the claims page


def all_outcomes(results_dir: str | Path, executed: list[ExecutedNotebook]) -> list[PresetOutcomes]:
    """Each preset that has executed notebooks, with every claim's outcome at it. A claim whose
    notebook failed shows as failed, with the notebook's error, whatever records exist."""
    registry = plan.load_registry()
    shown = []
    for preset in dict.fromkeys(nb.preset for nb in executed):
        by_ablation = {nb.ablation: nb for nb in executed if nb.preset == preset}
        seeds = max((nb.seeds for nb in by_ablation.values()), default=params.get_preset(preset).seeds)
        outcomes = {}
        for claim in registry.values():
            notebook = by_ablation.get(claim.ablation)
            outcomes[claim.id] = _outcome(claim, preset, notebook, results_dir)
        family = list(outcomes.values())
        decisions.apply_holm(family)  # the registered claims are decided together
        if not any(o.interval is not None or o.claim.kind == "model" and o.verdict in claims.VERDICTS
                   for o in family):
            continue  # a preset with no finished run behind any claim (a smoke rehearsal's notebooks) is not shown
        versions = {claim.id: decisions.registered_versions(claim, preset, seeds, results_dir, family=family)
                    for claim in registry.values() if claim.trains}
        shown.append(PresetOutcomes(preset, seeds, outcomes, {k: v for k, v in versions.items() if v}))
    return shown


def _outcome(claim: claims.Claim, preset: str, notebook: ExecutedNotebook | None,
             results_dir: str | Path) -> claims.Outcome:
    if claim.kind == "untested":
        return claims.evaluate(claim, preset, 1, results_dir)
    if notebook is None:
        return claims.Outcome(claim, "missing", f"no executed {claim.ablation} notebook for this preset")
    if notebook.error:
        return claims.Outcome(claim, "failed", f"notebook {claim.ablation}.ipynb failed: {notebook.error}")
    return claims.evaluate(claim, preset, notebook.seeds, results_dir, notebook.overrides)


# ----------------------------------------------------------------------------- pages
