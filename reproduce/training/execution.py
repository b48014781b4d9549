"""How a run executes on its device: precision, compilation, memory layout, host-device traffic.

None of this changes what a run computes, only how fast: the one exception is bf16, which
rounds differently, so a test checks that one fast step lands where the plain fp32 step does.

The choices per device, and why (measured, see ../shared/design/performance-notes.md and
the bench records under results/bench/):
- precision: bf16 autocast on CUDA (tensor cores); fp32 on the CPU, where bf16 only pays on
  CPUs with native bf16 (AMX) and is 5-8x slower on AVX2 ones.
- compile: torch.compile on CUDA (fuses LRN, activations and pooling into few kernels); off on
  the CPU, where it took ~100 s to compile the paper's net and then ran it at half the speed.
  Every net here is an nn.Sequential, so all the runs of a process (a grid worker trains many
  architectures) share one code object, Sequential.forward, and dynamo's guards tell the
  architectures apart: a new model of an architecture already compiled in this process reuses its
  graphs (measured: no new graph for another seed), so a grid worker compiles each network once.
  A run holds at most 6 graphs (training: full and last batch; evaluation: full and last batch of
  the validation, test and training-error passes, in eval mode); the limit on graphs per code
  object (8 by default, beyond which dynamo silently runs eager) is raised to hold every
  architecture of a grid, and hitting it anyway raises instead of slowing every later run down.
- channels_last everywhere: the layout oneDNN and cuDNN's tensor-core kernels want.
"""

from __future__ import annotations

import platform
import resource
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch._dynamo

COMPILE_BACKEND = "inductor"
# Graphs dynamo may keep for Sequential.forward in one process: 6 per architecture, and a grid has
# about twenty architectures.
RECOMPILE_LIMIT = 160


@dataclass(frozen=True)
class Execution:
    device: torch.device
    precision: str  # "fp32" or "bf16"
    compile: bool
    memory_format: torch.memory_format = torch.channels_last
    backend: str | None = None  # torch.compile's backend; None: COMPILE_BACKEND (tests use "eager")

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def compiled(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to call: compiled for fixed shapes (a last, smaller batch adds one graph), reusing
        the graphs this process compiled for the same architecture (see the module's docstring)."""
        if not self.compile:
            return model
        torch._dynamo.config.recompile_limit = RECOMPILE_LIMIT
        torch._dynamo.config.accumulated_recompile_limit = max(RECOMPILE_LIMIT,
                                                               torch._dynamo.config.accumulated_recompile_limit)
        torch._dynamo.config.fail_on_recompile_limit_hit = True
        return torch.compile(model, dynamic=False, backend=self.backend or COMPILE_BACKEND)

    def layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=self.memory_format)

    def describe(self) -> dict[str, Any]:
        """What goes into the run record, so a number can be judged by how it was produced."""
        return {"precision": self.precision, "compile": self.compile,
                "memory_format": "channels_last" if self.memory_format == torch.channels_last else "contiguous"}


def compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process so far."""
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def plan_execution(config: dict[str, Any], device: torch.device) -> Execution:
    """Resolve the config's precision and compile choices ("auto" or explicit) for `device`."""
    on_cuda = device.type == "cuda"
    precision = config["precision"]
    if precision == "auto":
        precision = "bf16" if on_cuda and torch.cuda.is_bf16_supported() else "fp32"
    compile_model = config["compile"] == "on" or (config["compile"] == "auto" and on_cuda)
    return Execution(device, precision, compile_model)


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but torch sees no CUDA device")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def prepare_device(device: torch.device, cpu_threads: int) -> None:
    """The run's own CPU threads (params: cpu_threads; they decide the last bits of CPU arithmetic);
    with CUDA, fixed input shapes: let cuDNN time its algorithms once and keep the fastest."""
    torch.set_num_threads(cpu_threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({_cpu()}, {torch.get_num_threads()} threads)"


def device_kind(device: torch.device) -> str:
    """The device without its thread count: what timings of earlier runs can be compared on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({_cpu()})"


def _cpu() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.backends.cpu.get_cpu_capability()}"


def synchronize(device: torch.device) -> None:
    """Wait for queued device work: timings must cover the work, not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int:
    """Peak device memory since the last reset (CUDA), or the process's peak resident memory (CPU)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class HostCopy:
    """Device values on their way to the host, without stalling the device queue.

    `.item()` on a CUDA tensor waits for every kernel queued before it, so reading metrics
    each log point would drain the queue. Here the copy is queued instead (into pinned
    memory, so it is asynchronous) with an event behind it; `read()` waits for that event
    alone. Read one log point later, the copy is long done and nothing waits.
    """

    def __init__(self, values: torch.Tensor):
        on_cuda = values.device.type == "cuda"
        self._host = torch.empty(values.shape, dtype=values.dtype, pin_memory=on_cuda)
        self._host.copy_(values, non_blocking=on_cuda)
        self._done = None
        if on_cuda:
            self._done = torch.cuda.Event()
            self._done.record()

    def read(self) -> list:
        if self._done is not None:
            self._done.synchronize()
        return self._host.tolist()
