"""The precision policy: which dtype each step of the method runs in, and why. One table.

| step | dtype | why (measured against a float64 SVD of the same activations) |
|---|---|---|
| Gram of a layer with ``K <= GRAM_FP64_MAX_K`` | float64 | narrow late layers (heads, token MLPs): an fp32 Gram moved the projection by up to 5e-4 at alpha >= 1e4; cheap there (``M K^2`` with small K) |
| Gram of a wider layer | float32 (float64 for a float64 model) | fp32 accumulation erred <= 1e-5 relative; fp64 doubles the dominant cost |
| kept rows (a layer that saw ``rows <= K``) | float32 (float64 for a float64 model), decomposed in float64 | the dual route divides by singular values: in float32 it erred 0.5 % at alpha 1e4 (2500 rows of a 2880-wide input, spectrum over four decades), float64 2.5e-8 |
| eigendecomposition, ``K <= EIG_FP64_MAX_K`` | float64 | fp32 ``eigh`` of a 300..1440-wide Gram moved the projection by up to 3e-4 at alpha 1e4, fp64 by 1e-5 |
| eigendecomposition, wider | float32 (float64 for a float64 Gram) | fp64 costs about 2x there, where the widest layers (K = 4608 in ResNet-18) dominate a CPU sweep |
| fixed-alpha Cholesky solve | float64 | ``(alpha - 1) G + tr(G) I`` has condition number up to ``max(alpha, 1/alpha)``, past fp32 |
| op-level accumulation (``ops.gram``/``ops.conv_gram``) | float32, float64 for float64 input | the ops' own contract (``sap_kernels.ops``) |

The activations are scaled by a power of two per stream when their magnitude would overflow or
underflow the Gram's dtype (``gram_scale``): exact, and every quantity SAP uses (``r = e / sum e``,
eigenvectors, the solve) is invariant to it.
"""  # noqa: E501 - the table's rows are one line each
from __future__ import annotations

import math
from typing import Optional

import torch

GRAM_FP64_MAX_K = 256
EIG_FP64_MAX_K = 2048
ROWS_DECOMPOSE_DTYPE = torch.float64
SOLVE_DTYPE = torch.float64


def gram_dtype(k: int, activation_dtype: torch.dtype) -> torch.dtype:
    """Accumulator dtype of a ``K``-wide stream fed ``activation_dtype`` activations."""
    if activation_dtype == torch.float64 or k <= GRAM_FP64_MAX_K:
        return torch.float64
    return torch.float32


def rows_dtype(activation_dtype: torch.dtype) -> torch.dtype:
    """Dtype of kept rows (before their float64 decomposition)."""
    return torch.float64 if activation_dtype == torch.float64 else torch.float32


def eig_dtype(k: int, gram: torch.dtype, requested: Optional[torch.dtype] = None) -> torch.dtype:
    """Dtype of a ``K``-wide Gram's eigendecomposition (``requested`` overrides)."""
    if requested is not None:
        return requested
    if gram == torch.float64 or k <= EIG_FP64_MAX_K:
        return torch.float64
    return torch.float32


def check_eig_dtype(value: object) -> Optional[torch.dtype]:
    """``eig_dtype=``: None, ``torch.float32``/``torch.float64`` or their names; else a named error."""
    if value is None:
        return None
    names = {"float32": torch.float32, "float64": torch.float64, "float": torch.float32, "double": torch.float64}
    if isinstance(value, str) and value.removeprefix("torch.") in names:
        return names[value.removeprefix("torch.")]
    if value in (torch.float32, torch.float64):
        return value
    raise ValueError(f"eig_dtype must be torch.float32 or torch.float64 (or None for the policy), got {value!r}")


# Activations whose largest magnitude lies in [2^-SAFE_EXP, 2^SAFE_EXP] are accumulated as they
# are: squares then span 2^+-80 and even 1e10 rows of them stay far from float32's limits (2^+-126
# normal, 2^128 overflow). Outside that range the stream is scaled by a power of two.
SAFE_EXP = 40


def gram_scale(amax: float) -> int:
    """Exponent ``s`` such that activations divided by ``2^s`` are safe to square and sum
    (0 when they already are; ``amax`` is the largest finite magnitude seen, > 0)."""
    if amax <= 0 or not math.isfinite(amax):
        return 0
    exp = math.frexp(amax)[1]  # amax = m * 2^exp, 0.5 <= m < 1
    return 0 if -SAFE_EXP <= exp <= SAFE_EXP else exp
