"""The plan and the grid: runs shared by claims planned once, in priority order; the pool, submitit and
this process train the same weights; the time budget; the worker layouts; the generated sbatch script;
and the sbatch script generated from the options (tests/test_layers.py checks the import graph)."""

import functools
import os
from pathlib import Path

import pytest

from reproduce.grids import estimates, grid, messages, slurm_options, submitit_jobs
from reproduce.grids.layout import MAX_RUNS_PER_GPU, runs_per_gpu
from reproduce.records import results
from reproduce.spec import params, plan
from reproduce.training import train
from reproduce.verdicts import claims


def train_ablation(name, preset, seeds, overrides, log=None, **options):
    """What a notebook does: the grid of one ablation, here in this process unless told otherwise."""
    chosen = {"only": name, "workers": 1, **options}
    return grid.run_grid(preset, seeds, chosen, overrides, log=log or (lambda line: None))


def smoke_overrides(data_dir, results_dir, **more):
    return {"data_dir": str(data_dir), "results_dir": str(results_dir), "device": "cpu", **more}


def digests(results_dir):
    return {r["run_id"]: r["totals"]["weights_sha256"]
            for r in map(results.read_record, sorted((Path(results_dir) / "runs").glob("*.json")))}


@pytest.fixture
def local_submitit(monkeypatch):
    """submitit's local executor, asked for by name: AutoExecutor takes Slurm wherever srun is installed,
    cluster or not (tests/test_slurm.py runs the grid on a Slurm cluster)."""
    monkeypatch.setattr(submitit_jobs, "run_jobs", functools.partial(submitit_jobs.run_jobs, cluster="local"))


# ----------------------------------------------------------------------------- the plan

def test_runs_shared_by_two_claims_are_planned_once():
    # pooling's C4 and C4b compare the same two arms: 2 arms x 2 seeds, not 8 runs
    runs = plan.grid_plan("smoke", 2, ["pooling"])
    assert len(runs) == 4 and all({"C4", "C4b"} <= set(run.claims) for run in runs)
    # the overlapping arm is the baseline: every claim it serves is named, the ones not chosen too
    assert {r.claims for r in runs if r.config["pooling"] == "non-overlapping"} == {("C4", "C4b")}
    assert all("C17" in r.claims and r.analyse for r in runs if r.config["pooling"] == "overlapping")
    assert {(r.config["pooling"], r.config["seed"]) for r in runs} == {
        ("overlapping", 0), ("overlapping", 1), ("non-overlapping", 0), ("non-overlapping", 1)}


def test_the_baseline_is_one_run_per_seed_shared_by_twelve_claims_and_trained_first():
    runs = plan.grid_plan("cpu", 3)
    assert len({r.run_id for r in runs}) == len(runs) == 42  # 12 AlexNet configs and C1's 2 a seed (C15b: C15's)
    baseline = [r for r in runs if r.priority[0] == 0]
    first = params.get_preset("cpu").first_seed
    assert [r.config["seed"] for r in baseline] == [first, first + 1, first + 2] and runs[:3] == baseline
    assert set(baseline[0].claims) >= {"C3", "C4", "C4b", "C7", "C8", "C10", "C11", "C15", "C17"}
    assert "C12" not in baseline[0].claims  # its runs train the first 8 epochs only
    assert baseline[0].analyse  # C8 and C17 measure its final weights


def test_the_named_ablations_come_next_seed_by_seed_then_the_rest():
    runs = plan.grid_plan("cpu", 3)
    tiers = [r.priority[0] for r in runs]
    assert tiers == sorted(tiers)
    named = [r for r in runs if r.priority[0] == 1]
    assert {a for r in named for a in r.ablations} <= set(plan.NAMED_ABLATIONS)
    assert [r.config["seed"] for r in named] == sorted(r.config["seed"] for r in named)
    assert {a for r in runs if r.priority[0] == 2 for a in r.ablations}.isdisjoint(plan.NAMED_ABLATIONS)


def test_only_names_ablations_and_refuses_others():
    chosen = plan.grid_plan("smoke", 1, "lrn, dropout")
    assert all({"lrn", "dropout"} & set(r.ablations) for r in chosen)
    assert {r.run_id for r in chosen} == {r.run_id for name in ("lrn", "dropout") for r in plan.grid_plan("smoke", 1, name)}
    with pytest.raises(params.ParamError, match="only: 'lrm' is not allowed; expected one or more of activation"):
        plan.grid_plan("smoke", 1, "lrn,lrm")


# ----------------------------------------------------------------------------- the grid

def test_a_rerun_reuses_finished_runs_and_says_so(tiny_fashion, tmp_path):
    lines = []
    first = train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path), lines.append)
    assert first.actions() == {"trained": 2} and first.count() == {"complete": 2} and first.exit_code == 0
    assert any(line.startswith("grid: preset smoke, at most 1 seeds a claim: 2 distinct runs, 0 done, 2 to train") for line in lines)
    lines.clear()
    again = train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path), lines.append)
    assert again.actions() == {"reused": 2}
    assert sum("] complete (reused)" in line for line in lines) == 2
    assert len(list((tmp_path / "grid").glob("*.json"))) == 1  # only the grid that trained left a record


def test_a_failing_run_is_named_the_others_still_train_and_the_grid_exits_1(tiny_fashion, tmp_path, monkeypatch):
    real_run = train.run

    def flaky(config, *rest):
        if config["lrn"] is False:
            raise RuntimeError("disk full")
        return real_run(config, *rest)

    monkeypatch.setattr(train, "run", flaky)
    lines = []
    summary = train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path), lines.append)
    assert summary.count() == {"complete": 1, "failed": 1} and summary.exit_code == messages.EXIT_FAILED
    assert any(line.startswith("  FAILED ") and "disk full" in line for line in lines)
    # it raised before train.run could write a record: the claim has a run missing
    assert claims.evaluate(plan.load_registry()["C3"], "smoke", 1, tmp_path).verdict == "missing"


@pytest.mark.parametrize("how", [{"workers": 2}, {"executor": "submitit"}], ids=["pool", "submitit-local"])
def test_the_pool_and_submitit_give_the_weights_this_process_gives(how, tiny_fashion, tmp_path, local_submitit):
    serial = train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path / "serial"))
    other = train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path / "other"), **how)
    assert serial.actions() == other.actions() == {"trained": 2}
    assert digests(tmp_path / "other") == digests(tmp_path / "serial") and len(digests(tmp_path / "serial")) == 2


def test_submitit_debug_executor_runs_the_jobs_in_this_process(tiny_fashion, tmp_path):
    runs = plan.grid_plan("smoke", 1, ["lrn"], smoke_overrides(tiny_fashion, tmp_path, progress=False))
    done = []
    submitit_jobs.run_jobs(runs, grid.parse_options({}), None, {}, tmp_path, done.append, lambda line: None,
                           local_limit=1, cluster="debug")
    assert [(r.state, r.action) for r in done] == [("complete", "trained")] * 2
    assert set(digests(tmp_path)) == {r.run_id for r in runs}


def test_a_submitit_job_of_two_tasks_trains_one_run_on_two_ranks(tiny_fashion, tmp_path, local_submitit):
    """--gpus-per-run 2 on submitit's local executor: a job of two tasks, their ranks taken from the job's
    environment, gloo on this CPU: one record naming world size 2."""
    options = {"executor": "submitit", "gpus_per_run": 2, "slurm_gpus_per_task": 0, "workers": 2}
    summary = train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path, batch_size=32), **options)
    assert summary.actions() == {"trained": 2}, [r.detail for r in summary.results]
    worlds = [r["world"] for r in map(results.read_record, (tmp_path / "runs").glob("*.json"))]
    assert worlds == [{"size": 2, "backend": "gloo"}] * 2


# ----------------------------------------------------------------------------- the time budget

def test_a_run_whose_estimate_exceeds_the_budget_is_not_started(tiny_fashion, tmp_path):
    overrides = smoke_overrides(tiny_fashion, tmp_path)
    train_ablation("lrn", "smoke", 1, overrides)  # seed 0: records to estimate seed 1 from
    for path in (tmp_path / "runs").glob("*.json"):
        record = results.read_record(path)
        for epoch in record["epochs"]:
            epoch["images_per_s"] = 0.02  # as if it had trained at one image a minute on this machine
        results.write_record(path, record)
    summary = train_ablation("lrn", "smoke", 2, overrides, time_budget=60)
    assert summary.actions() == {"reused": 2, "not started": 2} and summary.exit_code == messages.EXIT_STOPPED
    assert all("(earlier records of this network), " in r.detail for r in summary.results if r.action == "not started")


def test_a_run_stopped_by_the_budget_is_checkpointed_and_a_rerun_goes_on(tiny_fashion, tmp_path, monkeypatch):
    monkeypatch.setattr(estimates.Estimator, "seconds", lambda self, config: estimates.Estimate(0.0, 0.0, "the test"))
    overrides = smoke_overrides(tiny_fashion, tmp_path / "budget", epochs=40)
    stopped = train_ablation("lrn", "smoke", 1, overrides, time_budget=1)
    assert stopped.count()["running"] >= 1 and stopped.exit_code == messages.EXIT_STOPPED
    assert set(stopped.count()) <= {"running", "missing"}
    finished = train_ablation("lrn", "smoke", 1, overrides)
    assert finished.actions() == {"trained": 2} and finished.count() == {"complete": 2}
    straight = train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path / "straight", epochs=40))
    assert straight.actions() == {"trained": 2}
    assert digests(tmp_path / "budget") == digests(tmp_path / "straight")


# ----------------------------------------------------------------------------- layouts and options

def test_auto_workers_on_the_cpu_split_the_cores_by_the_threads_of_a_run(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    options = grid.parse_options({})
    assert grid.worker_layout(options, params.resolve({"device": "cpu"})).workers == 16
    assert grid.worker_layout(options, params.resolve({"device": "cpu", "cpu_threads": 4})).workers == 4
    crowded = grid.worker_layout(grid.parse_options({"workers": 8}), params.resolve({"device": "cpu", "cpu_threads": 4}))
    assert crowded.workers == 8 and "more threads than cores" in crowded.why


def test_with_cuda_each_worker_is_pinned_to_a_visible_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    layout = grid.worker_layout(grid.parse_options({"per_gpu": 2}), params.resolve({"device": "auto"}))
    assert (layout.workers, layout.groups) == (4, {3: 2, 5: 2})
    three = grid.worker_layout(grid.parse_options({"workers": 3}), params.resolve({"device": "cuda"}))
    assert three.groups == {3: 2, 5: 1}


def test_on_a_gpu_small_nets_share_it_and_the_paper_net_has_it_alone(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    runs = plan.grid_plan("gpu", 1, ["activation", "lrn"])
    layout = grid.worker_layout(grid.parse_options({}), params.resolve({"device": "cuda"}), runs)
    four_layer = next(r.config for r in runs if r.network == "four-layer")
    paper_net = next(r.config for r in runs if r.network == "alexnet")
    assert runs_per_gpu(four_layer) == MAX_RUNS_PER_GPU and runs_per_gpu(paper_net) == 1
    assert layout.groups == {0: MAX_RUNS_PER_GPU}
    loads = {0: 0.0}
    for _ in range(MAX_RUNS_PER_GPU):
        assert layout.place(four_layer, loads) == 0
        loads[0] += layout.share(four_layer, 0)
    assert layout.place(four_layer, loads) is False and layout.place(paper_net, {0: 0.25}) is False
    assert layout.place(paper_net, {0: 0.0}) == 0


@pytest.mark.parametrize("values, message", [
    ({"workers": 0}, r"workers: 0 is out of range; expected auto or an int in \[1, inf\)"),
    ({"workers": "many"}, "workers: 'many' is not an int"),
    ({"executor": "slurm"}, "executor: slurm is not allowed; expected one of local, submitit"),
    ({"per_gpu": 0}, "per_gpu: 0 is out of range"),
    ({"time_budget": -1}, "time_budget: -1.0 is out of range"),
    ({"slurm_extra": "account"}, "slurm_extra: 'account' is not key=value"),
    ({"slurm_extra": "qos=high,time=10"}, "slurm_extra: time is set by --slurm-time"),
    ({"slurm_gpus_per_task": "all"}, "slurm_gpus_per_task: 'all' is not an int; expected auto or an int"),
    ({"slurm_time": 2}, r"slurm_time: 2 is out of range; expected an int in \[3, inf\)"),
    ({"bogus": 1}, "unknown grid option 'bogus'"),
])
def test_bad_grid_options_are_named_with_what_is_allowed(values, message):
    with pytest.raises(params.ParamError, match=message):
        grid.parse_options(values)


@pytest.mark.parametrize("device, gpus_here, expected", [
    ("cpu", 1, (0, 1)), ("auto", 0, (0, 1)), ("auto", 2, (1, 4)), ("cuda", 0, (1, 4))])
def test_auto_asks_for_a_gpu_only_where_the_runs_can_use_one(device, gpus_here, expected):
    config = params.resolve({"device": device})
    chosen = slurm_options.job_options(grid.parse_options({}), config, "local", gpus_here)
    assert (chosen["slurm_gpus_per_task"], chosen["slurm_cpus_per_task"]) == expected


def test_sinfo_columns_and_sbatch_refusals_are_read_as_the_grid_needs():
    assert [slurm_options.gpus_in_gres(g) for g in ("(null)", "gpu:4", "gpu:a100:4(S:0-1)", "gpu:a100:2,gpu:v100:2",
                                             "gpu:4,shard:8")] == [0, 4, 4, 4, 4]
    assert [slurm_options.minutes_of(t) for t in ("infinite", "30:00", "4:00:00", "1-00:00:00")] == [
        float("inf"), 30, 240, 1440]
    said = slurm_options.refusal(RuntimeError("sbatch: error: Invalid generic resource (gres) specification\n"))
    assert str(said).startswith("slurm_gpus_per_task: sbatch refused the job array (Invalid generic resource")
    other = slurm_options.refusal(RuntimeError("sbatch: error: Batch job submission failed: Disk quota exceeded"))
    assert str(other) == ("slurm: sbatch refused the job array (Batch job submission failed: Disk quota exceeded); "
                          "see the --slurm-* options")


def test_without_accounting_job_states_come_from_squeue_and_a_job_it_forgot_has_ended():
    watcher = submitit_jobs.SqueueWatcher()
    for job_id in ("5_0", "5_1", "6", "7"):
        watcher.register_job(job_id)
    watcher._info_dict.update(watcher.read_info(b"5_0|COMPLETING\n5_1|CONFIGURING\n6|FAILED\n"))
    assert [watcher.is_done(job_id, mode="cache") for job_id in ("5_0", "5_1", "6", "7")] == [False, False, True, True]


def test_the_sbatch_script_carries_the_slurm_options(tmp_path, monkeypatch):
    """No Slurm here: a fake srun makes submitit choose Slurm, a fake sinfo describes a partition of GPU
    nodes, a fake sbatch keeps the script it is given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sinfo").write_text("#!/bin/sh\necho 'cpu*|64|(null)|infinite'\necho 'gpu|32|gpu:a100:8(S:0-1)|2-00:00:00'\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n')
    for tool in ("srun", "sinfo", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    options = grid.parse_options({"executor": "submitit", "slurm_partition": "gpu", "gpus_per_run": 4,
                                  "slurm_cpus_per_task": 6, "slurm_time": 90, "slurm_array_parallelism": 2,
                                  "slurm_extra": "account=abc,qos=high"})
    executor = submitit_jobs.make_executor(options, tmp_path / "results")
    assert executor.cluster == "slurm"
    runs = plan.grid_plan("smoke", 1, ["lrn", "dropout"])
    jobs = submitit_jobs.submit_array(executor, runs, None, {})
    script = (tmp_path / "submitted.sh").read_text()
    assert [job.job_id for job in jobs] == [f"4242_{i}" for i in range(len(runs))]
    for line in (f"#SBATCH --array=0-{len(runs) - 1}%2", "#SBATCH --partition=gpu", "#SBATCH --nodes=1",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --time=90", "#SBATCH --account=abc", "#SBATCH --qos=high",
                 "#SBATCH --signal=USR2@90", "#SBATCH --job-name=alexnet-grid"):
        assert line in script, line
    assert "submitit.core._submit" in script
