"""How results are put in words: one place for the report's sentences (claims, notebooks, book).

What a metric or measure means, what a claim's runs were trained on, its decision rule, whether its
learning rates were tuned. Each is derived from the declarations (the registry, the presets), so that
the book cannot say one thing while the code does another; and each returns what callers need to
branch on as data, not as a sentence to parse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reproduce.spec import metrics, params
from reproduce.spec.plan import Claim
from reproduce.verdicts import stats

MEASURE_WORDS = {
    "centre_test_top1_error": "top-1 test error on the centre crop",
    "ten_crop_test_top1_error": "top-1 test error of the softmax averaged over the 10 crops",
    "feature_neighbour_disagreement": "share of the 5 nearest test images (last hidden layer) with another label",
    "pixel_neighbour_disagreement": "share of the 5 nearest test images (pixels) with another label",
    "tower_colour_gap": "gap between the two towers' mean colour share of conv1's kernels",
    "random_split_colour_gap": "the same gap for random halves of conv1's kernels (chance)",
}
MODEL_WORDS = {"alexnet": "AlexNet at {side} px", "alexnet-small": "AlexNet at {side} px", "cifar-18pct": "four-layer net",
               "d2l-alexnet": "d2l's AlexNet at {side} px"}


def tested_on(preset: str, network: str, dataset: bool = True, conditions: dict | None = None) -> str:
    """What a claim's runs of this preset train, in a few words derived from the preset's config and the
    claim's conditions (C12's 8 epochs, say), without the preset's name (see proxy_text)."""
    config = params.resolve(conditions or {}, preset=preset, network=network)
    width = config["width"]
    from reproduce.nets.models import input_side  # lazy: torch

    net = MODEL_WORDS.get(config["model"], config["model"]).format(side=input_side(config))
    if config["groups"] == 2:
        net = f"two-tower {net}"
    if width != 1:
        net = (f"1/{round(1 / width)}-width " if (1 / width).is_integer() else f"{width:g}x-width ") + net
    images = f"{config['train_limit']:,} images" if config["train_limit"] else "all training images"
    epochs = f"{config['epochs']} epoch{'s' if config['epochs'] > 1 else ''}"
    data = f"{config['dataset']}, " if dataset else ""
    return f"{net}, {data}{images}, {epochs}"


def proxy_text(claim: Claim, preset: str) -> str | None:
    """What the verdict was measured on, and where that proxy departs from the paper in a way that
    bears on this claim."""
    if not claim.trains:
        return None
    text = f"{preset}: {tested_on(preset, claim.network, conditions=claim.conditions)}"
    caveat = claim.notes.get("proxy_note")
    return f"{text}. {caveat[0].upper()}{caveat[1:]}" if caveat else text



def percent(fraction: float) -> str:
    """A target error as a percentage, with the digits it was registered with: 25%, 25.76%."""
    return f"{100 * fraction:.4g}%"

@dataclass(frozen=True)
class LrFairness:
    tuned: bool | None  # None: no learning rate to tune (a claim that trains nothing, or measures one set of runs)
    text: str


def lr_fairness(claim: Claim, preset: str) -> LrFairness:
    """Whether the arms' learning rates were tuned, for the book's flag on every trained claim."""
    if not claim.trains:
        return LrFairness(None, "")
    if claim.kind == "within":
        return LrFairness(None, "one set of runs measured two ways: no lr to tune")
    if claim.lr_sweep:
        return LrFairness(True, f"tuned: each arm at its best of lr {', '.join(f'{lr:g}' for lr in claim.lr_sweep)}")
    if all("lr" in arm.settings for arm in claim.arms):
        chosen = ", ".join(f"{arm.name} at lr {arm.settings['lr']:g}" for arm in claim.arms)
        return LrFairness(True, f"tuned on the pilot's seeds, never the verdict's: {chosen}")
    lr = params.resolve({}, preset=preset, network=claim.network)["lr"]
    return LrFairness(False, f"not tuned: both arms at lr {lr:g} (the paper tuned lr per net only for Figure 1)")


def rule_text(claim: Claim) -> str:
    """The claim's decision rule in words, from the same numbers claims.decide uses."""
    if claim.kind == "untested":
        return f"not tested here: {claim.reason}"
    if claim.kind == "model":
        if claim.check == "layer_shapes":
            return ("reproduced if every conv and FC layer of the built two-tower net has Figure 2's output "
                    "shape and kernel shape; otherwise not reproduced")
        return (f"consistent with the paper if both counts are within {claim.tolerance:.0%} of its rounded "
                "numbers; otherwise not reproduced")
    if claim.kind == "ratio":
        effect, null, size = (f"the geometric mean over seeds of the ratio of iterations to "
                              f"{percent(claim.target_train_error)} training error, {claim.other_arm.name} / "
                              f"{claim.paper_arm.name} (its interval: a t interval on the per-seed log ratios)"
                              + (" (each at its best lr of the sweep)" if claim.lr_sweep else "")), "1", \
            f"{claim.threshold:g}x"
    elif claim.kind == "within":
        effect = (f"the mean over seeds of ({MEASURE_WORDS[claim.other_arm.measure]} minus "
                  f"{MEASURE_WORDS[claim.paper_arm.measure]}, on the same runs)")
        null, size = "0", points(claim.threshold)
    else:
        effect = (f"the mean over seeds of ({metrics.METRICS[claim.metric].words}: {claim.other_arm.name} minus "
                  f"{claim.paper_arm.name})")
        null, size = "0", points(claim.threshold)
    if claim.estimator:  # registered: decided with the family, at the levels Holm's step-down reached
        return (f"with {effect}, its two one-sided tests decided with the registered family by Holm's step-down "
                f"correction (family-wise error 5%): reproduced if the paper's direction is shown (the interval at "
                f"the level Holm decided it lies above {null}) and the estimate is at least {size}; consistent with "
                f"the paper if the direction is shown with a smaller estimate; not reproduced if the size is ruled "
                f"out (the interval at its level lies below {size}) and the direction is not shown; otherwise "
                "inconclusive")
    return (f"with {effect}, reproduced if its 95% interval lies above {null} and the estimate is at least "
            f"{size}; consistent with the paper if the interval lies above {null} with a smaller estimate; "
            f"not reproduced if the interval lies below {size} (and not above {null}); otherwise inconclusive")


def points(value: float) -> str:
    """A fraction of error as points, in words: "1 point", "0.5 points"."""
    shown = f"{100 * value:g}"
    return f"{shown} point" + ("" if shown == "1" else "s")


def metric_axis(claim: Claim) -> str:
    """A short label for the axis of a claim's per-seed values."""
    if claim.kind == "ratio":
        return "iterations to target"
    if claim.kind == "within":
        return "measure (see the rule)"
    return metrics.METRICS[claim.metric].words.split(" after")[0]


def holm_text(outcome) -> str:
    """What decided a registered claim: its two one-sided tests, after Holm's correction, and the interval at
    the levels Holm decided them at."""
    direction, size = outcome.adjusted
    return (f"Decided with the {outcome.family} hypotheses of the registered family (Holm's correction, family-wise "
            f"error 5%): the paper's direction p = {_p(outcome.p_direction)} (adjusted {_p(direction)}), the claimed "
            f"size ruled out p = {_p(outcome.p_size)} (adjusted {_p(size)}); {deciding_text(outcome)}; on another "
            f"machine: {outcome.machine}.")


def deciding_text(outcome) -> str:
    """The interval the verdict rests on: its ends at the one-sided levels Holm decided the two tests at."""
    low, high = outcome.deciding
    direction, size = outcome.levels
    return (f"the interval at those levels {interval_text(outcome.claim, low, high)} (its lower end at one-sided "
            f"level {direction:.2g}, its upper end at {size:.2g})")


def interval_text(claim: Claim, low: float, high: float) -> str:
    if claim.kind == "ratio":
        return f"[{low:.2f}x, {high:.2f}x]"
    return f"[{100 * low:+.2f}, {100 * high:+.2f}] pts"


def undecided_text(outcome) -> str:
    """Why a registered claim is inconclusive, in one line: its nearer test's p against the level Holm needed,
    and about how many seeds (at the spread measured) would decide it."""
    interval, (direction, size) = outcome.interval, outcome.levels
    centre = math.log(interval.estimate) if interval.log_scale else interval.estimate
    to_size = (math.log(outcome.claim.threshold) if interval.log_scale else outcome.claim.threshold) - centre
    side, p, level, distance = min((("direction", outcome.p_direction, direction, centre),  # the null is 0 (log 1)
                                    ("size ruled out", outcome.p_size, size, to_size)),
                                   key=lambda item: (math.isnan(item[1]), item[1]))
    if math.isnan(p):
        return "neither test can be made: the runs that never reached the target bound the ratio both ways"
    more = stats.seeds_needed(distance, interval.sd, level) if distance > 0 else None
    seeds = f"about {more} seeds would decide it" if more else "the estimate sits on the null's side"
    return f"{side} p = {p:.2g}, Holm needs <= {level:.2g}; {seeds}"


def _p(value: float) -> str:
    return "n/a" if value != value else f"{value:.3g}"  # NaN: the side that a bound cannot test


def effect_size(claim: Claim, value: float | None) -> str:
    """An effect on the claim's scale, in words for a table: points of error, or a ratio."""
    if value is None:
        return ""
    return f"{value:.2f}x" if claim.kind == "ratio" else f"{100 * value:.2f} points"
