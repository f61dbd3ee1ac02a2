#!/usr/bin/env python3
"""The array-level ops from another framework: SAP on a conv layer whose data lives in NumPy.

The activations and the weight are NumPy arrays. ``torch.from_numpy`` wraps them without a
copy (``torch.from_dlpack`` does the same for CuPy or JAX arrays on a GPU), the Gram is
streamed batch by batch with ``ops.conv_gram`` (no im2col matrix is built), and the projected
weight comes back as a NumPy array. The result is checked against a float64 reference written
in NumPy alone (explicit im2col, ``numpy.linalg.eigh``).

    python python/numpy_interop.py            # prints the errors; exits 1 if they exceed 1e-5
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from sap_kernels import ops

C, H, W, KS, OUT = 6, 9, 11, 3, 8  # conv: 6 -> 8 channels, 3x3, padding 1, on 9x11 images
ALPHA = 1e3


def numpy_reference(x: np.ndarray, weight: np.ndarray, alpha: float) -> np.ndarray:
    """float64 ``W V diag(lambda) V^T`` from explicitly unfolded patches.

    x: ``[N, C, H, W]``; weight: ``[OUT, C, KS, KS]``. Returns ``[OUT, C * KS * KS]`` float64.
    """
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (KS, KS), axis=(2, 3))  # [N, C, H, W, KS, KS]
    patches = win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, C * KS * KS)  # rows (n, h, w), cols (c, i, j)
    e, v = np.linalg.eigh(patches.T @ patches)
    r = np.clip(e, 0, None) / np.clip(e, 0, None).sum()
    lam = alpha * r / ((alpha - 1) * r + 1)
    return weight.reshape(OUT, -1).astype(np.float64) @ v @ np.diag(lam) @ v.T


def project_numpy(batches: list[np.ndarray], weight: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Stream ``batches`` (each ``[n, C, H, W]`` float32) into one Gram and project ``weight``.

    Returns the projected ``[OUT, C, KS, KS]`` float32 weight by eigendecomposition +
    ``ops.scaled_projection`` and by ``ops.gram_projection`` (the fixed-alpha solve).
    """
    gram = torch.zeros(1, C * KS * KS, C * KS * KS)  # [groups, K, K] float32, the ops add into it
    for b in batches:
        xt = torch.from_numpy(b)  # shares b's memory
        assert xt.data_ptr() == b.ctypes.data
        ops.conv_gram(xt, KS, padding=1, out=gram)
    w = torch.from_numpy(weight).reshape(1, OUT, -1)  # [groups, out, K], no copy
    e, v = torch.linalg.eigh(gram.double())
    by_eigh = ops.scaled_projection(w.double(), e, v, alpha).float()
    by_solve = ops.gram_projection(w, gram, alpha)
    return by_eigh.reshape(weight.shape).numpy(), by_solve.reshape(weight.shape).numpy()


def main() -> int:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, C, H, W), dtype=np.float32)
    weight = rng.standard_normal((OUT, C, KS, KS), dtype=np.float32)
    by_eigh, by_solve = project_numpy(np.array_split(x, 5), weight, ALPHA)
    ref = numpy_reference(x, weight, ALPHA)
    worst = 0.0
    for name, got in (("eigh + scaled_projection", by_eigh), ("gram_projection", by_solve)):
        err = np.linalg.norm(got.reshape(OUT, -1) - ref) / np.linalg.norm(ref)
        worst = max(worst, err)
        print(f"{name:<26} relative error vs NumPy float64 reference: {err:.2e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
