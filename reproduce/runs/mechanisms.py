"""Whether a proxy exercises LRN as the paper's net does (issue 31): how much local response
normalisation's divisor varies across units and inputs.

LRN multiplies each activation a by m = (d / k)^-beta (up to the constant k^-beta), with
d = k + alpha/n * (sum of a^2 over n adjacent maps). Where m is the same everywhere LRN is a constant
rescale, which the next layer's weights absorb; it acts (a competition between adjacent maps) only as far
as m varies. The spread measured is the standard deviation of log m over the active units (a > 0) of test
images, with the quantiles of 1 - m, the share of an activation LRN takes away.

`python -m reproduce mechanisms` measures it in the paper's net at 227 px (the paper's init and raw
pixels) and in the CPU proxy, each at its initial weights and after a short training on the same images,
into results/pilot/mechanisms.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from reproduce.datasets.batches import iterate_batches
from reproduce.nets.layers import GroupedLRN
from reproduce.records import provenance, results
from reproduce.training import train

PROBE_IMAGES = 256  # test images whose LRN inputs are measured
TRAIN_IMAGES = 1_280  # the short training: one epoch of 10 steps of 128
QUANTILES = (0.5, 0.9, 0.99)


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
    found = {"active_units": int(m.numel()), "sd_log_multiplier": float(m.log().std())}
    for q in QUANTILES:
        found[f"taken_q{round(100 * q)}"] = float(taken.quantile(q)) if m.numel() < 2 ** 24 else float(
            taken[torch.randperm(m.numel())[:2 ** 24]].quantile(q))
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
    return {name: _spread_of(name, inputs, model) for name, inputs in seen.items()}


def _keep(name: str, seen: dict[str, list[torch.Tensor]]):
    def hook(module, inputs, output):
        seen.setdefault(name, []).append(inputs[0].detach())
    return hook


def _spread_of(name: str, inputs: list[torch.Tensor], model: torch.nn.Module) -> dict[str, float]:
    lrn = dict(model.named_modules())[name]
    m = torch.cat([lrn_multipliers(x, lrn) for x in inputs])
    return spread(m, torch.cat(inputs) > 0)


def probe(config: dict[str, Any]) -> dict[str, Any]:
    """The net of `config` at its initial weights and after one epoch on its first TRAIN_IMAGES images."""
    config = {**config, "epochs": 1, "train_limit": TRAIN_IMAGES, "progress": False}
    trainer = train.build_trainer(config)
    before = measure(trainer)
    train.run_epoch(trainer, 0)
    return {"config": {k: config[k] for k in ("model", "width", "input_side", "weight_init", "input_scale",
                                              "bias_init", "groups", "lr", "seed")},
            "initial": before, "after_10_steps": measure(trainer),
            "train_error_of_the_epoch": trainer.record["epochs"][-1]["train_error"]}


def probe_nets(configs: dict[str, dict[str, Any]], results_dir: str | Path) -> Path:
    """Probe each named config; write results/<...>/mechanisms.json with the code that measured it."""
    found = {"lrn": {name: probe(config) for name, config in configs.items()},
             "code": {**provenance.git_state(), "source_sha256": provenance.source_digest()},
             "measured_at": results.now_utc(), "probe_images": PROBE_IMAGES, "train_images": TRAIN_IMAGES}
    path = Path(results_dir) / "mechanisms.json"
    results.atomic_write_bytes(path, (json.dumps(found, indent=1, sort_keys=True) + "\n").encode())
    return path
