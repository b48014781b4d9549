"""What every experiment notebook calls: check its parameters, train its runs, show its verdicts.

papermill only warns about a parameter the notebook does not declare and injects it anyway.
`start()` therefore reads every name the parameters cell and papermill's injected cell left in
the notebook's namespace and stops at once, naming it, when it is not a declared parameter
(reproduce.spec.params: the sweep's and the runs'), or when its value is not allowed.
"""

from __future__ import annotations

import difflib
import types
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas
import torch
from IPython.display import Markdown

# tqdm.auto asks for ipywidgets in a kernel; the notebooks log one line per run instead of bars
# (widgets would also need scripts from a CDN in the book).
warnings.filterwarnings("ignore", message="IProgress not found")
pandas.set_option("display.max_colwidth", None)  # verdict sentences are read whole, not cut at 50

from reproduce.datasets import data
from reproduce.grids import grid
from reproduce.records import results  # noqa: E402
from reproduce.report import figures
from reproduce.runs import analysis, architecture
from reproduce.spec import params, plan
from reproduce.verdicts import claims, decisions, wording

# What IPython itself puts in a kernel's namespace: never a parameter.
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


@dataclass
class Study:
    """One notebook's ablation at one preset: its claims, runs and outcomes."""
    ablation: str
    preset: str
    seeds: int
    overrides: dict[str, Any]
    claims: list[plan.Claim] = field(default_factory=list)
    train: bool = True

    @property
    def results_dir(self) -> str:
        return self.overrides.get("results_dir", params.BY_NAME["results_dir"].default)

    def plan(self) -> pandas.DataFrame:
        """One row per run this notebook needs, and what the results folder holds of it."""
        rows = []
        for run in plan.grid_plan(self.preset, self.seeds, [self.ablation], self.overrides):
            found = results.run_state(self.results_dir, run.config)
            rows.append({"run": run.run_id, "settings": run.settings, "claims": ", ".join(run.claims),
                         "state": found.state if found.state != "missing" else "to train"})
        return pandas.DataFrame(rows, columns=["run", "settings", "claims", "state"])  # columns even when empty

    def run(self, workers: int | str = "auto") -> None:
        """Train what is missing, through the grid, as `python -m reproduce grid --only <ablation>` would
        (the architecture notebook only writes the model's table). Raises when a run failed."""
        if self.ablation == "architecture":
            architecture.save(self.results_dir)
            return
        if not self.train:
            missing = self.plan().query("state != 'complete' and state != 'diverged'")
            print(f"train off: nothing is trained here; {len(missing)} of the runs are not done"
                  + "".join(f"\n  {row.run}: {row.state}" for row in missing.itertuples()))
            return
        # Batch-level bars would fill the stored notebook with thousands of lines: one line per run.
        overrides = {"progress": False, **self.overrides}
        summary = grid.run_grid(self.preset, self.seeds, {"only": self.ablation, "workers": workers}, overrides,
                                log=print)
        failed = [r for r in summary.results if r.state == "failed"]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(summary.results)} runs failed:\n"
                               + "\n".join(f"{r.run_id}: {r.detail}" for r in failed))

    def outcomes(self) -> list[claims.Outcome]:
        """This notebook's claims, decided with the whole family of registered claims (Holm's correction
        counts every claim tested on the preset, whichever notebook shows it)."""
        family = decisions.evaluate_family(self.preset, self.seeds, self.results_dir, self._run_overrides())
        mine = {c.id for c in self.claims}
        return [o for o in family if o.claim.id in mine]

    def verdicts(self) -> pandas.DataFrame:
        return verdict_table(self.outcomes())

    def headline(self) -> Markdown:
        """What the page opens with: each claim's quote and section, and its verdict with the estimate,
        the interval and what it was measured on."""
        return Markdown("\n\n".join(headline_text(o, self.preset) for o in self.outcomes()))

    def figures(self) -> list:
        """The main figure of each claim that has a verdict from runs."""
        return [figures.claim_figure(o, self._records(o.claim)) for o in self._drawn()]

    def per_seed_figures(self) -> list:
        """The per-seed pairs behind each verdict (a 'within' claim's main figure already is one)."""
        return [figures.per_seed_figure(o) for o in self._drawn() if o.claim.kind != "within"]

    def _drawn(self) -> list[claims.Outcome]:
        """The outcomes from runs, once per computation: a claim that takes another's runs (C15b with C15
        here) is that claim's figure, as on the forest plot, and has no runs of its own to draw."""
        shown = [o for o in self.outcomes() if o.claim.trains and o.per_seed]
        return [outcome for _, outcome in decisions.merge_identical(shown)]

    def costs(self) -> pandas.DataFrame:
        """Per arm: parameters, training seconds per epoch and peak memory, means over seeds."""
        rows = []
        for claim in self.claims:
            if claim.kind in ("difference", "ratio"):
                for label, by_seed in self._records(claim).items():
                    rows.append({"claim": claim.id, "arm": label, **_cost_row([r for r in by_seed.values() if r])})
        return pandas.DataFrame(rows).drop_duplicates(subset=["arm"])

    def kernel_figure(self):
        """Figure 3: conv1's kernels of the first seed's run (the runs C17 measures)."""
        found = self._analysed_run()
        if found is None:
            return None
        config, measured = found
        kernels = torch.tensor(measured["conv1_kernels"])
        return figures.kernel_grid(kernels, measured["groups"], f"Figure 3: conv1's {len(kernels)} kernels "
                                   f"({config['model']}, seed {config['seed']}, {config['dataset']})")

    def neighbour_figure(self):
        """Figure 4: test images and their nearest test images, in the last hidden layer and in pixels."""
        found = self._analysed_run()
        if found is None:
            return None
        config, measured = found
        images = data.load_dataset(config["dataset"], config["data_dir"], test_limit=config["test_limit"])
        return figures.neighbour_figure(measured["figure"], images.test_x, images.test_y, images.classes,
                                        f"Figure 4: nearest neighbours among {measured['neighbour_images']:,} "
                                        f"test images ({config['model']}, seed {config['seed']})")

    def _analysed_run(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        plans = [plan.planned_runs(c, self.preset, 1, self._run_overrides())
                 for c in self.claims if c.kind == "within"]
        found = next((p for p in plans if p), None)  # a colour claim on greyscale data plans nothing
        if found is None:
            return None
        first_arm = next(iter(found.values()))  # seed -> config
        config = next(iter(first_arm.values()))
        record = _complete_record(self.results_dir, config)
        measured = analysis.load(self.results_dir, record) if record else None
        return (config, measured) if measured else None

    def layer_table(self) -> pandas.DataFrame:
        summary = architecture.load(self.results_dir)
        return pandas.DataFrame([{
            "layer": r["name"], "kind": r["kind"], "kernels": r["detail"],
            "output (C, H, W)": tuple(r["output_shape"]), "paper": tuple(r["paper_output"] or ()) or "",
            "matches Figure 2": {True: "yes", False: "NO", None: ""}[r["matches"]],
            "parameters": r["params"], "neurons": r["neurons"]} for r in summary["layers"]])

    def _run_overrides(self) -> dict[str, Any]:
        # Execution details do not change which runs a claim needs: leave them out of the lookup.
        return {k: v for k, v in self.overrides.items() if params.BY_NAME[k].affects_result}

    def _records(self, claim: plan.Claim) -> dict[str, dict[int, dict]]:
        planned = plan.planned_runs(claim, self.preset, self.seeds, self._run_overrides())
        return {arm: {seed: _complete_record(self.results_dir, config)
                      for seed, config in by_seed.items()} for arm, by_seed in planned.items()}


def _complete_record(results_dir: str, config: dict[str, Any]) -> dict[str, Any] | None:
    found = results.run_state(results_dir, config)
    return found.record if found.state == "complete" else None


def _cost_row(records: list[dict[str, Any]]) -> dict[str, Any]:
    if not records:
        return {}
    epochs = [e for r in records for e in r["epochs"]]
    return {"parameters": f"{records[0]['model_parameters']:,}",
            "training s / epoch": round(sum(e["train_time_s"] for e in epochs) / len(epochs), 1),
            "peak memory (GB)": round(max(r["totals"]["peak_memory_bytes"] or 0 for r in records) / 1e9, 2),
            "runs": len(records)}


def user_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """The names a parameters cell (and papermill's injected cell) defined."""
    return {name: value for name, value in namespace.items()
            if not name.startswith("_") and name not in _KERNEL_NAMES
            and not isinstance(value, (types.ModuleType, types.FunctionType, type))}


def start(ablation: str, namespace: dict[str, Any], cuda_available: bool | None = None) -> Study:
    """Validate the notebook's parameters and return its Study; ParamError names a bad one, in one line."""
    try:
        return _start(ablation, namespace, cuda_available)
    except params.ParamError:
        _short_tracebacks()
        raise


def _start(ablation: str, namespace: dict[str, Any], cuda_available: bool | None) -> Study:
    if ablation not in plan.ablations():
        raise params.ParamError(f"ablation: {ablation!r} is not one of {', '.join(plan.ablations())}")
    given = user_parameters(namespace)
    declared = {**params.SWEEP_BY_NAME, **params.NOTEBOOK_BY_NAME}
    unknown = sorted(set(given) - set(declared) - set(params.BY_NAME))
    if unknown:
        known = [*declared, *params.BY_NAME]
        near = difflib.get_close_matches(unknown[0], known, n=1)
        raise params.ParamError(f"unknown parameter {unknown[0]!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                                + f": this notebook takes {', '.join(known)}")
    sweep_values = {n: declared[n].parse(given[n]) for n in declared if n in given}
    overrides = params.validate({n: v for n, v in given.items() if n in params.BY_NAME})
    if cuda_available is None:
        import torch
        cuda_available = torch.cuda.is_available()
    preset = params.pick_preset(sweep_values.get("preset", "auto"), cuda_available)
    seeds = sweep_values.get("seeds", 0) or params.get_preset(preset).seeds
    study = Study(ablation, preset, seeds, overrides, plan.claims_of(ablation), sweep_values.get("train", True))
    for claim in study.claims:  # an override of what a claim compares stops here, not mid-run
        if claim.trains:
            plan.planned_runs(claim, preset, 1, study._run_overrides())
    return study


def _short_tracebacks() -> None:
    """A bad parameter is one line, not a traceback through this package: IPython's minimal mode shows the
    exception's type and message alone (papermill then reports that line)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.InteractiveTB.set_mode("Minimal")


def verdict_table(outcomes: list[claims.Outcome]) -> pandas.DataFrame:
    return pandas.DataFrame([{
        "claim": o.claim.id, "what": o.claim.title, "paper": o.claim.paper_value, "verdict": o.verdict,
        "measured": o.summary, "registered seeds": o.claim.seeds or "",
        "preliminary": "yes" if o.preliminary else ""} for o in outcomes])


def describe_preset(study: Study) -> Markdown:
    """The preset and its deviations from the paper, as wrapped text."""
    preset = params.get_preset(study.preset)
    seeds = ", ".join(f"{c.id} {len(plan.claim_seeds(c, study.preset, study.seeds))}" for c in study.claims if c.trains)
    lines = [f"**Preset `{study.preset}`** (seeds per arm: {seeds or 'none: nothing is trained'}): {preset.proxy}.", "",
             "Deviations from the paper:", ""]
    lines += [f"- {d}" for d in preset.deviations]
    return Markdown("\n".join(lines))


def headline_text(outcome: claims.Outcome, preset: str) -> str:
    claim = outcome.claim
    lines = [f"**{claim.id}: {claim.title}** (section {claim.section})", "", f"> {claim.quote}", "",
             f"**Verdict: {outcome.verdict}**" + (" on this proxy" if outcome.verdict in claims.DECIDED and claim.trains
                                                  else "")
             + (f" (preliminary: {outcome.interval.n} of its {claim.seeds} registered seeds)" if outcome.preliminary
                else "") + f": {outcome.summary}"]
    if outcome.adjusted is not None:
        lines += ["", wording.holm_text(outcome)]
    proxy = wording.proxy_text(claim, preset)
    if proxy and outcome.interval is not None:
        lines += ["", f"Tested on {proxy}"]
    return "\n".join(lines)
