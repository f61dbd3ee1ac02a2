"""The contract between the public ops (``sap_kernels.ops``) and the backends that implement them.

Everything a backend needs to know and nothing else: the convolution geometry, the dtype rules,
the dot precisions, the description of one call (``Request``) that a backend judges with its
``not_supported_reasons``, and one typed ``Protocol`` per op that every backend's implementation
satisfies (checked by mypy through ``Backend``).

Dependencies run one way: ``sap_kernels.ops`` imports this package; nothing under
``sap_kernels.kernels`` imports ``sap_kernels.ops``.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Literal, Optional, Protocol, Sequence, Union

import torch

Precision = Literal["ieee", "tf32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("ieee", "tf32", "bf16")
OpName = Literal["gram", "conv_gram", "scaled_projection"]
OPS: tuple[OpName, ...] = ("gram", "conv_gram", "scaled_projection")
# The dtypes the Triton and CUDA kernels load; the torch backend takes any real float dtype.
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int], str]


# --------------------------------------------------------------------------------------- dtypes
def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` for ``torch.float32``: the short name used in messages."""
    return str(dtype).removeprefix("torch.")


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """Default Gram accumulator for activations of ``dtype``: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def projection_dtype(weight_dtype: torch.dtype, eigvecs_dtype: torch.dtype) -> torch.dtype:
    """Dtype a projection is computed in: at least float32, float64 when either input is float64."""
    return torch.promote_types(torch.promote_types(weight_dtype, eigvecs_dtype), torch.float32)


# ------------------------------------------------------------------------------------- geometry
def _int(value: object, name: str) -> int:
    """``value`` as an int (ints, NumPy integers, integral 0-d tensors); a TypeError naming
    ``name`` for anything else (``3.0`` included: a float is not a size)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}") from None


def _tuple(value: object, nd: int, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")
    if isinstance(value, Sequence):
        out = tuple(_int(v, name) for v in value)
        if len(out) == 1:
            out = out * nd
    else:
        out = (_int(value, name),) * nd
    if len(out) != nd:
        raise ValueError(f"{name} must be an int or a tuple of {nd} ints for a {nd}d convolution, got {value!r}")
    return out


@dataclass(frozen=True)
class ConvGeometry:
    """A validated convolution: everything a kernel needs to address its implicit im2col matrix.

    ``pad_lo``/``pad_hi`` are the zero padding before and after each spatial dim (they differ for
    ``padding='same'`` with an even effective kernel, as in ``nn.ConvNd``). Column ``k`` of a
    group's patch matrix is ``(c, o_1, ..., o_nd)`` in row-major order, the order of
    ``weight[g].flatten(1)``; row ``m`` is ``(sample, output position)`` in row-major order.
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
        """Number of spatial dims (1, 2 or 3)."""
        return len(self.kernel_size)

    @property
    def channels_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def k_per_group(self) -> int:
        """``K_g = C / groups * prod(kernel_size)``: the width of one group's patch rows."""
        return self.channels_per_group * math.prod(self.kernel_size)

    @property
    def rows_per_sample(self) -> int:
        """Patch rows per sample: the number of output positions, ``prod(out_spatial)``."""
        return math.prod(self.out_spatial)


def _padding(padding: Padding, ks: tuple[int, ...], st: tuple[int, ...], dl: tuple[int, ...]
             ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(pad_lo, pad_hi)`` of an ``nn.ConvNd`` padding argument."""
    nd = len(ks)
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in st):
                raise ValueError("padding='same' is only defined for stride 1 (as in nn.ConvNd)")
            total = [d * (k - 1) for d, k in zip(dl, ks)]
            return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
        raise ValueError(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    lo = _tuple(padding, nd, "padding")
    if min(lo) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    if max(lo) >= MAX_ELEMENTS:
        raise ValueError(f"padding must be < 2**62, got {padding!r}")
    return lo, lo


MAX_ELEMENTS = 2**62  # no tensor (Gram, patches) or size argument reaches this


def conv_geometry(
    input_shape: Sequence[int],
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> ConvGeometry:
    """Validate ConvNd arguments against a batched input shape ``[N, C, *spatial]`` (1 to 3
    spatial dims) and return the geometry; a pure function of shapes, no tensor is touched.

    ``conv_geometry(...).rows_per_sample`` is the number of patch rows one sample contributes
    (its output positions) and ``.k_per_group`` the width ``K_g`` of those rows.

    Raises:
        TypeError: a size argument that is not an int (``kernel_size=3.0``), naming it.
        ValueError: a wrong number of values, sizes < 1, negative padding, ``groups`` not
            dividing the channels, or a kernel larger than the padded input.
    """
    shape = tuple(_int(s, "input_shape") for s in input_shape)
    nd = len(shape) - 2
    if nd not in (1, 2, 3):
        raise ValueError(f"conv input must be [N, C, *spatial] with 1 to 3 spatial dims, got shape {list(shape)}")
    ks = _tuple(kernel_size, nd, "kernel_size")
    st = _tuple(stride, nd, "stride")
    dl = _tuple(dilation, nd, "dilation")
    for name, values in (("kernel_size", ks), ("stride", st), ("dilation", dl)):
        if min(values) < 1:
            raise ValueError(f"{name} must be >= 1, got {values}")
        if max(values) >= MAX_ELEMENTS:
            raise ValueError(f"{name} must be < 2**62, got {values}")
    groups = _int(groups, "groups")
    channels = shape[1]
    if groups < 1 or channels % groups:
        raise ValueError(f"groups={groups} must be >= 1 and divide the {channels} input channels")
    lo, hi = _padding(padding, ks, st, dl)
    spatial = shape[2:]
    out = []
    for s, k, p0, p1, d, t in zip(spatial, ks, lo, hi, dl, st):
        span = s + p0 + p1 - d * (k - 1) - 1
        if span < 0:
            raise ValueError(f"kernel (size {ks}, dilation {dl}) is larger than the padded input {list(spatial)}")
        out.append(span // t + 1)
    geom = ConvGeometry(ks, st, lo, hi, dl, groups, channels, spatial, tuple(out))
    k = geom.k_per_group
    if groups * k * k >= MAX_ELEMENTS or shape[0] * geom.rows_per_sample * groups * k >= MAX_ELEMENTS:
        raise ValueError(f"kernel_size {ks} on input {list(shape)} (padding {lo}) gives patch rows {k} wide and "
                         f"{geom.rows_per_sample} per sample: the Gram [{groups}, {k}, {k}] or the patches are beyond "
                         "any tensor (2**62 elements)")
    return geom


# -------------------------------------------------------------------------------------- request
@dataclass(frozen=True)
class Request:
    """One op call as a backend judges it (no tensor data, only what decides support).

    Attributes:
        op: ``"gram"``, ``"conv_gram"`` or ``"scaled_projection"``.
        device: where the tensors live.
        dtype: activations' dtype (Gram ops) or the weight's dtype (projection).
        out_dtype: the accumulator's dtype (Gram ops) or the compute dtype (projection): the
            backend must accumulate in this dtype, not merely store into it.
        precision: the least accurate products the caller accepts (see ``docs/backends.md``).
        shape: ``[M, K]`` rows (gram), ``[N, C, *spatial]`` (conv_gram) or ``[..., out, K]``
            (the weight of a projection).
        geometry: the convolution (conv_gram only).
    """

    op: OpName
    device: torch.device
    dtype: torch.dtype
    out_dtype: torch.dtype
    precision: Precision
    shape: tuple[int, ...]
    geometry: Optional[ConvGeometry] = None

    @property
    def batch(self) -> int:
        """Independent matrices of the call: conv groups, or a projection's leading dims."""
        if self.op == "conv_gram":
            return self.geometry.groups if self.geometry is not None else 1
        if self.op == "scaled_projection":
            return math.prod(self.shape[:-2])
        return 1


# ------------------------------------------------------------------------------------ protocols
class GramFn(Protocol):
    """``out += x^T x``. ``x [M, K]`` (a float dtype the backend accepted, any strides),
    ``out [K, K]`` contiguous float32/float64 on ``x.device``, not overlapping ``x``."""

    def __call__(self, x: torch.Tensor, out: torch.Tensor, *, precision: Precision) -> None: ...


class ConvGramFn(Protocol):
    """``out[g] += P_g^T P_g`` for the implicit im2col rows ``P_g`` of ``x [N, C, *spatial]``;
    ``out [G, K_g, K_g]`` contiguous float32/float64, columns in ``weight[g].flatten(1)`` order."""

    def __call__(self, x: torch.Tensor, geom: ConvGeometry, out: torch.Tensor, *, precision: Precision) -> None: ...


class ScaledProjectionFn(Protocol):
    """``W V diag(lambda(e, alpha)) V^T`` for ``weight [..., out, K]``, ``eigvals [..., K]``,
    ``eigvecs [..., K, K]`` (columns are eigenvectors) and optional ``wv = weight @ eigvecs``;
    returns ``[..., out, K]`` in ``projection_dtype(weight.dtype, eigvecs.dtype)``."""

    def __call__(
        self,
        weight: torch.Tensor,
        eigvals: torch.Tensor,
        eigvecs: torch.Tensor,
        alpha: float,
        wv: Optional[torch.Tensor],
        *,
        precision: Precision,
    ) -> torch.Tensor: ...


class SupportFn(Protocol):
    """Every reason the backend cannot run ``request`` exactly as asked (empty: it can)."""

    def __call__(self, request: Request) -> list[str]: ...


@dataclass(frozen=True)
class Backend:
    """One backend: an implementation of every op and the judge of what it supports.

    ``reference``: the backend others are verified against on first use (the torch backend).
    ``experimental``: never chosen automatically, only when forced by name.
    """

    name: str
    gram: GramFn
    conv_gram: ConvGramFn
    scaled_projection: ScaledProjectionFn
    not_supported_reasons: SupportFn
    reference: bool = False
    experimental: bool = False


def common_kernel_reasons(request: Request) -> list[str]:
    """Reasons shared by the Triton and CUDA kernels: dtypes they cannot load and accumulators
    they cannot honour (both accumulate float32 input in float32)."""
    reasons = []
    if request.dtype not in KERNEL_DTYPES:
        reasons.append(f"dtype {dtype_name(request.dtype)} is not one the kernels load "
                       "(float16, bfloat16, float32, float64)")
    acc = accumulator_dtype(request.dtype)
    if request.op != "scaled_projection" and request.out_dtype != acc:
        reasons.append(f"accumulates {dtype_name(request.dtype)} input in {dtype_name(acc)}, "
                       f"but out is {dtype_name(request.out_dtype)}")
    return reasons
