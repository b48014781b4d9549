"""Plots for the notebooks and the book: curves per arm, the per-seed pairs behind a verdict, the
learning-rate sweep, and the paper's Figures 3 (first-layer kernels) and 4 (nearest neighbours)."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib.pyplot as plt
import torch

from reproduce.spec import plan
from reproduce.verdicts import claims, wording

ARM_COLOURS = ("#1f77b4", "#d62728")


def claim_figure(outcome: claims.Outcome, records: dict[str, dict[int, dict[str, Any]]]) -> plt.Figure:
    """The claim's main figure, page-wide: the curve the claim is about, per arm (each seed; for C1
    the paper's Figure 1, at each arm's best lr), and the lr sweep beside it where there is one.
    A claim measured within the same runs has no curve: its main figure is its per-seed pairs."""
    claim = outcome.claim
    if claim.kind == "within":
        return per_seed_figure(outcome)
    panels = 2 if claim.lr_sweep else 1
    fig, axes = plt.subplots(1, panels, figsize=(11, 4.2), squeeze=False,
                             gridspec_kw={"width_ratios": [2, 1][:panels]})
    shown = {label: records[label] for label in outcome.chosen.values()} if outcome.chosen else records
    if claim.kind == "ratio":
        _training_curves(axes[0, 0], shown, claim.target_train_error)
    else:
        _test_curves(axes[0, 0], shown)
    if claim.lr_sweep:
        _lr_sweep(axes[0, 1], outcome)
    fig.suptitle(f"{claim.id}: {claim.title} - {outcome.verdict}", fontsize=11)
    fig.tight_layout()
    return fig


def per_seed_figure(outcome: claims.Outcome) -> plt.Figure:
    """Each seed's value of the claim's metric in both arms, joined, so that the pairing is visible."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    _pairs(ax, outcome)
    fig.suptitle(f"{outcome.claim.id}: {outcome.verdict}", fontsize=11)
    fig.tight_layout()
    return fig


def _band(ax: plt.Axes, x: list[float], rows: list[list[float]], colour: str, label: str, **style: Any) -> None:
    """The mean over seeds of curves that share their x, in points, with a band from the lowest to the highest
    seed: n curves read as one line, their spread as its width."""
    rows = [row for row in rows if len(row) == len(x)]
    if not rows:
        return
    columns = list(zip(*rows))
    mean = [100 * sum(c) / len(c) for c in columns]
    ax.plot(x, mean, color=colour, label=f"{label} (mean of {len(rows)})", **style)
    if len(rows) > 1:
        ax.fill_between(x, [100 * min(c) for c in columns], [100 * max(c) for c in columns], color=colour, alpha=0.15,
                        linewidth=0)


def _training_curves(ax: plt.Axes, records: dict[str, dict[int, dict]], target: float | None) -> None:
    for colour, (arm, by_seed) in zip(ARM_COLOURS, records.items()):
        curves = [record["iterations"] for _, record in sorted(by_seed.items()) if record]
        if not curves:
            continue
        x = [p["iteration"] for p in curves[0]]
        _band(ax, x, [[p["train_error"] for p in curve] for curve in curves], colour, arm, linewidth=1.5)
    if target is not None:
        ax.axhline(100 * target, color="black", linestyle="--", linewidth=1, label=f"target {wording.percent(target)}")
    ax.set(xlabel="iteration", ylabel="training error, points (log window)", ylim=(0, 100),
           title="training error (cf. the paper's Figure 1); band: lowest to highest seed")
    ax.legend(fontsize=8)


def _test_curves(ax: plt.Axes, records: dict[str, dict[int, dict]]) -> None:
    for colour, (arm, by_seed) in zip(ARM_COLOURS, records.items()):
        runs = [record for _, record in sorted(by_seed.items()) if record]
        if not runs:
            continue
        x = [e["epoch"] for e in runs[0]["epochs"]]
        # Validation error every epoch (what the lr schedule watches); the test error where it was measured,
        # which a preset may do after the last epoch only (test_every_epoch off).
        _band(ax, x, [[e["val_top1_error"] for e in r["epochs"]] for r in runs], colour, f"{arm}: validation",
              linewidth=1.5)
        _band(ax, x, [[e["train_error"] for e in r["epochs"]] for r in runs], colour,
              f"{arm}: training (augmented, dropout)", linestyle=":", linewidth=1.2)
        last = [r["epochs"][-1]["test_top1_error"] for r in runs if "test_top1_error" in r["epochs"][-1]]
        if last:
            ax.errorbar([x[-1]], [100 * sum(last) / len(last)], yerr=[[100 * (sum(last) / len(last) - min(last))],
                                                                      [100 * (max(last) - sum(last) / len(last))]],
                        color=colour, marker="o", capsize=3, linestyle="none", label=f"{arm}: test, at the end")
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole
    ax.set(xlabel="epoch", ylabel="top-1 error, points", title="error by epoch: mean over seeds, band: lowest to highest")
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
    scale = 1.0 if outcome.claim.kind == "ratio" else 100.0  # errors and measures in points
    for seed in seeds:
        ax.plot([0, 1], [scale * values[arms[0]][seed], scale * values[arms[1]][seed]], color="grey", marker="o")
    ax.set_xticks([0, 1], [textwrap.fill(arm, 18) for arm in arms], fontsize=8)
    ax.set_xlim(-0.3, 1.3)
    unit = "" if outcome.claim.kind == "ratio" else ", points"
    ax.set(ylabel=wording.metric_axis(outcome.claim) + unit, title=f"per seed (n = {len(seeds)})")


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


def pilot_curves(design: str, curves: dict[str, dict[int, dict]]) -> plt.Figure:
    """The pilot's evidence of the regime: the baseline against the same net trained twice as long (validation
    error by epoch, test error at the end), and the arms without dropout or augmentation: their error on
    training images (seen as test images) against their test error."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for colour, arm in zip(ARM_COLOURS, ("baseline", "twice as long")):
        for seed, record in sorted(curves.get(arm, {}).items()):
            epochs = record["epochs"]
            first = seed == min(curves[arm])
            left.plot([e["epoch"] for e in epochs], [e["val_top1_error"] for e in epochs], color=colour, linewidth=1,
                      alpha=0.7, label=f"{arm}: validation" if first else None)
            left.plot([epochs[-1]["epoch"]], [epochs[-1]["test_top1_error"]], "o", color=colour,
                      label=f"{arm}: test, at the end" if first else None)
    left.set(xlabel="epoch", ylabel="top-1 error", title=f"design {design}: converged?")
    left.legend(fontsize=7)
    arms = [arm for arm in ("baseline", "no dropout", "no augmentation") if curves.get(arm)]
    for index, arm in enumerate(arms):
        for seed, record in sorted(curves[arm].items()):
            last = record["epochs"][-1]
            right.plot([index - 0.1, index + 0.1], [last["fit_top1_error"], last["test_top1_error"]], color="grey",
                       marker="o", linewidth=1)
    right.set_xticks(range(len(arms)), arms, fontsize=8)
    right.set(ylabel="top-1 error", title="overfitting: training images (left) vs test (right)")
    fig.tight_layout()
    return fig
