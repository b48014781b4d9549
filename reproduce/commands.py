"""The commands of `python -m reproduce` (reproduce.cli parses them): each reads its flags, calls the layer that
does the work, and says what it did. The training side's commands import only what the lent GPU has; the
report's import its modules when they run (papermill, IPython and jupyter-book are not on the lent machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from reproduce.base.paths import PROJECT_ROOT
from reproduce.grids import grid, messages
from reproduce.nets.models import describe
from reproduce.records import declared, results
from reproduce.records.dataframe import load_records
from reproduce.runs import mechanisms, runner
from reproduce.spec import params, plan
from reproduce.tools import bench, equivalence
from reproduce.training import distributed
from reproduce.verdicts import decisions, pilot, pilot_v3, sizing

USER_ERROR = 2


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def sweep_settings(args: argparse.Namespace) -> tuple[str, int]:
    """(preset, seeds) from the flags, validated, with auto and 0 resolved."""
    import torch

    preset = params.pick_preset(args.preset or "auto", torch.cuda.is_available())
    seeds = params.SWEEP_BY_NAME["seeds"].parse(args.seeds if args.seeds is not None else 0)
    return preset, seeds or params.get_preset(preset).seeds


def given(namespace: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    return {name: getattr(namespace, name) for name in names if getattr(namespace, name, None) is not None}


def command_run(args: argparse.Namespace) -> int:
    config = params.resolve(given(args, list(params.BY_NAME)), preset=args.preset, network=args.network)
    record, trained = runner.run(config)
    ended = 0 if record["status"] == "complete" else 1
    if not distributed.speaks():
        return ended
    path = results.record_path(config["results_dir"], config)
    last = record["epochs"][-1] if record["epochs"] else {}
    ranks = f" by {record['world']['size']} ranks ({record['world']['backend']})" if record.get("world", {}).get(
        "size", 1) > 1 else ""
    print(f"{record['status']}{'' if trained else ' (reused: already trained)'}{ranks}: {path}")
    if last:
        print(f"epochs {len(record['epochs'])}, test top-1 error {last['test_top1_error']:.4f}, "
              f"train {record['totals'].get('train_time_s', 0):.1f} s, "
              f"{last['images_per_s']:.0f} images/s on {record['device']}")
    return ended


def command_grid(args: argparse.Namespace) -> int:
    preset, seeds = sweep_settings(args)
    options = given(args, list(params.GRID_BY_NAME))
    return grid.run_grid(preset, seeds, options, given(args, list(params.BY_NAME)), started=args.started).exit_code


def command_ablation(args: argparse.Namespace) -> int:
    if args.name not in plan.ablations():
        raise params.ParamError(f"ablation: {args.name!r} is not allowed; expected one of "
                                f"{', '.join(plan.ablations())}")
    preset, seeds = sweep_settings(args)
    options = {**given(args, list(params.GRID_BY_NAME)), "only": args.name}
    return grid.run_grid(preset, seeds, options, given(args, list(params.BY_NAME)), started=args.started).exit_code


def command_all(args: argparse.Namespace) -> int:
    from reproduce.report import book, pipeline  # lazy: papermill, IPython (not on the lent GPU)

    preset, seeds = sweep_settings(args)
    options = grid.parse_options(given(args, list(params.GRID_BY_NAME)))
    overrides = given(args, list(params.BY_NAME))
    names = pipeline.notebook_names(options["only"])
    trained = grid.run_grid(preset, seeds, options, overrides, started=args.started)
    if options["dry_run"]:
        return 0
    if trained.exit_code == messages.EXIT_STOPPED:
        print("the time budget stopped the grid: the notebooks and the book wait until its runs are done; "
              "rerun the same command to go on", file=sys.stderr)
        return messages.EXIT_STOPPED
    started = time.perf_counter()
    # The grid has trained what it could: the notebooks only read, decide and plot (a failed run
    # shows as failed rather than being retried at the cost of its training again).
    failures = pipeline.run_notebooks(names, preset, seeds, overrides, train=False)
    print(f"notebooks: {len(names) - len(failures)} of {len(names)} finished in "
          f"{(time.perf_counter() - started) / 60:.1f} min")
    built = book.build(params.resolve(overrides)["results_dir"], args.book_dir)
    for failure in failures:
        print(f"error: notebook {failure}", file=sys.stderr)
    return 1 if failures or built or trained.exit_code else 0


def command_pilot(args: argparse.Namespace) -> int:
    config = params.resolve(given(args, ["results_dir", "data_dir", "device"]))
    folder = Path(config["results_dir"]) / pilot.PILOT_DIR
    exit_code = 0
    if not args.report:
        runs = pilot_v3.pilot_runs(folder, overrides={"data_dir": config["data_dir"], "device": config["device"]})
        options = grid.parse_options(given(args, ["workers", "time_budget"]))
        if runs:
            exit_code = grid.train_runs(runs, options, runs[0].config, "the v3 pilot", started=args.started).exit_code
    print("\n".join(pilot_v3.lines(folder) + pilot_v3.mechanism_lines(folder)))
    try:
        numbers = sizing.registration_numbers(config["results_dir"])
    except (KeyError, ValueError, TypeError, StopIteration, statistics.StatisticsError) as exc:
        print(f"the registration's numbers need the whole pilot ({type(exc).__name__}: {exc})")
    else:
        print(f"C1's lrs: {numbers.c1_lrs}\nthe registration's numbers:\n{sizing.registration_toml(numbers)}")
    return exit_code


def command_mechanisms(args: argparse.Namespace) -> int:
    """The paper's net and the v3 proxy probed for how unevenly LRN divides (reproduce/runs/mechanisms.py)."""
    config = params.resolve(given(args, ["results_dir", "data_dir", "device", "cpu_threads"]))
    where = {k: config[k] for k in ("data_dir", "device", "cpu_threads")}
    folder = Path(config["results_dir"]) / pilot.PILOT_DIR
    path = mechanisms.probe_nets({**pilot_v3.paper_net_config(), **where}, {**pilot_v3.alexnet_config("baseline",
                                 pilot_v3.PILOT_SEEDS[0]), **where}, folder)
    print("\n".join(pilot_v3.mechanism_lines(folder)))
    print(f"written to {path}")
    return 0


CACHE_SLURM = ["executor", "slurm_partition", "slurm_time", "slurm_cpus_per_task", "slurm_extra",
               "slurm_array_parallelism"]


def command_cache(args: argparse.Namespace) -> int:
    """Build an image folder's cache: one shard (--shard I/N), every shard here or as a Slurm array
    (--shards N, --executor submitit), or check it (--verify); then say its state. Exit 1 if it is not whole."""
    from reproduce.datasets import image_cache_state, image_shards
    from reproduce.datasets.image_plan import SPLITS

    config = params.resolve(given(args, ["data_dir", "train_limit", "test_limit", "results_dir"]))
    chosen = {**{p.name: p.default for p in params.CACHE_PARAMS},
              **params.validate(given(args, list(params.CACHE_BY_NAME)), params.CACHE_BY_NAME, "cache option")}
    options = grid.parse_options(given(args, CACHE_SLURM))
    limits = {"train_limit": config["train_limit"], "test_limit": config["test_limit"]}
    data_dir = config["data_dir"]
    if chosen["shard"]:
        index, count = map(int, chosen["shard"].split("/"))
        for split in SPLITS:
            image_shards.build_shard(data_dir, split, index, count, **limits)
    elif options["executor"] == "submitit" and not chosen["verify"]:
        from reproduce.grids import cache_jobs

        cache_jobs.build_array(data_dir, chosen["shards"], options, config["results_dir"], limits)
    elif not chosen["verify"]:
        image_shards.build_all(data_dir, chosen["shards"] or None, **limits)
    state = image_cache_state.cache_state(data_dir, verify=chosen["verify"], **limits)
    print(state.message)
    return 0 if state.whole else 1


def command_claims(args: argparse.Namespace) -> int:
    preset, seeds = sweep_settings(args)
    outcomes = decisions.evaluate_family(preset, seeds, args.results_dir)
    if args.json:
        print(json.dumps({o.claim.id: decisions.as_json(o, preset, decisions.registered_versions(
            o.claim, preset, seeds, args.results_dir, family=outcomes)) for o in outcomes}, indent=1))
        return 0
    for outcome in outcomes:
        verdict = outcome.verdict + (" (preliminary)" if outcome.preliminary else "")
        print(f"{outcome.claim.id:5} {verdict:40} {decisions.one_line(outcome)}")
    return 0


def command_notebooks(args: argparse.Namespace) -> int:
    from reproduce.report import book, pipeline  # lazy: papermill, IPython (not on the lent GPU)

    names = pipeline.notebook_names(args.only)
    preset, seeds = sweep_settings(args)
    started = time.perf_counter()
    train = params.NOTEBOOK_BY_NAME["train"].parse(args.train if args.train is not None else True)
    failures = pipeline.run_notebooks(names, preset, seeds, {"results_dir": args.results_dir}, train)
    print(f"notebooks: {len(names) - len(failures)} of {len(names)} finished in "
          f"{(time.perf_counter() - started) / 60:.1f} min")
    built = book.build(args.results_dir, args.book_dir)
    for failure in failures:
        print(f"error: notebook {failure}", file=sys.stderr)
    return 1 if failures or built else 0


def command_notebook(args: argparse.Namespace) -> int:
    from reproduce.report import pipeline  # lazy: papermill, IPython (not on the lent GPU)

    error, output = pipeline.run_one(args.ablation, dict(args.parameter))
    if error:
        print(f"error: {error}\n(the executed notebook, with its traceback: {output})", file=sys.stderr)
        return USER_ERROR if error.startswith("ParamError") else 1
    print(f"executed: {output}")
    return 0


def command_new_notebook(args: argparse.Namespace) -> int:
    from reproduce.report import pipeline  # lazy: papermill, IPython (not on the lent GPU)

    print(f"wrote {pipeline.write_notebook(args.ablation)}")
    return 0


def command_book(args: argparse.Namespace) -> int:
    from reproduce.report import book  # lazy: papermill, IPython (not on the lent GPU)

    return book.build(args.results_dir, args.book_dir)


def command_equivalence(args: argparse.Namespace) -> int:

    evidence = equivalence.check(args.earlier, args.later, Path(args.data_dir), PROJECT_ROOT)
    path = equivalence.evidence_path(args.results_dir, evidence)
    results.atomic_write_bytes(path, json.dumps(evidence, indent=1).encode())
    for run in evidence["runs"]:
        print(f"{'identical' if run['identical'] else 'DIFFERENT':9} {run['run']}")
    print(f"evidence: {path}")
    if not evidence["all_identical"]:
        print("not numerically equivalent: records of the earlier code stay stale", file=sys.stderr)
        return 1
    print(f"\nadd to {declared.DECLARATIONS.name}:\n")
    print(equivalence.declaration_text(evidence, path, args.why))
    return 0


def command_describe(args: argparse.Namespace) -> int:
    switches = params.validate({"model": args.model, **given(args, list(params.BY_NAME))})
    config = {**params.defaults(), **switches, "in_channels": args.in_channels,
              "num_classes": args.num_classes}
    print(describe(config))
    return 0


def command_bench(args: argparse.Namespace) -> int:
    try:
        bench.run_bench(given(args, [p.name for p in bench.BENCH_PARAMS]))
    except bench.CompileFailed as failed:
        print(f"error: {failed}", file=sys.stderr)
        return bench.EXIT_COMPILE_FAILED
    return 0


def command_params(_args: argparse.Namespace) -> int:
    groups = (("run parameters (run, grid, all, notebooks)", params.PARAMS),
              ("sweep settings (grid, all, notebooks)", params.SWEEP_PARAMS),
              ("grid options (grid, all)", params.GRID_PARAMS))
    every = [param for _, listed in groups for param in listed]
    name_w = max(len(flag(p.name)) for p in every)
    type_w = max(len(p.type.__name__) for p in every)
    default_w = max(len(params.show_value(p.default)) for p in every)
    for title, listed in groups:
        print(f"{title}:")
        for param in listed:
            print(f"  {flag(param.name):{name_w}}  {param.type.__name__:{type_w}}  default "
                  f"{params.show_value(param.default):{default_w}}  {param.allowed()}\n"
                  f"  {'':{name_w}}  {param.help}")
    print("presets: " + ", ".join(params.PRESETS))
    return 0


def command_results(args: argparse.Namespace) -> int:
    frame = load_records(args.results_dir)
    if frame.empty:
        print(f"no run records under {args.results_dir}/runs")
        return 0
    columns = [c for c in ("run_id", "status", "final_test_top1_error", "total_train_time_s", "device")
               if c in frame.columns]
    print(frame[columns].to_string(index=False))
    return 0


COMMANDS = {"run": command_run, "grid": command_grid, "ablation": command_ablation, "all": command_all,
            "claims": command_claims, "book": command_book, "notebooks": command_notebooks, "bench": command_bench,
            "equivalence": command_equivalence, "notebook": command_notebook, "new-notebook": command_new_notebook,
            "pilot": command_pilot, "mechanisms": command_mechanisms, "cache": command_cache, "describe": command_describe, "params": command_params,
            "results": command_results}
