"""The published SAP pipeline's memory pattern, for comparison: keep every unfolded activation
of every layer in host memory, subsample at most 50,000 rows per layer, dense SVD of each
``K x rows`` matrix, then project. Written here from the paper's description; fp32 throughout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_ROWS = 50_000


@torch.no_grad()
def authors_project(model: nn.Module, inputs: torch.Tensor, alpha: float, batch_size: int = 100, seed: int = 0) -> None:
    """Project ``model``'s Conv2d/Linear weights in place from ``inputs [N, 3, H, W]``."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    acts: dict[nn.Module, list[torch.Tensor]] = {m: [] for m in layers}

    def hook(mod, args):
        x = args[0]
        if isinstance(mod, nn.Conv2d):
            cols = F.unfold(x, mod.kernel_size, mod.dilation, mod.padding, mod.stride)  # [N, K, L]
            acts[mod].append(cols.transpose(1, 2).reshape(-1, cols.shape[1]).clone())
        else:
            acts[mod].append(x.reshape(-1, x.shape[-1]).clone())

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    model.eval()
    for a in range(0, inputs.shape[0], batch_size):
        model(inputs[a : a + batch_size])
    for h in handles:
        h.remove()
    gen = torch.Generator().manual_seed(seed)
    for m in layers:
        rows = torch.cat(acts.pop(m))
        if rows.shape[0] > MAX_ROWS:
            rows = rows[torch.randperm(rows.shape[0], generator=gen)[:MAX_ROWS]]
        u, s, _ = torch.linalg.svd(rows.T, full_matrices=False)  # basis: left factor of K x rows
        del rows
        e = torch.zeros(u.shape[0])
        e[: s.numel()] = s**2
        u = F.pad(u, (0, u.shape[0] - u.shape[1]))  # zero columns for rank-deficient layers
        r = e / e.sum()
        lam = alpha * r / ((alpha - 1) * r + 1)
        w = m.weight.reshape(m.weight.shape[0], -1)
        m.weight.copy_((((w @ u) * lam) @ u.T).reshape(m.weight.shape))
