"""Measures of a finished run's final weights: 10-crop test error (C8), first-layer kernels and the
towers' colour statistic (C16, Figure 3), nearest neighbours in the last hidden layer (C17, Figure 4).

They are computed after training, from the run's last checkpoint, whose weights must have the digest
its record holds, and written to results/analysis/<run_id>.json. That file names the digests of the
weights and of this code: a measure is never read from other weights or from other analysis code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from reproduce.base.paths import PROJECT_ROOT
from reproduce.datasets.batches import iterate_batches
from reproduce.records import declared, provenance, results
from reproduce.runs.neighbours import label_agreement, nearest_neighbours
from reproduce.spec import run_ids
from reproduce.training import train

NEIGHBOUR_IMAGES = 2_000  # test images among which neighbours are searched (all pairs: 4 million distances)
NEIGHBOURS = 5
FIGURE_QUERIES = 6  # Figure 4 shows 5 query images with 6 neighbours each
FIGURE_NEIGHBOURS = 6
RANDOM_SPLITS = 1_000
FEATURE_LAYER = "act7"  # the last hidden layer: fc7 after its ReLU (dropout is off at test time)


class AnalysisUnavailable(Exception):
    """The run has no finished record, or its checkpoint is missing or holds other weights."""


def analysis_path(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "analysis" / f"{run_id}.json"


ANALYSIS_CODE = ("runs/analysis.py", "runs/neighbours.py")  # the code whose measures these are


def code_digest() -> str:
    return provenance.files_digest([PROJECT_ROOT / "reproduce" / name for name in ANALYSIS_CODE])


def current_code(analysis_sha256: str | None) -> bool:
    """Made by this analysis code, or by the same code before a move (reproduce.records.declared)."""
    return analysis_sha256 in declared.accepted_digests(code_digest(), kind="analysis")


def load(results_dir: str | Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The analysis of this record's weights by the current analysis code, or None."""
    path = analysis_path(results_dir, record["run_id"])
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same_weights = found.get("weights_sha256") == record["totals"]["weights_sha256"]
    return found if same_weights and current_code(found.get("analysis_sha256")) else None


def ensure(config: dict[str, Any]) -> dict[str, Any]:
    """The run's analysis: read when current, else computed from its checkpoint and written."""
    found = results.run_state(config["results_dir"], config)
    if found.state != "complete":
        raise AnalysisUnavailable(f"{run_ids.run_id(config)}: no complete record made by the current "
                                  f"training code ({found.state}); train the run first")
    record = found.record
    found = load(config["results_dir"], record)
    if found is not None:
        return found
    computed = compute(config, record)
    payload = json.dumps(computed, indent=1, sort_keys=True).encode()
    results.atomic_write_bytes(analysis_path(config["results_dir"], record["run_id"]), payload)
    return computed


def compute(config: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    trainer = load_final_weights(config, record)
    test_x, test_y = trainer.splits["test_x"], trainer.splits["test_y"]
    centre, ten_crop = crop_errors(trainer, test_x, test_y)
    count = min(NEIGHBOUR_IMAGES, len(test_y))
    features = hidden_features(trainer, test_x[:count]).cpu()
    pixels = trainer.data.test_x[:count].flatten(1).float().cpu()  # the raw pixels, not the network's canvases
    labels = test_y[:count].cpu()
    kernels = trainer.model.conv1.weight.detach().float().cpu()
    measures = {
        "centre_test_top1_error": centre, "ten_crop_test_top1_error": ten_crop,
        "feature_neighbour_disagreement": 1 - label_agreement(features, labels, NEIGHBOURS),
        "pixel_neighbour_disagreement": 1 - label_agreement(pixels, labels, NEIGHBOURS),
    }
    if kernels.shape[1] == 3 and config["groups"] == 2:
        measures.update(colour_gaps(kernels))
    return {
        "run_id": record["run_id"], "weights_sha256": record["totals"]["weights_sha256"],
        "analysis_sha256": code_digest(), "created_at": results.now_utc(), "measures": measures,
        "test_images": len(test_y), "neighbour_images": count, "groups": config["groups"],
        "conv1_kernels": kernels.tolist(), "figure": figure_neighbours(features, pixels, labels),
    }


def load_final_weights(config: dict[str, Any], record: dict[str, Any]) -> train.Trainer:
    """A trainer (data, transform, model) holding the run's final weights, checked by digest."""
    path = results.checkpoint_path(config["results_dir"], config)
    if not path.exists():
        raise AnalysisUnavailable(f"{path} is missing: the final weights are kept only where the run trained; "
                                  "rerun it there (or delete its record to train it again)")
    trainer = train.build_trainer({**config, "progress": False})
    state = torch.load(path, map_location=trainer.device, weights_only=True)
    trainer.model.load_state_dict(state["model"])
    if train.weights_digest(trainer.model) != record["totals"]["weights_sha256"]:
        raise AnalysisUnavailable(f"{path} does not hold the weights its record names (digest differs)")
    trainer.model.eval()
    return trainer


@torch.no_grad()
def crop_errors(trainer: train.Trainer, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Top-1 error of the centre crop, and of the softmax averaged over the 10 crops (section 4.1)."""
    wrong_centre = wrong_ten = 0
    for batch, target in _batches(trainer, images, labels):
        views = trainer.transform.ten_crop(batch)  # [10, B, C, I, I]; view 4 is the centre
        probabilities = torch.stack([_logits(trainer, view).softmax(dim=1) for view in views])
        wrong_centre += (probabilities[4].argmax(dim=1) != target).sum().item()
        wrong_ten += (probabilities.mean(dim=0).argmax(dim=1) != target).sum().item()
    return wrong_centre / len(labels), wrong_ten / len(labels)


@torch.no_grad()
def hidden_features(trainer: train.Trainer, images: torch.Tensor) -> torch.Tensor:
    """[N, D] activations of the last hidden layer on the centre crop."""
    names = [name for name, _ in trainer.model.named_children()]
    if FEATURE_LAYER not in names:
        raise AnalysisUnavailable(f"{trainer.config['model']} has no layer {FEATURE_LAYER}")
    head = torch.nn.Sequential(*list(trainer.model.children())[: names.index(FEATURE_LAYER) + 1])
    fake_labels = torch.zeros(len(images), dtype=torch.long)
    chunks = [head(_view(trainer, trainer.transform.test(batch))).float()
              for batch, _ in _batches(trainer, images, fake_labels)]
    return torch.cat(chunks)


def _batches(trainer: train.Trainer, images: torch.Tensor, labels: torch.Tensor):
    return iterate_batches(images, labels, trainer.config["batch_size"] * 2, device=trainer.device)


def _view(trainer: train.Trainer, batch: torch.Tensor) -> torch.Tensor:
    return trainer.execution.layout(batch)


def _logits(trainer: train.Trainer, batch: torch.Tensor) -> torch.Tensor:
    with trainer.execution.autocast():
        return trainer.model(_view(trainer, batch)).float()


def colour_shares(kernels: torch.Tensor) -> torch.Tensor:
    """[K]: the share of each RGB kernel's energy that is not in its mean over the three channels."""
    grey = kernels.mean(dim=1, keepdim=True)
    colour = ((kernels - grey) ** 2).sum(dim=(1, 2, 3))
    return colour / (kernels ** 2).sum(dim=(1, 2, 3)).clamp_min(1e-12)


def colour_gaps(kernels: torch.Tensor, splits: int = RANDOM_SPLITS, seed: int = 0) -> dict[str, float]:
    """The towers' gap in mean colour share (conv1's first half of kernels feeds tower 1, the second
    half tower 2), and the mean gap over random halves of the same kernels: what chance gives."""
    shares = colour_shares(kernels)
    half = len(shares) // 2
    generator = torch.Generator().manual_seed(seed)
    random_gaps = [_gap(shares[torch.randperm(len(shares), generator=generator)], half) for _ in range(splits)]
    return {"tower_colour_gap": _gap(shares, half), "random_split_colour_gap": sum(random_gaps) / splits}


def _gap(shares: torch.Tensor, half: int) -> float:
    return (shares[:half].mean() - shares[half:].mean()).abs().item()


def figure_neighbours(features: torch.Tensor, pixels: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Figure 4's material: the first test image of each of the first classes, and its nearest test
    images in the last hidden layer and in pixels (indices into the test set)."""
    classes = sorted(set(labels.tolist()))[:FIGURE_QUERIES]
    queries = torch.tensor([int((labels == c).nonzero()[0]) for c in classes])
    return {"queries": queries.tolist(),
            "feature_neighbours": nearest_neighbours(features, queries, FIGURE_NEIGHBOURS).tolist(),
            "pixel_neighbours": nearest_neighbours(pixels, queries, FIGURE_NEIGHBOURS).tolist()}
