"""Float64 reference of SAP, written independently of the package: materialised patches + SVD.

Conv patches come from a float64 convolution with one-hot kernels (output channel ``c*P + p``
copies input channel ``c`` at kernel offset ``p``), so this shares no indexing code with the
package's im2col or kernels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def conv_patches(x: torch.Tensor, kernel_size, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor:
    """``[groups, rows, K_g]`` float64 patch rows of ``x [N, C, *spatial]`` (zero padding)."""
    x = x.double()
    nd = x.dim() - 2
    ks = (kernel_size,) * nd if isinstance(kernel_size, int) else tuple(kernel_size)
    c = x.shape[1]
    p = math.prod(ks)
    eye = torch.eye(p, dtype=torch.float64).reshape(p, 1, *ks).repeat(c, 1, *([1] * nd))
    cols = _CONV[nd](x, eye, stride=stride, padding=padding, dilation=dilation, groups=c)  # [N, C*P, *out]
    rows = cols.flatten(2).transpose(1, 2).reshape(-1, c * p)
    kg = c // groups * p
    return rows.reshape(-1, groups, kg).transpose(0, 1)


def layer_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[groups, rows, K_g]`` float64 rows of one call's input to a Linear/ConvNd module."""
    if isinstance(module, nn.Linear):
        return x.double().reshape(1, -1, x.shape[-1])
    nd = len(module.kernel_size)
    if x.dim() == nd + 1:
        x = x.unsqueeze(0)
    padding = module.padding
    if module.padding_mode != "zeros":
        x = F.pad(x.double(), module._reversed_padding_repeated_twice, mode=module.padding_mode)
        padding = 0
    return conv_patches(x, module.kernel_size, module.stride, padding, module.dilation, module.groups)


def sap_weight(weight: torch.Tensor, rows: torch.Tensor, alpha: float) -> torch.Tensor:
    """Float64 SAP projection of ``weight [out, ...]`` from rows ``[groups, M, K_g]`` via SVD."""
    groups, _, k = rows.shape
    w = weight.double().reshape(groups, weight.shape[0] // groups, k)
    out = torch.empty_like(w)
    for g in range(groups):
        # Full V only when rows < K (the null directions, lambda = 0); U is never needed.
        _, s, vh = torch.linalg.svd(rows[g], full_matrices=rows.shape[1] < k)
        e = torch.zeros(k, dtype=torch.float64)
        e[: s.numel()] = s**2
        r = e / e.sum()
        lam = torch.ones_like(r) if math.isinf(alpha) else alpha * r / ((alpha - 1) * r + 1)
        v = vh.T
        out[g] = w[g] @ v @ torch.diag(lam) @ v.T
    return out.reshape(weight.shape)


@torch.no_grad()
def reference_project(
    model: nn.Module, inputs: torch.Tensor, alpha: float, names: list[str], forward_dtype=torch.float32
) -> dict[str, torch.Tensor]:
    """Float64 SAP weights for the named layers, with every sample of ``inputs`` trusted.

    A copy of the model is run in ``forward_dtype`` (float32: the activations a float32 model
    really produces; float64: a float64 model), its layer inputs are materialised in float64 and
    each weight is projected through an SVD.
    """
    import copy

    m64 = copy.deepcopy(model).to(forward_dtype).eval()
    mods = dict(m64.named_modules())
    captured: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    handles = [
        mods[n].register_forward_pre_hook(lambda mod, args, n=n: captured[n].append(layer_rows(mod, args[0])))
        for n in names
    ]
    try:
        m64(inputs.to(forward_dtype))
    finally:
        for h in handles:
            h.remove()
    return {n: sap_weight(mods[n].weight, torch.cat(captured[n], dim=1), alpha) for n in names}
