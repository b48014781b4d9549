"""Command line: `python -m reproduce {run,grid,ablation,all,notebooks,claims,book,bench,equivalence,describe,
params,results}`.

Every experiment flag is generated from reproduce.spec.params.PARAMS, so the CLI cannot drift
from the declaration. User errors (bad parameter, missing data, foreign checkpoint) print
one line naming the cause and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from reproduce.commands import CACHE_SLURM, COMMANDS, USER_ERROR, flag
from reproduce.spec import params


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
    ablation.add_argument("name", help="an ablation of reproduce/spec/claims.toml")
    add_sweep_flags(ablation)
    add_param_flags(ablation, declared=tuple(p for p in params.GRID_PARAMS if p.name != "only"))
    add_param_flags(ablation)

    everything = commands.add_parser("all", help="the grid, then every notebook (which finds its runs done), then "
                                                 "the book: what `nox -s reproduce` does")
    add_sweep_flags(everything)
    add_param_flags(everything, declared=params.GRID_PARAMS)
    add_param_flags(everything)
    everything.add_argument("--book-dir", default="book")

    pilot = commands.add_parser("pilot", help="train the CPU study's pilot (study v3's: results/pilot/, seeds no "
                                              "verdict uses) and print what it shows and the registration's numbers; "
                                              "--report alone reads it")
    pilot.add_argument("--report", action="store_true", help="only print what the pilot's records show")
    add_param_flags(pilot, ["workers", "time_budget"], declared=params.GRID_PARAMS)
    add_param_flags(pilot, ["results_dir", "data_dir", "device"])

    probe = commands.add_parser("mechanisms", help="how unevenly LRN divides in the paper's net at 227 px and in the "
                                                   "v3 proxy, and the proxy's alpha that matches them "
                                                   "(results/pilot/mechanisms.json)")
    add_param_flags(probe, ["results_dir", "data_dir", "device", "cpu_threads"])

    cache = commands.add_parser("cache", help="build an image folder's cache (--data-dir): every shard in this "
                                              "process, one shard (--shard I/N: a Slurm array task's part), or a Slurm "
                                              "array of --shards N tasks (--executor submitit); --verify checks it "
                                              "against the folder; exit 1 unless it is whole")
    add_param_flags(cache, declared=params.CACHE_PARAMS)
    add_param_flags(cache, CACHE_SLURM, declared=params.GRID_PARAMS)
    add_param_flags(cache, ["data_dir", "train_limit", "test_limit", "results_dir"])

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
    one.add_argument("ablation", help="an ablation of reproduce/spec/claims.toml (its notebook in experiments/)")
    one.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a notebook parameter, as papermill's -p (any of `python -m reproduce params`)")

    new_notebook = commands.add_parser("new-notebook", help="write experiments/ABLATION.ipynb for a new ablation of "
                                                            "reproduce/spec/claims.toml (README: Add a claim)")
    new_notebook.add_argument("ablation", help="the ablation its claims name in reproduce/spec/claims.toml")

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


def bench_params() -> tuple[params.Param, ...]:
    from reproduce.tools.bench import BENCH_PARAMS

    return BENCH_PARAMS


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
    from reproduce.training.distributed import PeerLost

    return PeerLost


def _is_user_error(exc: Exception) -> bool:
    from reproduce.datasets.image_data import DataUnavailable
    from reproduce.records.declared import DeclarationError
    from reproduce.runs.runner import CheckpointUnreadable, ResultsUnwritable
    from reproduce.training.checkpoints import CheckpointMismatch
    from reproduce.training.distributed import PeerLost, WorldError

    return isinstance(exc, (params.ParamError, DataUnavailable, CheckpointMismatch, CheckpointUnreadable,
                            ResultsUnwritable, DeclarationError, WorldError, PeerLost))


def _speaks() -> bool:
    from reproduce.training.distributed import speaks

    return speaks()
