"""Plots for the notebooks and the book: curves per arm, and the per-seed pairs behind a verdict."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from reproduce import claims

ARM_COLOURS = ("#1f77b4", "#d62728")


def claim_figure(outcome: claims.Outcome, records: dict[str, dict[int, dict[str, Any]]]) -> plt.Figure:
    """Left: the curve the claim is about, per arm (thin: a seed; thick: the mean).
    Right: each seed's value of the claim's metric in both arms, joined, so pairing is visible."""
    claim = outcome.claim
    fig, (curve_ax, pair_ax) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    if claim.kind == "ratio":
        _training_curves(curve_ax, records, claim.target_train_error)
    else:
        _test_curves(curve_ax, records)
    _pairs(pair_ax, outcome)
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


def _pairs(ax: plt.Axes, outcome: claims.Outcome) -> None:
    arms = [arm.name for arm in outcome.claim.arms]
    values = outcome.per_seed
    seeds = sorted(set(values.get(arms[0], {})) & set(values.get(arms[1], {})))
    for seed in seeds:
        ax.plot([0, 1], [values[arms[0]][seed], values[arms[1]][seed]], color="grey", marker="o")
    ax.set_xticks([0, 1], arms)
    ax.set_xlim(-0.3, 1.3)
    label = ("iterations to target" if outcome.claim.kind == "ratio"
             else claims.METRIC_WORDS[outcome.claim.metric].split(" after")[0])
    ax.set(ylabel=label, title=f"per seed (n = {len(seeds)})")
