"""Candidate operations of the CNN cell search space (DARTS; EmotionNAS Sec. 2.2).

Every op maps ``(B, C, H, W) -> (B, C, H', W')`` with ``H' = ceil(H / stride)``.
``OPS`` is the registry a config picks a subset from: name -> ``constructor(C, stride, affine)``.

CPU note (BENCHMARKS.md, "Spectrogram branch"): in torch 2.13 on our CPU the backward
pass of a *stride-2 1x1 convolution* in channels_last memory format corrupts the heap for
inputs >= 56x56. No op here uses one: the factorized reduce subsamples by slicing and
then applies a stride-1 1x1 convolution, which computes exactly the same function.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emotionnas.space.genotype import PARAMETER_FREE, PRIMITIVES  # noqa: E402,F401  (the names, as data)


class ReLUConvBN(nn.Module):
    """ReLU -> Conv(k, stride) -> BN. Stride-1 only for 1x1 kernels (see module note)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        if kernel == 1 and stride != 1:
            raise ValueError("ReLUConvBN: use FactorizedReduce for strided 1x1 convolutions")
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BN (DARTS ``dil_conv``)."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """Two stacked DilConv with dilation 1, the first one strided (DARTS ``sep_conv``)."""

    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )

    def forward(self, x):
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x):
        return x


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (MixedOp skips it; it is exactly 0)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve H and W with two 1x1 convs on the even and odd pixel grids, concatenated.

    ``(B, c_in, H, W) -> (B, c_out, ceil(H/2), ceil(W/2))``. Slicing then a stride-1
    conv replaces DARTS' stride-2 1x1 conv (crash guard, see module note); the odd grid
    is zero-padded at the far edge so odd sizes (35 -> 18) line up with the other ops.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even c_out, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        even = x[:, :, ::2, ::2]
        odd = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, ::2, ::2]
        return self.bn(torch.cat([self.conv_1(even), self.conv_2(odd)], dim=1))


class AvgPool3x3(nn.Module):
    """``nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)`` as shifted adds.

    Same numbers, ~7x faster forward + backward on CPU at 35x35 (the aten kernel is
    the slowest op of the supernet after the convolutions; BENCHMARKS.md).
    """

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        h, w = x.shape[-2:]
        p = F.pad(x, (1, 1, 1, 1))
        rows = p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]
        total = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
        count = _window_count(h, x) [:, None] * _window_count(w, x)[None, :]
        out = total / count
        return out if self.stride == 1 else out[:, :, :: self.stride, :: self.stride]


def _window_count(n: int, like: torch.Tensor) -> torch.Tensor:
    """Valid pixels per 3-window along an axis of length n (2 at the borders)."""
    c = torch.full((n,), 3.0, dtype=like.dtype, device=like.device)
    c[0] -= 1
    c[-1] -= 1
    return c.clamp_min(1.0)


def _pool(kind: str, stride: int) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    return AvgPool3x3(stride)


OPS = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: _pool("max", stride),
    "avg_pool_3x3": lambda C, stride, affine: _pool("avg", stride),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
}
assert set(OPS) == set(PRIMITIVES)


def check_primitives(names) -> tuple[str, ...]:
    """Validate a config's op subset; returns it as a tuple (one-line error otherwise)."""
    names = tuple(names)
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ValueError(f"unknown CNN op(s) {unknown}; known: {sorted(OPS)}")
    if len(set(names)) != len(names) or not [n for n in names if n != "none"]:
        raise ValueError(f"op subset must be distinct and contain a non-'none' op: {names}")
    return names
