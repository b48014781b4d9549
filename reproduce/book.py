"""Write the book's pages from results/ and build the HTML with jupyter-book, offline.

The book is a function of results/: the claims page, the methods page and the environment
page are generated here from the run records, the executed notebooks and the declarations
(claims.toml, params.PRESETS); the ablation pages are the executed notebooks themselves.
Nothing here trains. Generated files live in book/generated/ and book/_toc.yml (not in git).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproduce import claims, data, grid, params, plan, results

GENERATED = "generated"
NOTEBOOK_ORDER = ("activation", "towers", "lrn", "pooling", "architecture", "augmentation", "lighting", "dropout",
                  "weight_decay", "bias_init", "features", "depth")


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
    found = []
    for preset in params.PRESETS:
        for ablation in NOTEBOOK_ORDER:
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


# ----------------------------------------------------------------------------- outcomes

@dataclass
class PresetOutcomes:
    preset: str
    seeds: int
    outcomes: dict[str, claims.Outcome]


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
        shown.append(PresetOutcomes(preset, seeds, outcomes))
    return shown


def _outcome(claim: claims.Claim, preset: str, notebook: ExecutedNotebook | None,
             results_dir: str | Path) -> claims.Outcome:
    if claim.kind == "untested":
        return claims.evaluate(claim, preset, 1, results_dir)
    if notebook is None:
        return claims.Outcome(claim, "not run", f"no executed {claim.ablation} notebook for this preset")
    if notebook.error:
        return claims.Outcome(claim, "failed", f"notebook {claim.ablation}.ipynb failed: {notebook.error}")
    return claims.evaluate(claim, preset, notebook.seeds, results_dir, notebook.overrides)


# ----------------------------------------------------------------------------- pages

def claims_page(shown: list[PresetOutcomes]) -> str:
    lines = ["# The paper's claims, checked", "",
             "Each claim of the paper, the rule that decides it (fixed in `reproduce/claims.toml` before "
             "the runs) and what the runs in `results/` say. Verdicts: **reproduced** (the paper's direction "
             "at 95% confidence and at least the declared size), **consistent with the paper** (the direction "
             "holds, smaller than the declared size), **not reproduced** (an effect of the declared size is "
             "ruled out), **inconclusive** (with the seeds the observed spread would need), "
             "**not tested here** (with the reason). A claim whose runs are missing, unfinished, failed or "
             "made by other training code shows *not run*, *incomplete*, *failed* or *stale* instead.", ""]
    if not shown:
        lines += ["No executed notebooks under `results/notebooks/`: run `nox -s reproduce`.", ""]
    for group in shown:
        lines += _glance_table(group)
    untested = [c for c in plan.load_registry().values() if c.kind == "untested"]
    if untested:
        lines += ["## Not tested here", "", "| | claim | the paper's number | why not |", "|---|---|---|---|"]
        lines += [f"| [{c.id}](#{c.id.lower()}) | {_cell(c.title)} | {_cell(c.paper_value)} | {_cell(c.reason)} |"
                  for c in untested]
        lines.append("")
    lines += ["## The claims and their rules", ""]
    for claim in plan.load_registry().values():
        lines += _claim_section(claim, shown)
    return "\n".join(lines)


def _glance_table(group: PresetOutcomes) -> list[str]:
    preset = params.get_preset(group.preset)
    lines = [f"## Preset `{group.preset}`: {group.seeds} seeds", "", f"*{preset.proxy}.*", "",
             "| | claim | verdict | measured here: effect [95% CI], n | seeds to decide | lr per arm |",
             "|---|---|---|---|---|---|"]
    for outcome in group.outcomes.values():
        if outcome.claim.kind == "untested":
            continue
        needed = "" if outcome.seeds_needed is None else str(outcome.seeds_needed)
        lines.append(f"| [{outcome.claim.id}](#{outcome.claim.id.lower()}) | {_cell(outcome.claim.title)} | "
                     f"{verdict_badge(outcome.verdict)} | {_cell(outcome.short)} | {needed} | "
                     f"{_lr_flag(outcome, group.preset)} |")
    return lines + ["", "Effects are in points of error (or of the claim's measure), the other arm minus the paper's "
                    "arm: positive is the paper's direction. C1 and C12 are ratios of iterations. 'Seeds to decide': "
                    "how many seeds the observed spread needs for the 95% interval to clear the nearer decision "
                    "boundary (at most the seeds run, for a decided claim). 'lr per arm': whether each arm ran at "
                    "its own best learning rate (the paper tuned it for Figure 1's nets) or both at the preset's. "
                    "The paper's numbers, the rules, the per-seed values and the runs are below.", ""]


def _lr_flag(outcome: claims.Outcome, preset: str) -> str:
    if outcome.verdict == "not tested here":
        return "n/a"
    text = claims.lr_fairness(outcome.claim, preset)
    if text.startswith("tuned"):
        return "tuned"
    return "**not tuned**" if text.startswith("not tuned") else "n/a"


def _claim_section(claim: claims.Claim, shown: list[PresetOutcomes]) -> list[str]:
    lines = [f"({claim.id.lower()})=", f"### {claim.id}: {claim.title}", "",
             f"> {claim.quote} (section {claim.section})", "", f"- **Paper:** {claim.paper_value}",
             f"- **Rule:** {claims.rule_text(claim)}"]
    lines += [f"- **{NOTE_TITLES.get(key, key)}:** {text}" for key, text in claim.notes.items()]
    if claim.ablation and claim.ablation in NOTEBOOK_ORDER:
        lines.append(f"- **Notebook:** `experiments/{claim.ablation}.ipynb`")
    for group in shown[:1]:
        if claim.trains:
            lines.append(f"- **Learning rates ({group.preset}):** {claims.lr_fairness(claim, group.preset)}")
    for group in shown:
        outcome = group.outcomes[claim.id]
        lines.append(f"- **{group.preset}:** {verdict_badge(outcome.verdict)}"
                     + (f" {outcome.summary}" if outcome.summary and claim.kind != "untested" else ""))
        for arm, by_seed in outcome.per_seed.items():
            values = ", ".join(f"seed {s}: {v:.4g}" for s, v in sorted(by_seed.items()))
            lines.append(f"  - {arm}: {values}")
        if outcome.run_ids:
            lines.append(f"  - runs: {', '.join(f'`{r}`' for r in outcome.run_ids)}")
    return lines + [""]


NOTE_TITLES = {"target_note": "Target", "threshold_note": "Threshold", "lr_note": "Learning-rate sweep",
               "proxy_note": "On this project's proxies", "metric": "Metric"}


def methods_page() -> str:
    lines = ["# Methods: presets, proxies, deviations, statistics", "",
             "Every run is one call of `reproduce.train.run(config)`; the config is the preset's network, "
             "then the claim's conditions, then the arm, then the seed. Its hash names the record in "
             "`results/runs/`, so a finished run is never trained twice and two claims that need the same "
             "run share it.", "", "## Planning and training the runs", "",
             f"- `reproduce/plan.py` lists the distinct runs a preset needs, in a fixed priority order: the "
             f"baseline (the preset's AlexNet as the paper has it, shared by most claims), then the other arms of "
             f"the four named ablations ({', '.join(plan.NAMED_ABLATIONS)}), then the rest; seed 0 of every arm "
             "before seed 1, so that a grid stopped early leaves whole pairs.",
             "- `python -m reproduce grid` (and `nox -s reproduce`, before the notebooks) trains them: in one "
             "process, with a pool of worker processes (on the CPU, cores / cpu_threads of them; with CUDA, "
             "`--per-gpu` per GPU, each pinned to it), or as submitit jobs on Slurm. Every run takes a lock, so "
             "two grids, or a grid and a notebook, never train one run twice; a killed worker's run resumes "
             "from its last epoch checkpoint with the same weights.",
             "- A run on the CPU uses a fixed number of threads (`cpu_threads`, 1 by default), whatever the number "
             "of workers: the thread count changes how reductions are split and so the last bits of the weights "
             "(measured here), and the number of workers must never change a result.",
             "- A record made by other training code is stale and trained again, unless that code change was "
             "declared numerically equivalent (`reproduce/equivalent_code.toml`): reference runs of every model "
             "family, retrained by both codes on one machine, one thread, with bit-identical weights (the "
             "evidence is in `results/equivalence/`, and a test retrains them from git).",
             "", "## Data splits", "",
             "The learning-rate schedule watches the error on a validation split held out of the training images, "
             "as the paper's watched its validation error; the test images are only reported, never used to steer "
             "training. Held out: " + "; ".join(f"{name}: {count:,} images" for name, count in
                                                data.VALIDATION_IMAGES.items())
             + " (the last ones of Fashion-MNIST's 60,000 and CIFAR-10's 50,000 training images; an image folder's "
             "spread over its classes; a tenth of a smaller stand-in set). A training limit (`train_limit`) takes "
             "the first images of what remains. Every run record names the images of its three splits (`data`).",
             "", "## Presets", ""]
    for name, preset in params.PRESETS.items():
        lines += [f"### `{name}` ({preset.seeds} seeds)", "", f"{preset.proxy}.", "", "Deviations from the paper:", ""]
        lines += [f"- {d}" for d in preset.deviations] + [""]
        for network, config in preset.networks.items():
            shown = ", ".join(f"{k}={params.show_value(v)}" for k, v in config.items())
            lines.append(f"- network `{network}`: {shown}")
        lines.append("")
    lines += ["## Statistics", "",
              "- Runs are paired by seed: both arms of a seed start from the same random state and see the "
              "same data order, crops and flips.",
              "- A difference claim's effect is the mean over seeds of (other arm - paper's arm), with a 95% "
              "Student t interval (few seeds, unknown spread).",
              "- C1's speed-up is the ratio of mean iterations to the target training error (tanh / ReLU), "
              "read at the granularity of the training log; its 95% interval is a percentile bootstrap over "
              "seeds (10,000 resamples, pairs kept together). With 3 seeds a bootstrap has only 10 distinct "
              "resamples: read its interval with n beside it.",
              "- A 'within' claim (C8, C16, C17) compares two measures of the same runs' final weights "
              "(`reproduce/analysis.py`: 10-crop and centre-crop error, nearest neighbours, conv1's kernels), "
              "paired by seed like a difference claim.",
              "- C1's arms each run at every learning rate of a declared sweep and are judged at their own best "
              "(fewest mean iterations to the target); every other trained claim runs both arms at the preset's lr "
              "and is flagged 'not tuned'.",
              "- Overfitting (C4b, C7, C10) is the test error minus the error on (up to 5,000) training images "
              "seen as test images - centre view, no dropout - after the last epoch.",
              "- 'Seeds to decide' is the smallest number of seeds whose 95% interval, at the observed "
              "spread, would clear the nearer decision boundary; it is shown for every claim, decided or not.", "",
              "## The defaults: the paper's recipe", "", "| parameter | default | allowed | meaning |",
              "|---|---|---|---|"]
    for param in params.PARAMS:
        lines.append(f"| `{param.name}` | {params.show_value(param.default)} | {_cell(param.allowed())} | "
                     f"{_cell(param.help)} |")
    return "\n".join(lines + [""] + faults_table()) + "\n"


def faults_table() -> list[str]:
    """The faults and bad inputs tried, from the list tests/test_faults.py runs one test per case of."""
    from reproduce import faults

    lines = ["## Faults and bad inputs tried", "",
             f"Each of these {len(faults.CASES)} cases is an automated test on the CPU, run in CI "
             "(`tests/test_faults.py`, which checks that no case lacks a test); this table is generated from "
             "the same list (`reproduce/faults.py`).", "",
             "| kind | fault or input | what the user gets |", "|---|---|---|"]
    for kind in faults.KINDS:
        lines += [f"| {kind} | {_cell(case.fault)} | {_cell(case.outcome)} |"
                  for case in faults.CASES if case.kind == kind]
    return lines


def environment_page(results_dir: str | Path, shown: list[PresetOutcomes]) -> str:
    frame = results.load_records(results_dir)
    lines = ["# Environment and cost", "",
             "Where and with what the runs behind the verdicts were made, and what they cost. Times are "
             "training plus evaluation, summed over a claim's runs (a run shared by two claims counts "
             "for both).", ""]
    lines += speed_section(results_dir) + grid_section(results_dir)
    if frame.empty:
        return "\n".join(lines + ["No run records yet.", ""])
    used = {rid for group in shown for o in group.outcomes.values() for rid in o.run_ids}
    lines += _cost_table(frame, shown) + _machines_table(frame[frame["run_id"].isin(used)])
    unreadable = frame[frame["status"] == "unreadable"]
    frame = frame[frame["status"] != "unreadable"]
    lines += _unreadable_list(unreadable)
    unused = frame[~frame["run_id"].isin(used)]
    digests = list(frame["training_sha256"]) if "training_sha256" in frame else []
    stale = [d for d in digests if not results.is_current_code(d)]
    declared = [d for d in digests if results.is_current_code(d) and d != results.training_digest()]
    lines += ["## Records not behind any verdict", "",
              f"{len(unused)} of {len(frame)} records in `results/runs/` are not used by the claims above "
              "(other parameters or presets); "
              f"{len(stale)} were made by other training code than the current (stale); {len(declared)} by earlier "
              "training code declared numerically equivalent to the current (`reproduce/equivalent_code.toml`, "
              "with its evidence in `results/equivalence/`).", ""]
    return "\n".join(lines)


def grid_section(results_dir: str | Path) -> list[str]:
    """Wall time of each grid that trained: the whole preset's cost, per way of running it."""
    found = grid.load_grid_records(results_dir)
    lines = ["## Wall time of the grid", "",
             "Each `python -m reproduce grid` (or `nox -s reproduce`) that trained something left a record in "
             "`results/grid/`: how the runs were spread (workers, threads per run), how many it trained and reused, "
             "and its wall time from start to last run. 'From empty' means it reused no run.", ""]
    if not found:
        return lines + ["No grid record yet.", ""]
    lines += ["| finished | preset | runs: trained, reused, failed | how | wall time | from empty | device | commit |",
              "|---|---|---|---|---|---|---|---|"]
    for r in found:
        counts = r["counts"]
        how = r["layout"] if r["options"]["executor"] == "local" else f"submitit ({r['layout']})"
        commit = str(r["code"].get("commit"))[:10] + (" (dirty)" if r["code"].get("dirty") else "")
        lines.append(f"| {r['finished_at'][:16].replace('T', ' ')} | {r['preset']} ({r['seeds']} seeds) | "
                     f"{len(r['runs'])}: {counts.get('trained', 0) + counts.get('diverged', 0)}, "
                     f"{counts.get('reused', 0)}, {counts.get('failed', 0)} | {_cell(how)} | "
                     f"**{r['wall_s'] / 60:.1f} min** | {'yes' if r['from_empty'] else 'no'} | {_cell(r['device'])} | "
                     f"{commit} |")
    return lines + [""]


def _unreadable_list(unreadable: Any) -> list[str]:
    """Records that do not parse: named, never dropped silently (a rerun trains their runs again)."""
    if unreadable.empty:
        return []
    lines = ["## Unreadable records", "",
             f"{len(unreadable)} file(s) in `results/runs/` do not parse; their runs count as failed, and "
             "rerunning trains them again:", ""]
    return lines + [f"- `{Path(path).name}`: {_cell(error)}" for path, error in
                    zip(unreadable["path"], unreadable["error"])] + [""]


def speed_section(results_dir: str | Path) -> list[str]:
    """The bench records: the trainer against the seeds' d2l loop, per device and network."""
    from reproduce import bench

    found, problems = bench.load_bench_records(results_dir)
    lines = ["## Speed: the trainer against the seeds' d2l loop", "",
             "Measured by `nox -s bench` (records in `results/bench/`): training images per second of the "
             "project's trainer and of the d2l loop the seed notes use (a DataLoader doing per-image Resize + "
             "ToTensor, eager fp32), same network, data, batch and device, each loop in a fresh process. "
             f"Targets: at least {bench.CPU_TARGET_RATIO:g}x on a CPU; at least {bench.GPU_TARGET_RATIO:g}x "
             f"and {bench.GPU_TARGET_MFU:.0%} MFU on an H100. MFU is achieved FLOP/s over the peak: a GPU's "
             "datasheet peak, or on a CPU the fp32 matrix-multiply rate measured on it. Peak memory is the device "
             "memory allocated on a GPU, the process's peak resident memory on a CPU.", ""]
    lines += [f"- **{problem}**" for problem in problems]
    if not found:
        return lines + ["No bench records yet.", ""]
    lines += ["| device | network, batch | d2l loop | trainer | ratio | MFU (d2l loop) | peak memory (d2l loop) "
              "| against the target | measured |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(found, key=lambda r: (r["device"], r["network"])):
        how = r["trainer"]["how"]
        mfu = f"{r['mfu']:.1%} ({r['baseline_mfu']:.1%})" if r.get("mfu") is not None else "no peak on file"
        target = bench.target_verdict(r).replace("target ", "")
        lines.append(
            f"| {_cell(r['device'])} | {r['network']} ({r['model']}), {r['batch']} "
            f"| {r['baseline_images_per_s']:,.1f}/s | {r['images_per_s']:,.1f}/s ({bench.describe_how(how)}) "
            f"| **{r['ratio']:.2f}x** | {mfu} "
            f"| {r['peak_memory'] / 1e9:.2f} GB ({r['baseline_peak_memory'] / 1e9:.2f} GB) "
            f"| {_cell(target)} | {r['measured_at'][:10]}, torch {r['versions']['torch'].split('+')[0]} |")
    if not any(r["device_type"] == "cuda" for r in found):
        lines += ["", "No GPU record: the GPU targets are unmeasured."]
    return lines + [""]


def _cost_table(frame: Any, shown: list[PresetOutcomes]) -> list[str]:
    seconds = dict(zip(frame["run_id"], frame.get("total_train_time_s", 0).fillna(0)
                       + frame.get("total_eval_time_s", 0).fillna(0)))
    lines = ["## Wall time per claim", "", "| preset | claim | runs | training + evaluation |", "|---|---|---|---|"]
    for group in shown:
        for outcome in group.outcomes.values():
            if outcome.run_ids:
                spent = sum(seconds.get(r, 0.0) for r in outcome.run_ids)
                lines.append(f"| {group.preset} | {outcome.claim.id} | {len(outcome.run_ids)} | {spent / 60:.1f} min |")
        distinct = {r for o in group.outcomes.values() for r in o.run_ids}
        total = sum(seconds.get(r, 0.0) for r in distinct)
        lines.append(f"| {group.preset} | all (distinct runs) | {len(distinct)} | {total / 60:.1f} min |")
    return lines + [""]


def _machines_table(frame: Any) -> list[str]:
    lines = ["## Machines and versions", "", "| device | torch | torchvision | python | runs | commit |",
             "|---|---|---|---|---|---|"]
    if frame.empty:
        return lines + [""]
    versions = frame["versions"].apply(lambda v: v or {})
    keyed = frame.assign(torch=versions.apply(lambda v: v.get("torch")),
                         torchvision=versions.apply(lambda v: v.get("torchvision")),
                         python=versions.apply(lambda v: v.get("python")))
    for key, group in keyed.groupby(["device", "torch", "torchvision", "python"], dropna=False):
        commits = ", ".join(sorted({f"{str(c)[:10]}{' (dirty)' if d else ''}" for c, d in
                                    zip(group["git_commit"], group["git_dirty"])}))
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(group)} | {commits} |")
    return lines + [""]


def verdict_badge(verdict: str) -> str:
    css = "v-" + verdict.split()[0].replace("not", "no")
    if verdict == "not tested here":
        css = "v-untested"
    return f'<span class="verdict {css}">{verdict}</span>'


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------- assembling

def write_sources(results_dir: str | Path, book_dir: str | Path) -> Path:
    """Generate the pages and the table of contents; returns the book directory."""
    book = Path(book_dir)
    out = book / GENERATED
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    executed = executed_notebooks(results_dir)
    shown = all_outcomes(results_dir, executed)
    (out / "claims.md").write_text(claims_page(shown))
    (out / "methods.md").write_text(methods_page())
    (out / "environment.md").write_text(environment_page(results_dir, shown))
    chapters = []
    for nb in executed:
        target = out / nb.preset / f"{nb.ablation}.ipynb"
        target.parent.mkdir(exist_ok=True)
        group = next(g for g in shown if g.preset == nb.preset)
        copy_notebook(nb, target, [o for o in group.outcomes.values() if o.claim.ablation == nb.ablation])
        chapters.append(f"{GENERATED}/{nb.preset}/{nb.ablation}")
    (book / "_toc.yml").write_text(_toc(chapters))
    return book


OUTDATED = ("stale", "not run", "incomplete")


def copy_notebook(nb: ExecutedNotebook, target: Path, outcomes: list[claims.Outcome]) -> None:
    """Copy an executed notebook into the book, with a warning on top when its outputs no longer
    match the records (other training code, other parameters, runs missing)."""
    notebook = json.loads(nb.path.read_text())
    outdated = [o for o in outcomes if o.verdict in OUTDATED]
    if outdated or nb.error:
        why = (f"it failed: {nb.error}" if nb.error else
               "its outputs were made by other code or parameters than the current ones: "
               + "; ".join(f"{o.claim.id} is {o.verdict}" for o in outdated))
        warning = {"cell_type": "markdown", "metadata": {}, "id": "book-warning",
                   "source": [f"```{{warning}}\nThis executed notebook is not current evidence: {why}. "
                              "The claims page shows what the records say now.\n```"]}
        notebook["cells"].insert(0, warning)
    target.write_text(json.dumps(notebook))


def _toc(notebook_pages: list[str]) -> str:
    lines = ["# Generated by reproduce.book: do not edit.", "format: jb-book", "root: intro", "parts:",
             "  - caption: Results", "    chapters:", f"      - file: {GENERATED}/claims"]
    for preset in dict.fromkeys(page.split("/")[1] for page in notebook_pages):
        lines += [f"  - caption: Ablations, preset {preset} (executed notebooks)", "    chapters:"]
        lines += [f"      - file: {page}" for page in notebook_pages if page.split("/")[1] == preset]
    lines += ["  - caption: How", "    chapters:", f"      - file: {GENERATED}/methods",
              f"      - file: {GENERATED}/environment"]
    return "\n".join(lines) + "\n"


def build(results_dir: str | Path = "results", book_dir: str | Path = "book") -> int:
    """Generate the pages, then run jupyter-book (never executing a notebook)."""
    book = write_sources(results_dir, book_dir)
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book)]
    finished = subprocess.run(command)
    if finished.returncode == 0:
        print(f"book: {book / '_build' / 'html' / 'index.html'}")
    return finished.returncode
