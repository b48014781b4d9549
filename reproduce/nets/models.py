"""The model registry: build a network from a config, and describe it layer by layer.

A config is a plain dict; only the model keys of reproduce.spec.params are read (others, such as the
learning rate, are ignored here), and a missing key takes its declared default, the paper's value,
so build_model({"model": "alexnet", "groups": 2}) is the paper's two-GPU net. The names, choices
and defaults are params' (the one declaration); this module adds the builders.
"""

from __future__ import annotations

from torch import nn

from reproduce.nets import alexnet, cifar_nets
from reproduce.nets.layers import PAPER_LRN, GroupedLRN, LocallyConnected2d, SpatialLRN, conv_output_side, pool_output_side
from reproduce.spec import params

BUILDERS = {
    "alexnet": alexnet.build_alexnet,
    "alexnet-small": alexnet.build_alexnet_small,
    "d2l-alexnet": alexnet.build_d2l_alexnet,
    "cifar-18pct": cifar_nets.build_cifar_18pct,
    "cifar-11pct": cifar_nets.build_cifar_11pct,
}

INPUT_SIZES = {
    "alexnet": alexnet.IMAGENET_STEM.input_side,
    "alexnet-small": alexnet.SMALL_STEM.input_side,
    "d2l-alexnet": alexnet.D2L_STEM.input_side,
    "cifar-18pct": cifar_nets.CIFAR_18PCT_INPUT,
    "cifar-11pct": cifar_nets.CIFAR_11PCT_INPUT,
}

# The run parameters that decide the network: those params declares with builds_model, with their defaults
# (the paper's choices); a network also needs its input channels and classes, which come from the data (the
# paper's: RGB, 1000). A parameter declared so reaches the builders with no other list to add it to.
MODEL_KEYS = tuple(p.name for p in params.PARAMS if p.builds_model)
MODEL_DEFAULTS = {**{key: params.BY_NAME[key].default for key in MODEL_KEYS}, "in_channels": 3, "num_classes": 1000}
# The AlexNet family's variants; the cuda-convnet nets have their own fixed layer plans.
ALEXNET_ONLY = {"kernels": "paper", "remove_conv": "none"}
# The nets whose input side can change (input_side): their fc6 takes whatever map conv5's pool leaves.
SIDE_FREE = ("alexnet", "alexnet-small")


def resolve_config(config: dict) -> dict:
    """The model keys of config with defaults filled in, each checked as params declares it; a ParamError (a
    ValueError) names a bad one."""
    resolved = {key: config.get(key, default) for key, default in MODEL_DEFAULTS.items()}
    for key in MODEL_KEYS:  # bool is an int in Python: a switch must be a bool, not 1 read as on
        if params.BY_NAME[key].type is bool and not isinstance(resolved[key], bool):
            raise params.ParamError(f"{key}: {resolved[key]!r} is not on/off; expected {params.BY_NAME[key].allowed()}")
    resolved.update(params.validate({key: resolved[key] for key in MODEL_KEYS}))
    if resolved["input_side"] and resolved["model"] not in SIDE_FREE:
        raise params.ParamError(f"input_side must be 0 for {resolved['model']} (only {' and '.join(SIDE_FREE)} "
                                f"take another side), got {resolved['input_side']!r}")
    if resolved["model"].startswith("cifar"):
        for key, paper in ALEXNET_ONLY.items():
            if resolved[key] != paper:
                raise params.ParamError(f"{key} must be {paper!r} for {resolved['model']} (it varies the AlexNet "
                                        f"family only), got {resolved[key]!r}")
    for key in ("in_channels", "num_classes"):
        if not isinstance(resolved[key], int) or resolved[key] < 1:
            raise ValueError(f"{key} must be a positive int, got {resolved[key]!r}")
    return resolved


def build_model(config: dict) -> nn.Module:
    """The network named by config["model"], initialised as the paper says."""
    resolved = resolve_config(config)
    return BUILDERS[resolved["model"]](resolved)


def canvas_size(model_name: str) -> int | None:
    """Side the stored images are resized to before the crop, where a model fixes it (d2l resizes the
    whole image to its input); None: the paper's rule (reproduce.datasets.augment.canvas_size)."""
    return alexnet.D2L_STEM.canvas_side if model_name == "d2l-alexnet" else None


def input_size(model_name: str) -> int:
    """Side in pixels of the square images the model is built for."""
    if model_name not in INPUT_SIZES:
        raise ValueError(f"model must be one of {list(params.MODELS)}, got {model_name!r}")
    return INPUT_SIZES[model_name]


def input_side(config: dict) -> int:
    """Side in pixels of the crops this config's network takes: its input_side, else the model's own."""
    return config.get("input_side") or input_size(config["model"])


def layer_table(config: dict) -> list[dict]:
    """One dict per layer: name, kind, detail, output_shape (C,H,W or (N,)), params, neurons.

    Shapes come from each layer's arithmetic, not from a forward pass. Neurons are the
    output units of conv, locally-connected and FC layers (before pooling), as in Fig. 2.
    """
    resolved = resolve_config(config)
    side = input_side(resolved)
    shape = (resolved["in_channels"], side, side)
    rows = []
    for name, module in build_model(resolved).named_children():
        shape = _output_shape(module, shape)
        kind = _kind(module)
        rows.append({
            "name": name, "kind": kind, "detail": _detail(module), "output_shape": shape,
            "params": sum(p.numel() for p in module.parameters()),
            "neurons": _product(shape) if kind in ("conv", "local", "fc") else 0,
        })
    return rows


def _product(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def _output_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(module, nn.Conv2d):
        sides = [conv_output_side(s, k, st, p) for s, k, st, p in
                 zip(shape[1:], module.kernel_size, module.stride, module.padding)]
        return (module.out_channels, *sides)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        side = pool_output_side(shape[1], module.kernel_size, module.stride, module.padding,
                                module.ceil_mode)
        return (shape[0], side, side)
    if isinstance(module, nn.AdaptiveMaxPool2d):
        return (shape[0], module.output_size, module.output_size)
    if isinstance(module, LocallyConnected2d):
        return (module.out_channels, module.out_side, module.out_side)
    if isinstance(module, nn.Flatten):
        return (_product(shape),)
    if isinstance(module, nn.Linear):
        return (module.out_features,)
    return shape  # activations, normalisation and dropout keep the shape


KINDS = ((nn.Conv2d, "conv"), (LocallyConnected2d, "local"), (nn.Linear, "fc"),
         (nn.MaxPool2d, "maxpool"), (nn.AvgPool2d, "avgpool"), (nn.AdaptiveMaxPool2d, "resize"),
         ((GroupedLRN, nn.LocalResponseNorm), "lrn"), (SpatialLRN, "spatial-lrn"),
         (nn.ReLU, "relu"), (nn.Tanh, "tanh"), (nn.Dropout, "dropout"), (nn.Flatten, "flatten"))


def _kind(module: nn.Module) -> str:
    for cls, kind in KINDS:
        if isinstance(module, cls):
            return kind
    return type(module).__name__


def _detail(module: nn.Module) -> str:
    """Kernel notation of the paper: "96 @ 11x11x3 s4" = 96 kernels of size 11x11x3, stride 4."""
    if isinstance(module, nn.Conv2d):
        k, stride = module.kernel_size[0], module.stride[0]
        text = f"{module.out_channels} @ {k}x{k}x{module.in_channels // module.groups}"
        text += f" s{stride}" if stride > 1 else ""
        return text + (f" groups={module.groups}" if module.groups > 1 else "")
    if isinstance(module, LocallyConnected2d):
        k = module.kernel_size
        return f"{module.out_channels} @ {k}x{k}x{module.in_channels} unshared"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return f"{module.kernel_size}x{module.kernel_size} s{module.stride}"
    if isinstance(module, GroupedLRN):
        return f"n={module.size} per {module.groups} group(s)"
    if isinstance(module, (nn.LocalResponseNorm, SpatialLRN)):
        return f"n={module.size}"
    if isinstance(module, nn.Dropout):
        return f"p={module.p}"
    if isinstance(module, nn.AdaptiveMaxPool2d):
        return f"to {module.output_size}x{module.output_size}"
    return ""


# Section 3.5 and Fig. 2, for the paper's two-GPU net: output as H x W x C, kernels, and
# the neurons Fig. 2's caption lists (its 253,440 for conv1 is not 55x55x96 = 290,400).
PAPER_LAYERS = {
    "conv1": "55x55x96, 96 @ 11x11x3 s4, 253,440 neurons",
    "conv2": "27x27x256, 256 @ 5x5x48, 186,624 neurons",
    "conv3": "13x13x384, 384 @ 3x3x256, 64,896 neurons",
    "conv4": "13x13x384, 384 @ 3x3x192, 64,896 neurons",
    "conv5": "13x13x256, 256 @ 3x3x192, 43,264 neurons",
    "fc6": "4096", "fc7": "4096", "fc8": "1000",
}
PAPER_PARAMS, PAPER_NEURONS = 60_000_000, 650_000


def describe(config: dict) -> str:
    """A printable layer table with totals, the paper's figures for alexnet, and notes."""
    resolved = resolve_config(config)
    rows = layer_table(resolved)
    with_paper = resolved["model"] == "alexnet"
    header = ["layer", "kind", "kernels", "output (HxWxC)", "params", "neurons"]
    lines = [header + (["paper (Fig. 2 / sec. 3.5)"] if with_paper else [])]
    for row in rows:
        line = [row["name"], row["kind"], row["detail"], _show_shape(row["output_shape"]),
                _count(row["params"]), _count(row["neurons"])]
        lines.append(line + ([PAPER_LAYERS.get(row["name"], "")] if with_paper else []))
    params, neurons = sum(r["params"] for r in rows), sum(r["neurons"] for r in rows)
    total = ["total", "", "", "", f"{params:,}", f"{neurons:,}"]
    lines.append(total + (["60 million params, 650,000 neurons"] if with_paper else []))
    title = f"model {resolved['model']}: " + ", ".join(f"{k}={v}" for k, v in resolved.items()
                                                       if k != "model")
    notes = _notes(resolved, rows, params, neurons)
    return "\n".join([title, *_align(lines), "", *("note: " + n for n in notes)])


def _show_shape(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[2]}x{shape[0]}" if len(shape) == 3 else str(shape[0])


def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def _align(lines: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    numeric = {4, 5}  # params and neurons read best right-aligned
    return ["  ".join(cell.rjust(w) if i in numeric else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
            for line in lines]


def _notes(config: dict, rows: list[dict], params: int, neurons: int) -> list[str]:
    if config["model"].startswith("cifar"):
        return _cifar_notes(config)
    notes = [_input_note(config), _lrn_note(config), _fc_input_note(config, rows),
             "dropout on the outputs of fc6 and fc7 (section 4.2: 'in the first two "
             "fully-connected layers'); torchvision puts it before them instead",
             f"bias init {config['bias_init']}: " + BIAS_WORDS[config["bias_init"]]]
    notes += _variant_notes(config)
    if config["model"] == "alexnet" and all(config[k] == v for k, v in ALEXNET_ONLY.items()):
        notes += [f"params {params:,} = {params / PAPER_PARAMS:.3f} x the paper's '60 million'; "
                  f"neurons {neurons:,} = {neurons / PAPER_NEURONS:.3f} x its '650,000'",
                  "neurons = output units of each conv and FC layer before pooling; Fig. 2 lists "
                  "253,440 for conv1 although 55x55x96 = 290,400"]
    return notes


BIAS_WORDS = {"paper": "1 in conv2, conv4, conv5, fc6, fc7, 0 elsewhere", "zero": "all 0",
              "torch": "each layer's PyTorch default, uniform in +-1/sqrt(fan_in) (d2l)"}


def _variant_notes(config: dict) -> list[str]:
    notes = []
    if config["kernels"] == "half":
        notes.append("kernels half: section 3.2's one-GPU net, half the kernels in conv1-conv4; conv5 and the "
                     "FC layers keep their size, so most parameters stay (C2)")
    if config["remove_conv"] != "none":
        notes.append(f"{config['remove_conv']} removed (section 7, C15): the next layer takes its input's maps "
                     "directly, and pooling follows the last conv layer left")
    return notes


def _input_note(config: dict) -> str:
    side = input_side(config)
    if config["model"] == "alexnet-small":
        return (f"input {side}x{side}: conv1 is 5x5 stride 1 pad 2 instead of 11x11 stride 4, "
                "which would leave almost nothing of a 28-32 px image")
    if config["model"] == "d2l-alexnet":
        return (f"input {side}x{side}, the whole image resized (d2l's Fashion-MNIST AlexNet): conv1 pads by 1, "
                "(224 + 2 - 11) // 4 + 1 = 54, and fc6 takes the final 5x5 maps")
    return (f"input {side}x{side}: the paper says 224, but (224 - 11) / 4 + 1 = 54.25; "
            "227 gives Fig. 2's 55x55 (Caffe's choice; torchvision pads by 2 instead)")


def _lrn_note(config: dict) -> str:
    if not config["lrn"]:
        return "LRN off (C3 ablation)"
    convention = (f"LRN b = a / (k + alpha/n * sum a^2)^beta with k=2, n=5, alpha={config['lrn_alpha']:g}, beta=0.75 "
                  "(nn.LocalResponseNorm's convention, which matches cuda-convnet's division by n; "
                  "the paper's formula read literally would need alpha=5e-4)")
    if config["lrn_alpha"] != PAPER_LRN["alpha"]:
        convention += f"; alpha {config['lrn_alpha'] / PAPER_LRN['alpha']:g} times the paper's 1e-4 (a proxy's deviation)"
    if config["groups"] == 2:
        towers = "; groups=2: the sum runs over adjacent maps of one tower, never across towers"
    else:
        towers = "; one tower: the sum runs over adjacent maps of all channels"
    return convention + towers


def _fc_input_note(config: dict, rows: list[dict]) -> str:
    names = [r["name"] for r in rows]
    fc_input = rows[names.index("flatten") - 1]["output_shape"]
    own = rows[names.index("fcpool") - 1]["output_shape"] if "fcpool" in names else fc_input
    text = (f"FC input fixed at the overlapping-pooling net's final map "
            f"({_show_shape(fc_input)}) in both C4 arms; this net's pooling "
            f"({config['pooling']}) gives {_show_shape(own)}")
    return text + (", so AdaptiveMaxPool2d resizes it" if own != fc_input else ", no resize needed")


CIFAR_LRN_NOTES = {
    "cifar-18pct": ("spatial LRN (cuda-convnet 'rnorm'): b = a / (1 + alpha/9 * sum of a^2 over "
                    "the 3x3 window of the same map)^0.75, alpha=5e-5"),
    "cifar-11pct": ("cross-map LRN n=5, alpha=1e-3 (divided by n), beta=0.75, k=1 "
                    "(cuda-convnet's minDiv), after the ReLU of conv1 and conv2"),
}
CIFAR_WITHOUT_LRN = {"cifar-18pct": "layers-19pct", "cifar-11pct": "layers-conv-local-13pct"}


def _cifar_notes(config: dict) -> list[str]:
    model, side = config["model"], input_size(config["model"])
    crops = " (cuda-convnet's random crops of the 32x32 images)" if side == 24 else ""
    without = f"LRN off: this is {CIFAR_WITHOUT_LRN[model]}"
    lrn = CIFAR_LRN_NOTES[model] if config["lrn"] else without
    return [f"input {side}x{side}{crops}", lrn,
            "pooling in ceil mode, sized as cuda-convnet does: ceil((side - window) / stride) + 1",
            "no dropout and no towers in these nets; the config's dropout is ignored",
            "weights N(0, 0.01), biases 0 (cuda-convnet's own configs draw conv1 with std 1e-4 "
            "and the local layers with 0.04)"]
