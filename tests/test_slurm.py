"""The grid on a real Slurm cluster (tests/slurm_cluster.py: one node, this machine's CPUs), through the
project's own command, exactly as docs/scale-out.md gives it: one job array, the weights of one process,
a job requeued or out of time, a rank of a two-task job killed, two grids at once, and the options that
cannot work. Skipped, with the reason, where Slurm is not installed or this is not root."""

import os
import signal
import subprocess
from pathlib import Path

import pytest
import slurm_cluster
from test_faults import cli_run, covers, grid_command, wait_for
from test_grid import digests, smoke_overrides, train_ablation

from reproduce.records import results

ROOT = Path(__file__).resolve().parents[1]
ON_SLURM = ("--executor", "submitit")
ONE_RUN = ("--only", "features")  # the features notebook's one run (grid_command's --only lrn has two)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    reason = slurm_cluster.why_not()
    if reason:
        pytest.skip(reason)
    started = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield started.start()
    finally:
        started.stop()  # even when a test or the start failed: nothing stays running


@pytest.fixture
def slurm(cluster, monkeypatch):
    """The cluster, for one test: the commands it runs find it through SLURM_CONF, and so do their
    jobs (sbatch exports the environment); the jobs it leaves behind are cancelled."""
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    yield cluster
    cluster.cancel_all()


def grid(data_dir, results_dir, *more, timeout=300):
    done = subprocess.run(grid_command(data_dir, results_dir, *ON_SLURM, *more), capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def start_grid(data_dir, results_dir, *more):
    return subprocess.Popen(grid_command(data_dir, results_dir, *ON_SLURM, *more), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def checkpoints(results_dir, count):
    """Once `count` runs have checkpointed an epoch."""
    return wait_for(lambda: len(list((Path(results_dir) / "checkpoints").glob("*.pt"))) >= count)


def records(results_dir):
    return [results.read_record(path) for path in sorted((Path(results_dir) / "runs").glob("*.json"))]


def test_the_grid_is_one_job_array_on_slurm_with_the_weights_of_one_process(slurm, tiny_fashion, tmp_path):
    said = grid(tiny_fashion, tmp_path / "slurm")
    assert "submitit: Slurm, one job array of 2 jobs" in said
    assert "each 1 task(s) x 1 CPU(s), 0 GPU(s)" in said  # on the CPU the defaults ask for no GPU
    script = next((tmp_path / "slurm" / "submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%2" in script and "gpu" not in script
    train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path / "here"))  # --workers 1
    assert digests(tmp_path / "slurm") == digests(tmp_path / "here") and len(digests(tmp_path / "here")) == 2


@covers("slurm-job-requeued")
@covers("slurm-time-limit")
def test_a_job_requeued_and_one_out_of_time_resume_to_the_weights_of_uninterrupted_runs(slurm, tiny_fashion,
                                                                                      tmp_path):
    process = start_grid(tiny_fashion, tmp_path / "slurm", "--epochs", "40", "--slurm-time", "3")
    checkpoints(tmp_path / "slurm", 2)  # both runs (a job each) are past their first epoch
    requeued, out_of_time = slurm.running()
    # What an administrator does (or Slurm, for a node that fails): the job is stopped and queued again.
    slurm.run("scontrol", "requeue", requeued)
    # What Slurm does 90 s before a job's time limit (submitit sets sbatch --signal=USR2@90): USR2 to its
    # tasks. A job of --slurm-time 3 that gets it has run out of time, says submitit, which checkpoints it
    # and requeues it. (Slurm's own would come a minute into the job: these runs end before.)
    slurm.run("scancel", "--signal=USR2", out_of_time)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out[-2000:] + err[-3000:]
    assert [record.get("resumed_at_epoch", 0) >= 1 for record in records(tmp_path / "slurm")] == [True, True]
    log = "".join(path.read_text() for path in (tmp_path / "slurm" / "submitit").glob(f"*/{out_of_time}_0_log.*"))
    assert "this job is timed-out" in log and f"Requeued job {out_of_time}" in log
    train_ablation("lrn", "smoke", 1, smoke_overrides(tiny_fashion, tmp_path / "straight", epochs=40))
    assert digests(tmp_path / "slurm") == digests(tmp_path / "straight")


@covers("slurm-rank-killed")
def test_a_rank_killed_in_a_two_task_job_fails_its_run_and_a_rerun_resumes_it(slurm, tiny_fashion, tmp_path):
    two_ranks = (*ONE_RUN, "--gpus-per-run", "2", "--batch-size", "32", "--epochs", "12")
    grid(tiny_fashion, tmp_path / "straight", *two_ranks)
    assert [record["world"] for record in records(tmp_path / "straight")] == [{"size": 2, "backend": "gloo"}]
    process = start_grid(tiny_fashion, tmp_path / "killed", *two_ranks)
    checkpoints(tmp_path / "killed", 1)
    rank_1 = wait_for(lambda: slurm.processes("SLURM_PROCID=1", command="submitit.core._submit"))
    os.kill(rank_1[0], signal.SIGKILL)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1 and "another rank of this run exited" in out, out[-2000:] + err[-3000:]
    assert "] complete (trained" in grid(tiny_fashion, tmp_path / "killed", *two_ranks)
    assert records(tmp_path / "killed")[0]["resumed_at_epoch"] >= 1
    assert digests(tmp_path / "killed") == digests(tmp_path / "straight")


@covers("two-grids-on-slurm")
def test_two_grids_on_one_results_folder_train_each_run_once(slurm, tiny_fashion, tmp_path):
    both = [start_grid(tiny_fashion, tmp_path, *ONE_RUN, "--epochs", "3") for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in both]
    assert [process.returncode for process in both] == [0, 0], "\n---\n".join(err[-1500:] for _, err in outputs)
    said = "".join(out for out, _ in outputs)
    assert said.count("] complete (trained") == 1 and said.count("] complete (reused)") == 1
    assert len(records(tmp_path)) == 1


@pytest.mark.parametrize("case, args, message", [
    ("bad-slurm-option", ["--slurm-partition", "gpu"],
     "slurm_partition: 'gpu' is not a partition of this cluster; expected one of debug, short"),
    ("bad-slurm-option", ["--slurm-cpus-per-task", "64"],
     "slurm_cpus_per_task: 1 task(s) x 64 CPUs on one node, and the nodes of partition debug have at most"),
    ("bad-slurm-option", ["--slurm-partition", "short"],
     "slurm_time: 240 minutes, and partition short allows at most 30; lower --slurm-time"),
    ("bad-slurm-option", ["--slurm-extra", "account=abc,time=30"], "slurm_extra: time is set by --slurm-time"),
    ("slurm-refuses-job", ["--slurm-gpus-per-task", "1", "--slurm-cpus-per-task", "1"],
     "slurm_gpus_per_task: sbatch refused the job array (Invalid generic resource (gres) specification)"),
    ("slurm-refuses-job", ["--slurm-extra", "acount=abc"],
     "slurm_extra: sbatch refused the job array (unrecognized option '--acount=abc'"),
])
def test_slurm_options_that_cannot_work_stop_the_grid_in_one_line_before_anything_runs(case, args, message, slurm,
                                                                                      tiny_fashion, tmp_path, capsys):
    status, err = cli_run(capsys, *grid_command(tiny_fashion, tmp_path, *ON_SLURM, *args)[3:])
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err[-3000:]
    assert slurm.jobs() == [] and not records(tmp_path)


for _case in ("bad-slurm-option", "slurm-refuses-job"):
    covers(_case)(test_slurm_options_that_cannot_work_stop_the_grid_in_one_line_before_anything_runs)


@covers("no-slurm-cluster")
def test_slurm_installed_without_a_cluster_is_one_line(tiny_fashion, tmp_path, monkeypatch, capsys):
    """What Debian's slurm-client does on a machine no cluster configures: srun is there, sinfo fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sinfo").write_text("#!/bin/sh\necho 'sinfo: error: fetch_config: DNS SRV lookup failed' >&2\n"
                                   "echo 'sinfo: fatal: Could not establish a configuration source' >&2\nexit 1\n")
    for tool in ("srun", "sinfo"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    status, err = cli_run(capsys, *grid_command(tiny_fashion, tmp_path, *ON_SLURM)[3:])
    assert status == 2 and "Traceback" not in err
    assert ("error: executor: submitit found Slurm (srun) but sinfo fails (sinfo: fatal: Could not establish a "
            "configuration source)") in err
