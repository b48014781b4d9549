"""The benchmark: its FLOP count, its baseline's model, its record and its last line."""

import json
import os
import subprocess
import sys

import pytest
import torch

from reproduce.grids import flops
from reproduce.nets.layers import PAPER_LRN, GroupedLRN
from reproduce.nets.models import build_model
from reproduce.report import environment_page
from reproduce.spec import params
from reproduce.tools import bench, bench_records
from reproduce.tools.d2l_baseline import StockGroupedLRN, stock_model

# The paper's AlexNet on 1-channel 227 px input, groups 2: multiply-adds per image of each layer.
PAPER_MACS = {
    "conv1": 55 * 55 * 96 * 1 * 11 * 11,
    "conv2": 27 * 27 * 256 * 48 * 5 * 5,
    "conv3": 13 * 13 * 384 * 256 * 3 * 3,
    "conv4": 13 * 13 * 384 * 192 * 3 * 3,
    "conv5": 13 * 13 * 256 * 192 * 3 * 3,
    "fc6": 9216 * 4096, "fc7": 4096 * 4096, "fc8": 4096 * 10,
}


def test_training_flops_are_forward_weight_grads_and_input_grads_but_conv1s():
    config = params.resolve({"model": "alexnet", "groups": 2})
    forward = 2 * sum(PAPER_MACS.values())
    # Backward: every layer's weight gradient, and every layer's input gradient but conv1's
    # (the images need none); each costs what the layer's forward does.
    expected = 3 * forward - 2 * PAPER_MACS["conv1"]
    assert flops.training_flops_per_image(config) == expected


def test_the_baseline_model_is_the_same_function_with_torchs_own_lrn():
    config = {**params.resolve({"model": "alexnet-small", "groups": 2, "width": 0.25, "dropout": 0.0}),
              "in_channels": 1, "num_classes": 10}
    torch.manual_seed(0)
    ours = build_model(config)
    torch.manual_seed(0)
    stock = stock_model(config)
    assert not any(isinstance(m, GroupedLRN) for m in stock.modules())
    assert sum(isinstance(m, StockGroupedLRN) for m in stock.modules()) == 2
    images = torch.randn(4, 1, 32, 32) * 40
    torch.testing.assert_close(stock(images), ours(images), rtol=1e-4, atol=1e-5)


def test_stock_grouped_lrn_keeps_towers_apart_like_ours():
    x = torch.randn(2, 8, 5, 5) * 30
    ours = GroupedLRN(groups=2, **PAPER_LRN)
    torch.testing.assert_close(StockGroupedLRN(ours)(x), ours(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,precision,peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.4), ("NVIDIA H100 80GB HBM3", "fp32", 494.7),
    ("NVIDIA H100 PCIe", "bf16", 756.5), ("NVIDIA GeForce GTX 580", "bf16", None)])
def test_datasheet_peaks(name, precision, peak):
    assert flops.peak_tflops(name, precision) == peak


@pytest.mark.parametrize("values,message", [
    ({"networks": "imagenet"}, "networks: imagenet is not allowed; expected one of all, small, four-layer, paper"),
    ({"seconds": "0"}, "seconds: 0.0 is out of range"),
    ({"batch": 4}, "unknown bench option 'batch'"),
])
def test_bad_bench_options_are_named(values, message):
    with pytest.raises(params.ParamError, match=message):
        bench.parse_settings(values)


def test_targets_say_by_how_much_they_are_missed():
    small = {"device_type": "cpu", "network": "small", "ratio": 3.5, "mfu": 0.40, "against": {"speedup": 2.1}}
    assert bench_records.target_verdict(small) == ("target ratio >= 4.5x: missed by 1.00x; target share >= 45%: missed by 5%; "
                                           "target speedup >= 2x: met")
    four = {"device_type": "cpu", "network": "four-layer", "ratio": 2.0, "mfu": 0.3, "against": None}
    assert bench_records.target_verdict(four) == "target speedup >= 2x: not measured (no --against)"
    gpu = {"device_type": "cuda", "network": "paper", "ratio": 6.0, "mfu": 0.3}
    assert bench_records.target_verdict(gpu) == "target ratio >= 5x: met; target share >= 40%: missed by 10%"


def test_bench_times_each_layout_against_the_d2l_loop_and_another_commit(tiny_fashion, tmp_path, capsys):
    """The small net as the grid runs it (one thread, alone and two at once), beside the d2l loop and the
    trainer of the last commit; a record per layout; the last line is the ratio."""
    values = {"networks": "small", "device": "cpu", "batch_size": 16, "warmup": 1, "seconds": 1, "against": "HEAD",
              "data_dir": str(tiny_fashion), "results_dir": str(tmp_path)}
    one, two = bench.run_bench(values)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"ratio {two['ratio']:.2f}" and any("trainer of HEAD" in line for line in lines)
    saved = {path.name: json.loads(path.read_text()) for path in (tmp_path / "bench").glob("*/*.json")}
    assert set(saved) == {"small-one-b16.json", "small-two-b16.json"}
    for record in saved.values():
        for key in ("device", "model", "batch", "images_per_s", "baseline_images_per_s", "ratio", "peak_memory",
                    "versions", "tflops", "mfu", "against"):
            assert record[key] is not None, key
        assert record["ratio"] == pytest.approx(record["images_per_s"] / record["baseline_images_per_s"])
        assert record["trainer"]["how"]["precision"] == "fp32"
        assert record["baseline"]["how"]["memory_format"] == "contiguous"
        assert record["peak_source"].startswith("fp32 GEMM (2048x2048) measured in each run's process")
        assert record["peak_tflops"] == record["trainer"]["gemm_tflops"] and 0 < record["mfu"] <= 1
    assert len(saved["small-two-b16.json"]["trainer"]["per_run_images_per_s"]) == 2
    assert saved["small-two-b16.json"]["layout"]["words"] == "two runs at once, 1 thread each"
    path = next((tmp_path / "bench").glob("*/small-one-b16.json"))
    (path.parent / "broken-b1.json").write_text('{"network": ')  # a half-written record
    page = "\n".join(environment_page.speed_section(tmp_path))
    assert f"**{one['ratio']:.2f}x**" in page and "two runs at once" in page and "`HEAD`" in page
    assert "broken-b1.json: unreadable" in page and "No GPU record" in page
    rates, targets = (line for line in page.splitlines() if line.startswith("| device |"))
    assert "over an earlier trainer" in rates and "against the targets" in targets  # two tables, each readable
    assert "ratio >= 4.5x" in page and rates.count("|") == 10 and targets.count("|") == 6


def test_a_share_over_the_measured_peak_is_a_measurement_fault_never_a_result():
    config = params.resolve({"device": "cpu"}, preset="cpu")
    how = {"precision": "fp32", "compile": False, "memory_format": "channels_last"}
    flops_per_image = flops.training_flops_per_image(config)
    trainer = {"images_per_s": 1000.0, "peak_memory_bytes": 1, "how": how,
               "gemm_tflops": 0.8 * 1000.0 * flops_per_image / 1e12}  # the net "beat" its own peak
    record = bench_records.make_record("small", bench.ONE, config, torch.device("cpu"), None, trainer, None, "")
    assert record["mfu"] is None and "measurement fault" in record["mfu_fault"]
    assert any("125% of the rate measured as its peak: a measurement fault" in line
               for line in bench_records.summary_lines(record))
    assert "measurement fault" in environment_page._share_cell(record)


def test_a_compile_failure_is_told_apart_and_exits_3(tiny_fashion, tmp_path):
    """No working C++ compiler: inductor fails on the CPU where the eager trainer runs. The bench says so in
    one line and exits 3, which scripts/gpu_session.sh reads as "train with --compile off"."""
    command = [sys.executable, "-m", "reproduce", "bench", "--networks", "small", "--device", "cpu", "--compile", "on",
               "--seconds", "1", "--warmup", "1", "--batch-size", "16", "--data-dir", str(tiny_fashion),
               "--results-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "CXX": "/bin/false"},
                          timeout=300)
    assert done.returncode == bench.EXIT_COMPILE_FAILED, done.stderr[-2000:]
    assert "error: bench: the trainer fails compiled and runs eager: InductorError" in done.stderr
    assert not list(tmp_path.glob("bench/*/*.json"))
