"""The fast path: one fast step lands where the plain fp32 step does; choices per device; no host sync."""

import copy

import pytest
import torch

from reproduce.nets.layers import PAPER_LRN, GroupedLRN, SpatialLRN
from reproduce.nets.models import build_model
from reproduce.spec import params
from reproduce.training import train
from reproduce.training.execution import Execution, HostCopy, plan_execution

CPU = torch.device("cpu")
PLAIN = Execution(CPU, "fp32", compile=False, memory_format=torch.contiguous_format)


def small_net_and_batch():
    # No dropout: compiled code draws its masks from another generator than eager code.
    config = {**params.defaults(), "model": "alexnet-small", "width": 0.125, "weight_init": "he",
              "dropout": 0.0, "in_channels": 1, "num_classes": 10}
    torch.manual_seed(0)
    model = build_model(config)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(16, 1, 32, 32, generator=generator)
    labels = torch.randint(10, (16,), generator=generator)
    return model, images, labels


def one_step(model, images, labels, execution):
    model = copy.deepcopy(model).to(memory_format=execution.memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_sum, wrong = train.train_step(execution.compiled(model), optimizer, execution.layout(images),
                                       labels, execution)
    return loss_sum.item() / len(labels), wrong.item(), model


def weight_updates(before, after):
    return [(a.detach() - b.detach()).flatten() for b, a in zip(before.parameters(), after.parameters())]


def assert_same_step(plain, fast, loss_tolerance, update_tolerance, min_cosine=0.9999):
    """Same loss, and every parameter moved the same way by the same amount, within tolerance."""
    (plain_loss, _, plain_model, model), (fast_loss, _, fast_model) = plain, fast
    assert fast_loss == pytest.approx(plain_loss, rel=loss_tolerance)
    plain_updates, fast_updates = weight_updates(model, plain_model), weight_updates(model, fast_model)
    for plain_update, fast_update in zip(plain_updates, fast_updates):
        assert torch.nn.functional.cosine_similarity(plain_update, fast_update, dim=0) > min_cosine
    plain_all, fast_all = torch.cat(plain_updates), torch.cat(fast_updates)
    assert (fast_all - plain_all).norm() / plain_all.norm() < update_tolerance


@pytest.fixture(scope="module")
def plain_step():
    model, images, labels = small_net_and_batch()
    return (*one_step(model, images, labels, PLAIN), model)


def test_channels_last_and_compiled_fp32_step_matches_the_plain_step(plain_step):
    model, images, labels = small_net_and_batch()
    fast = Execution(CPU, "fp32", compile=True)
    assert_same_step(plain_step, one_step(model, images, labels, fast), 1e-5, 1e-3)


def test_bf16_autocast_step_matches_the_plain_step_within_bf16_rounding(plain_step):
    model, images, labels = small_net_and_batch()
    fast = Execution(CPU, "bf16", compile=False)
    # bf16 keeps 8 bits of mantissa (rounding ~0.2% per op); the error grows layer by layer
    # going backwards (measured: 0.3% in fc8's update, 23% in conv1's, still pointing the same way).
    assert_same_step(plain_step, one_step(model, images, labels, fast), 1e-2, 0.1, min_cosine=0.95)


def test_auto_means_bf16_and_compile_on_cuda_and_plain_fp32_on_the_cpu(monkeypatch):
    config = params.resolve({})
    assert (plan_execution(config, CPU).precision, plan_execution(config, CPU).compile) == ("fp32", False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    on_gpu = plan_execution(config, torch.device("cuda"))
    assert (on_gpu.precision, on_gpu.compile, on_gpu.memory_format) == ("bf16", True, torch.channels_last)


def test_explicit_choices_override_auto_on_any_device():
    config = params.resolve({"precision": "bf16", "compile": "on"})
    assert (plan_execution(config, CPU).precision, plan_execution(config, CPU).compile) == ("bf16", True)
    config = params.resolve({"precision": "fp32", "compile": "off"})
    assert plan_execution(config, torch.device("cuda")).describe() == {
        "precision": "fp32", "compile": False, "memory_format": "channels_last"}


def test_precision_changes_the_run_but_compile_does_not():
    assert "precision" in params.result_config(params.resolve({}))
    assert "compile" not in params.result_config(params.resolve({}))


def test_host_copy_reads_back_the_device_values():
    values = torch.tensor([3.5, 7.0])
    copied = HostCopy(values)
    values.zero_()  # a later change on the device is not what was logged
    assert copied.read() == [3.5, 7.0]


def test_a_bf16_run_records_how_it_ran_and_its_peak_memory_every_epoch(tiny_fashion, tmp_path):
    from test_train import tiny_config
    record = train.run(tiny_config(tiny_fashion, tmp_path, precision="bf16", epochs=2))
    assert record["status"] == "complete"
    assert record["execution"] == {"precision": "bf16", "compile": False, "memory_format": "channels_last"}
    assert all(epoch["peak_memory_bytes"] > 0 for epoch in record["epochs"])
    assert record["totals"]["peak_memory_bytes"] == max(e["peak_memory_bytes"] for e in record["epochs"])


@pytest.mark.parametrize("layer", [GroupedLRN(groups=2, **PAPER_LRN), SpatialLRN()], ids=["cross-channel", "spatial"])
def test_lrn_under_bf16_autocast_is_the_fp32_result_rounded_once(layer):
    x = (torch.rand((4, 8, 6, 6), generator=torch.Generator().manual_seed(0)) * 150).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, layer(x.float()).bfloat16(), rtol=0, atol=0)


def test_a_process_compiles_each_architecture_once_and_keeps_them_all(tiny_fashion, tmp_path, monkeypatch):
    """Five architectures (as a grid worker trains), then another seed of the first, in one process:
    every net is an nn.Sequential, so their graphs pile up on one code object past dynamo's default
    limit (8); they are all kept, and the sixth run compiles nothing."""
    import torch._dynamo
    from test_train import tiny_config

    from reproduce.training import execution

    monkeypatch.setattr(execution, "COMPILE_BACKEND", "eager")  # dynamo's tracing and guards, no codegen
    torch._dynamo.reset()  # what this test counts starts here
    arms = [{}, {"lrn": False}, {"pooling": "non-overlapping"}, {"dropout": 0.0}, {"activation": "tanh"}, {"seed": 1}]
    counts = []
    for arm in arms:
        config = tiny_config(tiny_fashion, tmp_path, epochs=1, compile="on", batch_size=40, **arm)
        record = train.run(config)
        assert record["status"] == "complete" and record["execution"]["compile"]
        counts.append(record["execution"]["compiled_graphs"])
    assert all(0 < count <= 6 for count in counts[:-1]) and counts[-1] == 0, counts
    assert sum(counts) > 8  # more than dynamo's default limit would have held
    assert torch._dynamo.config.fail_on_recompile_limit_hit  # a limit hit would have raised, not run eager
