"""The time budget's arithmetic: a run's estimate knows its epochs, images and network, compile is charged
once per worker and network, runs of a network go to the worker that compiled it, the yield a budget buys
is said before it is spent, and a GPU dry run on this CPU plans with the H100's measured rate."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reproduce.grids import budget, estimates, grid
from reproduce.grids.estimates import Estimate, Estimator, Rates, Split
from reproduce.grids.flops import parameter_count, training_flops_per_image
from reproduce.grids.layout import runs_per_gpu
from reproduce.spec import params, plan


def record_of(config, images_per_s, eval_s, first_epoch_s=None, compiled=False, train=1000, val=100, test=200):
    """A finished run's record as reproduce.training.train writes it, at a given speed."""
    epochs = [{"epoch": e + 1, "images_per_s": images_per_s, "train_time_s": train / images_per_s,
               "eval_time_s": eval_s, "test_top1_error": 0.5} for e in range(config["epochs"])]
    if first_epoch_s is not None:
        epochs[0]["train_time_s"], epochs[0]["images_per_s"] = first_epoch_s, train / first_epoch_s
    data = {"train": f"fashion-mnist training images 0-{train - 1}",
            "validation": f"fashion-mnist training images 59000-{59000 + val - 1} (held out)",
            "test": f"fashion-mnist test images 0-{test - 1} (reported only)"}
    return {"config": config, "epochs": epochs, "data": data, "execution": {"compile": compiled},
            "status": "complete", "totals": {}}


def test_an_estimate_is_set_up_plus_epochs_of_images_at_the_measured_rates_plus_checkpoints():
    config = params.resolve({"device": "cpu"}, preset="cpu")  # tested after the last epoch only
    epochs = config["epochs"]
    estimator = Estimator("cpu", "cpu (test)", {estimates.data_key(config): Split(8000, 5000, 10000)})
    estimator.finished(record_of({**config, "epochs": 3}, images_per_s=400.0, eval_s=5.0))
    found = estimator.seconds(config)
    evaluate = 3 * (100 + 200) / 15.0  # the measured run evaluated 300 images an epoch in 5 s
    compute = epochs * 8000 / 400.0 + (epochs * 5000 + 10000 + 5000) / evaluate
    saving = epochs * parameter_count(config) * 8 / estimates.CHECKPOINT_BYTES_PER_S  # weights and momentum
    assert found == Estimate(pytest.approx(estimates.SET_UP_S["cpu"] + compute + saving), 0.0,
                             "runs finished in this grid")
    shorter = estimator.seconds({**config, "epochs": 8})  # C12's arms: a tenth of the epochs, not the same time
    assert shorter.seconds < 0.15 * found.seconds


def test_the_first_epoch_is_left_out_of_the_rate_and_is_the_compile_time():
    config = params.resolve({"device": "cuda"}, preset="gpu")
    rates = estimates.record_rates(record_of(config, 5000.0, 1.0, first_epoch_s=30.2, compiled=True), "test")
    assert rates.train == 5000.0 and rates.compile_s == pytest.approx(30.2 - 1000 / 5000)
    estimator = Estimator("cuda", "NVIDIA H200", measured={estimates.network_key(config): [rates]})
    assert estimator.seconds(config).compile_s == pytest.approx(30.0)


def test_another_network_is_estimated_from_the_nearest_measured_one_scaled_by_flops():
    small, large = (params.resolve({}, preset="gpu", network=n) for n in ("four-layer", "alexnet"))
    estimator = Estimator("cuda", "NVIDIA H200", measured={"other": [
        Rates(50_000.0, 150_000.0, training_flops_per_image(small), "small"),
        Rates(7_000.0, 21_000.0, training_flops_per_image(large) / 2, "half the paper net")]})
    rates = estimator.rates_elsewhere(large)
    assert rates.train == pytest.approx(3_500.0) and rates.source == "half the paper net, scaled by FLOPs"


def test_without_any_record_a_gpu_is_estimated_from_the_h100_measured_in_results_explore():
    estimator = Estimator.from_records("nowhere", "cuda", "NVIDIA H200")
    paper = params.resolve({}, preset="gpu")
    found = estimator.seconds(paper)
    assert found.source.startswith("the NVIDIA H100 80GB HBM3 measured in results/explore (eager fp32)")
    assert found.compile_s == estimates.COMPILE_S  # no compile was ever measured on a GPU
    rates = estimator.rates_elsewhere(paper)
    assert 6_000 < rates.train < 7_000  # the paper net's own eager rate there, 6,046-6,905 images/s


A, B = "alexnet-small", "cifar-18pct"  # two networks, told apart by their model


def stub(seconds, compile_s=0.0):
    """An estimator that says `seconds[model]` for a run and `compile_s` for its compile."""
    class Stub(Estimator):
        def seconds(self, config):
            return Estimate(seconds[config["model"]], compile_s, "stub")
    return Stub("cuda", "stub GPU")


def runs_of(models, results_dir):
    return [plan.PlannedRun(params.resolve({"model": m, "seed": i, "results_dir": str(results_dir)}), m, (), (),
                            False, (0, i, 0), m) for i, m in enumerate(models)]


def test_compile_is_charged_once_per_worker_and_network_and_a_run_goes_where_its_network_compiled(tmp_path):
    layout = grid.Layout({0: 2}, "two workers on one GPU")
    plan_budget = budget.Budget(None, stub({A: 10.0, B: 10.0}, compile_s=60.0), layout)
    first, second, other = runs_of([A, A, B], tmp_path)
    assert plan_budget.cost(first, (0, 0))[0] == 10.0 + 60.0 + estimates.WORKER_START_S["cuda"]
    plan_budget.admit(first, (0, 0))
    assert plan_budget.pick(second, [(0, 1), (0, 0)]) == (0, 0)  # the worker that compiled "a"
    assert plan_budget.cost(second, (0, 0)) == (10.0, "stub")
    assert plan_budget.cost(other, (0, 0))[0] == 70.0  # warm, but "b" compiles there first
    assert plan_budget.cost(second, (0, 1))[0] == 70.0 + estimates.WORKER_START_S["cuda"]


def test_the_yield_plays_the_grid_out_on_the_estimates(tmp_path):
    layout = grid.Layout({None: 1}, "in this process")
    runs = runs_of([A, B, B, B, A], tmp_path)
    fits, wall = budget.play_out(runs, stub({A: 100.0, B: 30.0}, compile_s=20.0), layout, seconds=200)
    # A (120 with its compile) then B (50, compiling) then B (30): 200 s; the next B and the last A do not fit
    assert fits == {A: 1, B: 2} and wall == 200.0
    line = budget.yield_line(runs, stub({A: 100.0, B: 30.0}, compile_s=20.0), layout, 200)
    assert line.endswith(f"{A} 1 of 2, {B} 2 of 3")


def test_runs_at_once_is_one_until_the_bench_measures_more_to_pay(tmp_path):
    assert estimates.runs_at_once(tmp_path, "NVIDIA H200") == estimates.AtOnce()
    for runs, rate in ((1, 10_000.0), (2, 12_000.0), (4, 12_100.0)):
        path = tmp_path / "bench" / "nvidia-h200" / f"paper-{runs}-b128.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"device": "NVIDIA H200", "device_type": "cuda", "network": "paper",
                                    "layout": {"runs": runs}, "images_per_s": rate}))
    at_once = estimates.runs_at_once(tmp_path, "NVIDIA H200")
    assert at_once.runs == 4 and at_once.slowdown == pytest.approx(4 * 10_000 / 12_100)
    assert runs_per_gpu(params.resolve({}, preset="gpu"), at_once.runs) == 4


def test_a_gpu_dry_run_on_this_cpu_plans_for_the_lent_gpu_and_says_the_yield():
    """The loan's arithmetic: 400 s of grid at the H100's measured eager rate, compile counted, buys the d2l
    run and at least six paper-net runs."""
    done = subprocess.run([sys.executable, "-m", "reproduce", "grid", "--preset", "gpu", "--dry-run", "--time-budget",
                           "400", "--device", "cuda"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here: this dry run plans for one NVIDIA H200" in done.stdout
    line = next(line for line in done.stdout.splitlines() if "expected yield of 400 s" in line)
    counts = {part.split()[0]: int(part.split()[1]) for part in line.split(": ", 1)[1].split(", ")}
    assert counts["d2l"] == 1 and counts["alexnet"] >= 6, line


def test_a_grid_on_cuda_without_a_gpu_is_refused_in_one_line_and_a_gpu_preset_on_the_cpu_warned():
    with pytest.raises(params.ParamError, match="device: cuda was asked for but torch sees no CUDA device"):
        grid.plan_device(params.resolve({"device": "cuda"}), dry_run=False)
    assert "would train on the CPU" in grid.plan_device(params.resolve({"device": "cpu"}), False, True).warnings[0]
