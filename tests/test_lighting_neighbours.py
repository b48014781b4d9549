"""PCA lighting on generated colour images, and the neighbour metric on cases with known answers."""

import math

import pytest
import torch
from formats import trust_generated_cifar10, write_cifar10
from torchvision.datasets import CIFAR10

from reproduce.datasets.augment import BatchTransform
from reproduce.datasets.lighting import add_lighting, fit_colour_pca, lighting_on, lighting_shifts
from reproduce.runs.neighbours import label_agreement, nearest_neighbours
from reproduce.spec import params
from reproduce.spec.params import ParamError
from reproduce.training import train

# A colour distribution with known principal components: a rotation Q and variances 900, 100, 4.
ANGLE = math.pi / 5
Q = torch.tensor([[math.cos(ANGLE), -math.sin(ANGLE), 0.0], [math.sin(ANGLE), math.cos(ANGLE), 0.0], [0, 0, 1.0]])
VARIANCES = torch.tensor([900.0, 100.0, 4.0])


def coloured_images(n=200, side=16, seed=0):
    """Images whose RGB pixels are 128 + Q diag(sqrt(variances)) z, z ~ N(0, I)."""
    z = torch.randn(n, side, side, 3, generator=torch.Generator().manual_seed(seed))
    pixels = 128 + (z * VARIANCES.sqrt()) @ Q.T
    return pixels.permute(0, 3, 1, 2)


def test_pca_recovers_the_known_components_of_generated_colour_images():
    pca = fit_colour_pca(coloured_images())
    torch.testing.assert_close(pca.eigenvalues, VARIANCES, rtol=0.03, atol=0.3)
    alignment = (pca.eigenvectors.T @ Q).abs()  # up to the sign of each component
    torch.testing.assert_close(alignment, torch.eye(3), atol=0.02, rtol=0)


def test_pca_of_uint8_images_and_of_a_pixel_sample_agree():
    images = coloured_images().clamp(0, 255).round().to(torch.uint8)
    whole, sampled = fit_colour_pca(images), fit_colour_pca(images, max_pixels=20_000)
    torch.testing.assert_close(sampled.eigenvalues, whole.eigenvalues, rtol=0.1, atol=1.0)


def test_greyscale_images_are_refused_naming_the_claim():
    with pytest.raises(ValueError, match="C9 is not tested here"):
        fit_colour_pca(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))


def test_shifts_follow_the_paper_alpha_times_eigenvalue_along_each_component():
    pca = fit_colour_pca(coloured_images())
    shifts = lighting_shifts(pca, 20_000, torch.Generator().manual_seed(1))
    # In the components' frame each coordinate is alpha_i * lambda_i: std 0.1 * lambda_i, mean 0.
    coordinates = shifts @ pca.eigenvectors
    torch.testing.assert_close(coordinates.std(dim=0), 0.1 * pca.eigenvalues, rtol=0.03, atol=0.0)
    assert coordinates.mean(dim=0).abs().max() < 0.03 * 0.1 * pca.eigenvalues[0]
    again = lighting_shifts(pca, 20_000, torch.Generator().manual_seed(1))
    assert torch.equal(shifts, again)


def test_one_shift_per_image_the_same_on_every_pixel():
    images = coloured_images(n=4)
    shifts = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-5.0, 0.5, 0.0], [10.0, -10.0, 1.0]])
    moved = add_lighting(images, shifts)
    torch.testing.assert_close(moved - images, shifts[:, :, None, None].expand_as(images))


def test_agreement_is_one_for_separated_clusters_labelled_by_cluster():
    generator = torch.Generator().manual_seed(0)
    points = torch.cat([torch.randn(20, 5, generator=generator), torch.randn(20, 5, generator=generator) + 100])
    labels = torch.tensor([0] * 20 + [1] * 20)
    assert label_agreement(points, labels, k=5) == 1.0


def test_agreement_on_a_line_with_alternating_labels_is_one_tenth():
    # Points 0..9 on a line, labels 0,1,0,1,...: an inner point's 2 nearest are its two neighbours,
    # both of the other label (0); an end point's are 1 and 2 away, one of each label (1/2).
    points, labels = torch.arange(10.0)[:, None], torch.arange(10) % 2
    assert label_agreement(points, labels, k=2) == pytest.approx(0.1)
    found = nearest_neighbours(points, torch.tensor([0, 5]), k=2)
    assert [set(row) for row in found.tolist()] == [{1, 2}, {4, 6}]


def test_k_must_leave_the_query_out():
    with pytest.raises(ValueError, match="k must be in"):
        nearest_neighbours(torch.zeros(3, 2), torch.tensor([0]), k=3)


# ----------------------------------------------------------------------------- lighting in training

def test_lighting_is_on_for_colour_only_under_auto_and_refused_on_greyscale():
    assert lighting_on("auto", 3) and not lighting_on("auto", 1) and not lighting_on("off", 3)
    with pytest.raises(ParamError, match="lighting: on needs colour images"):
        lighting_on("on", 1)


def test_training_views_get_one_colour_offset_per_image_on_top_of_the_same_crops():
    images = coloured_images(n=8, side=36).clamp(0, 255).to(torch.uint8)
    pca = fit_colour_pca(images)
    mean = images.float().mean(0)
    plain = BatchTransform(32, 36, mean, augment=True, scale=2.0)
    lit = BatchTransform(32, 36, mean, augment=True, scale=2.0, lighting=pca)
    without = plain.train(images, torch.Generator().manual_seed(3))
    with_lighting = lit.train(images, torch.Generator().manual_seed(3))
    offsets = with_lighting - without  # crops and flips are drawn first, from the same stream
    per_image = offsets.mean(dim=(2, 3))
    torch.testing.assert_close(offsets, per_image[:, :, None, None].expand_as(offsets), atol=1e-4, rtol=0)
    generator = torch.Generator().manual_seed(3)
    plain._random_views(8, generator, torch.device("cpu"))  # the crop draws, then the lighting's
    expected = lighting_shifts(pca, 8, generator) / 2.0  # on the raw scale, divided like the pixels
    torch.testing.assert_close(per_image, expected, atol=1e-4, rtol=1e-4)


def test_a_run_on_colour_data_trains_with_lighting(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "data", per_batch=8, test_n=6)
    trust_generated_cifar10(monkeypatch, tmp_path / "data" / CIFAR10.base_folder)
    config = params.resolve({"model": "cifar-18pct", "dataset": "cifar10", "epochs": 1, "batch_size": 8,
                             "log_every": 1, "data_dir": str(tmp_path / "data"), "results_dir": str(tmp_path),
                             "progress": False, "device": "cpu"})
    assert config["lighting"] == "auto"
    trainer = train.build_trainer(config)
    assert trainer.transform.lighting is not None and trainer.transform.lighting.eigenvalues.shape == (3,)
    assert train.run(config)["status"] == "complete"


def test_a_greyscale_run_asked_for_lighting_stops_before_training(tiny_fashion, tmp_path):
    config = params.resolve({"model": "alexnet-small", "width": 0.125, "lighting": "on", "epochs": 1,
                             "data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "device": "cpu"})
    with pytest.raises(ParamError, match="lighting"):
        train.run(config)
    assert not list(tmp_path.glob("runs/*.json"))
