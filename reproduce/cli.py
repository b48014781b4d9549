"""Command line: `python -m reproduce {run,grid,ablation,all,notebooks,claims,book,bench,equivalence,describe,
params,results}`.

Every experiment flag is generated from reproduce.params.PARAMS, so the CLI cannot drift
from the declaration. User errors (bad parameter, missing data, foreign checkpoint) print
one line naming the cause and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from reproduce import params

USER_ERROR = 2


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_param_flags(parser: argparse.ArgumentParser, names: list[str] | None = None,
                    declared: tuple[params.Param, ...] = params.PARAMS) -> None:
    """One flag per declared parameter; values stay strings here and are parsed by params."""
    for param in declared:
        if names is None or param.name in names:
            # A switch given alone means on (`--dry-run`); `--lrn off` still works.
            switch = {"nargs": "?", "const": "on"} if param.type is bool else {}
            parser.add_argument(flag(param.name), dest=param.name, default=None, metavar="VALUE", **switch,
                                help=f"{param.help} [default: {params.show_value(param.default)}; "
                                     f"{param.allowed()}]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reproduce",
                                     description="AlexNet (NIPS 2012) reproduction: train and inspect runs.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train one run and write its record under results/")
    run.add_argument("--preset", default=None, help=f"start from a preset: {', '.join(params.PRESETS)}")
    run.add_argument("--network", default="alexnet", choices=(*params.NETWORKS, params.D2L_NETWORK),
                     help="which of the preset's networks (d2l: the seeds' d2l recipe, gpu preset) [default: alexnet]")
    add_param_flags(run)

    grid = commands.add_parser("grid", help="train every run a preset needs (all claims, or --only some), with a "
                                            "pool of workers or submitit jobs; exit 1 if a run failed, 75 if the time "
                                            "budget stopped it (rerun to go on)")
    add_sweep_flags(grid)
    add_param_flags(grid, declared=params.GRID_PARAMS)
    add_param_flags(grid)

    ablation = commands.add_parser("ablation", help="the grid of one ablation (its arms x seeds): what a notebook "
                                                    "trains, without papermill")
    ablation.add_argument("name", help="an ablation of reproduce/claims.toml")
    add_sweep_flags(ablation)
    add_param_flags(ablation, declared=tuple(p for p in params.GRID_PARAMS if p.name != "only"))
    add_param_flags(ablation)

    everything = commands.add_parser("all", help="the grid, then every notebook (which finds its runs done), then "
                                                 "the book: what `nox -s reproduce` does")
    add_sweep_flags(everything)
    add_param_flags(everything, declared=params.GRID_PARAMS)
    add_param_flags(everything)
    everything.add_argument("--book-dir", default="book")

    pilot = commands.add_parser("pilot", help="train the CPU study's pilot (results/pilot/: seeds no verdict uses) "
                                              "and print what it shows; --report alone reads it")
    pilot.add_argument("--report", action="store_true", help="only print what the pilot's records show")
    add_param_flags(pilot, ["workers", "time_budget"], declared=params.GRID_PARAMS)
    add_param_flags(pilot, ["results_dir", "data_dir", "device"])

    verdicts = commands.add_parser("claims", help="print each claim's verdict from the records")
    add_sweep_flags(verdicts)
    verdicts.add_argument("--results-dir", default="results")
    verdicts.add_argument("--json", action="store_true", help="one JSON object: claim id -> verdict, estimate, "
                                                              "interval, n, per-seed values, runs, versions, ...")

    notebooks = commands.add_parser("notebooks", help="run the ablation notebooks through papermill, "
                                                      "then build the book (what `nox -s reproduce` does)")
    add_sweep_flags(notebooks)
    notebooks.add_argument("--only", default=None, metavar="ABLATION[,ABLATION]",
                           help="run only these notebooks [default: all]")
    add_param_flags(notebooks, declared=params.NOTEBOOK_PARAMS)
    notebooks.add_argument("--results-dir", default="results")
    notebooks.add_argument("--book-dir", default="book")

    one = commands.add_parser("notebook", help="one ablation notebook through papermill, into "
                                                "results/notebooks/adhoc/ (what `nox -s notebook` does)")
    one.add_argument("ablation", help="an ablation of reproduce/claims.toml (its notebook in experiments/)")
    one.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a notebook parameter, as papermill's -p (any of `python -m reproduce params`)")

    new_notebook = commands.add_parser("new-notebook", help="write experiments/ABLATION.ipynb for a new ablation of "
                                                            "reproduce/claims.toml (README: Add a claim)")
    new_notebook.add_argument("ablation", help="the ablation its claims name in reproduce/claims.toml")

    book = commands.add_parser("book", help="write the book's pages from results/ and build the HTML")
    book.add_argument("--results-dir", default="results")
    book.add_argument("--book-dir", default="book")

    describe = commands.add_parser("describe", help="print a model's layer table beside the paper's")
    describe.add_argument("model", help=f"one of {', '.join(params.BY_NAME['model'].choices)}")
    add_param_flags(describe, ["activation", "lrn", "pooling", "dropout", "groups", "width", "bias_init",
                               "weight_init"])
    describe.add_argument("--in-channels", dest="in_channels", type=int, default=3,
                          help="input channels [default: 3, the paper's RGB]")
    describe.add_argument("--num-classes", dest="num_classes", type=int, default=1000,
                          help="output classes [default: 1000, the paper's ILSVRC]")

    equivalent = commands.add_parser(
        "equivalence", help="retrain the reference runs of every model family with two commits' training code, on "
                            "one CPU thread, and write the evidence that a code change is numerically equivalent")
    equivalent.add_argument("earlier", help="the last commit with the earlier training code")
    equivalent.add_argument("later", help="the first commit with the later training code")
    equivalent.add_argument("--why", required=True, help="what changed, and why it changes no number")
    equivalent.add_argument("--data-dir", default="data")
    equivalent.add_argument("--results-dir", default="results")

    bench = commands.add_parser("bench", help="training throughput of the trainer against the seeds' d2l loop "
                                              "(what `nox -s bench` does); last line: ratio <number>")
    add_param_flags(bench, declared=bench_params())

    commands.add_parser("params", help="list every experiment parameter with its default and allowed values")

    show = commands.add_parser("results", help="summarise the run records in a results directory")
    show.add_argument("--results-dir", default="results")
    return parser


def add_sweep_flags(parser: argparse.ArgumentParser) -> None:
    for param in params.SWEEP_PARAMS:
        parser.add_argument(flag(param.name), dest=param.name, default=None, metavar="VALUE",
                            help=f"{param.help} [default: {params.show_value(param.default)}; {param.allowed()}]")


def sweep_settings(args: argparse.Namespace) -> tuple[str, int]:
    """(preset, seeds) from the flags, validated, with auto and 0 resolved."""
    import torch

    preset = params.pick_preset(args.preset or "auto", torch.cuda.is_available())
    seeds = params.SWEEP_BY_NAME["seeds"].parse(args.seeds if args.seeds is not None else 0)
    return preset, seeds or params.get_preset(preset).seeds


def given(namespace: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    return {name: getattr(namespace, name) for name in names if getattr(namespace, name, None) is not None}


def command_run(args: argparse.Namespace) -> int:
    from reproduce import distributed, results, runner

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
    from reproduce import grid

    preset, seeds = sweep_settings(args)
    options = given(args, list(params.GRID_BY_NAME))
    return grid.run_grid(preset, seeds, options, given(args, list(params.BY_NAME)), started=args.started).exit_code


def command_ablation(args: argparse.Namespace) -> int:
    from reproduce import grid, plan

    if args.name not in plan.ablations():
        raise params.ParamError(f"ablation: {args.name!r} is not allowed; expected one of "
                                f"{', '.join(plan.ablations())}")
    preset, seeds = sweep_settings(args)
    options = {**given(args, list(params.GRID_BY_NAME)), "only": args.name}
    return grid.run_grid(preset, seeds, options, given(args, list(params.BY_NAME)), started=args.started).exit_code


def command_all(args: argparse.Namespace) -> int:
    from reproduce import book, grid, pipeline

    preset, seeds = sweep_settings(args)
    options = grid.parse_options(given(args, list(params.GRID_BY_NAME)))
    overrides = given(args, list(params.BY_NAME))
    names = pipeline.notebook_names(options["only"])
    trained = grid.run_grid(preset, seeds, options, overrides, started=args.started)
    if options["dry_run"]:
        return 0
    if trained.exit_code == grid.EXIT_STOPPED:
        print("the time budget stopped the grid: the notebooks and the book wait until its runs are done; "
              "rerun the same command to go on", file=sys.stderr)
        return grid.EXIT_STOPPED
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
    from reproduce import grid, pilot

    config = params.resolve(given(args, ["results_dir", "data_dir", "device"]))
    folder = Path(config["results_dir"]) / pilot.PILOT_DIR
    exit_code = 0
    if not args.report:
        runs = pilot.pilot_runs(folder, overrides={"data_dir": config["data_dir"], "device": config["device"]})
        options = grid.parse_options(given(args, ["workers", "time_budget"]))
        if runs:
            exit_code = grid.train_runs(runs, options, runs[0].config, "the pilot", started=args.started).exit_code
    for line in pilot.lines(folder):
        print(line)
    try:
        numbers = pilot.registration_numbers(config["results_dir"])
    except (KeyError, ValueError, StopIteration, statistics.StatisticsError) as exc:
        print(f"the registration's numbers need the whole pilot ({type(exc).__name__}: {exc})")
    else:
        print(f"C1's lrs: {numbers.c1_lrs}\nthe registration's numbers:\n{pilot.registration_toml(numbers)}")
    return exit_code


def command_claims(args: argparse.Namespace) -> int:
    from reproduce import claims

    preset, seeds = sweep_settings(args)
    outcomes = claims.evaluate_family(preset, seeds, args.results_dir)
    if args.json:
        import json

        print(json.dumps({o.claim.id: claims.as_json(o, preset, claims.registered_versions(
            o.claim, preset, seeds, args.results_dir, family=outcomes)) for o in outcomes}, indent=1))
        return 0
    for outcome in outcomes:
        verdict = outcome.verdict + (" (preliminary)" if outcome.preliminary else "")
        print(f"{outcome.claim.id:5} {verdict:40} {claims.one_line(outcome)}")
    return 0


def command_notebooks(args: argparse.Namespace) -> int:
    from reproduce import book, pipeline

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
    from reproduce import pipeline

    error, output = pipeline.run_one(args.ablation, dict(args.parameter))
    if error:
        print(f"error: {error}\n(the executed notebook, with its traceback: {output})", file=sys.stderr)
        return USER_ERROR if error.startswith("ParamError") else 1
    print(f"executed: {output}")
    return 0


def command_new_notebook(args: argparse.Namespace) -> int:
    from reproduce import pipeline

    print(f"wrote {pipeline.write_notebook(args.ablation)}")
    return 0


def command_book(args: argparse.Namespace) -> int:
    from reproduce import book

    return book.build(args.results_dir, args.book_dir)


def command_equivalence(args: argparse.Namespace) -> int:
    import json

    from reproduce import equivalence, results

    evidence = equivalence.check(args.earlier, args.later, Path(args.data_dir), results.PROJECT_ROOT)
    path = equivalence.evidence_path(args.results_dir, evidence)
    results.atomic_write_bytes(path, json.dumps(evidence, indent=1).encode())
    for run in evidence["runs"]:
        print(f"{'identical' if run['identical'] else 'DIFFERENT':9} {run['run']}")
    print(f"evidence: {path}")
    if not evidence["all_identical"]:
        print("not numerically equivalent: records of the earlier code stay stale", file=sys.stderr)
        return 1
    print(f"\nadd to {equivalence.DECLARATIONS.name}:\n")
    print(equivalence.declaration_text(evidence, path, args.why))
    return 0


def command_describe(args: argparse.Namespace) -> int:
    from reproduce.models import describe

    switches = params.validate({"model": args.model, **given(args, list(params.BY_NAME))})
    config = {**params.defaults(), **switches, "in_channels": args.in_channels,
              "num_classes": args.num_classes}
    print(describe(config))
    return 0


def bench_params() -> tuple[params.Param, ...]:
    from reproduce.bench import BENCH_PARAMS

    return BENCH_PARAMS


def command_bench(args: argparse.Namespace) -> int:
    from reproduce import bench

    try:
        bench.run_bench(given(args, [p.name for p in bench_params()]))
    except bench.CompileFailed as failed:
        print(f"error: {failed}", file=sys.stderr)
        return bench.EXIT_COMPILE_FAILED
    return 0


def command_params(_args: argparse.Namespace) -> int:
    groups = (("run parameters (run, grid, all, notebooks)", params.PARAMS),
              ("sweep settings (grid, all, notebooks)", params.SWEEP_PARAMS),
              ("grid options (grid, all)", params.GRID_PARAMS))
    every = [param for _, declared in groups for param in declared]
    name_w = max(len(flag(p.name)) for p in every)
    type_w = max(len(p.type.__name__) for p in every)
    default_w = max(len(params.show_value(p.default)) for p in every)
    for title, declared in groups:
        print(f"{title}:")
        for param in declared:
            print(f"  {flag(param.name):{name_w}}  {param.type.__name__:{type_w}}  default "
                  f"{params.show_value(param.default):{default_w}}  {param.allowed()}\n"
                  f"  {'':{name_w}}  {param.help}")
    print("presets: " + ", ".join(params.PRESETS))
    return 0


def command_results(args: argparse.Namespace) -> int:
    from reproduce.results import load_records

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
            "equivalence": command_equivalence, "notebook": command_notebook, "new-notebook": command_new_notebook, "pilot": command_pilot,
            "describe": command_describe, "params": command_params,
            "results": command_results}


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    """`started`: when the command started (time.time()), where a grid's time budget counts from."""
    args = build_parser().parse_args(argv)
    args.started = started or time.time()
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted: the last finished epoch is checkpointed; rerun the same command to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `claims --json | head`: the reader stopped reading, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush is silent
        return 0
    except Exception as exc:
        if _is_user_error(exc):
            if _speaks():  # under torchrun every rank meets the same error: rank 0 says it
                print(f"error: {exc}", file=sys.stderr)
            elif not isinstance(exc, _peer_lost()):
                # The others wait a moment before they exit: torchrun stops every rank once one has exited,
                # and rank 0, slower to start on a busy machine, would be stopped before it said why.
                time.sleep(SILENT_RANK_GRACE_S)
            return USER_ERROR
        raise


SILENT_RANK_GRACE_S = 5.0


def _peer_lost() -> type:
    from reproduce.distributed import PeerLost

    return PeerLost


def _is_user_error(exc: Exception) -> bool:
    from reproduce.data import DataUnavailable
    from reproduce.distributed import PeerLost, WorldError
    from reproduce.equivalence import DeclarationError
    from reproduce.runner import CheckpointUnreadable, ResultsUnwritable
    from reproduce.train import CheckpointMismatch

    return isinstance(exc, (params.ParamError, DataUnavailable, CheckpointMismatch, CheckpointUnreadable,
                            ResultsUnwritable, DeclarationError, WorldError, PeerLost))


def _speaks() -> bool:
    from reproduce.distributed import speaks

    return speaks()
