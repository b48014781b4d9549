"""The built paper network against section 3.5 and Figure 2 (claims C5, C6), saved as data.

The architecture notebook calls `save()`; the claims and the book read the JSON it writes, so
the counts in the report come from the code that builds the model, like every other number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from reproduce.nets.models import PAPER_NEURONS, PAPER_PARAMS, build_model, layer_table
from reproduce.records import provenance, results
from reproduce.spec import params

# Figure 2 / section 3.5, the two-GPU net: output (C, H, W) and kernels (count, in per kernel, k).
PAPER_SHAPES: dict[str, dict[str, Any]] = {
    "conv1": {"output": (96, 55, 55), "kernels": (96, 3, 11)},
    "conv2": {"output": (256, 27, 27), "kernels": (256, 48, 5)},
    "conv3": {"output": (384, 13, 13), "kernels": (384, 256, 3)},
    "conv4": {"output": (384, 13, 13), "kernels": (384, 192, 3)},
    "conv5": {"output": (256, 13, 13), "kernels": (256, 192, 3)},
    "fc6": {"output": (4096,), "kernels": None},
    "fc7": {"output": (4096,), "kernels": None},
    "fc8": {"output": (1000,), "kernels": None},
}
FILE_NAME = "architecture.json"


def paper_network_config() -> dict[str, Any]:
    """The paper's network as the paper trains it: two towers, RGB, 1000 classes."""
    config = params.resolve({"model": "alexnet", "groups": 2})
    return {**config, "in_channels": 3, "num_classes": 1000}


def compare_with_paper(config: dict[str, Any]) -> dict[str, Any]:
    """Layer rows with the paper's shape beside ours and whether they match, plus the totals."""
    model = build_model(config)
    modules = dict(model.named_children())
    rows = []
    for row in layer_table(config):
        paper = PAPER_SHAPES.get(row["name"])
        ours = _kernels(modules[row["name"]])
        matches = None if paper is None else (tuple(row["output_shape"]) == paper["output"]
                                              and ours == paper["kernels"])
        rows.append({**row, "output_shape": list(row["output_shape"]), "kernels": ours,
                     "paper_output": None if paper is None else list(paper["output"]),
                     "paper_kernels": None if paper is None else paper["kernels"], "matches": matches})
    return {
        "config": {k: config[k] for k in ("model", "groups", "lrn", "pooling", "dropout", "width",
                                          "in_channels", "num_classes")},
        "layers": rows,
        "parameters": sum(r["params"] for r in rows),
        "neurons": sum(r["neurons"] for r in rows),
        "paper_parameters": PAPER_PARAMS,
        "paper_neurons": PAPER_NEURONS,
        "training_sha256": provenance.training_digest(),
    }


def _kernels(module: nn.Module) -> tuple[int, int, int] | None:
    if isinstance(module, nn.Conv2d):
        out_channels, in_per_kernel, side, _ = module.weight.shape
        return (out_channels, in_per_kernel, side)
    return None


def save(results_dir: str | Path = "results") -> dict[str, Any]:
    summary = compare_with_paper(paper_network_config())
    path = Path(results_dir) / FILE_NAME
    results.atomic_write_bytes(path, json.dumps(summary, indent=1).encode())
    return summary


def load(results_dir: str | Path = "results") -> dict[str, Any] | None:
    path = Path(results_dir) / FILE_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text())
