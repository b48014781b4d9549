"""Every fault and bad input of reproduce/runs/faults.py, tried: one test (at least) per case."""

import errno
import importlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_grid import digests, smoke_overrides, train_ablation
from test_train import tiny_config

from reproduce import cli
from reproduce.base import locks
from reproduce.grids import grid, messages, submitit_jobs
from reproduce.records import provenance, results
from reproduce.report import environment_page, md, methods_page, pipeline
from reproduce.runs import analysis, faults, runner
from reproduce.spec import params, plan
from reproduce.training import train
from reproduce.verdicts import claims

HERE = Path(__file__).parent
COVERED: dict[str, list[str]] = {}
TIMING_KEYS = {"train_time_s", "eval_time_s", "images_per_s", "peak_memory_bytes"}


def covers(case_id):
    def mark(test):
        COVERED.setdefault(case_id, []).append(test.__name__)
        return test
    return mark


def test_every_case_has_a_test_and_every_test_a_case():
    for module in ("test_distributed", "test_slurm"):  # cases tried there: their tests are registered on import
        importlib.import_module(module)
    assert set(COVERED) == {case.id for case in faults.CASES}
    assert {case.kind for case in faults.CASES} <= set(faults.KINDS)


def test_the_methods_page_lists_every_case_from_the_same_list():
    page = methods_page.methods_page()
    assert all(md.cell(case.fault) in page and md.cell(case.outcome) in page for case in faults.CASES)


def cli_run(capsys, *args):
    """(exit status, stderr) of `python -m reproduce ...`, run in this process."""
    try:
        status = cli.main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def metrics_of(record):
    """Everything a run measured, without how long it took."""
    epochs = [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in record["epochs"]]
    return epochs, record["iterations"], record["totals"]["weights_sha256"], record["status"]


def killed(config, *point):
    done = subprocess.run([sys.executable, str(HERE / "kill_harness.py"), json.dumps(config), *point],
                          capture_output=True, text=True, cwd=HERE.parent)
    assert done.returncode == -9, done.stderr[-2000:]


@pytest.fixture
def straight(tiny_fashion, tmp_path):
    """An uninterrupted 3-epoch run, to compare the interrupted ones with."""
    record, _ = runner.run(tiny_config(tiny_fashion, tmp_path / "straight", epochs=3))
    return record


def interrupted_config(tiny_fashion, tmp_path):
    return tiny_config(tiny_fashion, tmp_path / "killed", epochs=3)


# ----------------------------------------------------------------------------- interruption

@covers("kill-mid-epoch")
@pytest.mark.parametrize("draw", [0, 3])  # steps 14 and 9: in epochs 3 and 2
def test_kill_at_a_random_step_then_rerun_gives_the_uninterrupted_record(draw, tiny_fashion, tmp_path, straight):
    config = interrupted_config(tiny_fashion, tmp_path)
    step = random.Random(draw).randrange(2, 18)  # 6 steps an epoch, 3 epochs
    killed(config, "step", str(step))
    assert results.run_state(config["results_dir"], config).state == "running"
    resumed, trained = runner.run(config)
    assert trained and metrics_of(resumed) == metrics_of(straight)
    assert resumed.get("resumed_at_epoch", 0) == (step - 1) // 6  # from the last whole epoch killed in


@covers("kill-within-epoch")
@pytest.mark.parametrize("step", [10, 17])  # 6 steps an epoch: killed after the checkpoints at steps 3 of epochs 2, 3
def test_killed_within_an_epoch_a_run_resumes_from_its_last_step_checkpoint_to_the_same_record(step, tiny_fashion,
                                                                                                tmp_path, straight):
    """checkpoint_every_steps: the rerun starts at the step of the last checkpoint, inside the epoch, with each
    stream where it was (crops, flips, dropout masks) and the epoch's sums so far: the record is the straight one."""
    config = {**interrupted_config(tiny_fashion, tmp_path), "checkpoint_every_steps": 3}
    killed(config, "step", str(step))
    state = torch.load(results.checkpoint_path(config["results_dir"], config), weights_only=True)
    within = state["within_epoch"][0]["step"]
    assert (state["epochs_done"], within) == {10: (1, 3), 17: (2, 3)}[step]
    resumed, trained = runner.run(config)
    assert trained and metrics_of(resumed) == metrics_of(straight)
    assert (resumed["resumed_at_epoch"], resumed["resumed_at_step"]) == (state["epochs_done"], within)


@covers("kill-checkpoint-write")
def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(tiny_fashion, tmp_path, straight):
    config = interrupted_config(tiny_fashion, tmp_path)
    killed(config, "checkpoint", "2")
    state = torch.load(results.checkpoint_path(config["results_dir"], config), weights_only=True)
    assert state["epochs_done"] == 1  # the first checkpoint, whole
    resumed, _ = runner.run(config)
    assert resumed["resumed_at_epoch"] == 1 and metrics_of(resumed) == metrics_of(straight)


@covers("kill-record-write")
def test_kill_while_writing_the_final_record_never_leaves_a_complete_one(tiny_fashion, tmp_path, straight):
    config = interrupted_config(tiny_fashion, tmp_path)
    killed(config, "record")
    on_disk = results.read_record(results.record_path(config["results_dir"], config))
    assert on_disk["status"] == "running"
    assert results.run_state(config["results_dir"], config).state == "running"
    resumed, trained = runner.run(config)
    assert trained and metrics_of(resumed) == metrics_of(straight)


def grid_command(data_dir, results_dir, *more):
    """The smoke preset's LRN grid (2 runs) as a command of its own."""
    return [sys.executable, "-m", "reproduce", "grid", "--preset", "smoke", "--only", "lrn", "--seeds", "1",
            "--device", "cpu", "--data-dir", str(data_dir), "--results-dir", str(results_dir), *more]


def wait_for(find, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("timed out")


@covers("grid-worker-killed")
def test_a_killed_grid_worker_is_replaced_and_its_run_resumes_to_the_same_weights(tiny_fashion, tmp_path):
    results_dir = tmp_path / "grid"
    process = subprocess.Popen(grid_command(tiny_fashion, results_dir, "--workers", "2", "--epochs", "25"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent)
    first_checkpoint = wait_for(lambda: next(iter((results_dir / "checkpoints").glob("*.pt")), None))
    run_id = first_checkpoint.stem
    os.kill(locks.holder(runner.lock_path(results_dir, run_id)), signal.SIGKILL)  # the worker training that run
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    assert "a worker died" in out and "grid: 2 runs: 2 complete (2 trained)" in out
    record = results.read_record(results_dir / "runs" / f"{run_id}.json")
    assert record["status"] == "complete" and record.get("resumed_at_epoch", 0) >= 1
    train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path / "straight", epochs=25))
    assert digests(results_dir) == digests(tmp_path / "straight")


@covers("kill-before-analysis")
def test_a_run_killed_before_its_analysis_is_measured_by_the_next_grid_or_reported(tiny_fashion, tmp_path):
    overrides = smoke_overrides(tiny_fashion, tmp_path)
    baseline = plan.grid_plan("smoke", 1, ["features"], overrides)[0]
    assert baseline.analyse
    runner.run(baseline.config)  # what a grid killed after the record, before the analysis, leaves behind
    assert analysis.load(tmp_path, results.read_record(results.record_path(tmp_path, baseline.config))) is None
    summary = train_ablation("features", "smoke", 1, overrides)
    assert summary.count() == {"complete": 1} and summary.actions() == {"reused": 1} and summary.exit_code == 0
    assert (tmp_path / "analysis" / f"{baseline.run_id}.json").exists()
    assert not results.checkpoint_path(tmp_path, baseline.config).exists()  # measured: deleted
    (tmp_path / "analysis" / f"{baseline.run_id}.json").unlink()  # as if the record came home from a lent GPU
    summary = train_ablation("features", "smoke", 1, overrides)
    assert summary.count() == {"unmeasured": 1} and summary.exit_code == 0
    assert "is missing" in summary.results[0].detail


@covers("grid-past-deadline")
def test_a_grid_past_its_deadline_starts_nothing(tiny_fashion, tmp_path):
    summary = train_ablation("lrn", "smoke", 2, smoke_overrides(tiny_fashion, tmp_path), time_budget=1e-6)
    assert summary.count() == {"missing": 4} and summary.actions() == {"not started": 4}
    assert summary.exit_code == messages.EXIT_STOPPED
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.json"))


@covers("submitit-job-requeued")
def test_a_preempted_submitit_job_is_requeued_and_resumes_to_the_same_weights(tiny_fashion, tmp_path):
    overrides = smoke_overrides(tiny_fashion, tmp_path / "jobs", epochs=25, progress=False)
    run = plan.grid_plan("smoke", 1, ["lrn"], overrides)[0]
    executor = submitit_jobs.make_executor(grid.parse_options({}), tmp_path / "jobs", cluster="local")
    job = executor.submit(submitit_jobs.RunJob(), run, None, None)
    wait_for(lambda: results.checkpoint_path(tmp_path / "jobs", run.config).exists())
    # What Slurm sends the job's processes before it preempts the job or its time runs out.
    os.kill(locks.holder(runner.lock_path(tmp_path / "jobs", run.run_id)), signal.SIGUSR2)
    assert (job.result().state, job.result().action) == ("complete", "trained")
    assert "this job is preempted" in job.stderr() and "Requeued job" in job.stdout()
    record = results.read_record(results.record_path(tmp_path / "jobs", run.config))
    assert record["status"] == "complete" and record.get("resumed_at_epoch", 0) >= 1
    straight, _ = runner.run({**run.config, "results_dir": str(tmp_path / "straight")})
    assert record["totals"]["weights_sha256"] == straight["totals"]["weights_sha256"]


# ----------------------------------------------------------------------------- concurrency

@covers("two-grids-at-once")
def test_two_grids_on_one_results_folder_train_each_run_once(tiny_fashion, tmp_path):
    command = grid_command(tiny_fashion, tmp_path, "--workers", "1", "--epochs", "3")
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent)
            for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in both]
    assert [process.returncode for process in both] == [0, 0], "\n---\n".join(err[-1500:] for _, err in outputs)
    said = "".join(out for out, _ in outputs)
    assert said.count("] complete (trained") == 2 and said.count("] complete (reused)") == 2
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2


@covers("two-runs-at-once")
def test_two_processes_on_one_run_train_it_once(tiny_fashion, tmp_path):
    flags = ["--model", "alexnet-small", "--width", "0.125", "--epochs", "2", "--batch-size", "32",
             "--log-every", "2", "--device", "cpu", "--progress", "off",
             "--data-dir", str(tiny_fashion), "--results-dir", str(tmp_path)]
    command = [sys.executable, "-m", "reproduce", "run", *flags]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=HERE.parent) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    said = [out for out, _ in outputs]
    assert sum("(reused: already trained)" in out for out in said) == 1
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("case_id,args,message", [
    ("unknown-parameter", ["--bogus", "1"], "unrecognized arguments: --bogus 1"),
    ("wrong-type", ["--epochs", "two"], "epochs: 'two' is not an int"),
    ("value-out-of-range", ["--dropout", "1.5"], r"dropout: 1.5 is out of range; expected a float in \[0, 1\)"),
    ("value-not-allowed", ["--pooling", "sideways"], "pooling: sideways is not allowed; expected one of overlapping"),
    ("unknown-model", ["--model", "vgg16"], "model: vgg16 is not allowed; expected one of alexnet"),
    ("unknown-dataset", ["--dataset", "imagenet"], "dataset: imagenet is not allowed"),
    ("unknown-preset", ["--preset", "huge"], "preset: 'huge' is not allowed; expected one of smoke, cpu"),
])
def test_a_bad_parameter_is_named_with_what_is_allowed(case_id, args, message, capsys, tmp_path):
    status, err = cli_run(capsys, "run", *args, "--results-dir", str(tmp_path))
    assert status == 2 and re.search(message, err) and "Traceback" not in err


for _case in ("unknown-parameter", "wrong-type", "value-out-of-range", "value-not-allowed", "unknown-model",
              "unknown-dataset", "unknown-preset"):  # one parametrized test covers these seven cases
    covers(_case)(test_a_bad_parameter_is_named_with_what_is_allowed)


def tiny_flags(data_dir, results_dir, *more):
    return ["run", "--model", "alexnet-small", "--width", "0.125", "--epochs", "2", "--batch-size", "32",
            "--log-every", "2", "--device", "cpu", "--progress", "off", "--data-dir", str(data_dir),
            "--results-dir", str(results_dir), *more]


@covers("grid-run-raises")
def test_a_run_that_raises_is_reported_and_the_grid_goes_on_then_exits_1(tiny_fashion, tmp_path):
    overrides = smoke_overrides(tiny_fashion, tmp_path)
    broken, healthy = sorted(plan.grid_plan("smoke", 1, ["lrn"], overrides), key=lambda r: r.config["lrn"])
    path = results.checkpoint_path(tmp_path, broken.config)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    done = subprocess.run(grid_command(tiny_fashion, tmp_path, "--workers", "2"), capture_output=True, text=True,
                          cwd=HERE.parent)
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"FAILED {broken.run_id}" in done.stdout and "CheckpointUnreadable" in done.stdout
    assert results.run_state(tmp_path, healthy.config).state == "complete"


@covers("bad-grid-option")
@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], r"workers: 0 is out of range; expected auto or an int"),
    (["--executor", "slurm"], "executor: slurm is not allowed; expected one of local, submitit"),
    (["--only", "lrm"], "only: 'lrm' is not allowed; expected one or more of activation"),
    (["--time-budget", "soon"], "time_budget: 'soon' is not a float"),
    (["--slurm-extra", "qos"], "slurm_extra: 'qos' is not key=value"),
])
def test_a_bad_grid_option_is_named_and_nothing_trains(args, message, tmp_path, capsys):
    status, err = cli_run(capsys, "grid", "--preset", "smoke", "--results-dir", str(tmp_path), *args)
    assert status == 2 and re.search(message, err) and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@covers("lighting-on-greyscale")
def test_lighting_on_greyscale_data_stops_before_training(tiny_fashion, tmp_path, capsys):
    status, err = cli_run(capsys, *tiny_flags(tiny_fashion, tmp_path / "results", "--lighting", "on"))
    assert status == 2 and "lighting: on needs colour images (3 channels), this dataset has 1" in err
    assert "Traceback" not in err and not list((tmp_path / "results").rglob("*.json"))


@covers("analysis-other-weights")
def test_the_analysis_refuses_a_checkpoint_with_other_weights(tiny_fashion, tmp_path, capsys):
    assert cli_run(capsys, *tiny_flags(tiny_fashion, tmp_path / "results"))[0] == 0
    config = tiny_config(tiny_fashion, tmp_path / "results")
    assert results.run_state(config["results_dir"], config).state == "complete"  # the run the CLI trained
    path = results.checkpoint_path(config["results_dir"], config)
    state = torch.load(path, weights_only=True)
    state["model"]["conv1.weight"].mul_(2)
    torch.save(state, path)
    with pytest.raises(analysis.AnalysisUnavailable, match="digest differs"):
        analysis.ensure(config)
    assert not (tmp_path / "results" / "analysis").exists()


@covers("missing-dataset")
def test_a_missing_dataset_names_where_it_looked_and_the_remedies(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REPRODUCE_FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "nowhere"))
    status, err = cli_run(capsys, *tiny_flags(tmp_path / "data", tmp_path / "results"))
    assert status == 2 and "not found in" in err and "apt-get install dataset-fashion-mnist" in err


@covers("truncated-gz")
def test_a_truncated_gz_is_named_and_nothing_half_unpacked_stays(system_fashion, tmp_path, capsys):
    folder, _ = system_fashion
    archive = folder / "train-images-idx3-ubyte.gz"
    archive.write_bytes(archive.read_bytes()[:200])
    status, err = cli_run(capsys, *tiny_flags(tmp_path / "data", tmp_path / "results"))
    assert status == 2 and f"{archive} is corrupt" in err and "--reinstall" in err
    assert not list((tmp_path / "data").rglob("*.partial"))


@covers("wrong-checksum")
def test_a_cifar_archive_with_a_wrong_md5_is_named(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    status, err = cli_run(capsys, "run", "--model", "cifar-18pct", "--dataset", "cifar10", "--epochs", "1",
                          "--device", "cpu", "--progress", "off", "--data-dir", str(tmp_path / "data"),
                          "--results-dir", str(tmp_path / "results"))
    assert status == 2 and "MD5" in err and "cifar-10-python.tar.gz" in err


@covers("corrupt-record")
def test_a_half_record_is_named_by_the_book_failed_in_its_claim_and_trained_again(tiny_fashion, tmp_path):
    overrides = {"data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "progress": False}
    train_ablation("lrn", "smoke", 1, overrides)
    claim = plan.load_registry()["C3"]
    config = plan.planned_runs(claim, "smoke", 1, overrides)["no LRN"][0]
    path = results.record_path(tmp_path, config)
    path.write_text(path.read_text()[:300])
    assert path.name in environment_page.environment_page(tmp_path, [])
    outcome = claims.evaluate(claim, "smoke", 1, tmp_path, overrides)
    assert outcome.verdict == "failed" and f"unreadable record {path.name}" in outcome.summary
    record, trained = runner.run(config)
    assert trained and record["status"] == "complete"


@covers("unwritable-results")
def test_a_results_folder_that_cannot_be_made_stops_before_training(tiny_fashion, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, err = cli_run(capsys, *tiny_flags(tiny_fashion, blocker / "results"))
    assert status == 2 and f"results_dir: {blocker / 'results'} cannot be written" in err


@covers("disk-full")
def test_a_full_disk_names_the_file_keeps_the_last_checkpoint_and_the_rerun_resumes(tiny_fashion, tmp_path,
                                                                                    monkeypatch, capsys):
    real_write, writes = results.atomic_write, []

    def full_on_second_checkpoint(path, write):
        writes.append(path.suffix)
        if path.suffix == ".pt" and writes.count(".pt") == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, write)

    monkeypatch.setattr(results, "atomic_write", full_on_second_checkpoint)
    status, err = cli_run(capsys, *tiny_flags(tiny_fashion, tmp_path))
    assert status == 2 and "No space left on device" in err and ".pt" in err and "Traceback" not in err
    assert writes.count(".pt") == 2  # the second checkpoint is the one the full disk refused
    monkeypatch.setattr(results, "atomic_write", real_write)
    config = tiny_config(tiny_fashion, tmp_path)
    record, _ = runner.run(config)
    assert record["status"] == "complete" and record["resumed_at_epoch"] == 1


@covers("foreign-checkpoint")
def test_a_checkpoint_of_another_config_is_refused_by_the_command(tiny_fashion, tmp_path, capsys):
    mine = tiny_config(tiny_fashion, tmp_path, epochs=1)
    runner.run(mine)
    other = tiny_config(tiny_fashion, tmp_path, epochs=2)
    results.checkpoint_path(tmp_path, other).write_bytes(results.checkpoint_path(tmp_path, mine).read_bytes())
    status, err = cli_run(capsys, *tiny_flags(tiny_fashion, tmp_path))
    assert status == 2 and "refusing to resume from it" in err


@covers("nan-divergence")
def test_diverged_runs_are_recorded_the_grid_goes_on_and_the_claim_names_them(tiny_fashion, tmp_path):
    # Raw 0-255 inputs, He init and lr 9.9: the loss is NaN within a few of the 12 steps.
    overrides = {"data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "progress": False, "lr": 9.9,
                 "input_scale": "raw", "batch_size": 16, "log_every": 1}
    assert train_ablation("lrn", "smoke", 1, overrides).count() == {"diverged": 2}
    assert train_ablation("lrn", "smoke", 1, overrides).actions() == {"reused": 2}  # a result: not retrained
    outcome = claims.evaluate(plan.load_registry()["C3"], "smoke", 1, tmp_path, overrides)
    assert outcome.verdict == "inconclusive" and "diverged" in outcome.summary


# ----------------------------------------------------------------------------- staleness

@covers("stale-code")
def test_other_training_code_makes_claims_stale_and_only_those_runs_retrain(tiny_fashion, tmp_path, monkeypatch):
    overrides = {"data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "progress": False}
    train_ablation("lrn", "smoke", 1, overrides)
    # As after an edit of train.py: the checkout's code and the code a new process imports both change.
    monkeypatch.setattr(provenance, "training_digest", lambda: "0" * 64)
    monkeypatch.setattr(train, "IMPORTED_TRAINING_CODE", "0" * 64)
    claim = plan.load_registry()["C3"]
    assert claims.evaluate(claim, "smoke", 1, tmp_path, overrides).verdict == "stale"
    assert train_ablation("lrn", "smoke", 1, overrides).actions() == {"trained": 2}
    assert len(list((tmp_path / "stale").glob("*/*.json"))) == 2
    assert claims.evaluate(claim, "smoke", 1, tmp_path, overrides).verdict != "stale"


@covers("changed-default")
def test_a_changed_default_makes_its_claims_stale_and_retrains_only_changed_runs(tiny_fashion, tmp_path,
                                                                                 monkeypatch):
    overrides = {"data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "progress": False}
    for ablation in ("lrn", "activation"):
        train_ablation(ablation, "smoke", 1, overrides)
    # The smoke preset sets weight_init for its AlexNet but not for the four-layer net (C1's).
    changed = replace(params.BY_NAME["weight_init"], default="he")
    monkeypatch.setattr(params, "PARAMS", tuple(changed if p.name == "weight_init" else p for p in params.PARAMS))
    monkeypatch.setitem(params.BY_NAME, "weight_init", changed)
    registry = plan.load_registry()
    c1 = claims.evaluate(registry["C1"], "smoke", 1, tmp_path, overrides)
    assert c1.verdict == "stale" and "weight_init paper (now he)" in c1.summary
    assert claims.evaluate(registry["C3"], "smoke", 1, tmp_path, overrides).verdict != "stale"
    for ablation, expected in (("lrn", "reused"), ("activation", "trained")):
        assert set(train_ablation(ablation, "smoke", 1, overrides).actions()) == {expected}


# ----------------------------------------------------------------------------- safety

class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@covers("pickle-checkpoint")
def test_a_checkpoint_that_would_run_code_is_refused_unexecuted(tiny_fashion, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    config = tiny_config(tiny_fashion, tmp_path)
    path = results.checkpoint_path(tmp_path, config)
    path.parent.mkdir(parents=True)
    torch.save({"model": RunsCode(marker)}, path)
    status, err = cli_run(capsys, *tiny_flags(tiny_fashion, tmp_path))
    assert status == 2 and "refused and not executed" in err
    assert not marker.exists()


@covers("path-escape")
def test_names_built_from_parameters_stay_inside_the_results_folder(tmp_path):
    config = {**params.resolve({}), "model": "../../../etc/evil", "dataset": "x/../../y"}
    for path in (results.record_path(tmp_path, config), results.checkpoint_path(tmp_path, config)):
        assert "/" not in path.name and path.resolve().is_relative_to(tmp_path.resolve())
    with pytest.raises(params.ParamError, match="only: '../etc' is not allowed"):
        pipeline.notebook_names("../etc")


@covers("no-eval")
def test_parameters_are_parsed_as_data_and_the_package_never_evaluates_code():
    with pytest.raises(params.ParamError, match="is not an int"):
        params.BY_NAME["epochs"].parse("__import__('os').system('true')")
    code_runners = re.compile(r"(?<![.\w])(eval|exec)\(|pickle\.loads?\(|weights_only=False")
    package = HERE.parent / "reproduce"
    offenders = [f"{path.name}:{n}" for path in package.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1) if code_runners.search(line)]
    assert offenders == []
    loads = [line for path in package.rglob("*.py") for line in path.read_text().splitlines()
             if "torch.load(" in line]
    assert loads and all("weights_only=True" in line for line in loads)
