"""``torch.library`` registration of the ops, so ``torch.compile`` and ``torch.export`` can trace
code that calls them. Import this module to register them (``import sap_kernels.ops.library``);
``sap_kernels`` itself does not, so plain use pays nothing for it.

This module is the only owner of the ``sap_kernels::*`` op schemas: the CUDA extension
(``csrc/``) registers no operator, it exposes plain functions that the ``"cuda"`` backend calls,
so loading it before or after this module cannot register anything twice.

Two families, all under ``torch.ops.sap_kernels``:

- Dispatching custom ops (opaque to the compiler, with fake implementations for shape
  propagation), usable with every backend and device:
  ``gram_(x, out, precision, backend)`` and ``conv_gram_(x, out, kernel_size, stride, padding,
  padding_mode, dilation, groups, precision, backend)`` add into ``out`` (mutating, like the
  accumulators they feed); ``scaled_projection(weight, eigvals, eigvecs, alpha, wv, precision,
  backend)`` returns a new tensor.
- Triton ops built with ``torch.library.triton_op`` + ``wrap_triton``, whose kernels the
  compiler sees: ``triton_gram_``, ``triton_conv_gram_``, ``triton_scaled_projection``
  (registered only when Triton imports; ``TRITON_OPS`` tells whether they were). Under
  ``TRITON_INTERPRET=1`` they are opaque custom ops instead (interpreted kernels cannot run on
  the fake tensors that tracing uses).

``conv_gram_`` takes ``padding`` as a list of ints and ``padding_mode`` as ``""`` (use
``padding``), ``"same"`` or ``"valid"``, since a schema cannot hold ``int | str``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch

from ..kernels.spec import Padding, accumulator_dtype, projection_dtype
from ._checks import accumulator
from .conv_gram import conv_gram
from .geometry import conv_geometry
from .gram import gram
from .projection import check_projection, scaled_projection

NAMESPACE = "sap_kernels"
Decorator = Callable[[Callable[..., Any]], Any]


def _padding(padding: Sequence[int], padding_mode: str) -> Padding:
    if padding_mode:
        return padding_mode
    return tuple(padding) if len(padding) != 1 else int(padding[0])


@torch.library.custom_op(f"{NAMESPACE}::gram_", mutates_args=("out",))
def gram_(x: torch.Tensor, out: torch.Tensor, precision: str = "ieee", backend: Optional[str] = None) -> None:
    """``out [K, K] += X^T X`` for ``x [..., K]`` (see ``sap_kernels.ops.gram``)."""
    gram(x, out=out, backend=backend, precision=precision)


@gram_.register_fake
def _gram_fake(x: torch.Tensor, out: torch.Tensor, precision: str = "ieee", backend: Optional[str] = None) -> None:
    return None


@torch.library.custom_op(f"{NAMESPACE}::conv_gram_", mutates_args=("out",))
def conv_gram_(
    x: torch.Tensor,
    out: torch.Tensor,
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    padding_mode: str,
    dilation: list[int],
    groups: int,
    precision: str = "ieee",
    backend: Optional[str] = None,
) -> None:
    """``out [G, K_g, K_g] += P_g^T P_g`` for a conv input ``x [N, C, *spatial]``."""
    conv_gram(
        x, kernel_size, stride=stride, padding=_padding(padding, padding_mode), dilation=dilation,
        groups=groups, out=out, backend=backend, precision=precision,
    )


@conv_gram_.register_fake
def _conv_gram_fake(x: torch.Tensor, out: torch.Tensor, kernel_size: list[int], stride: list[int],
                    padding: list[int], padding_mode: str, dilation: list[int], groups: int,
                    precision: str = "ieee", backend: Optional[str] = None) -> None:
    return None


@torch.library.custom_op(f"{NAMESPACE}::scaled_projection", mutates_args=())
def scaled_projection_op(
    weight: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    alpha: float,
    wv: Optional[torch.Tensor] = None,
    precision: str = "ieee",
    backend: Optional[str] = None,
) -> torch.Tensor:
    """``W V diag(lambda) V^T``, ``[..., out, K]`` in ``weight``'s dtype."""
    return scaled_projection(weight, eigvals, eigvecs, alpha, wv=wv, backend=backend, precision=precision)


@scaled_projection_op.register_fake
def _scaled_projection_fake(weight: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, alpha: float,
                            wv: Optional[torch.Tensor] = None, precision: str = "ieee",
                            backend: Optional[str] = None) -> torch.Tensor:
    return torch.empty_like(weight)


def _register_triton_ops() -> bool:
    try:
        from torch.library import custom_op, triton_op, wrap_triton

        from ..kernels.triton._common import Launch, identity_launch, interpreted
        from ..kernels.triton.conv_gram import conv_gram_triton_launch
        from ..kernels.triton.gram import gram_triton_launch
        from ..kernels.triton.projection import scaled_projection_triton_launch
    except Exception:  # no Triton (or a torch without triton_op): the dispatching ops still work
        return False

    if interpreted():
        # Interpreted kernels cannot run on fake tensors, so under TRITON_INTERPRET=1 the ops are
        # opaque custom ops with explicit fakes; compiled GPU code gets the traceable triton_op.
        launch: Launch = identity_launch

        def define(name: str, mutates: tuple[str, ...], fake: Callable[..., Any]) -> Decorator:
            def deco(fn: Callable[..., Any]) -> Any:
                op = custom_op(f"{NAMESPACE}::{name}", mutates_args=mutates)(fn)
                op.register_fake(fake)
                return op
            return deco
    else:
        launch = wrap_triton

        def define(name: str, mutates: tuple[str, ...], fake: Callable[..., Any]) -> Decorator:
            deco: Decorator = triton_op(f"{NAMESPACE}::{name}", mutates_args=mutates)
            return deco

    global triton_gram_, triton_conv_gram_, triton_scaled_projection

    def _no_result(*args: Any, **kwargs: Any) -> None:
        return None

    @define("triton_gram_", ("out",), _no_result)
    def triton_gram_(x: torch.Tensor, out: torch.Tensor, precision: str = "ieee") -> None:
        """``out [K, K] += x^T x`` for ``x [M, K]`` (2-d), Triton kernels only."""
        if x.dim() != 2:
            raise ValueError(f"triton_gram_: x must be [M, K], got shape {list(x.shape)}")
        accumulator(x, (x.shape[1], x.shape[1]), out, "triton_gram_")  # validates out; kernels trust it
        gram_triton_launch(x, out, precision, launch=launch)

    @define("triton_conv_gram_", ("out",), _no_result)
    def triton_conv_gram_(
        x: torch.Tensor,
        out: torch.Tensor,
        kernel_size: list[int],
        stride: list[int],
        padding: list[int],
        padding_mode: str,
        dilation: list[int],
        groups: int,
        precision: str = "ieee",
    ) -> None:
        """``out [G, K_g, K_g] += P_g^T P_g`` for ``x [N, C, *spatial]``, Triton kernels only."""
        geom = conv_geometry(x.shape, kernel_size, stride, _padding(padding, padding_mode), dilation, groups)
        accumulator(x, (groups, geom.k_per_group, geom.k_per_group), out, "triton_conv_gram_")
        conv_gram_triton_launch(x, geom, out, precision, launch=launch)

    def _projection_fake(weight: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, alpha: float,
                         wv: Optional[torch.Tensor] = None, precision: str = "ieee") -> torch.Tensor:
        return weight.new_empty(weight.shape, dtype=projection_dtype(weight.dtype, eigvecs.dtype))

    @define("triton_scaled_projection", (), _projection_fake)
    def triton_scaled_projection(
        weight: torch.Tensor,
        eigvals: torch.Tensor,
        eigvecs: torch.Tensor,
        alpha: float,
        wv: Optional[torch.Tensor] = None,
        precision: str = "ieee",
    ) -> torch.Tensor:
        """``W V diag(lambda) V^T`` ``[..., out, K]`` in the compute dtype (fp32; fp64 for fp64)."""
        check_projection(weight, eigvals, eigvecs, alpha, wv)
        return scaled_projection_triton_launch(weight, eigvals, eigvecs, alpha, wv, precision, launch=launch)

    return True


TRITON_OPS: bool = _register_triton_ops()

__all__ = ["NAMESPACE", "TRITON_OPS", "conv_gram_", "gram_", "scaled_projection_op", "accumulator_dtype"]
