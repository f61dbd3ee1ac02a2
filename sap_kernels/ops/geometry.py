"""Normalisation of convolution arguments, shared by every backend and by the hooks."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int], str]


def _tuple(value: IntOrTuple, nd: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        out = (value,) * nd
    else:
        out = tuple(int(v) for v in value)
        if len(out) == 1:
            out = out * nd
    if len(out) != nd:
        raise ValueError(f"{name} must be an int or a tuple of {nd} ints for a {nd}d convolution, got {value!r}")
    return out


@dataclass(frozen=True)
class ConvGeometry:
    """Everything a kernel needs to address an implicit im2col matrix.

    ``pad_lo``/``pad_hi`` are the zero padding before and after each spatial dim (they differ for
    ``padding='same'`` with an even effective kernel, as in ``nn.ConvNd``). Column ``k`` of a group's
    patch matrix is ``(c, o_1, ..., o_nd)`` in row-major order, the order of ``weight.flatten(1)``.
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    in_channels: int
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]

    @property
    def nd(self) -> int:
        return len(self.kernel_size)

    @property
    def channels_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def k_per_group(self) -> int:
        """K_g = C/groups * prod(kernel_size): the width of one group's patch rows."""
        return self.channels_per_group * math.prod(self.kernel_size)

    @property
    def rows_per_sample(self) -> int:
        return math.prod(self.out_spatial)


def conv_geometry(
    input_shape: Sequence[int],
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> ConvGeometry:
    """Validate conv arguments against a batched input shape ``[N, C, *spatial]`` (1 <= nd <= 3)."""
    shape = tuple(int(s) for s in input_shape)
    nd = len(shape) - 2
    if nd not in (1, 2, 3):
        raise ValueError(
            f"conv input must be [N, C, *spatial] with 1 to 3 spatial dims, got shape {list(shape)}"
        )
    ks = _tuple(kernel_size, nd, "kernel_size")
    st = _tuple(stride, nd, "stride")
    dl = _tuple(dilation, nd, "dilation")
    if min(ks) < 1 or min(st) < 1 or min(dl) < 1:
        raise ValueError(f"kernel_size, stride and dilation must be >= 1, got {ks}, {st}, {dl}")
    channels = shape[1]
    if groups < 1 or channels % groups:
        raise ValueError(f"groups={groups} must be >= 1 and divide the {channels} input channels")
    spatial = shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            lo = hi = (0,) * nd
        elif padding == "same":
            if any(s != 1 for s in st):
                raise ValueError("padding='same' is only defined for stride 1 (as in nn.ConvNd)")
            total = [d * (k - 1) for d, k in zip(dl, ks)]
            lo = tuple(t // 2 for t in total)
            hi = tuple(t - t // 2 for t in total)
        else:
            raise ValueError(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    else:
        lo = hi = _tuple(padding, nd, "padding")
        if min(lo) < 0:
            raise ValueError(f"padding must be >= 0, got {padding!r}")
    out = []
    for s, k, p0, p1, d, t in zip(spatial, ks, lo, hi, dl, st):
        span = s + p0 + p1 - d * (k - 1) - 1
        if span < 0:
            raise ValueError(
                f"kernel (size {ks}, dilation {dl}) is larger than the padded input {list(spatial)}"
            )
        out.append(span // t + 1)
    return ConvGeometry(ks, st, lo, hi, dl, groups, channels, spatial, tuple(out))
