"""The paper's network (section 3.5, Fig. 2), its variants (section 3.2's one-tower net with half the
kernels, section 7's nets without one middle conv layer) and a small member for 32 px images.

Each builder takes a resolved config (see `models.resolve_config`) and returns a flat
nn.Sequential whose children are named as in the paper: conv1..conv5, fc6..fc8, with
act/lrn/pool/drop layers numbered after the layer they follow.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from torch import nn

from reproduce.nets.layers import (
    PAPER_LRN,
    GroupedLRN,
    arm_pool_side,
    conv_output_side,
    fc_input_pool,
    init_paper,
    make_activation,
    make_pool,
    scaled_width,
)

# Section 5: "We initialized the neuron biases in the second, fourth, and fifth
# convolutional layers, as well as in the fully-connected hidden layers, with the constant 1".
BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")

PAPER_CONV_WIDTHS = (96, 256, 384, 384, 256)
# Section 3.2's one-GPU net: half the kernels in conv1-conv4 but not in conv5, nor in the
# FC layers, since "most of the net's parameters are in the first fully-connected layer".
HALF_CONV_WIDTHS = (48, 128, 192, 192, 256)
PAPER_FC_WIDTH = 4096


@dataclass(frozen=True)
class Stem:
    """conv1's geometry, the input side it is meant for, and the side images are resized to before
    the crop (None: the paper's 256 for 227, reproduce.datasets.augment.canvas_size)."""
    kernel: int
    stride: int
    padding: int
    input_side: int
    canvas_side: int | None = None


# The paper says 224x224 input, but (224 - 11) / 4 + 1 = 54.25 is not a whole number of
# positions; 227 gives exactly the 55x55 of Fig. 2 (Caffe's choice; torchvision pads by 2).
IMAGENET_STEM = Stem(kernel=11, stride=4, padding=0, input_side=227)
# For 28-32 px images (Fashion-MNIST, CIFAR) a stride-4 11x11 conv would leave almost no map.
SMALL_STEM = Stem(kernel=5, stride=1, padding=2, input_side=32)
# The seeds' d2l AlexNet (seed notes 003, d2l 7.1): 224 px with padding 1 gives 54x54, and its
# final 5x5 map feeds fc6 with 6,400 inputs. d2l resizes the whole image to 224: no crop.
D2L_STEM = Stem(kernel=11, stride=4, padding=1, input_side=224, canvas_side=224)


KERNEL_PLANS = {"paper": PAPER_CONV_WIDTHS, "half": HALF_CONV_WIDTHS}
MIDDLE_CONVS = ("conv3", "conv4", "conv5")  # section 7: "removing any of the middle layers"


def _sized(stem: Stem, config: dict) -> Stem:
    """The stem for config's input_side (0: the stem's own side)."""
    return replace(stem, input_side=config["input_side"]) if config.get("input_side") else stem


def build_alexnet(config: dict) -> nn.Sequential:
    """The paper's net; groups=2 is its two-GPU connectivity (60,965,224 parameters)."""
    return _build_family(config, _sized(IMAGENET_STEM, config))


def build_alexnet_small(config: dict) -> nn.Sequential:
    """The same layer plan for 32 px inputs, small enough to train on a CPU at width 0.25."""
    return _build_family(config, _sized(SMALL_STEM, config))


def build_d2l_alexnet(config: dict) -> nn.Sequential:
    """d2l's Fashion-MNIST AlexNet with lrn off and groups 1: one tower, no LRN, 224 px."""
    return _build_family(config, D2L_STEM)


def conv_plan(config: dict) -> list[tuple[int, int]]:
    """(index, kernels) of each conv layer kept, in order: `kernels` picks the paper's widths or the
    one-tower half net (C2), `remove_conv` drops one middle layer (C15)."""
    if config["kernels"] == "half" and config["groups"] != 1:
        raise ValueError(f"groups must be one of [1] with kernels 'half' (section 3.2's one-tower net), "
                         f"got {config['groups']!r}")
    widths = [scaled_width(c, config["width"], config["groups"]) for c in KERNEL_PLANS[config["kernels"]]]
    removed = MIDDLE_CONVS.index(config["remove_conv"]) + 3 if config["remove_conv"] != "none" else None
    return [(i, w) for i, w in enumerate(widths, start=1) if i != removed]


def final_map_side(stem: Stem, pooling: str) -> int:
    """Side of conv5's pooled map: conv1 and the three pools shrink it, conv2-conv5 keep it."""
    side = conv_output_side(stem.input_side, stem.kernel, stem.stride, stem.padding)
    for _ in range(3):
        side = arm_pool_side(side, pooling)
    return side


def _build_family(config: dict, stem: Stem) -> nn.Sequential:
    plan = conv_plan(config)
    layers = _conv_layers(config, plan, stem)
    reference_side = final_map_side(stem, "overlapping")
    resize = fc_input_pool(final_map_side(stem, config["pooling"]), reference_side)
    if resize is not None:
        layers.append(("fcpool", resize))
    layers.append(("flatten", nn.Flatten()))
    fc_in = plan[-1][1] * reference_side ** 2
    layers += _fc_layers(config, fc_in, scaled_width(PAPER_FC_WIDTH, config["width"]))
    model = nn.Sequential(OrderedDict(layers))
    init_paper(model, BIAS_ONE, config["bias_init"], config["weight_init"])
    return model


# conv1 is one conv over the full image: two towers of 48 maps that each see the whole input are
# mathematically one conv with 96 maps. conv3 sees both towers (groups 1); conv2, conv4 and conv5
# see only their own tower's maps.
_GROUPED = {2, 4, 5}


def _conv_layers(config: dict, plan: list[tuple[int, int]], stem: Stem) -> list[tuple[str, nn.Module]]:
    layers, channels = [], config["in_channels"]
    last = plan[-1][0]
    for index, kernels in plan:
        groups = config["groups"] if index in _GROUPED else 1
        if index == 1:
            conv = nn.Conv2d(channels, kernels, stem.kernel, stem.stride, stem.padding)
        else:
            conv = nn.Conv2d(channels, kernels, 5 if index == 2 else 3, padding=2 if index == 2 else 1, groups=groups)
        layers += [(f"conv{index}", conv), (f"act{index}", make_activation(config["activation"]))]
        # LRN after the non-linearity of conv1 and conv2 (section 3.3), per tower.
        if index <= 2 and config["lrn"]:
            layers.append((f"lrn{index}", GroupedLRN(groups=config["groups"], **{**PAPER_LRN, "alpha": config["lrn_alpha"]})))
        # Pooling after conv1, conv2 and the last conv (conv5, or conv4 when conv5 is removed).
        if index in (1, 2) or index == last:
            layers.append((f"pool{index}", make_pool(config["pooling"])))
        channels = kernels
    return layers


def _fc_layers(config: dict, fc_in: int, hidden: int) -> list[tuple[str, nn.Module]]:
    # "We use dropout in the first two fully-connected layers" (section 4.2): dropout acts on
    # the outputs of fc6 and fc7, so it sits after their activations. torchvision's placement
    # (before fc6 and fc7) would drop conv5's pooled features instead of fc7's outputs.
    # nn.Dropout scales by 1/(1-p) in training, equivalent to the paper's x0.5 at test time.
    layers = []
    for name, n_in in (("fc6", fc_in), ("fc7", hidden)):
        index = name[-1]
        layers += [(name, nn.Linear(n_in, hidden)),
                   (f"act{index}", make_activation(config["activation"]))]
        if config["dropout"] > 0:
            layers.append((f"drop{index}", nn.Dropout(config["dropout"])))
    layers.append(("fc8", nn.Linear(hidden, config["num_classes"])))
    return layers
