"""Plots for the notebooks and the book: curves per arm, the per-seed pairs behind a verdict, the
learning-rate sweep, and the paper's Figures 3 (first-layer kernels) and 4 (nearest neighbours)."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib.pyplot as plt
import torch

from reproduce import claims, plan

ARM_COLOURS = ("#1f77b4", "#d62728")


def claim_figure(outcome: claims.Outcome, records: dict[str, dict[int, dict[str, Any]]]) -> plt.Figure:
    """Left: the curve the claim is about, per arm (thin: a seed; thick: the mean).
    Right: each seed's value of the claim's metric in both arms, joined, so pairing is visible.
    A claim with an lr sweep gets a panel of the sweep, and its curves are those of each arm's best lr;
    a claim measured within the same runs gets the pairs alone."""
    claim = outcome.claim
    if claim.kind == "within":
        fig, pair_ax = plt.subplots(figsize=(4.5, 3.6))
        _pairs(pair_ax, outcome)
        fig.suptitle(f"{claim.id}: {outcome.verdict}", fontsize=11)
        fig.tight_layout()
        return fig
    panels = 3 if claim.lr_sweep else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6),
                             gridspec_kw={"width_ratios": [2, 1, 1][:panels]})
    shown = {label: records[label] for label in outcome.chosen.values()} if outcome.chosen else records
    if claim.kind == "ratio":
        _training_curves(axes[0], shown, claim.target_train_error)
    else:
        _test_curves(axes[0], shown)
    _pairs(axes[1], outcome)
    if claim.lr_sweep:
        _lr_sweep(axes[2], outcome)
    fig.suptitle(f"{claim.id}: {claim.title} - {outcome.verdict}", fontsize=11)
    fig.tight_layout()
    return fig


def _training_curves(ax: plt.Axes, records: dict[str, dict[int, dict]], target: float | None) -> None:
    for colour, (arm, by_seed) in zip(ARM_COLOURS, records.items()):
        for seed, record in sorted(by_seed.items()):
            points = record["iterations"]
            ax.plot([p["iteration"] for p in points], [p["train_error"] for p in points], color=colour,
                    alpha=0.6, linewidth=1, label=arm if seed == min(by_seed) else None)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    ax.set(xlabel="iteration", ylabel="training error (log window)", ylim=(0, 1),
           title="training error (cf. the paper's Figure 1)")
    ax.legend(fontsize=8)


def _test_curves(ax: plt.Axes, records: dict[str, dict[int, dict]]) -> None:
    for colour, (arm, by_seed) in zip(ARM_COLOURS, records.items()):
        for seed, record in sorted(by_seed.items()):
            epochs = record["epochs"]
            ax.plot([e["epoch"] for e in epochs], [e["test_top1_error"] for e in epochs], color=colour,
                    marker="o", alpha=0.7, linewidth=1, label=f"{arm}: test" if seed == min(by_seed) else None)
            ax.plot([e["epoch"] for e in epochs], [e["train_error"] for e in epochs], color=colour,
                    linestyle=":", alpha=0.7, linewidth=1,
                    label=f"{arm}: training (augmented, dropout)" if seed == min(by_seed) else None)
    ax.set(xlabel="epoch", ylabel="top-1 error", title="error by epoch, each seed")
    ax.legend(fontsize=8)


def _lr_sweep(ax: plt.Axes, outcome: claims.Outcome) -> None:
    """Mean iterations to the target at each lr of the sweep, per arm; the chosen lr circled."""
    claim = outcome.claim
    for colour, arm in zip(ARM_COLOURS, claim.arms):
        points = [(lr, claims.mean_value(outcome.per_seed.get(label, {}).values(), math.nan))
                  for a, lr, label in plan.arm_variants(claim) if a == arm]
        ax.plot(*zip(*points), color=colour, marker="o", label=arm.name)
        best = next(lr for a, lr, label in plan.arm_variants(claim) if label == outcome.chosen.get(arm.name))
        ax.plot([best], [dict(points)[best]], marker="o", markersize=14, markerfacecolor="none", color=colour)
    ax.set(xscale="log", xlabel="learning rate", ylabel="mean iterations to target",
           title="lr sweep (circled: the lr judged)")
    ax.set_xticks(claim.lr_sweep, [f"{lr:g}" for lr in claim.lr_sweep], rotation=45, fontsize=7)
    ax.minorticks_off()
    ax.legend(fontsize=8)


def _pairs(ax: plt.Axes, outcome: claims.Outcome) -> None:
    arms = [outcome.chosen.get(arm.name, arm.name) for arm in outcome.claim.arms]
    values = outcome.per_seed
    seeds = sorted(set(values.get(arms[0], {})) & set(values.get(arms[1], {})))
    for seed in seeds:
        ax.plot([0, 1], [values[arms[0]][seed], values[arms[1]][seed]], color="grey", marker="o")
    ax.set_xticks([0, 1], [textwrap.fill(arm, 18) for arm in arms], fontsize=8)
    ax.set_xlim(-0.3, 1.3)
    label = {"ratio": "iterations to target", "within": "measure (see the rule)"}.get(
        outcome.claim.kind) or claims.METRIC_WORDS[outcome.claim.metric].split(" after")[0]
    ax.set(ylabel=label, title=f"per seed (n = {len(seeds)})")


def kernel_grid(kernels: torch.Tensor, groups: int, title: str) -> plt.Figure:
    """Figure 3: conv1's kernels [K, C, h, w], each scaled to its own range; with two towers, the
    kernels feeding tower 1 on the first rows and those feeding tower 2 below, as in the paper."""
    count = len(kernels)
    columns = min(count // groups if groups > 1 else count, 16)
    rows_per_group = math.ceil(count / groups / columns)
    fig, axes = plt.subplots(rows_per_group * groups, columns, squeeze=False,
                             figsize=(columns * 0.9, rows_per_group * groups * 0.9 + 0.7))
    per_group = count // groups
    for ax in axes.flat:
        ax.axis("off")
    for index, kernel in enumerate(kernels):
        group, within = divmod(index, per_group)
        ax = axes[group * rows_per_group + within // columns, within % columns]
        low, high = kernel.min(), kernel.max()
        image = ((kernel - low) / (high - low + 1e-12)).permute(1, 2, 0).numpy()
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", interpolation="nearest")
    fig.suptitle(title, fontsize=10)
    return fig


def neighbour_figure(material: dict[str, Any], images: torch.Tensor, labels: torch.Tensor,
                     classes: list[str], title: str) -> plt.Figure:
    """Figure 4: each query test image (left), its nearest test images in the last hidden layer, then
    in pixels; a neighbour of the query's class is framed in green, of another class in red."""
    spaces = (("last hidden layer", material["feature_neighbours"]), ("pixels", material["pixel_neighbours"]))
    k = len(material["feature_neighbours"][0])
    queries = material["queries"]
    fig, axes = plt.subplots(len(queries), 2 * k + 3, squeeze=False,
                             figsize=((2 * k + 3) * 0.75, len(queries) * 0.85 + 0.7))
    for ax in axes.flat:
        ax.axis("off")
    for row, query in enumerate(queries):
        _show_image(axes[row, 0], images[query], "black")
        axes[row, 0].set_title(classes[int(labels[query])], fontsize=7)
        for space, (name, neighbours) in enumerate(spaces):
            first = 2 + space * (k + 1)
            for offset, index in enumerate(neighbours[row]):
                same = bool(labels[index] == labels[query])
                _show_image(axes[row, first + offset], images[index], "#2ca02c" if same else "#d62728")
            if row == 0:
                axes[0, first].set_title(name, fontsize=8, loc="left")
    fig.suptitle(title, fontsize=10)
    return fig


def _show_image(ax: plt.Axes, image: torch.Tensor, frame: str) -> None:
    picture = image.permute(1, 2, 0).numpy()
    ax.axis("on")
    ax.imshow(picture.squeeze(-1) if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(frame)
        spine.set_linewidth(2)
