"""The book's run pages: every run behind a claim's verdict, one click from the number it backs.

One page per claim and preset lists its runs in one table: what each run varied, its seed, final
numbers, commit and training-code digest, and the record itself to download; the device and versions
they share said once above it, and a figure of all its runs' curves. The claims page links each
claim's page.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from reproduce.records import results
from reproduce.spec import params, plan

RUNS = "runs"  # the run pages' folder under the book's generated pages
RECORDS = "records"  # the records, copied beside the run pages for download


def page_name(claim_id: str, preset: str) -> str:
    return f"{claim_id.lower()}-{preset}"


def label(claim_id: str, preset: str, run_id: str) -> str:
    """The anchor of one run's row (unique across the book: a run serves several claims)."""
    return f"run-{page_name(claim_id, preset)}-{run_id}".lower()


def write(results_dir: str | Path, groups: list[Any], folder: Path) -> list[str]:
    """Write the run pages of every claim with runs (groups: book_inputs.PresetOutcomes); returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORDS).mkdir(exist_ok=True)
    names = []
    for group in groups:
        for outcome in group.outcomes.values():
            records = [r for r in map(lambda run_id: _read(results_dir, run_id), outcome.run_ids) if r]
            if not records:
                continue
            name = page_name(outcome.claim.id, group.preset)
            for record in records:
                shutil.copyfile(_record_path(results_dir, record["run_id"]), folder / RECORDS / f"{record['run_id']}.json")
            _curves(outcome.claim, group.preset, records).savefig(folder / f"{name}.png", dpi=100,
                                                                 bbox_inches="tight")
            plt.close("all")
            (folder / f"{name}.md").write_text(_page(outcome, group.preset, records, name))
            names.append(name)
    if names:
        (folder / "index.md").write_text(_index(groups, names))
    return names


def _index(groups: list[Any], names: list[str]) -> str:
    lines = ["# The runs behind the verdicts", "",
             "One page per claim and preset: every run its verdict was computed from, with its settings, final "
             "numbers, device, versions, code and record. The claims page links each run id to its entry.", ""]
    for group in groups:
        lines += [f"## Preset `{group.preset}`", ""]
        lines += [f"- [{o.claim.id}: {o.claim.title}]({page_name(o.claim.id, group.preset)}.md) "
                  f"({len(o.run_ids)} runs, {o.verdict})" for o in group.outcomes.values()
                  if page_name(o.claim.id, group.preset) in names]
        lines.append("")
    return "\n".join(lines)


def _record_path(results_dir: str | Path, run_id: str) -> Path:
    return results.runs_dir(results_dir) / f"{run_id}.json"


def _read(results_dir: str | Path, run_id: str) -> dict[str, Any] | None:
    try:
        return json.loads(_record_path(results_dir, run_id).read_text())
    except (OSError, ValueError):
        return None


def _page(outcome: Any, preset: str, records: list[dict[str, Any]], name: str) -> str:
    claim = outcome.claim
    lines = [f"# {claim.id}'s runs, preset `{preset}`", "",
             f"The {len(records)} runs behind {{ref}}`{claim.id}: {claim.title} <{claim.id.lower()}>` "
             f"(verdict: **{outcome.verdict}**): one row a run, its record (the JSON the verdict was computed from) to "
             "download.", "", *_shared(records), "",
             f"```{{figure}} {name}.png", ":width: 100%", "",
             "Every run of this claim: " + ("training error by iteration (the log window's mean)."
                                             if claim.kind == "ratio" else "top-1 validation error by epoch."), "```", "",
             "| run (its record) | settings | seed | epochs | test error | error on training images | commit | "
             "training code |", "|---|---|---|---|---|---|---|---|"]
    lines += [_row(claim, preset, record) for record in records]
    return "\n".join(lines + [""])


def _shared(records: list[dict[str, Any]]) -> list[str]:
    """What every run of the page shares, said once: device and versions (or each value and its count)."""
    def said(values: list[str]) -> str:
        counts = {v: values.count(v) for v in dict.fromkeys(values)}
        return "; ".join(v if len(counts) == 1 else f"{v} ({n} runs)" for v, n in counts.items())

    devices = [str(r.get("device")) + (f", {r['world']['size']} ranks" if r.get("world", {}).get("size", 1) > 1 else "")
               for r in records]
    versions = [", ".join(f"{k} {v}" for k, v in sorted(r.get("versions", {}).items())) for r in records]
    return [f"- **device:** {said(devices)}", f"- **versions:** {said(versions)}"]


def _row(claim: Any, preset: str, record: dict[str, Any]) -> str:
    config, code, last = record.get("config", {}), record.get("code", {}), (record.get("epochs") or [{}])[-1]
    anchor = f'<a id="{label(claim.id, preset, record["run_id"])}"></a>'
    clean = {False: "clean", True: "dirty"}.get(code.get("dirty"), "unknown")
    errors = [f"{100 * last[key]:.2f}%" if isinstance(last.get(key), (int, float)) else ""
              for key in ("test_top1_error", "fit_top1_error")]
    status = "" if record.get("status") == "complete" else f" ({record.get('status')})"
    return (f"| {anchor}{{download}}`{record['run_id'].rsplit('_', 1)[-1]} <{RECORDS}/{record['run_id']}.json>`{status} | "
            f"{_varies(config, claim, preset) if config else ''} | {config.get('seed')} | "
            f"{len(record.get('epochs', []))} | {errors[0]} | {errors[1]} | "
            f"`{(code.get('commit') or 'none')[:10]}` ({clean}) | `{(code.get('training_sha256') or '')[:10]}` |")


def _curves(claim: Any, preset: str, records: list[dict[str, Any]]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(10, 3.8))
    colours: dict[str, str] = {}
    first_seed = min((record.get("config", {}).get("seed", 0) for record in records), default=0)
    for record in records:
        tag = _varies(record.get("config", {}), claim, preset)
        colour = colours.setdefault(tag, f"C{len(colours) % 10}")  # one colour per arm, every seed in it
        if claim.kind == "ratio":
            points = record.get("iterations", [])
            ax.plot([p["iteration"] for p in points], [100 * p["train_error"] for p in points], linewidth=1, alpha=0.7,
                    color=colour, label=tag if record["config"].get("seed") == first_seed else None)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
            epochs = record.get("epochs", [])
            ax.plot([e["epoch"] for e in epochs], [100 * e["val_top1_error"] for e in epochs], marker="o", linewidth=1,
                    alpha=0.7, color=colour, label=tag if record["config"].get("seed") == first_seed else None)
    ax.set(xlabel="iteration" if claim.kind == "ratio" else "epoch",
           ylabel="training error, points" if claim.kind == "ratio" else "top-1 validation error, points")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _varies(config: dict[str, Any], claim: Any, preset: str) -> str:
    """What tells the run apart from its preset's network (plan.describe_run), without its seed (shown on
    its own): the arms of every claim differ in what the registry compares."""
    config = {**params.defaults(), **config}  # a record made before a parameter existed: its default
    baseline = params.resolve({}, preset=preset, network=claim.network)
    return plan.describe_run(config, baseline, seed=False)
