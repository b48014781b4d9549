"""The command line: user errors give one clear line and a non-zero exit, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce import cli
from reproduce.spec import params, plan


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "reproduce", *args], capture_output=True, text=True,
                          timeout=120, **kwargs)


@pytest.mark.parametrize("args, must_mention", [
    (["--dropout", "1.5"], "dropout: 1.5 is out of range"),
    (["--pooling", "sideways"], "pooling: sideways is not allowed"),
    (["--model", "resnet"], "model: resnet is not allowed"),
    (["--epochs", "ten"], "epochs: 'ten' is not an int"),
    (["--preset", "huge"], "preset: 'huge' is not allowed"),
])
def test_bad_values_exit_2_with_the_parameter_named(args, must_mention):
    done = run_cli("run", *args)
    assert done.returncode == 2
    assert must_mention in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_flag_is_refused_by_name():
    done = run_cli("run", "--bogus", "1")
    assert done.returncode == 2 and "--bogus" in done.stderr and "Traceback" not in done.stderr


def test_missing_dataset_names_the_remedies(tmp_path):
    done = run_cli("run", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--results-dir",
                   str(tmp_path / "r"), "--device", "cpu")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cifar" in done.stderr.lower()


def subcommand_help(name, capsys):
    """What `python -m reproduce NAME --help` prints."""
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([name, "--help"])
    return capsys.readouterr().out


def test_every_declared_parameter_has_a_run_flag(capsys):
    help_text = subcommand_help("run", capsys)
    for param in params.PARAMS:
        assert cli.flag(param.name) in help_text


def test_describe_prints_the_papers_totals_beside_ours():
    done = run_cli("describe", "alexnet", "--groups", "2")
    assert done.returncode == 0, done.stderr
    assert "60,965,224" in done.stdout and "659,272" in done.stdout
    assert "60 million" in done.stdout and "650,000" in done.stdout


@pytest.mark.parametrize("command", ["grid", "all"])
def test_the_grid_commands_take_every_grid_option_sweep_setting_and_run_parameter(command, capsys):
    help_text = subcommand_help(command, capsys)
    for param in (*params.GRID_PARAMS, *params.SWEEP_PARAMS, *params.PARAMS):
        assert cli.flag(param.name) in help_text, param.name


def test_nox_reproduce_hands_its_options_to_the_all_command():
    import ast

    noxfile = ast.parse((Path(__file__).resolve().parents[1] / "noxfile.py").read_text())
    session = next(node for node in noxfile.body if isinstance(node, ast.FunctionDef) and node.name == "reproduce")
    calls = [ast.unparse(node) for node in ast.walk(session) if isinstance(node, ast.Call)]
    assert any("'all', *session.posargs" in call for call in calls), calls


def test_a_dry_run_prints_the_plan_and_trains_nothing(tmp_path):
    done = run_cli("all", "--preset", "cpu", "--dry-run", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    seeds = params.get_preset("cpu").seeds
    distinct = len(plan.grid_plan("cpu", seeds))
    assert f"grid: preset cpu, at most {seeds} seeds a claim: {distinct} distinct runs, 0 done, {distinct} to train" in done.stdout
    assert "workers:" in done.stdout and not (tmp_path / "runs").exists()


def test_claims_json_on_the_committed_study_agrees_with_its_verdicts_and_a_closed_pipe_is_no_error():
    """The committed CPU study (v3): each decided claim's deciding interval agrees with its verdict, the family is
    the registered one (two hypotheses for each of its 13 members, C15b being C15's), a claim without all its runs
    has no verdict, and the newest registered version's verdict is the headline's."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(f"{sys.executable} -m reproduce claims --preset cpu --json", shell=True, cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    registered = {k: v for k, v in found.items() if v["registered"] and v["deciding_interval"]}
    assert {v["holm_adjusted"]["family"] for v in registered.values()} <= {26}
    undecided = {k: v for k, v in found.items() if v["registered"] and not v["deciding_interval"]}
    assert all(v["verdict"] in ("missing", "running", "failed", "stale", "unmeasured") for v in undecided.values())
    assert found["C15b"]["per_seed"] == found["C15"]["per_seed"]
    for claim_id, v in registered.items():
        low, high = v["deciding_interval"]["low"], v["deciding_interval"]["high"]
        null = 1.0 if v["unit"] == "ratio" else 0.0
        shown = v["verdict"] in ("reproduced", "consistent with the paper")
        assert (low > null) == shown, claim_id
        assert (v["verdict"] == "not reproduced") == (high < v["registered"]["threshold"] and not shown), claim_id
        assert v["versions"][-1]["verdict"] == v["verdict"], claim_id
    piped = subprocess.run(f"{sys.executable} -m reproduce claims --preset cpu --json | head -1", shell=True,
                           cwd=root, capture_output=True, text=True, timeout=600)
    assert piped.stdout == "{\n" and "Error" not in piped.stderr
