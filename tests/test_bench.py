"""The benchmark: its FLOP count, its baseline's model, its record and its last line."""

import json

import pytest
import torch

from reproduce import bench, book, flops, params
from reproduce.d2l_baseline import StockGroupedLRN, stock_model
from reproduce.layers import PAPER_LRN, GroupedLRN
from reproduce.models import build_model

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
    ({"networks": "imagenet"}, "networks: imagenet is not allowed; expected one of all, paper, small"),
    ({"seconds": "0"}, "seconds: 0.0 is out of range"),
    ({"batch": 4}, "unknown bench option 'batch'"),
])
def test_bad_bench_options_are_named(values, message):
    with pytest.raises(params.ParamError, match=message):
        bench.parse_settings(values)


def test_targets_say_by_how_much_they_are_missed():
    cpu = {"device_type": "cpu", "ratio": 1.5, "mfu": 0.4}
    assert bench.target_verdict(cpu) == "target ratio >= 2x: missed by 0.50x"
    gpu = {"device_type": "cuda", "ratio": 6.0, "mfu": 0.3}
    assert bench.target_verdict(gpu) == "target ratio >= 5x: met; target MFU >= 40%: missed by 10.00%"


def test_bench_measures_both_loops_writes_the_record_and_ends_with_the_ratio(tiny_fashion, tmp_path, capsys):
    values = {"networks": "small", "device": "cpu", "batch_size": 16, "warmup": 1, "seconds": 1,
              "data_dir": str(tiny_fashion), "results_dir": str(tmp_path)}
    [record] = bench.run_bench(values)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"ratio {record['ratio']:.2f}"
    [path] = (tmp_path / "bench").glob("*/small-b16.json")
    saved = json.loads(path.read_text())
    for key in ("device", "model", "batch", "images_per_s", "baseline_images_per_s", "ratio", "peak_memory",
                "versions", "tflops", "mfu"):
        assert saved[key] is not None, key
    assert saved["ratio"] == pytest.approx(saved["images_per_s"] / saved["baseline_images_per_s"])
    assert saved["trainer"]["how"]["precision"] == "fp32" and saved["baseline"]["how"]["memory_format"] == "contiguous"
    assert saved["peak_source"].startswith("measured fp32 GEMM")
    (path.parent / "broken-b1.json").write_text('{"network": ')  # a half-written record
    page = "\n".join(book.speed_section(tmp_path))
    assert f"**{saved['ratio']:.2f}x**" in page
    assert "broken-b1.json: unreadable" in page and "No GPU record" in page
