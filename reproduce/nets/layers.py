"""Building blocks shared by every network: normalisation, activation, pooling, init.

Also the arithmetic of output sides, so that builders and `models.layer_table` know
feature-map sizes without running a dummy forward pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reproduce.spec.params import BY_NAME

# Pool window (kernel, stride) of each pooling arm of C4: z=3, s=2 versus z=2, s=2.
POOL_WINDOWS = {"overlapping": (3, 2), "non-overlapping": (2, 2)}

# The paper's LRN constants (section 3.3). alpha is given in nn.LocalResponseNorm's
# convention, b = a / (k + alpha/n * sum a^2)^beta, which divides by n. The authors'
# cuda-convnet also divides its `scale` by the window size, so alpha=1e-4 here is
# exactly their code; the paper's formula read literally (no /n) would need alpha=5e-4.
PAPER_LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}

PAPER_WEIGHT_STD = 0.01  # section 5: weights drawn from N(0, 0.01)


def _choice_error(key: str, value) -> ValueError:
    return ValueError(f"{key} must be one of {list(BY_NAME[key].choices)}, got {value!r}")


def cross_channel_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float,
                      groups: int = 1) -> torch.Tensor:
    """nn.LocalResponseNorm's formula within each of `groups` groups of maps,
    b = a / (k + alpha/size * sum of a^2 over `size` adjacent maps of its group)^beta."""
    return _CrossChannelLRN.apply(x, size, alpha / size, beta, k, groups)


def spatial_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """cuda-convnet's rnorm, b = a / (k + alpha/size^2 * sum of a^2 over a size x size window)^beta."""
    return _SpatialLRN.apply(x, alpha, beta, k, size)


def _negative_power(divisor: torch.Tensor, beta: float) -> torch.Tensor:
    """divisor^-beta. For the paper's beta = 0.75 as rsqrt(d) * sqrt(rsqrt(d)): two cheap vector ops
    instead of pow's exp and log (pow was 10% of the small net's CPU step)."""
    if beta == 0.75:
        inverse_root = divisor.rsqrt()
        return inverse_root.sqrt().mul_(inverse_root)
    return divisor.pow(-beta)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] as the (N*H*W) x C matrix of its pixels: a view of a channels_last tensor."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _from_rows(rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    n, c, h, w = shape
    return rows.view(n, h, w, c).permute(0, 3, 1, 2)  # a channels_last [N, C, H, W]


def _band(channels: int, size: int, groups: int, scale: float, like: torch.Tensor) -> torch.Tensor:
    """C x C: entry (j, i) is `scale` when map j is in map i's window of `size` maps (lopsided for an
    even size, as nn.LocalResponseNorm pads) and in its group, else 0. Built from tensor ops, so that
    torch.compile traces it."""
    before, after = size // 2, (size - 1) // 2
    index = torch.arange(channels, device=like.device)
    source, target = index[:, None], index[None, :]
    per_group = channels // groups
    near = (source >= target - before) & (source <= target + after)
    return (near & (source // per_group == target // per_group)).to(like.dtype) * scale


class _CrossChannelLRN(torch.autograd.Function):
    """b = a * d^-beta with d = k + scale * W(a^2), W the sum over the window; the backward reuses d.

    The window sum is a matrix product: the activations as an (N*H*W) x C matrix (a view of a
    channels_last tensor) times a band matrix (_band, block-diagonal over the groups): one GEMM pass
    where `size` shifted additions each ran an inner loop over a dozen channels (measured on a 2-core
    AVX-512 CPU: forward and backward 5x faster). Differentiated by hand,
        dL/da = g * d^-beta - 2 beta * a * W^T(g * b / d) (scale inside W),
    where g = dL/db: no power in the backward (autograd through the formula computes two more).
    Computed in fp32 at least, whatever the autocast: near k = 2, bf16 has steps of 1/64, coarser than
    the sum term of moderate activations; in fp32 the divisor keeps it and only the output is rounded, once.
    """

    @staticmethod
    def forward(ctx, x, size, scale, beta, k, groups):
        given, shape = x.dtype, x.shape
        if shape[1] % groups:
            raise ValueError(f"GroupedLRN: {shape[1]} channels do not split into {groups} groups")
        rows = _rows(x.to(torch.promote_types(given, torch.float32)))
        band = _band(shape[1], size, groups, scale, rows)
        with torch.autocast(x.device.type, enabled=False):  # autocast would run the product in bf16
            divisor = torch.addmm(rows.new_full((1, shape[1]), k), rows.square(), band)
        factor = _negative_power(divisor, beta)
        out = rows * factor
        ctx.save_for_backward(rows, divisor, factor, out, band)
        ctx.beta, ctx.given, ctx.shape = beta, given, shape
        return _from_rows(out, shape).to(given)

    @staticmethod
    def backward(ctx, grad_out):
        rows, divisor, factor, out, band = ctx.saved_tensors
        g = _rows(grad_out.to(rows.dtype))
        with torch.autocast(g.device.type, enabled=False):
            through_window = (g * out).div_(divisor) @ band.t()
        grad = torch.addcmul(g * factor, rows, through_window, value=-2 * ctx.beta)
        return _from_rows(grad, ctx.shape).to(ctx.given), None, None, None, None, None


class _SpatialLRN(torch.autograd.Function):
    """b = a * d^-beta with d = k + scale * M(a^2), M the mean over a centred size x size window,
    clipped at the border while the divisor stays size^2 (zero padding, count_include_pad); M is
    symmetric, so its own transpose in the backward, which reuses d as _CrossChannelLRN's does."""

    @staticmethod
    def forward(ctx, x, scale, beta, k, size):
        given = x.dtype
        x = x.to(torch.promote_types(given, torch.float32))
        divisor = _mean_square(x.square(), size).mul_(scale).add_(k)
        factor = _negative_power(divisor, beta)
        ctx.save_for_backward(x, divisor, factor)
        ctx.scale, ctx.beta, ctx.size, ctx.given = scale, beta, size, given
        return (x * factor).to(given)

    @staticmethod
    def backward(ctx, grad_out):
        x, divisor, factor = ctx.saved_tensors
        g = grad_out.to(x.dtype)
        through_window = _mean_square((g * x * factor).div_(divisor), ctx.size)
        grad = torch.addcmul(g * factor, x, through_window, value=-2 * ctx.beta * ctx.scale)
        return grad.to(ctx.given), None, None, None, None


def _mean_square(t: torch.Tensor, size: int) -> torch.Tensor:
    return F.avg_pool2d(t, size, stride=1, padding=size // 2, count_include_pad=True)


class GroupedLRN(nn.Module):
    """Cross-channel LRN applied to each group of channels on its own.

    With groups=2 the sum over adjacent maps never crosses the tower boundary, as on the
    paper's two GPUs, where each GPU normalised only the maps it held.
    """

    def __init__(self, groups: int = 1, size: int = 5, alpha: float = 1e-4,
                 beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.groups, self.size, self.alpha, self.beta, self.k = groups, size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cross_channel_lrn(x, self.size, self.alpha, self.beta, self.k, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class SpatialLRN(nn.Module):
    """cuda-convnet's "rnorm": each map is divided by the energy of its own neighbourhood.

    b = a / (k + alpha/size^2 * sum over a size x size window of a^2)^beta, the window
    centred and clipped at the border while the divisor stays size^2, as in cuda-convnet
    (its parser divides `scale` by size^2; its minDiv, our k, is 1).
    """

    def __init__(self, size: int = 3, alpha: float = 5e-5, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        if size % 2 == 0:
            raise ValueError(f"SpatialLRN size must be odd to centre the window, got {size}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial_lrn(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LocallyConnected2d(nn.Module):
    """A convolution whose filters are not shared: every output position has its own.

    Biases are per output unit (channel and position), as in cuda-convnet's "local" layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 in_side: int, padding: int = 0, stride: int = 1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding, self.stride = kernel_size, padding, stride
        self.out_side = conv_output_side(in_side, kernel_size, stride, padding)
        positions = self.out_side ** 2
        fan_in = in_channels * kernel_size ** 2
        self.weight = nn.Parameter(torch.empty(positions, out_channels, fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels, self.out_side, self.out_side))
        nn.init.normal_(self.weight, std=PAPER_WEIGHT_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, side = x.shape[0], self.kernel_size, self.out_side
        padded = F.pad(x, [self.padding] * 4)
        # A strided view (N, C, H, W, k, k) of every receptive field; cheaper than F.unfold.
        patches = padded.unfold(2, k, self.stride).unfold(3, k, self.stride)
        patches = patches.permute(2, 3, 0, 1, 4, 5).reshape(side * side, n, -1)
        # One matrix product per position: (P, N, C*k*k) @ (P, C*k*k, out) -> (P, N, out).
        out = torch.bmm(patches, self.weight.transpose(1, 2))
        return out.permute(1, 2, 0).reshape(n, self.out_channels, side, side) + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, out_side={self.out_side}")


def make_activation(name: str) -> nn.Module:
    """The non-linearity after every conv and hidden FC layer (C1 compares the two)."""
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    raise _choice_error("activation", name)


def make_pool(pooling: str, op: str = "max", ceil_mode: bool = False) -> nn.Module:
    """Pooling of the C4 arm `pooling`; ceil_mode imitates cuda-convnet's output size."""
    if pooling not in POOL_WINDOWS:
        raise _choice_error("pooling", pooling)
    kernel, stride = POOL_WINDOWS[pooling]
    if op == "max":
        return nn.MaxPool2d(kernel, stride, ceil_mode=ceil_mode)
    if op == "avg":
        return nn.AvgPool2d(kernel, stride, ceil_mode=ceil_mode)
    raise ValueError(f"op must be one of ['max', 'avg'], got {op!r}")


def conv_output_side(side: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side of a convolution's output map (floor, as every framework does)."""
    return (side + 2 * padding - kernel) // stride + 1


def pool_output_side(side: int, kernel: int, stride: int, padding: int = 0,
                     ceil_mode: bool = False) -> int:
    """Side of a pooling output, PyTorch's rule (ceil mode drops a window starting in padding)."""
    span = side + 2 * padding - kernel
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= side + padding:
        out -= 1
    return out


def arm_pool_side(side: int, pooling: str, ceil_mode: bool = False) -> int:
    """Side after one pooling layer of the arm `pooling`."""
    kernel, stride = POOL_WINDOWS[pooling]
    return pool_output_side(side, kernel, stride, ceil_mode=ceil_mode)


def fc_input_pool(final_side: int, reference_side: int) -> nn.Module | None:
    """The C4 rule: the FC input keeps the overlapping net's size in both arms.

    Non-overlapping 2/2 pooling never gives a smaller map than 3/2, only an equal or larger
    one; a larger map is max-pooled down so both arms share identical FC layers.
    """
    if final_side == reference_side:
        return None
    if final_side < reference_side:
        raise ValueError(f"final map {final_side}px is smaller than the "
                         f"reference {reference_side}px")
    return nn.AdaptiveMaxPool2d(reference_side)


def scaled_width(channels: int, width: float, groups: int = 1) -> int:
    """`channels` times the width multiplier, rounded, kept a positive multiple of groups."""
    return max(groups, round(channels * width / groups) * groups)


def init_paper(model: nn.Module, bias_one: tuple[str, ...], bias_init: str = "paper",
               weight_init: str = "paper") -> None:
    """Section 5's init: weights N(0, 0.01); biases 1 in the named layers, 0 elsewhere.

    bias_init="zero" sets every bias to 0 (the C12 ablation; Caffe's AlexNet used 0.1 because
    bias 1 can stall training); "torch" leaves the layers' own default biases, as d2l does.
    weight_init="he" draws N(0, 2 / fan_in) in every layer but the classifier: a fixed std of 0.01
    shrinks the signal in every layer of a narrow net, and the narrow CPU proxies then sit at chance
    for hundreds of iterations (measured: width 0.125, 234 iterations, 0.90). He init assumes
    unit-scale inputs: use it with input_scale="unit". "xavier" is d2l's train_ch6: Xavier-uniform
    weights in every conv and linear layer.
    """
    for key, value in (("bias_init", bias_init), ("weight_init", weight_init)):
        if value not in BY_NAME[key].choices:
            raise _choice_error(key, value)
    weighted = [(name, module) for name, module in model.named_modules()
                if isinstance(module, (nn.Conv2d, nn.Linear, LocallyConnected2d))]
    for index, (name, module) in enumerate(weighted):
        # The classifier keeps N(0, 0.01) under "he": the logits start small and the loss at ln(classes).
        if weight_init == "xavier":
            nn.init.xavier_uniform_(module.weight)
        elif weight_init == "he" and index < len(weighted) - 1:
            nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / _fan_in(module)))
        else:
            nn.init.normal_(module.weight, mean=0.0, std=PAPER_WEIGHT_STD)
        if module.bias is not None and bias_init != "torch":
            one = bias_init == "paper" and name in bias_one
            nn.init.constant_(module.bias, 1.0 if one else 0.0)


def _fan_in(module: nn.Module) -> int:
    """Inputs feeding one output unit (a locally-connected weight is [positions, out, fan_in])."""
    if isinstance(module, LocallyConnected2d):
        return module.weight.shape[-1]
    return module.weight[0].numel()
