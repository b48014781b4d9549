"""The environment page: where and with what the runs were made, what they cost, the grids, the bench and the
seeds' d2l recipe beside the numbers the seed notes print."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reproduce.grids import estimates
from reproduce.records import code_history, dataframe, provenance, results, runs_index
from reproduce.report.book_inputs import PresetOutcomes
from reproduce.report.md import cell
from reproduce.spec import params, plan, registration
from reproduce.tools import bench_records
from reproduce.verdicts import rule_versions


def environment_page(results_dir: str | Path, shown: list[PresetOutcomes]) -> str:
    frame = dataframe.load_records(results_dir)
    lines = ["# Environment and cost", "",
             "Where and with what the runs behind the verdicts were made, and what they cost. Times are "
             "training plus evaluation, summed over a claim's runs (a run shared by two claims counts "
             "for both). Every record is one row of "
             f"{{download}}`results/runs/index.csv <{runs_index.FILE_NAME}>` (run id, preset, network, the settings "
             "that tell it apart, seed, the claims it serves, state, test error, commit, device): grep it.", ""]
    lines += speed_section(results_dir) + d2l_section(results_dir) + grid_section(results_dir)
    if frame.empty:
        return "\n".join(lines + ["No run records yet.", ""])
    used = {rid for group in shown for o in group.outcomes.values() for rid in o.run_ids}
    lines += _cost_table(frame, shown) + _machines_table(frame[frame["run_id"].isin(used)])
    unreadable = frame[frame["status"] == "unreadable"]
    frame = frame[frame["status"] != "unreadable"]
    lines += _unreadable_list(unreadable)
    unused = frame[~frame["run_id"].isin(used)]
    digests = list(frame["training_sha256"]) if "training_sha256" in frame else []
    stale = [d for d in digests if not provenance.is_current_code(d)]
    declared = [d for d in digests if provenance.is_current_code(d) and d != provenance.training_digest()]
    lines += _provenance_table(frame[frame["run_id"].isin(used)])
    lines += ["## Records not behind any verdict", "",
              f"{len(unused)} of {len(frame)} records in `results/runs/` are not used by the claims above "
              "(other parameters or presets); "
              f"{len(stale)} were made by other training code than the current (stale); {len(declared)} by earlier "
              "training code declared numerically equivalent to the current (`reproduce/records/equivalent_code.toml`, "
              "with its evidence in `results/equivalence/`).", ""]
    return "\n".join(lines)


def _provenance_table(frame: Any) -> list[str]:
    """The code behind the verdicts' records: one row per training-code digest."""
    if frame.empty or "training_sha256" not in frame:
        return []
    lines = ["## The code that made them", "",
             "Records grouped by the digest of the training modules that made them (`provenance.TRAINING_LAYERS`). "
             "'current': today's training code; 'declared equivalent': earlier code shown to give bit-identical "
             "weights (`reproduce/records/equivalent_code.toml`); 'stale': other code, so the claims using them say stale. "
             "'Clean' is judged on the source files alone (`reproduce/`, `pyproject.toml`), not on results/.", "",
             "| training code | records | state | first commit with it | commits named by the records | clean |",
             "|---|---|---|---|---|---|"]
    for digest, group in frame.groupby("training_sha256", dropna=False):
        state = ("current" if digest == provenance.training_digest() else
                 "declared equivalent" if provenance.is_current_code(digest) else "stale")
        first = code_history.first_commit_with(digest)
        first_text = f"`{first[0][:12]}` ({first[1][:10]})" if first else "not in this history"
        commits = ", ".join(f"`{c[:12]}`" for c in sorted(set(group["git_commit"].dropna())))
        clean = {True: "no", False: "yes"}
        dirty = sorted({clean.get(v, "unknown") for v in group["git_dirty"]})
        lines.append(f"| `{str(digest)[:12]}` | {len(group)} | {state} | {first_text} | {commits or 'none'} | "
                     f"{', '.join(dirty)} |")
    return lines + [""]


def grid_section(results_dir: str | Path) -> list[str]:
    """Wall time of each grid that trained: the whole preset's cost, per way of running it."""
    found = results.load_grid_records(results_dir)
    lines = ["## Wall time of the grid", "",
             "Each `python -m reproduce grid` (or `nox -s reproduce`) that trained something left a record in "
             "`results/grid/`: how the runs were spread (workers, threads per run), how many it trained and reused, "
             "and its wall time from start to last run. 'From empty' means it reused no run.", ""]
    if not found:
        return lines + ["No grid record yet.", ""]
    lines += ["| finished | preset | runs: trained, reused, not started, failed | how | wall time | from empty | device "
              "| commit |", "|---|---|---|---|---|---|---|---|"]
    for r in found:
        actions, states = r.get("actions", {}), r.get("states", {})
        how = r["layout"] if r["options"]["executor"] == "local" else f"submitit ({r['layout']})"
        commit = str(r["code"].get("commit"))[:10] + (" (dirty)" if r["code"].get("dirty") else "")
        lines.append(f"| {r['finished_at'][:16].replace('T', ' ')} | {r['preset']} ({r['seeds']} seeds) | "
                     f"{len(r['runs'])}: {actions.get('trained', 0)}, {actions.get('reused', 0)}, "
                     f"{actions.get('not started', 0)}, {states.get('failed', 0)} | {cell(how)} | "
                     f"**{r['wall_s'] / 60:.1f} min** | {'yes' if r['from_empty'] else 'no'} | {cell(r['device'])} | "
                     f"{commit} |")
    return lines + [""] + study_time_lines(results_dir)


def study_time_lines(results_dir: str | Path, preset: str = "cpu", cores: tuple[int, ...] = (2, 16)) -> list[str]:
    """How long the registered study takes from empty: on 2 cores from its runs' times here (two at a time),
    on more by scheduling the same runs, in the grid's order, on that many one-thread workers. Runs not yet
    here count at their network's median seconds per epoch among those that are (the pilot's, before any)."""
    records = {r["run_id"]: r for r in rule_versions.confirmatory_records(results_dir, preset)}
    planned = plan.grid_plan(preset, params.get_preset(preset).seeds)
    per_epoch = _seconds_per_epoch(planned, records)
    seconds = [_run_seconds(records[run.run_id]) if run.run_id in records else per_epoch[run.network] * run.config["epochs"]
               for run in planned]
    times = ", ".join(f"**{estimates.wall_time(seconds, n) / 3600:.1f} hours on {n} cores**" for n in cores)
    done = sum(run.run_id in records for run in planned)
    source = (f"all measured here, two at a time on a 2-core machine ({cell(str(next(iter(records.values()))['device']))})"
              if done == len(planned) else
              f"{done} of them measured here so far, two at a time on a 2-core machine; the other {len(planned) - done} "
              "at their network's median seconds per epoch among those (the pilot's, where none has run yet)")
    study = registration.load().get("study")
    named = f"`{preset}` study" + (f" ({study})" if study else "")
    return [f"**The registered {named} from empty**: {len(planned)} runs of one core each, "
            f"{sum(seconds) / 3600:.1f} core-hours in all ({source}). Started in the grid's order on one-thread workers: {times} (more cores: "
            "estimated, each as fast as one of these two). Add the analyses of final weights, the notebooks and "
            "the book: minutes.", ""]


def _run_seconds(record: dict[str, Any]) -> float:
    return record["totals"]["train_time_s"] + record["totals"]["eval_time_s"]


def _seconds_per_epoch(planned: list[plan.PlannedRun], records: dict[str, dict[str, Any]]) -> dict[str, float]:
    """network -> median seconds per epoch of its runs here, else the registration's (the pilot's)."""
    import statistics

    measured = registration.load().get("seconds_per_epoch", {})
    found = {}
    for network in {run.network for run in planned}:
        mine = [_run_seconds(records[r.run_id]) / r.config["epochs"] for r in planned
                if r.network == network and r.run_id in records]
        found[network] = statistics.median(mine) if mine else float(measured.get(network, math.nan))
    return found


def _unreadable_list(unreadable: Any) -> list[str]:
    """Records that do not parse: named, never dropped silently (a rerun trains their runs again)."""
    if unreadable.empty:
        return []
    lines = ["## Unreadable records", "",
             f"{len(unreadable)} file(s) in `results/runs/` do not parse; their runs count as failed, and "
             "rerunning trains them again:", ""]
    return lines + [f"- `{Path(path).name}`: {cell(error)}" for path, error in
                    zip(unreadable["path"], unreadable["error"])] + [""]


def speed_section(results_dir: str | Path) -> list[str]:
    """The bench records: the trainer against the seeds' d2l loop, per device, network and layout."""
    found, problems = bench_records.load_bench_records(results_dir)
    lines = ["## Speed: the trainer against the seeds' d2l loop", "",
             "Measured by `nox -s bench` (records in `results/bench/`): training images per second of the "
             "project's trainer and of the d2l loop the seed notes use (a DataLoader doing per-image Resize + "
             "ToTensor, eager fp32), same network, data, batch and device, each loop in a fresh process; on a CPU "
             "the study's nets as the grid runs them (one thread per run, alone and two runs at once) and the "
             "paper's net with all threads; with `--against REV`, the trainer of another commit in the same run. "
             "The share is achieved FLOP/s over the peak: a GPU's datasheet peak, or on a CPU the fp32 "
             "matrix-multiply rate measured there with the runs' threads. Peak memory is the device memory "
             "allocated on a GPU, the process's peak resident memory on a CPU.", ""]
    lines += [f"- **{problem}**" for problem in problems]
    if not found:
        return lines + ["No bench records yet.", ""]
    found = sorted(found, key=lambda r: (r["device"], r["network"], (r.get("layout") or {}).get("key", "")))
    lines += _rates_table(found) + ["", "Each record against the speed and memory targets it is held to "
                                    "(`TARGETS` in `reproduce/tools/bench_records.py`):", ""] + _targets_table(found)
    if not any(r["device_type"] == "cuda" for r in found):
        lines += ["", "No GPU record: the GPU targets are unmeasured."]
    return lines + [""]


def _which_run(record: dict[str, Any]) -> str:
    layout = (record.get("layout") or {}).get("words", "one run, all threads")
    return f"{cell(record['device'])} | {record['network']} ({record['model']}), {record['batch']} | {layout}"


def _rates_table(found: list[dict[str, Any]]) -> list[str]:
    """Images per second of both loops, the share of peak and the memory; a column for an earlier commit's
    trainer only where some record measured one."""
    earlier = any(r.get("against") for r in found)
    lines = ["| device | network, batch | how it runs | d2l loop | trainer | ratio | "
             + ("over an earlier trainer | " if earlier else "") + "share of peak (d2l loop) | peak memory |",
             "|---|---|---|---|---|---|" + ("---|" if earlier else "") + "---|---|"]
    for r in found:
        d2l = f"{r['baseline_images_per_s']:,.1f}/s" if r.get("baseline_images_per_s") else "not run"
        ratio = f"**{r['ratio']:.2f}x**" if r.get("ratio") else ""
        speedup = f"{r['against']['speedup']:.2f}x `{r['against']['revision']}`" if r.get("against") else ""
        against = f"{speedup} | " if earlier else ""
        base_memory = f" ({r['baseline_peak_memory'] / 1e9:.2f} GB)" if r.get("baseline_peak_memory") else ""
        lines.append(f"| {_which_run(r)} | {d2l} | {r['images_per_s']:,.1f}/s "
                     f"({bench_records.describe_how(r['trainer']['how'])}) | {ratio} | {against}{_share_cell(r)} "
                     f"| {r['peak_memory'] / 1e9:.2f} GB{base_memory} |")
    return lines


def _targets_table(found: list[dict[str, Any]]) -> list[str]:
    lines = ["| device | network, batch | how it runs | against the targets | measured |", "|---|---|---|---|---|"]
    return lines + [f"| {_which_run(r)} | {cell(bench_records.target_verdict(r).replace('target ', ''))} "
                    f"| {r['measured_at'][:10]}, torch {r['versions']['torch'].split('+')[0]} |" for r in found]


def _share_cell(record: dict[str, Any]) -> str:
    if record.get("mfu_fault"):
        return "measurement fault: over 100% of the rate measured as the peak"
    if record.get("mfu") is None:
        return "no peak on file"
    return f"{record['mfu']:.1%}" + (f" ({record['baseline_mfu']:.1%})" if record.get("baseline_mfu") else "")


# The seed notes' own run of d2l's AlexNet on Fashion-MNIST (seed 003: d2l.train_ch6's last line), on their GPU.
D2L_REPORTED = {"train_loss": 0.327, "train_accuracy": 0.881, "test_accuracy": 0.885, "images_per_s": 4149.6}
D2L_AGREEMENT = 0.01  # "the same test accuracy": within about a point


def d2l_section(results_dir: str | Path, overrides: dict[str, Any] | None = None) -> list[str]:
    """The seeds' d2l recipe rerun by this project's trainer, beside the numbers the seed notes print
    (`overrides`: of the planned run's config, as a notebook's)."""
    lines = ["## The seeds' d2l AlexNet, rerun", "",
             "The seed notes train d2l's Fashion-MNIST AlexNet (one tower, no LRN, 224 px, conv1 padded by 1, fc6 "
             "from 6,400) with d2l's `train_ch6` (Xavier-uniform weights, plain SGD at lr 0.01 with no momentum, "
             "weight decay or schedule, batch 128, 10 epochs, no augmentation). The same recipe is one planned run "
             "of every preset that has it (`--network d2l`; the gpu preset's grid trains it first). Differences: "
             "55,000 training images, since 5,000 are held out as the validation split (d2l trains on 60,000), and "
             "the batch order is this project's.", ""]
    presets = [name for name, preset in params.PRESETS.items() if params.D2L_NETWORK in preset.networks]
    for preset in presets:
        config = params.resolve({**(overrides or {}), "results_dir": str(results_dir)}, preset=preset,
                                network=params.D2L_NETWORK)
        found = results.run_state(results_dir, config)
        if found.state != "complete":
            lines += [f"Preset `{preset}`: not run yet ({found.state}). It is the first run of "
                      "`bash scripts/gpu_session.sh` on a lent GPU; on this CPU 10 epochs at 224 px take hours.", ""]
            continue
        lines += _d2l_table(preset, found.record)
    return lines


def _d2l_table(preset: str, record: dict[str, Any]) -> list[str]:
    last = record["epochs"][-1]
    speeds = sorted(e["images_per_s"] for e in record["epochs"])
    ours = {"train_loss": last["train_loss"], "train_accuracy": 1 - last["train_error"],
            "test_accuracy": 1 - last["test_top1_error"], "images_per_s": speeds[len(speeds) // 2]}
    rows = [("training loss, last epoch", "train_loss", "{:.3f}"), ("training accuracy, last epoch (dropout on)",
            "train_accuracy", "{:.3f}"), ("test accuracy", "test_accuracy", "{:.3f}"),
            ("training images/s (median epoch)", "images_per_s", "{:,.0f}")]
    gap = ours["test_accuracy"] - D2L_REPORTED["test_accuracy"]
    agrees = "the same test accuracy within a point" if abs(gap) <= D2L_AGREEMENT else "a different test accuracy"
    lines = [f"Preset `{preset}`, run `{record['run_id']}` (`results/runs/`) on {cell(record['device'])}, "
             f"torch {record['versions']['torch']}: **{agrees}** ({100 * gap:+.1f} points).", "",
             "| | d2l (seed notes, their GPU) | this project |", "|---|---|---|"]
    lines += [f"| {label} | {form.format(D2L_REPORTED[key])} | {form.format(ours[key])} |" for label, key, form in rows]
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
