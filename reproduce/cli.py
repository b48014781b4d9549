"""Command line: `python -m reproduce {run,describe,params,results}`.

Every experiment flag is generated from reproduce.params.PARAMS, so the CLI cannot drift
from the declaration. User errors (bad parameter, missing data, foreign checkpoint) print
one line naming the cause and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from reproduce import params

USER_ERROR = 2


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_param_flags(parser: argparse.ArgumentParser, names: list[str] | None = None) -> None:
    """One flag per declared parameter; values stay strings here and are parsed by params."""
    for param in params.PARAMS:
        if names is None or param.name in names:
            parser.add_argument(flag(param.name), dest=param.name, default=None, metavar="VALUE",
                                help=f"{param.help} [default: {params.show_value(param.default)}; "
                                     f"{param.allowed()}]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reproduce",
                                     description="AlexNet (NIPS 2012) reproduction: train and inspect runs.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train one run and write its record under results/")
    run.add_argument("--preset", default=None, help=f"start from a preset: {', '.join(params.PRESETS)}")
    add_param_flags(run)

    describe = commands.add_parser("describe", help="print a model's layer table beside the paper's")
    describe.add_argument("model", help=f"one of {', '.join(params.BY_NAME['model'].choices)}")
    add_param_flags(describe, ["activation", "lrn", "pooling", "dropout", "groups", "width", "bias_init"])
    describe.add_argument("--in-channels", dest="in_channels", type=int, default=3,
                          help="input channels [default: 3, the paper's RGB]")
    describe.add_argument("--num-classes", dest="num_classes", type=int, default=1000,
                          help="output classes [default: 1000, the paper's ILSVRC]")

    commands.add_parser("params", help="list every experiment parameter with its default and allowed values")

    show = commands.add_parser("results", help="summarise the run records in a results directory")
    show.add_argument("--results-dir", default="results")
    return parser


def given(namespace: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    return {name: getattr(namespace, name) for name in names if getattr(namespace, name, None) is not None}


def command_run(args: argparse.Namespace) -> int:
    from reproduce import results, train

    config = params.resolve(given(args, list(params.BY_NAME)), preset=args.preset)
    record = train.run(config)
    path = results.record_path(config["results_dir"], config)
    last = record["epochs"][-1] if record["epochs"] else {}
    print(f"{record['status']}: {path}")
    if last:
        print(f"epochs {len(record['epochs'])}, test top-1 error {last['test_top1_error']:.4f}, "
              f"train {record['totals'].get('train_time_s', 0):.1f} s, "
              f"{last['images_per_s']:.0f} images/s on {record['device']}")
    return 0 if record["status"] == "complete" else 1


def command_describe(args: argparse.Namespace) -> int:
    from reproduce.models import describe

    switches = params.validate({"model": args.model, **given(args, list(params.BY_NAME))})
    config = {**params.defaults(), **switches, "in_channels": args.in_channels,
              "num_classes": args.num_classes}
    print(describe(config))
    return 0


def command_params(_args: argparse.Namespace) -> int:
    for param in params.PARAMS:
        print(f"{flag(param.name):16} {param.type.__name__:5} default {params.show_value(param.default):14} "
              f"{param.allowed()}\n{'':16} {param.help}")
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


COMMANDS = {"run": command_run, "describe": command_describe, "params": command_params,
            "results": command_results}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted: the last finished epoch is checkpointed; rerun the same command to resume",
              file=sys.stderr)
        return 130
    except Exception as exc:
        if _is_user_error(exc):
            print(f"error: {exc}", file=sys.stderr)
            return USER_ERROR
        raise


def _is_user_error(exc: Exception) -> bool:
    from reproduce.data import DataUnavailable
    from reproduce.train import CheckpointMismatch

    return isinstance(exc, (params.ParamError, DataUnavailable, CheckpointMismatch))
