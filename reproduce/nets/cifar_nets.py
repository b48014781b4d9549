"""The paper's CIFAR-10 "four-layer" nets, after Krizhevsky's cuda-convnet example configs.

- cifar-18pct is layers-18pct (18% test error); with lrn off it is layers-19pct (19%).
- cifar-11pct is layers-conv-local-11pct; with lrn off it is layers-conv-local-13pct.
  The 13% / 11% pair is almost certainly the paper's C3 CIFAR-10 result.

Pooling uses ceil mode because cuda-convnet sizes a pooling output as
ceil((side - window) / stride) + 1 (32 -> 16 -> 8 -> 4 and 24 -> 12 -> 6), and its average
pooling divides by the in-image part of a clipped border window, as PyTorch's does with no
padding. These nets have no dropout (the config's value is ignored) and no towers.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import nn

from reproduce.nets.layers import (
    GroupedLRN,
    LocallyConnected2d,
    SpatialLRN,
    arm_pool_side,
    fc_input_pool,
    init_paper,
    make_activation,
    make_pool,
    scaled_width,
)

# layer-params-18pct.config: rnorm scale=0.00005, pow=.75 over a 3x3 spatial window.
SPATIAL_LRN_18PCT = {"size": 3, "alpha": 5e-5, "beta": 0.75, "k": 1.0}
# layers-conv-local-11pct.config: crossMap=1, size=5, scale=0.001, pow=0.75; cuda-convnet
# divides scale by size like nn.LocalResponseNorm, and its minDiv (k) defaults to 1.
CROSS_MAP_LRN_11PCT = {"size": 5, "alpha": 1e-3, "beta": 0.75, "k": 1.0}

CIFAR_18PCT_INPUT = 32
# cuda-convnet trains this net on random 24x24 crops of the 32x32 images.
CIFAR_11PCT_INPUT = 24


def build_cifar_18pct(config: dict) -> nn.Sequential:
    """conv-pool-act-rnorm, conv-act-avgpool-rnorm, conv-act-avgpool, fc10."""
    _require_one_tower(config)
    c1, c2, c3 = (scaled_width(c, config["width"]) for c in (32, 32, 64))
    act = partial(make_activation, config["activation"])
    pool = partial(make_pool, config["pooling"], ceil_mode=True)
    # cuda-convnet applies conv1's ReLU after its max-pool (the pool layer holds the neuron);
    # for max-pooling and a monotonic activation the order does not change the result.
    layers = [("conv1", nn.Conv2d(config["in_channels"], c1, 5, padding=2)),
              ("pool1", pool("max")), ("act1", act())]
    layers += _optional_lrn(config, "lrn1")
    layers += [("conv2", nn.Conv2d(c1, c2, 5, padding=2)), ("act2", act()), ("pool2", pool("avg"))]
    layers += _optional_lrn(config, "lrn2")
    layers += [("conv3", nn.Conv2d(c2, c3, 5, padding=2)), ("act3", act()), ("pool3", pool("avg"))]
    side = _pooled_side(CIFAR_18PCT_INPUT, config["pooling"], times=3)
    layers += _classifier(config, c3, side, _pooled_side(CIFAR_18PCT_INPUT, "overlapping", times=3))
    return _finish(layers, config)


def build_cifar_11pct(config: dict) -> nn.Sequential:
    """conv-act-lrn-pool twice, two locally-connected layers, fc10."""
    _require_one_tower(config)
    c1, c2, c3, c4 = (scaled_width(c, config["width"]) for c in (64, 64, 32, 32))
    act = partial(make_activation, config["activation"])
    layers = []
    for i, (n_in, n_out) in enumerate(((config["in_channels"], c1), (c1, c2)), start=1):
        layers += [(f"conv{i}", nn.Conv2d(n_in, n_out, 5, padding=2)), (f"act{i}", act())]
        if config["lrn"]:
            layers.append((f"lrn{i}", GroupedLRN(**CROSS_MAP_LRN_11PCT)))
        layers.append((f"pool{i}", make_pool(config["pooling"], "max", ceil_mode=True)))
    side = _pooled_side(CIFAR_11PCT_INPUT, config["pooling"], times=2)
    layers += [("local3", LocallyConnected2d(c2, c3, 3, side, padding=1)), ("act3", act()),
               ("local4", LocallyConnected2d(c3, c4, 3, side, padding=1)), ("act4", act())]
    layers += _classifier(config, c4, side, _pooled_side(CIFAR_11PCT_INPUT, "overlapping", times=2))
    return _finish(layers, config)


def _require_one_tower(config: dict) -> None:
    if config["groups"] != 1:
        raise ValueError(f"groups must be one of [1] for model {config['model']!r} "
                         f"(the CIFAR nets have no towers), got {config['groups']!r}")


def _optional_lrn(config: dict, name: str) -> list[tuple[str, nn.Module]]:
    # Faithful spatial (within-map) normalisation, as cuda-convnet's "rnorm" layer.
    return [(name, SpatialLRN(**SPATIAL_LRN_18PCT))] if config["lrn"] else []


def _pooled_side(side: int, pooling: str, times: int) -> int:
    # Every conv and locally-connected layer in these nets keeps the side (5x5 pad 2, 3x3 pad 1).
    for _ in range(times):
        side = arm_pool_side(side, pooling, ceil_mode=True)
    return side


def _classifier(config: dict, channels: int, side: int, reference_side: int) -> list:
    layers = []
    resize = fc_input_pool(side, reference_side)
    if resize is not None:
        layers.append(("fcpool", resize))
    fc_in = channels * reference_side ** 2
    return layers + [("flatten", nn.Flatten()), ("fc10", nn.Linear(fc_in, config["num_classes"]))]


def _finish(layers: list, config: dict) -> nn.Sequential:
    model = nn.Sequential(OrderedDict(layers))
    # cuda-convnet starts every bias at 0; weights use the paper's N(0, 0.01) throughout
    # (the configs themselves use 1e-4 for conv1 and 0.04 for the local layers).
    init_paper(model, bias_one=(), bias_init=config["bias_init"], weight_init=config["weight_init"])
    return model
