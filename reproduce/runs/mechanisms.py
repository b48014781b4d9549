"""Whether a proxy exercises LRN as the paper's net does (issue 31): how unevenly local response
normalisation divides.

LRN multiplies each activation a by m = (d / k)^-beta (up to the constant k^-beta), with
d = k + alpha/n * (sum of a^2 over n adjacent maps). Where m is the same everywhere LRN is a constant
rescale, which the next layer's weights absorb; it acts (a competition between adjacent maps) only as far
as m varies. The spread measured is the standard deviation of log m over the active units (a > 0) of test
images, with the quantiles of 1 - m, the share of an activation LRN takes away.

Each net is measured at its initial weights and after STEPS steps of SGD on the same first training images.
For small alpha * sum(a^2), log m is nearly proportional to alpha, so the alpha that gives the proxy the
paper net's spread is the paper's times the ratio of their spreads (`matching_alpha`), which the same probe
then checks at that alpha. `python -m reproduce mechanisms` measures both into results/pilot/mechanisms.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from reproduce.datasets.batches import iterate_batches
from reproduce.nets.layers import PAPER_LRN, GroupedLRN
from reproduce.records import provenance, results
from reproduce.training import train

PROBE_IMAGES = 256  # test images whose LRN inputs are measured
STEPS = 40  # SGD steps of 128 images between the two measurements
QUANTILES = (0.5, 0.9, 0.99)
MATCHED_LAYER = "lrn1"  # the layer at the input's scale; lrn2 is reported beside it


def lrn_multipliers(x: torch.Tensor, lrn: GroupedLRN) -> torch.Tensor:
    """m = (d / k)^-beta of every element of x (N, C, H, W), the sums within each of lrn's groups."""
    n, channels, h, w = x.shape
    grouped = x.reshape(n * lrn.groups, 1, channels // lrn.groups, h, w).pow(2)
    window = F.avg_pool3d(grouped, (lrn.size, 1, 1), stride=1, padding=(lrn.size // 2, 0, 0),
                          count_include_pad=True) * lrn.size
    divisor = lrn.k + lrn.alpha / lrn.size * window
    return (divisor / lrn.k).pow(-lrn.beta).reshape(n, channels, h, w)


def spread(multipliers: torch.Tensor, active: torch.Tensor) -> dict[str, float]:
    """The sd of log m and the quantiles of 1 - m over the active units."""
    m = multipliers[active].double()
    taken = 1 - m
    if taken.numel() > 2 ** 24:  # torch.quantile's limit: a fixed random sample of the units
        taken = taken[torch.randperm(taken.numel(), generator=torch.Generator().manual_seed(0))[:2 ** 24]]
    found = {"active_units": int(m.numel()), "sd_log_multiplier": float(m.log().std())}
    found.update({f"taken_q{round(100 * q)}": float(taken.quantile(q)) for q in QUANTILES})
    return found


@torch.no_grad()
def measure(trainer: train.Trainer, images: int = PROBE_IMAGES) -> dict[str, dict[str, float]]:
    """LRN layer name -> the spread of its multipliers on the first `images` test images (centre view)."""
    model = trainer.model.eval()
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [module.register_forward_hook(_keep(name, seen)) for name, module in model.named_modules()
             if isinstance(module, GroupedLRN)]
    try:
        x, y = trainer.splits["test_x"][:images], trainer.splits["test_y"][:images]
        for batch, _ in iterate_batches(x, y, 64, device=trainer.device):
            model(trainer.transform.test(batch))
    finally:
        for hook in hooks:
            hook.remove()
    modules = dict(model.named_modules())
    return {name: spread(torch.cat([lrn_multipliers(x, modules[name]) for x in inputs]), torch.cat(inputs) > 0)
            for name, inputs in seen.items()}


def _keep(name: str, seen: dict[str, list[torch.Tensor]]):
    def hook(module, inputs, output):
        seen.setdefault(name, []).append(inputs[0].detach())
    return hook


def probe(config: dict[str, Any], steps: int = STEPS) -> dict[str, Any]:
    """The net of `config` at its initial weights and after `steps` SGD steps on its first training images."""
    config = {**config, "epochs": 1, "train_limit": steps * config["batch_size"], "progress": False}
    trainer = train.build_trainer(config)
    initial = measure(trainer)
    order = torch.randperm(len(trainer.data.train_y), generator=torch.Generator().manual_seed(config["seed"]))
    augment_rng = torch.Generator(device=trainer.device).manual_seed(config["seed"])
    torch.manual_seed(config["seed"])
    fitted = train.train_one_epoch(trainer, 0, order, augment_rng)
    return {"config": {k: config[k] for k in ("model", "width", "groups", "input_side", "weight_init", "input_scale",
                                              "bias_init", "lrn_alpha", "lr", "seed")},
            "initial": initial, f"after_{steps}_steps": measure(trainer), "train_error_of_the_steps": fitted["train_error"]}


def matching_alpha(paper: dict[str, Any], proxy: dict[str, Any], steps: int = STEPS) -> float:
    """The proxy's alpha whose spread of log m at MATCHED_LAYER, after the steps, equals the paper net's:
    the proxy's alpha times the ratio of the spreads, rounded to two significant digits."""
    after = f"after_{steps}_steps"
    ratio = paper[after][MATCHED_LAYER]["sd_log_multiplier"] / proxy[after][MATCHED_LAYER]["sd_log_multiplier"]
    return float(f"{proxy['config']['lrn_alpha'] * ratio:.2g}")


def probe_nets(paper_config: dict[str, Any], proxy_config: dict[str, Any], results_dir: str | Path) -> Path:
    """The paper net, the proxy at the paper's alpha, and the proxy at the alpha that matches them, into
    results_dir/mechanisms.json with the code that measured it."""
    paper = probe(paper_config)
    as_paper = probe({**proxy_config, "lrn_alpha": PAPER_LRN["alpha"]})
    alpha = matching_alpha(paper, as_paper)
    found = {"lrn": {"paper net": paper, "proxy, the paper's alpha": as_paper,
                     "proxy, the matching alpha": probe({**proxy_config, "lrn_alpha": alpha})},
             "matching_alpha": alpha, "matched_layer": MATCHED_LAYER, "steps": STEPS, "probe_images": PROBE_IMAGES,
             "code": {**provenance.git_state(), "source_sha256": provenance.source_digest()},
             "measured_at": results.now_utc()}
    path = Path(results_dir) / "mechanisms.json"
    results.atomic_write_bytes(path, (json.dumps(found, indent=1, sort_keys=True) + "\n").encode())
    return path
