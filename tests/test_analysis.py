"""Measures of final weights (C8, C16, C17): the colour statistic on kernels with a known answer,
and the analysis of a real tiny run, tied to its weights."""

import json

import pytest
import torch
from formats import trust_generated_cifar10, write_cifar10
from test_grid import train_ablation
from torchvision.datasets import CIFAR10

from reproduce.records import results
from reproduce.report import figures
from reproduce.runs import analysis
from reproduce.spec import params, plan
from reproduce.training import train
from reproduce.verdicts import claims


def test_colour_share_is_the_energy_outside_the_grey_part():
    grey, opposed, red = torch.ones(3, 1, 1), torch.tensor([1.0, -1.0, 0.0])[:, None, None], torch.zeros(3, 1, 1)
    red[0] = 1.0
    shares = analysis.colour_shares(torch.stack([grey, opposed, red]))
    torch.testing.assert_close(shares, torch.tensor([0.0, 1.0, 2 / 3]))


def test_towers_gap_against_chance_on_kernels_with_a_known_answer():
    # Tower 1: four grey kernels (share 0); tower 2: four opposed-colour kernels (share 1).
    generator = torch.Generator().manual_seed(0)
    grey = torch.randn(4, 1, 5, 5, generator=generator).expand(4, 3, 5, 5)
    colour = torch.randn(4, 1, 5, 5, generator=generator) * torch.tensor([1.0, -1.0, 0.0])[None, :, None, None]
    gaps = analysis.colour_gaps(torch.cat([grey, colour]))
    assert gaps["tower_colour_gap"] == pytest.approx(1.0)
    # Random halves of four 0s and four 1s: E|gap| = (2 * 1 + 32 * 0.5) / 70 = 18 / 70.
    assert gaps["random_split_colour_gap"] == pytest.approx(18 / 70, abs=0.02)


@pytest.fixture
def trained(tiny_fashion, tmp_path):
    config = params.resolve({"model": "alexnet-small", "width": 0.125, "weight_init": "he", "input_scale": "unit",
                             "bias_init": "zero", "epochs": 1, "batch_size": 32, "log_every": 2,
                             "data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "progress": False,
                             "device": "cpu"})
    return config, train.run(config)


def test_the_analysis_of_a_run_measures_its_final_weights(trained, monkeypatch):
    config, record = trained
    measured = analysis.ensure(config)
    measures = measured["measures"]
    # The centre crop is the view the training loop evaluates: the same error, from the checkpoint.
    assert measures["centre_test_top1_error"] == record["epochs"][-1]["test_top1_error"]
    assert 0 <= measures["ten_crop_test_top1_error"] <= 1
    assert 0 <= measures["feature_neighbour_disagreement"] <= 1 and 0 <= measures["pixel_neighbour_disagreement"] <= 1
    assert "tower_colour_gap" not in measures  # greyscale, one tower
    assert torch.tensor(measured["conv1_kernels"]).shape == (12, 1, 5, 5)
    assert len(measured["figure"]["queries"]) == len(measured["figure"]["feature_neighbours"])
    assert analysis.load(config["results_dir"], record) == json.loads(
        analysis.analysis_path(config["results_dir"], record["run_id"]).read_text())
    monkeypatch.setattr(analysis, "compute", lambda *a: pytest.fail("a current analysis is computed again"))
    assert analysis.ensure(config)["measures"] == measures


def test_an_analysis_refuses_weights_other_than_the_records(trained):
    config, record = trained
    path = results.checkpoint_path(config["results_dir"], config)
    state = torch.load(path, weights_only=True)
    state["model"]["fc8.bias"] += 1
    torch.save(state, path)
    with pytest.raises(analysis.AnalysisUnavailable, match="digest differs"):
        analysis.ensure(config)
    path.unlink()
    with pytest.raises(analysis.AnalysisUnavailable, match="missing"):
        analysis.ensure(config)


def test_figures_3_and_4_draw_every_kernel_and_neighbour():
    kernels = torch.randn(12, 3, 5, 5)
    grid = figures.kernel_grid(kernels, groups=2, title="t")
    assert sum(1 for ax in grid.axes if ax.images) == 12
    images, labels = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8), torch.arange(20) % 4
    material = {"queries": [0, 1], "feature_neighbours": [[4, 8, 2], [5, 9, 3]],
                "pixel_neighbours": [[12, 16, 1], [13, 17, 0]]}
    figure = figures.neighbour_figure(material, images, labels, ["a", "b", "c", "d"], "t")
    assert sum(1 for ax in figure.axes if ax.images) == 2 * 7


def test_on_colour_data_the_colour_claims_train_and_get_verdicts(tmp_path, monkeypatch):
    """C9 and C16 are 'not tested here' on Fashion-MNIST; on CIFAR-10 (generated files in its real
    format) their notebooks' ablations train, lighting is on, and the towers' colour gap is measured."""
    write_cifar10(tmp_path / "data", per_batch=8, test_n=12)
    trust_generated_cifar10(monkeypatch, tmp_path / "data" / CIFAR10.base_folder)
    execution = {"data_dir": str(tmp_path / "data"), "results_dir": str(tmp_path), "device": "cpu", "progress": False}
    colour = {"dataset": "cifar10"}
    registry = plan.load_registry()
    assert claims.evaluate(registry["C16"], "smoke", 2, tmp_path).verdict == "not tested here"
    for ablation in ("lighting", "features"):
        assert train_ablation(ablation, "smoke", 2, {**colour, **execution}).exit_code == 0
    for claim_id in ("C9", "C16"):
        outcome = claims.evaluate(registry[claim_id], "smoke", 2, tmp_path, colour)
        assert outcome.verdict in claims.VERDICTS and outcome.verdict != "not tested here", outcome.summary
        assert outcome.interval.n == 2
    towers = plan.planned_runs(registry["C16"], "smoke", 1, colour)["the two towers"][0]
    measured = analysis.load(tmp_path, results.run_state(tmp_path, {**towers, **execution}).record)
    assert measured["groups"] == 2 and torch.tensor(measured["conv1_kernels"]).shape[1] == 3
    assert 0 <= measured["measures"]["random_split_colour_gap"] <= 1
