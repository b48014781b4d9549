"""The claims page's forest plot: every tested claim's effect on its own scale - differences in points,
ratios of iterations on a log axis - with the interval its verdict was decided at beside the plain 95% one,
no effect, the decision threshold and the paper's number, coloured by verdict. Claims that are the same
comparison (C15 and C15b here) share one row."""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt

from reproduce.verdicts import claims, decisions

VERDICT_COLOURS = {"reproduced": "#2ca02c", "consistent with the paper": "#98df8a", "not reproduced": "#d62728",
                   "inconclusive": "#7f7f7f"}
BOUND_MARKERS = {"upper": "<", "lower": ">"}  # the estimate is at most / at least what is drawn
TITLE_WIDTH = 40  # characters per line of a claim's title beside its row
RATIO_TICKS = (0.125, 0.25, 0.5, 1, 2, 4, 8, 16)


def forest_plot(outcomes: list[claims.Outcome], preset: str) -> plt.Figure | None:
    shown = [(ids, o) for ids, o in decisions.merge_identical(outcomes)
             if o.interval is not None and o.claim.trains and not math.isnan(o.interval.low)]
    if not shown:
        return None
    panels = [(kind, [(ids, o) for ids, o in shown if (o.claim.kind == "ratio") == (kind == "ratio")])
              for kind in ("difference", "ratio")]
    panels = [(kind, rows) for kind, rows in panels if rows]
    heights = [len(rows) + 1.2 for _, rows in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 0.6 * sum(heights) + 1.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (kind, rows) in zip(axes[:, 0], panels):
        _panel(ax, kind, rows)
    axes[0, 0].legend(handles=_legend(shown), fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      frameon=False)
    fig.suptitle(f"Preset {preset}: each tested claim's effect, the interval it was decided at, and its 95% interval",
                 fontsize=12)
    fig.tight_layout()
    return fig


def _panel(ax: plt.Axes, kind: str, rows: list[tuple[list[str], claims.Outcome]]) -> None:
    scale = 1.0 if kind == "ratio" else 100.0  # differences in points
    reach = []
    for row, (_, outcome) in enumerate(reversed(rows)):
        interval, colour = outcome.interval, VERDICT_COLOURS.get(outcome.verdict, "#7f7f7f")
        ax.plot([interval.low * scale, interval.high * scale], [row, row], color=colour, linewidth=5, alpha=0.45,
                solid_capstyle="butt")
        reach += [interval.low * scale, interval.high * scale]
        if outcome.deciding is not None and not any(math.isnan(end) for end in outcome.deciding):
            low, high = (end * scale for end in outcome.deciding)
            ax.plot([low, high], [row, row], color=colour, linewidth=1.5, marker="|", markersize=12)
            reach += [low, high]
        ax.plot(interval.estimate * scale, row, BOUND_MARKERS.get(outcome.bound or "", "o"), color=colour,
                markersize=9, markeredgecolor="black", markeredgewidth=0.6)
        threshold = outcome.claim.threshold * scale
        ax.plot([threshold, threshold], [row - 0.38, row + 0.38], color="black", linestyle="--", linewidth=1)
        reach.append(threshold)
        if outcome.claim.paper_effect is not None:
            ax.plot(outcome.claim.paper_effect * scale, row, marker="*", color="black", markersize=11, linestyle="")
            reach.append(outcome.claim.paper_effect * scale)
    ax.axvline(1.0 if kind == "ratio" else 0.0, color="grey", linewidth=1)
    labels = [textwrap.fill(f"{', '.join(ids)}: {o.claim.title}", TITLE_WIDTH) for ids, o in reversed(rows)]
    ax.set_yticks(range(len(rows)), labels, fontsize=10)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    if kind == "ratio":
        _ratio_axis(ax, reach)
    else:
        ax.set_xlabel("points of error (or of the claim's measure), other arm minus the paper's arm "
                      "(the paper's direction > 0)", fontsize=10)


def _ratio_axis(ax: plt.Axes, reach: list[float]) -> None:
    ax.set_xscale("log")
    low, high = min(reach) / 1.3, max(reach) * 1.3
    ticks = [t for t in RATIO_TICKS if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}x" if t >= 1 else f"1/{1 / t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xlim(low, high)
    ax.set_xlabel("ratio of iterations to the target, other arm / paper's arm (log axis; the paper's direction > 1)",
                  fontsize=10)


def _legend(shown: list[tuple[list[str], claims.Outcome]]) -> list:
    """What is drawn, and only that: the verdicts present, the intervals, the markers."""
    outcomes = [o for _, o in shown]
    verdicts = [v for v in VERDICT_COLOURS if any(o.verdict == v for o in outcomes)]
    # Verdicts as the estimate's dot, intervals as bars: a grey verdict and a grey bar would read alike.
    handles = [plt.Line2D([], [], color=VERDICT_COLOURS[v], marker="o", linestyle="", markersize=9,
                          markeredgecolor="black", markeredgewidth=0.6, label=v) for v in verdicts]
    handles.append(plt.Line2D([], [], color="#555555", linewidth=5, alpha=0.45,
                              label="95% interval\n(in the verdict's colour)"))
    if any(o.deciding is not None for o in outcomes):
        handles.append(plt.Line2D([], [], color="#555555", linewidth=1.5, marker="|", markersize=12,
                                  label="interval at the levels\nHolm decided it at"))
    handles.append(plt.Line2D([], [], color="black", linestyle="--", label="decision threshold"))
    if any(o.claim.paper_effect is not None for o in outcomes):
        handles.append(plt.Line2D([], [], color="black", marker="*", linestyle="", markersize=10,
                                  label="the paper's number"))
    for bound, marker in BOUND_MARKERS.items():
        if any(o.bound == bound for o in outcomes):
            handles.append(plt.Line2D([], [], color="#777777", marker=marker, linestyle="", markersize=9,
                                      label=f"an {bound} bound" if bound == "upper" else f"a {bound} bound"))
    return handles
