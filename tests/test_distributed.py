"""One run over several ranks (torchrun, gloo on this CPU): records, reuse, resume, refusals."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from slurm_cluster import free_ports
from test_faults import covers, metrics_of, tiny_flags

from reproduce.records import results
from reproduce.spec import params
from reproduce.training import distributed

HERE = Path(__file__).parent


def launcher(launch, args, harness):
    """torchrun with the options `launch`, running `python -m reproduce ARGS` (or the fault harness)."""
    target = ["-m", "reproduce"] if harness is None else [str(HERE / "rank_harness.py"), *harness]
    command = [sys.executable, "-m", "torch.distributed.run", *launch, *target, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def ended(process, timeout):
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def torchrun(*args, ranks=2, harness=None, timeout=300):
    """Run `python -m reproduce ARGS` (or the fault harness) as `ranks` torchrun ranks."""
    return ended(launcher(["--standalone", "--nproc_per_node", str(ranks)], args, harness), timeout)


def two_nodes(*args, harness=None, timeout=300):
    """The same as two torchrun nodes of one rank each, as on two machines: two launchers that meet through
    a c10d rendezvous at the first machine's address (here 127.0.0.1), exactly as docs/scale-out.md says."""
    launch = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint",
              f"127.0.0.1:{free_ports(1)[0]}", "--rdzv_id", "alexnet"]
    nodes = [launcher(launch, args, harness) for _ in range(2)]
    return [ended(node, timeout) for node in nodes]


def run_flags(data_dir, results_dir, *more):
    # no augmentation and no dropout: what is left between world sizes is the order of the sums
    return [*tiny_flags(data_dir, results_dir, "--augment", "off", "--dropout", "0"), *more]


def config_of(data_dir, results_dir, *more):
    names = run_flags(data_dir, results_dir, *more)[1:]
    pairs = dict(zip(names[::2], names[1::2]))
    return params.resolve({key[2:].replace("-", "_"): value for key, value in pairs.items()})


def final_weights(config):
    return torch.load(results.checkpoint_path(config["results_dir"], config), weights_only=True)["model"]


def our_errors(stderr):
    return [line for line in stderr.splitlines() if line.startswith(("error:", "rank 0 of"))]


def test_two_ranks_write_one_record_naming_the_world_and_a_rerun_reuses_it(tiny_fashion, tmp_path):
    flags = run_flags(tiny_fashion, tmp_path / "results")
    first = torchrun(*flags)
    assert first.returncode == 0, first.stderr[-3000:]
    config = config_of(tiny_fashion, tmp_path / "results")
    record = results.read_record(results.record_path(config["results_dir"], config))
    assert record["status"] == "complete" and record["world"] == {"size": 2, "backend": "gloo"}
    assert first.stdout.count("complete by 2 ranks (gloo)") == 1  # rank 0 alone prints
    again = torchrun(*flags)
    assert again.returncode == 0 and "reused: already trained" in again.stdout
    assert results.read_record(results.record_path(config["results_dir"], config)) == record


def test_two_ranks_end_near_the_weights_of_one_process(tiny_fashion, tmp_path):
    done = torchrun(*run_flags(tiny_fashion, tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-3000:]
    one = config_of(tiny_fashion, tmp_path / "one")
    from reproduce.runs import runner
    runner.run(one)
    two_weights, one_weights = final_weights(config_of(tiny_fashion, tmp_path / "two")), final_weights(one)
    for name, weight in one_weights.items():
        # the same SGD steps, the gradients summed in another order: float32 rounding, not a drift
        assert torch.allclose(two_weights[name], weight, rtol=1e-3, atol=1e-5), name


@covers("rank-killed")
@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_rank_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(rank, tiny_fashion, tmp_path):
    straight = run_flags(tiny_fashion, tmp_path / "straight", "--epochs", "3")
    assert torchrun(*straight).returncode == 0
    flags = run_flags(tiny_fashion, tmp_path / "killed", "--epochs", "3")
    killed = torchrun(*flags, harness=["kill-at-step", rank, "9"])  # step 9 of 18: in epoch 2
    assert killed.returncode != 0
    config = config_of(tiny_fashion, tmp_path / "killed", "--epochs", "3")
    assert results.run_state(config["results_dir"], config).state == "running"
    resumed = torchrun(*flags)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = results.read_record(results.record_path(config["results_dir"], config))
    expected = results.read_record(results.record_path(tmp_path / "straight", config))
    assert record["resumed_at_epoch"] == 1
    assert record["totals"]["weights_sha256"] == expected["totals"]["weights_sha256"]


def test_two_nodes_of_one_rank_each_write_the_record_of_one_node_of_two_ranks(tiny_fashion, tmp_path):
    assert torchrun(*run_flags(tiny_fashion, tmp_path / "one")).returncode == 0
    nodes = two_nodes(*run_flags(tiny_fashion, tmp_path / "two"))
    assert [node.returncode for node in nodes] == [0, 0], "\n---\n".join(node.stderr[-2000:] for node in nodes)
    config = config_of(tiny_fashion, tmp_path / "one")
    one, two = (results.read_record(results.record_path(tmp_path / name, config)) for name in ("one", "two"))
    assert metrics_of(two) == metrics_of(one) and two["world"] == {"size": 2, "backend": "gloo"}


@covers("torchrun-node-killed")
def test_a_node_killed_mid_epoch_resumes_when_both_start_again(tiny_fashion, tmp_path):
    assert torchrun(*run_flags(tiny_fashion, tmp_path / "straight", "--epochs", "3")).returncode == 0
    flags = run_flags(tiny_fashion, tmp_path / "killed", "--epochs", "3")
    killed = two_nodes(*flags, harness=["kill-node-at-step", "1", "9"])  # step 9 of 18: in epoch 2
    assert sorted(node.returncode for node in killed)[0] == -9
    assert any("another rank of this run exited" in node.stderr for node in killed)
    resumed = two_nodes(*flags)
    assert [node.returncode for node in resumed] == [0, 0], "\n---\n".join(n.stderr[-2000:] for n in resumed)
    config = config_of(tiny_fashion, tmp_path / "killed", "--epochs", "3")
    record = results.read_record(results.record_path(config["results_dir"], config))
    expected = results.read_record(results.record_path(tmp_path / "straight", config))
    assert record["resumed_at_epoch"] == 1
    assert record["totals"]["weights_sha256"] == expected["totals"]["weights_sha256"]


@covers("world-size-changed")
def test_a_checkpoint_of_two_ranks_is_refused_by_one_naming_both(tiny_fashion, tmp_path, capsys):
    from test_faults import cli_run

    flags = run_flags(tiny_fashion, tmp_path / "results", "--epochs", "3")
    assert torchrun(*flags, harness=["kill-at-step", "1", "9"]).returncode != 0
    status, err = cli_run(capsys, *flags)
    assert status == 2 and "made by 2 rank(s), and this run has 1" in err and "--nproc_per_node 2" in err


@covers("bad-world")
@pytest.mark.parametrize("more, message", [
    (["--batch-size", "33"], "batch_size: 33 does not split evenly over 2 ranks"),
    (["--dist-backend", "nccl"], "dist_backend: nccl needs CUDA devices"),
    (["--device", "cuda"], "device: cuda with 2 ranks on this node, but it has 0 GPU(s)"),
])
def test_a_world_that_cannot_be_set_up_is_refused_in_one_line(more, message, tiny_fashion, tmp_path):
    if "cuda" in more and torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal needs one without")
    done = torchrun(*run_flags(tiny_fashion, tmp_path / "results", *more))
    assert done.returncode != 0
    assert our_errors(done.stderr) == [f"error: {our_errors(done.stderr)[0][7:]}"] and message in done.stderr
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").iterdir())


@covers("rank-dies-at-start")
def test_a_rank_that_dies_at_start_up_stops_the_others_at_once_in_one_line(tiny_fashion, tmp_path):
    started = time.monotonic()
    done = torchrun(*run_flags(tiny_fashion, tmp_path / "results"), harness=["die-at-start", "1"])
    assert done.returncode != 0
    assert time.monotonic() - started < 60  # not the process group's 5-minute join timeout
    assert len(our_errors(done.stderr)) == 1 and "stopped by torchrun because another rank exited" in done.stderr


def test_one_process_is_rank_0_of_1_and_joins_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = distributed.join(params.resolve({}))
    assert (world.rank, world.size, world.distributed, world.seed(5)) == (0, 1, False, 5)


def test_two_ranks_through_loader_workers_end_with_the_weights_of_two_without(tiny_fashion, tmp_path):
    """Issue 32: each rank's DataLoader workers gather that rank's share of every batch, as iterate_batches does,
    so 2 gloo ranks end with the same weights either way (bit for bit: the same world size)."""
    weights = []
    for workers in ("0", "2"):
        flags = run_flags(tiny_fashion, tmp_path / workers, "--loader-workers", workers)
        done = torchrun(*flags)
        assert done.returncode == 0, done.stderr[-3000:]
        config = config_of(tiny_fashion, tmp_path / workers)
        record = results.read_record(results.record_path(config["results_dir"], config))
        weights.append(record["totals"]["weights_sha256"])
    assert weights[0] == weights[1]


def test_a_rank_killed_within_an_epoch_resumes_there_to_the_weights_of_an_uninterrupted_run(tiny_fashion, tmp_path):
    """checkpoint_every_steps with 2 ranks: each rank's streams travel to rank 0's checkpoint, and each rank
    takes its own back; the run resumes inside epoch 2 and ends bit for bit where an uninterrupted one does."""
    straight = run_flags(tiny_fashion, tmp_path / "straight", "--epochs", "3")
    assert torchrun(*straight).returncode == 0
    more = ("--epochs", "3", "--checkpoint-every-steps", "2")
    flags = run_flags(tiny_fashion, tmp_path / "killed", *more)
    killed = torchrun(*flags, harness=["kill-at-step", "1", "10"])  # step 4 of epoch 2 (6 steps an epoch)
    assert killed.returncode != 0
    resumed = torchrun(*flags)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    config = config_of(tiny_fashion, tmp_path / "killed", *more)
    record = results.read_record(results.record_path(config["results_dir"], config))
    expected = results.read_record(results.record_path(tmp_path / "straight", config))
    assert (record["resumed_at_epoch"], record["resumed_at_step"]) == (1, 2)
    assert record["totals"]["weights_sha256"] == expected["totals"]["weights_sha256"]
