"""The trainer: real steps for every switch, resume after interruption, divergence, records."""

import math
import time

import pytest
import torch

from reproduce.nets.models import build_model, input_size
from reproduce.records import results
from reproduce.report import environment_page
from reproduce.runs import runner
from reproduce.spec import params, run_ids
from reproduce.training import checkpoints, train
from reproduce.training.execution import Execution

PLAIN = Execution(torch.device("cpu"), "fp32", compile=False, memory_format=torch.contiguous_format)

# One real SGD step for every ablation switch of every model family.
SWITCHES = [
    {}, {"activation": "tanh"}, {"lrn": False}, {"pooling": "non-overlapping"}, {"dropout": 0.0},
    {"bias_init": "zero"},
]
FAMILIES = [
    {"model": "alexnet-small", "width": 0.25},
    {"model": "alexnet-small", "width": 0.25, "groups": 2},
    {"model": "alexnet", "groups": 2, "width": 0.125},
    {"model": "alexnet", "kernels": "half", "width": 0.125},
    {"model": "alexnet-small", "width": 0.25, "remove_conv": "conv4"},
    {"model": "cifar-18pct"},
    {"model": "cifar-11pct"},
]


# The CIFAR nets have no dropout layers: the dropout switch does not apply to them.
STEPS = [(family, switch) for family in FAMILIES for switch in SWITCHES
         if not (family["model"].startswith("cifar") and "dropout" in switch)]


def _step_id(case):
    family, switch = case
    return f"{family['model']}-g{family.get('groups', 1)}-" + (
        ",".join(f"{k}={v}" for k, v in switch.items()) or "base")


@pytest.mark.parametrize("case", STEPS, ids=_step_id)
def test_one_real_step_per_switch_changes_weights_with_a_finite_loss(case):
    family, switch = case
    config = {**params.defaults(), **family, **switch, "in_channels": 1, "num_classes": 10}
    torch.manual_seed(0)
    model = build_model(config)
    size = input_size(config["model"])
    images, labels = torch.randn(4, 1, size, size) * 50, torch.tensor([0, 1, 2, 3])
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_sum, wrong = train.train_step(model, optimizer, images, labels, PLAIN)
    assert math.isfinite(loss_sum.item()) and 0 <= wrong.item() <= 4
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(changed), "every parameter tensor receives a gradient step"


def tiny_config(data_dir, results_dir, **overrides):
    return params.resolve({
        "model": "alexnet-small", "width": 0.125, "epochs": 2, "batch_size": 32, "log_every": 2,
        "data_dir": str(data_dir), "results_dir": str(results_dir), "progress": False,
        "device": "cpu", **overrides})


def test_a_run_writes_a_complete_self_describing_record(tiny_fashion, tmp_path):
    config = tiny_config(tiny_fashion, tmp_path)
    record = train.run(config)
    assert record["status"] == "complete"
    saved = results.read_record(results.record_path(tmp_path, config))
    assert saved["config_hash"] == run_ids.config_hash(config)
    epoch = saved["epochs"][-1]
    for key in ("train_loss", "train_error", "val_loss", "val_top1_error", "test_loss", "test_top1_error", "test_top5_error",
                "train_time_s", "eval_time_s", "images_per_s", "peak_memory_bytes", "lr"):
        assert key in epoch, key
    assert len(saved["epochs"]) == 2 and saved["iterations"]
    # the clean training error (for overfitting) is measured once, after the last epoch
    assert "fit_top1_error" not in saved["epochs"][0] and 0 <= epoch["fit_top1_error"] <= 1
    assert {"commit", "dirty"} <= set(saved["code"]) and saved["device"].startswith("cpu")


def test_a_finished_run_is_not_trained_again(tiny_fashion, tmp_path, monkeypatch):
    config = tiny_config(tiny_fashion, tmp_path, epochs=1)
    first, trained = runner.run(config)
    monkeypatch.setattr(train, "build_trainer", lambda *_: pytest.fail("trained again"))
    again, trained_again = runner.run(config)
    assert trained and not trained_again and again["finished_at"] == first["finished_at"]


def test_a_deadline_stops_the_run_at_an_epoch_end_and_the_rerun_ends_with_the_same_weights(tiny_fashion, tmp_path):
    straight = train.run(tiny_config(tiny_fashion, tmp_path / "straight", epochs=3))
    config = tiny_config(tiny_fashion, tmp_path / "stopped", epochs=3)
    stopped = train.run(config, deadline=time.time())  # past already: one more epoch would overrun it
    assert stopped["status"] == "running" and len(stopped["epochs"]) == 1
    assert results.run_state(tmp_path / "stopped", config).state == "running"
    resumed = train.run(config)
    assert resumed["resumed_at_epoch"] == 1
    assert resumed["totals"]["weights_sha256"] == straight["totals"]["weights_sha256"]


def test_resume_after_interruption_gives_the_same_weights(tiny_fashion, tmp_path, monkeypatch):
    straight = train.run(tiny_config(tiny_fashion, tmp_path / "straight", epochs=3))

    interrupted = tiny_config(tiny_fashion, tmp_path / "interrupted", epochs=3)
    real_run_epoch = train.run_epoch

    def dies_in_epoch_two(trainer, epoch, within=None):
        if epoch == 1:
            raise KeyboardInterrupt  # as if killed half-way: epoch 1's checkpoint is all that is left
        real_run_epoch(trainer, epoch, within)

    monkeypatch.setattr(train, "run_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.run(interrupted)
    assert results.run_state(interrupted["results_dir"], interrupted).state == "running"
    monkeypatch.setattr(train, "run_epoch", real_run_epoch)
    resumed = train.run(interrupted)

    assert resumed["resumed_at_epoch"] == 1
    assert resumed["totals"]["weights_sha256"] == straight["totals"]["weights_sha256"]
    metrics = ["train_loss", "train_error", "test_loss", "test_top1_error"]
    assert [[e[m] for m in metrics] for e in resumed["epochs"]] == \
           [[e[m] for m in metrics] for e in straight["epochs"]]
    assert resumed["iterations"] == straight["iterations"]


def test_the_schedule_watches_the_validation_split_and_the_test_split_is_only_reported(tiny_fashion, tmp_path,
                                                                                     monkeypatch):
    """Validation error that never improves drops the lr; a test error that keeps improving does not
    hold it up: the test images do not steer training."""
    real_evaluate, test_errors = train.evaluate, iter([0.5, 0.4, 0.3, 0.2])

    def evaluate(trainer, images, labels):
        stats = real_evaluate(trainer, images, labels)
        if images is trainer.splits["val_x"]:
            return {**stats, "top1_error": 0.5}
        if images is trainer.splits["test_x"]:
            return {**stats, "top1_error": next(test_errors)}
        return stats

    monkeypatch.setattr(train, "evaluate", evaluate)
    record = train.run(tiny_config(tiny_fashion, tmp_path, epochs=4, lr_patience=0, lr=0.01))
    assert [e["lr"] for e in record["epochs"]] == pytest.approx([0.01, 0.01, 0.001, 0.0001])
    assert [e["test_top1_error"] for e in record["epochs"]] == [0.5, 0.4, 0.3, 0.2]
    assert set(record["data"]) == {"train", "validation", "test"}
    assert "held out" in record["data"]["validation"] and "reported only" in record["data"]["test"]


def test_a_checkpoint_from_another_config_is_refused(tiny_fashion, tmp_path):
    config = tiny_config(tiny_fashion, tmp_path, epochs=1)
    train.run(config)
    other = tiny_config(tiny_fashion, tmp_path, epochs=1, seed=1)
    results.checkpoint_path(tmp_path, other).write_bytes(
        results.checkpoint_path(tmp_path, config).read_bytes())
    with pytest.raises(checkpoints.CheckpointMismatch, match="refusing"):
        train.run(other)


def test_a_diverging_run_is_recorded_as_diverged_not_raised(tiny_fashion, tmp_path):
    # Raw 0-255 inputs, He init and lr 9.9: the loss is NaN within a few steps.
    record = train.run(tiny_config(tiny_fashion, tmp_path, lr=9.9, lrn=False, epochs=2, input_scale="raw",
                                   weight_init="he"))
    assert record["status"] == "diverged"
    assert "loss became" in record["error"]
    saved = results.read_record(results.record_path(tmp_path, record["config"]))
    assert saved["status"] == "diverged"


def test_cpu_training_is_deterministic_for_a_seed(tiny_fashion, tmp_path):
    a = train.run(tiny_config(tiny_fashion, tmp_path / "a", epochs=1))
    b = train.run(tiny_config(tiny_fashion, tmp_path / "b", epochs=1))
    assert a["totals"]["weights_sha256"] == b["totals"]["weights_sha256"]


def test_schedule_divides_the_lr_after_patience_at_most_max_drops_times():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    schedule = train.Schedule(patience=1, max_drops=2)
    for epoch, error in enumerate([0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], start=1):
        schedule.step(error, optimizer, epoch)
    assert schedule.drops == 2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0001)


def test_a_fixed_schedule_drops_after_its_epochs_whatever_the_validation_error(tiny_fashion, tmp_path):
    """lr_drop_epochs 1,3: epoch 1 at the lr, 2-3 at a tenth, 4 at a hundredth; the plateau rule is off."""
    record = train.run(tiny_config(tiny_fashion, tmp_path, epochs=4, lr_drop_epochs="1,3", lr_patience=0))
    assert [e["lr"] for e in record["epochs"]] == pytest.approx([0.01, 0.001, 0.001, 0.0001])
    assert record["config"]["lr_drop_epochs"] == "1,3"
    plateau = train.Schedule(patience=0, max_drops=3, at_epochs=(5,))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    for epoch in range(1, 5):
        plateau.step(0.5, optimizer, epoch)  # never improving: the plateau rule would have dropped thrice
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_the_seeds_d2l_recipe_trains_a_few_steps_and_the_book_sets_it_beside_their_numbers(tiny_fashion, tmp_path):
    """d2l's recipe as one planned run: whole images resized to 224 (no crop), pixels / 255 with nothing
    subtracted, plain SGD; the environment page shows it beside the seed notes' loss, accuracies and img/s."""
    from reproduce.spec import plan

    shrunk = {"epochs": 1, "train_limit": 64, "test_limit": 32}
    config = params.resolve({"data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "device": "cpu",
                             "progress": False, **shrunk}, preset="gpu", network=params.D2L_NETWORK)
    trainer = train.build_trainer(config)
    assert trainer.transform.canvas == 224 and trainer.transform.scale == 255.0
    assert not trainer.transform.mean.any() and not trainer.transform.augment
    assert trainer.optimizer.param_groups[0]["momentum"] == 0 and trainer.optimizer.param_groups[0]["weight_decay"] == 0
    views = trainer.transform.test(trainer.data.train_x[:2])
    assert views.shape == (2, 1, 224, 224) and 0 <= views.min() and views.max() <= 1
    assert plan.grid_plan("gpu", 1)[0].config == params.resolve({"seed": 0}, preset="gpu", network="d2l")
    record = train.run(config)
    assert record["status"] == "complete" and record["config"]["model"] == "d2l-alexnet"
    page = "\n".join(environment_page.d2l_section(tmp_path, shrunk))
    assert "| test accuracy | 0.885 |" in page and f"{1 - record['epochs'][-1]['test_top1_error']:.3f}" in page
