"""The one declaration of every experiment parameter, and its validation.

Everything else derives from PARAMS: the CLI flags (reproduce.cli), the notebooks'
parameters cells and the nox options. A name that is not declared here, or a value
outside what is declared, stops the run with a ParamError that names the parameter
and what it allows.

`affects_result=False` marks execution details (where data lives, which device, progress
bars): they are left out of the config hash, so the same experiment run on another
machine or directory is recognised as the same run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Callable

# The networks reproduce.nets.models builds, and the datasets reproduce.datasets.data loads with their channels
# (known without loading anything: whether a claim about colour, C9 or C16, can be tested on them).
MODELS = ("alexnet", "alexnet-small", "d2l-alexnet", "cifar-18pct", "cifar-11pct")
DATASETS = {"fashion-mnist": 1, "cifar10": 3, "imagenet-folder": 3}
DATASET_CLASSES = {"fashion-mnist": 10, "cifar10": 10, "imagenet-folder": 1000}  # ILSVRC's; a test folder has fewer


class ParamError(ValueError):
    """A user error in a parameter: its message is shown as is, without traceback."""


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None  # inclusive unless max_exclusive
    max_exclusive: bool = False
    affects_result: bool = True
    words: tuple[str, ...] = ()  # values taken as they are besides the typed range, e.g. "auto"
    # A parameter added after runs existed, whose default reproduces what those runs did: at that default
    # it is left out of the config hash, so they keep their ids. Its default must then never change.
    added_later: bool = False
    # The network's own: reproduce.nets.models reads every parameter marked so, and only those, to build it.
    builds_model: bool = False
    # A text parameter's own rule: a test of the value, and what it allows in words.
    valid: Callable[[str], bool] | None = None
    valid_help: str = ""

    def allowed(self) -> str:
        """Human-readable description of the allowed values, for error messages."""
        if self.words:
            return " or ".join([*self.words, replace(self, words=()).allowed()])
        if self.choices is not None:
            return "one of " + ", ".join(show_value(c) for c in self.choices)
        if self.type is bool:
            return "on/off (true/false)"
        if self.type is str:
            return self.valid_help or "any text"
        low = "-inf" if self.minimum is None else show_value(self.minimum)
        high = "inf" if self.maximum is None else show_value(self.maximum)
        closing = ")" if self.max_exclusive or self.maximum is None else "]"
        return f"{_article(self.type.__name__)} in [{low}, {high}{closing}"

    def parse(self, value: Any) -> Any:
        """Convert `value` (a CLI string or a Python value) and check it; raise ParamError."""
        converted = _convert(self, value)
        self._check(converted)
        return converted

    def _check(self, value: Any) -> None:
        if value in self.words:
            return
        if self.choices is not None and value not in self.choices:
            raise ParamError(f"{self.name}: {show_value(value)} is not allowed; expected {self.allowed()}")
        if self.valid is not None and not self.valid(value):
            raise ParamError(f"{self.name}: {value!r} is not allowed; expected {self.allowed()}")
        if self.type in (int, float):
            too_low = self.minimum is not None and value < self.minimum
            too_high = self.maximum is not None and (
                value >= self.maximum if self.max_exclusive else value > self.maximum)
            if too_low or too_high or (self.type is float and not math.isfinite(value)):
                raise ParamError(f"{self.name}: {show_value(value)} is out of range; expected {self.allowed()}")


def increasing_epochs(value: str) -> bool:
    """Empty, or whole epochs from 1 up, comma-separated, each after the one before."""
    if re.fullmatch(r"(\d+(,\d+)*)?", value) is None:
        return False
    epochs = drop_epochs(value)
    return all(a < b for a, b in zip((0, *epochs), epochs))


def drop_epochs(value: str) -> tuple[int, ...]:
    """lr_drop_epochs as numbers: () for the plateau rule."""
    return tuple(int(epoch) for epoch in value.split(",")) if value else ()


_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


def _convert(param: Param, value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in param.words:
        return value.strip().lower()
    if param.type is bool:
        return _convert_bool(param, value)
    if isinstance(value, bool):  # bool is an int subclass: never let True pass as 1
        raise ParamError(f"{param.name}: {value!r} is not {_article(param.type.__name__)}; expected {param.allowed()}")
    try:
        if param.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return param.type(value)
    except (TypeError, ValueError):
        raise ParamError(
            f"{param.name}: {value!r} is not {_article(param.type.__name__)}; expected {param.allowed()}") from None


def _article(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _convert_bool(param: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParamError(f"{param.name}: {value!r} is not on/off; expected {param.allowed()}")


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


# The paper's recipe is the default (section 5): SGD, batch 128, momentum 0.9, weight decay
# 5e-4, lr 0.01 divided by 10 when validation error stops improving, about 90 epochs.
PARAMS: tuple[Param, ...] = (
    Param("model", str, "alexnet", "network to train", choices=MODELS, builds_model=True),
    Param("dataset", str, "fashion-mnist", "training data", choices=tuple(DATASETS)),
    Param("epochs", int, 90, "passes over the training set", minimum=1),
    Param("batch_size", int, 128, "SGD minibatch size", minimum=1),
    Param("lr", float, 0.01, "initial learning rate", minimum=0, maximum=10.0, max_exclusive=True),
    Param("momentum", float, 0.9, "SGD momentum", minimum=0, maximum=1, max_exclusive=True),
    Param("weight_decay", float, 5e-4, "L2 weight decay", minimum=0, maximum=1),
    Param("lr_patience", int, 2, "epochs without a lower validation error before the lr drops tenfold", minimum=0),
    Param("lr_drops", int, 3, "most tenfold lr drops", minimum=0),
    Param("lr_drop_epochs", str, "", "epochs after which the lr drops tenfold, increasing, comma-separated (a fixed "
          "schedule, the same in every arm); empty = when the validation error stops improving (lr_patience, "
          "lr_drops)", added_later=True, valid=increasing_epochs,
          valid_help="empty, or increasing epochs such as 22,31,35"),
    Param("activation", str, "relu", "non-linearity of every hidden layer (C1)", choices=("relu", "tanh"), builds_model=True),
    Param("lrn", bool, True, "local response normalisation after conv1 and conv2 (C3)", builds_model=True),
    Param("lrn_alpha", float, 1e-4, "alpha of the AlexNet family's LRN (the paper's 1e-4, divided by n = 5 as in "
          "cuda-convnet); a proxy whose activations are on another scale raises it so that LRN divides as unevenly as "
          "in the paper's net (C3)", minimum=0, maximum=1, max_exclusive=True, added_later=True, builds_model=True),
    Param("pooling", str, "overlapping", "max-pooling windows (C4)", choices=("overlapping", "non-overlapping"), builds_model=True),
    Param("dropout", float, 0.5, "dropout probability of fc6 and fc7; 0 = none (C10)", minimum=0, maximum=1,
          max_exclusive=True, builds_model=True),
    Param("groups", int, 1, "towers of conv2, conv4, conv5 (C2)", choices=(1, 2), builds_model=True),
    Param("kernels", str, "paper", "conv kernel counts (C2)", choices=("paper", "half"), builds_model=True),
    Param("remove_conv", str, "none", "middle conv layer left out (C15)", choices=("none", "conv3", "conv4", "conv5"), builds_model=True),
    Param("width", float, 1.0, "multiplier on every layer's width", minimum=0.01, maximum=4, builds_model=True),
    Param("input_side", int, 0, "side in pixels of the AlexNet family's input crops; 0 = the model's own (227, or 32 "
          "for alexnet-small)", minimum=0, maximum=512, added_later=True, builds_model=True),
    Param("bias_init", str, "paper", "initial biases (C12)", choices=("paper", "zero", "torch"), builds_model=True),
    Param("weight_init", str, "paper", "initial weights", choices=("paper", "he", "xavier"), builds_model=True),
    Param("input_scale", str, "raw", "scale of the input pixels", choices=("raw", "unit", "zero-one")),
    Param("augment", bool, True, "random crops and flips while training (C7)"),
    Param("lighting", str, "auto", "PCA colour lighting while training (C9)", choices=("auto", "on", "off")),
    Param("seed", int, 0, "seed of weights, data order, augmentation and dropout", minimum=0),
    Param("train_limit", int, 0, "use only the first N training images; 0 = all", minimum=0),
    Param("test_limit", int, 0, "use only the first N test images; 0 = all", minimum=0),
    Param("log_every", int, 50, "iterations between training-curve points", minimum=1),
    Param("test_every_epoch", bool, True, "test after every epoch; off = after the last only", added_later=True),
    Param("data_dir", str, "data", "where datasets live or are unpacked", affects_result=False),
    Param("results_dir", str, "results", "where records and checkpoints go", affects_result=False),
    Param("stage_dir", str, "", "a node-local folder (local NVMe, /dev/shm) the image cache's shards are copied to "
          "before a run reads them, once a node; empty = read them where they are", affects_result=False),
    Param("device", str, "auto", "where to train", choices=("auto", "cpu", "cuda"), affects_result=False),
    Param("precision", str, "auto", "arithmetic of the forward and backward pass", choices=("auto", "fp32", "bf16")),
    Param("cpu_threads", int, 1, "torch threads of one run on the CPU", minimum=1, affects_result=False),
    Param("loader_workers", int, "auto", "worker processes that gather a run's batches when its training images stay "
          "on the host (a memory-mapped image cache too big for the GPU); auto = the CPUs this process may use, "
          "shared by the node's ranks, one kept for training (none on the CPU); 0 = in the training process",
          minimum=0, words=("auto",), affects_result=False),
    Param("compile", str, "auto", "torch.compile the model", choices=("auto", "on", "off"), affects_result=False),
    Param("dist_backend", str, "auto", "how torchrun's ranks talk", choices=("auto", "nccl", "gloo"),
          affects_result=False),
    Param("progress", bool, True, "per-batch progress bars", affects_result=False),
    Param("checkpoint_every_steps", int, 0, "SGD steps between checkpoints within an epoch, each rank's place and "
          "random streams included (an ImageNet epoch is 10,000 steps: a requeued job loses at most this many); "
          "0 = at epoch ends only", minimum=0, affects_result=False),
    Param("checkpoint_every_s", float, 0.0, "seconds of training between epoch-end checkpoints (one is always "
          "written after the last epoch and at a stop); 0 = after every epoch", minimum=0, affects_result=False),
)

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


NETWORKS = ("alexnet", "four-layer")  # the two roles a claim's runs can take (claims.toml: network)
# The seeds' d2l recipe (seed notes 003: d2l's Fashion-MNIST AlexNet and train_ch6), one run on the presets
# that can afford it: the first check of a GPU path against a number its users know.
D2L_NETWORK = "d2l"


@dataclass(frozen=True)
class Preset:
    """A named scale: what it stands in for, how it departs from the paper, its seeds, and the
    config of each network role. Its values are validated like any user override."""
    proxy: str
    deviations: tuple[str, ...]
    seeds: int
    networks: dict[str, dict[str, Any]]
    first_seed: int = 0  # a study's seeds are first_seed, first_seed + 1, ...


# The Fashion-MNIST presets use zero biases: with the paper's bias-1 init, LRN on and this data,
# the loss stays at ln(10) (measured on an H100: results/explore/h100-2026-11-22/, both the
# paper net and the small net, 4 epochs, test error 0.90 vs 0.106 and 0.116 with zero biases).
# Claim C12 tests exactly this switch; the default stays the paper's.
_ZERO_BIAS = "all biases 0 (the paper's bias 1 stalls at ln 10 on this data: C12)"
PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        proxy="a few seconds per run: proves notebook -> record -> book works; its numbers mean nothing",
        deviations=("512 training and 256 test images, one epoch",),
        seeds=2,
        networks={
            "alexnet": {"model": "alexnet-small", "width": 0.125, "weight_init": "he", "input_scale": "unit",
                        "bias_init": "zero", "epochs": 1, "train_limit": 512, "test_limit": 256, "log_every": 2},
            "four-layer": {"model": "cifar-18pct", "width": 0.25, "epochs": 1, "train_limit": 512,
                           "test_limit": 256, "log_every": 2},
        }),
    "cpu": Preset(
        proxy="Fashion-MNIST on a 2-core CPU in about 6 hours: a narrow small-image AlexNet, trained 80 epochs on "
              "8,000 images on a fixed lr schedule to near convergence, for ImageNet's AlexNet; the cuda-convnet 18% "
              "net at half width for the paper's CIFAR-10 four-layer net. Chosen on the v3 pilot's seeds "
              "(reproduce/verdicts/pilot_v3.py) and registered in reproduce/spec/registration.toml (study v3)",
        deviations=(
            "AlexNet: 31x31 inputs (at 31 px, as at the paper's 227, overlapping and non-overlapping pooling leave "
            "conv5 maps of the same size: 3x3 here, 6x6 there), every layer 1/8 as wide (alexnet-small, width 0.125)",
            "AlexNet: He init (N(0, 2/fan_in)) in all but the last layer, and inputs divided by their std: "
            "with N(0, 0.01) the narrow net's output is ~1e-5 and it sits at chance (measured); He init on raw "
            "0-255 pixels blows up in the first steps without LRN and the net dies (measured at lr 0.002-0.01)",
            "AlexNet: LRN's alpha is 0.056, 560 times the paper's 1e-4: at this activation scale the paper's alpha "
            "left LRN a constant rescale (the spread of log of its divisor 5.7e-5 against 3.2e-2 in the paper's net "
            "at 227 px after 40 steps on the same data); 0.056 matches the paper net's spread at lrn1 "
            "(results/pilot/mechanisms.json), and lrn2 then divides 7 times more unevenly than the paper net's",
            _ZERO_BIAS,
            "AlexNet: the first 8,000 training images, 80 epochs, the lr 0.01 dropped tenfold after epochs 60 and "
            "72 in every run (a fixed schedule instead of the paper's drop at a plateau, which made the lr the "
            "largest source of noise in study v2); all 10,000 test images, tested after the last epoch",
            "four-layer net: half width; one epoch (430 iterations over the 55,000 training images left after the "
            "validation split), each activation at the lr the pilot found fastest",
        ),
        seeds=21,  # the most any claim registers (reproduce/spec/registration.toml)
        first_seed=300,  # new to the project: v1 took 0-2, v2 100-113, the pilots 900-902 and 910-912
        networks={
            "alexnet": {"model": "alexnet-small", "width": 0.125, "weight_init": "he", "input_scale": "unit",
                        "bias_init": "zero", "epochs": 80, "lr_drop_epochs": "60,72", "input_side": 31,
                        "lrn_alpha": 0.056, "train_limit": 8000, "log_every": 10, "test_every_epoch": False},
            "four-layer": {"model": "cifar-18pct", "width": 0.5, "epochs": 1, "log_every": 5,
                           "test_every_epoch": False},
        }),
    "gpu": Preset(
        proxy="the paper's network at 227x227 on Fashion-MNIST upscaled (as the seeds' d2l code does), "
              "and the cuda-convnet 18% net for the CIFAR-10 four-layer net",
        deviations=(_ZERO_BIAS, "1-channel 28x28 images upscaled to 256",
                    "AlexNet: the first 10,000 training images, 10 epochs instead of 90, tested after the last: "
                    "sized so that one loan of the lent GPU (400 s of training) trains the d2l run and six AlexNet "
                    "runs at the rate an H100 measured (docs/gpu.md); chosen without a GPU pilot, so whether it "
                    "converges is for its records to show"),
        seeds=5,
        networks={
            "alexnet": {"model": "alexnet", "groups": 2, "bias_init": "zero", "epochs": 10, "train_limit": 10_000,
                        "test_every_epoch": False, "log_every": 10,
                        # a loan's checkpoints die with the machine: one a minute, not one an epoch (455 MB each)
                        "checkpoint_every_s": 60.0},
            "four-layer": {"model": "cifar-18pct", "epochs": 3, "log_every": 5},
            # d2l's train_ch6: Xavier-uniform weights, plain SGD (no momentum, no weight decay, no schedule),
            # lr 0.01, batch 128, 10 epochs, the whole image resized to 224, no augmentation.
            D2L_NETWORK: {"model": "d2l-alexnet", "lrn": False, "weight_init": "xavier", "bias_init": "torch",
                          "input_scale": "zero-one", "momentum": 0.0, "weight_decay": 0.0, "lr_drops": 0,
                          "augment": False, "epochs": 10},
        }),
    "paper": Preset(
        proxy="the paper's recipe, unchanged, on an ImageNet-style folder given by --data-dir "
              "(and CIFAR-10 for the four-layer net)",
        deviations=("one seed: a run takes days",),
        seeds=1,
        networks={
            "alexnet": {"model": "alexnet", "groups": 2, "dataset": "imagenet-folder", "epochs": 90},
            "four-layer": {"model": "cifar-18pct", "dataset": "cifar10", "epochs": 30, "log_every": 5},
        }),
}

# What a notebook or `nox -s reproduce` takes besides the run parameters above.
SWEEP_PARAMS: tuple[Param, ...] = (
    Param("preset", str, "auto", "scale of the runs", choices=("auto", *PRESETS), affects_result=False),
    Param("seeds", int, 0, "seeds per arm; 0 = the preset's", minimum=0, affects_result=False),
)
SWEEP_BY_NAME: dict[str, Param] = {p.name: p for p in SWEEP_PARAMS}

# What a notebook (and `python -m reproduce notebooks`) takes besides the sweep's and the runs'.
NOTEBOOK_PARAMS: tuple[Param, ...] = (
    Param("train", bool, True, "train the runs the notebook lacks; off = only read the records", affects_result=False),
)
NOTEBOOK_BY_NAME: dict[str, Param] = {p.name: p for p in NOTEBOOK_PARAMS}

# What `python -m reproduce grid` (and `nox -s reproduce`) takes besides the sweep's and the runs'.
GRID_PARAMS: tuple[Param, ...] = (
    Param("only", str, "", "ablations to train, comma-separated; empty = all"),
    Param("workers", int, "auto", "runs trained at once; 1 = in this process", minimum=1, words=("auto",)),
    Param("per_gpu", int, "auto", "runs at once per visible GPU", minimum=1, words=("auto",)),
    Param("executor", str, "local", "how runs are launched", choices=("local", "submitit")),
    Param("time_budget", float, 0.0, "seconds the grid may take; 0 = no limit", minimum=0),
    Param("dry_run", bool, False, "print the plan and stop"),
    Param("slurm_partition", str, "", "Slurm partition; empty = the cluster's default"),
    Param("gpus_per_run", int, 1, "ranks per run with --executor submitit: a job of that many tasks on one node, "
          "one GPU each (gloo ranks on a CPU), training one run with DistributedDataParallel; with the local pool "
          "only 1 (use torchrun for one run on several GPUs)", minimum=1),
    Param("slurm_gpus_per_task", int, "auto", "GPUs per task, i.e. per rank of a run: auto = 1 when the runs use "
          "CUDA (--device cuda, or auto where the partition's nodes have GPUs), else 0", minimum=0, words=("auto",)),
    Param("slurm_cpus_per_task", int, "auto", "CPUs per task: auto = the run's cpu_threads on the CPU, 4 beside "
          "a GPU", minimum=1, words=("auto",)),
    # At least 3: Slurm sends submitit's signal 90 s before the limit, checking every 30 s, so up to
    # 120 s before it: a job of 2 minutes is signalled as it starts (measured), requeued, signalled
    # again, and never trains.
    Param("slurm_time", int, 240, "minutes per Slurm job; a job that runs out is requeued and resumes from "
          "its last epoch checkpoint", minimum=3),
    Param("slurm_mem", int, "auto", "GB of memory per job: auto = for runs reading an image cache, the cache's "
          "size plus 16 (so the node's page cache can hold the images every epoch reads, within the job's cgroup), "
          "else Slurm's default; 0 = Slurm's default", minimum=0, words=("auto",)),
    Param("slurm_array_parallelism", int, 16, "Slurm jobs of the array running at once (with the local "
          "executor: jobs at once on this machine)", minimum=1),
    Param("slurm_extra", str, "", "more sbatch options, as key=value,key=value (e.g. account=abc,qos=high)"),
)
GRID_BY_NAME: dict[str, Param] = {p.name: p for p in GRID_PARAMS}


def one_shard(value: str) -> bool:
    """Empty, or I/N with 0 <= I < N."""
    found = re.fullmatch(r"(\d+)/(\d+)", value)
    return value == "" or (found is not None and int(found[1]) < int(found[2]))


# What `python -m reproduce cache` takes besides the data folder, its limits and the grid's Slurm options.
CACHE_PARAMS: tuple[Param, ...] = (
    Param("shard", str, "", "build only shard I of N of each split (a Slurm array task's part); empty = every "
          "shard", valid=one_shard, valid_help="empty, or I/N with 0 <= I < N, such as 3/16"),
    Param("shards", int, 0, "shards per split when every shard is built (in this process, or with --executor "
          "submitit as a Slurm array of that many tasks); 0 = the cache's plan's count, 1 for a new cache", minimum=0),
    Param("verify", bool, False, "list and stat every image and compare with the cache's manifests (the full "
          "check), instead of reading the manifests only"),
)
CACHE_BY_NAME: dict[str, Param] = {p.name: p for p in CACHE_PARAMS}


def defaults() -> dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def resolve(overrides: dict[str, Any] | None = None, preset: str | None = None,
            network: str = "alexnet") -> dict[str, Any]:
    """Defaults, then the preset's config for `network`, then the overrides; all validated."""
    config = defaults()
    if preset is not None:
        networks = get_preset(preset).networks
        if network not in networks:
            raise ParamError(f"network: {network!r} is not part of preset {preset}; expected one of "
                             f"{', '.join(networks)}")
        config.update(validate(networks[network]))
    config.update(validate(overrides or {}))
    return config


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ParamError(f"preset: {name!r} is not allowed; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def pick_preset(name: str, cuda_available: bool) -> str:
    """`auto` means gpu with CUDA, else cpu."""
    SWEEP_BY_NAME["preset"].parse(name)
    if name == "auto":
        return "gpu" if cuda_available else "cpu"
    return name


def validate(values: dict[str, Any], declared: dict[str, Param] | None = None,
             what: str = "parameter") -> dict[str, Any]:
    """Parse and check each value against `declared` (the run parameters by default); an
    undeclared name is an error, never ignored."""
    declared = BY_NAME if declared is None else declared
    parsed = {}
    for name, value in values.items():
        if name not in declared:
            raise ParamError(f"unknown {what} {name!r}; known {what}s: {', '.join(declared)}")
        parsed[name] = declared[name].parse(value)
    return parsed


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that decides the result. A parameter added later is at its default in a
    config written before it existed (an old record's)."""
    return {name: config[name] if name in config or not param.added_later else param.default
            for name, param in BY_NAME.items() if param.affects_result}


def hashed_config(config: dict[str, Any]) -> dict[str, Any]:
    """What the config hash covers: the result-deciding values, less the parameters added later that
    sit at their default (so that adding one leaves every earlier run's id as it was), with a `lighting` that
    says what `auto` does on its data written as `auto` (so one computation has one id: C9's lighting-on arm on
    colour data is the baseline's run)."""
    hashed = {name: value for name, value in result_config(config).items()
              if not (BY_NAME[name].added_later and value == BY_NAME[name].default)}
    if hashed.get("lighting") == ("on" if DATASETS.get(hashed.get("dataset")) == 3 else "off"):
        hashed["lighting"] = "auto"
    return hashed
