#!/usr/bin/env python3
"""The array-level ops on JAX and CuPy arrays, through DLPack, checked against NumPy float64.

For each framework present, a Linear layer's token activations ``[B, T, K]`` and a conv layer's
images ``[N, C, H, W]`` are made in that framework, handed to ``sap_kernels.ops`` with
``torch.from_dlpack`` (no copy: the torch tensor points at the framework's own buffer, checked),
streamed batch by batch into Grams (``ops.gram``, ``ops.conv_gram``), and the weights are projected
(eigendecomposition + ``ops.scaled_projection``, and ``ops.gram_projection``). The results go
back into the framework (``jax.dlpack.from_dlpack`` / ``cupy.from_dlpack``) and are compared
with a reference computed in NumPy float64 alone (explicit im2col, ``numpy.linalg.eigh``).

- JAX: CPU arrays (``pip install "jax[cpu]"``).
- CuPy: GPU arrays, only when a CUDA device is present (else a SKIP line).

    python python/dlpack_interop.py                    # both; exit 1 on any mismatch
    python python/dlpack_interop.py --frameworks jax   # one of them
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Optional

import numpy as np
import torch

from sap_kernels import ops

B, T, K, OUT_L = 6, 7, 12, 5  # Linear: 6 sequences of 7 tokens, 12 -> 5 features
N, C, H, W, KS, OUT_C = 8, 4, 9, 10, 3, 6  # conv: 4 -> 6 channels, 3x3, padding 1
ALPHA = 1e3
TOL = 1e-5


# ----------------------------------------------------------------------------- NumPy float64 reference


def np_scales(e: np.ndarray, alpha: float) -> np.ndarray:
    r = np.clip(e, 0, None) / np.clip(e, 0, None).sum()
    return alpha * r / ((alpha - 1) * r + 1)


def np_project(weight: np.ndarray, gram: np.ndarray, alpha: float) -> np.ndarray:
    """``W V diag(lambda) V^T`` for ``weight [out, K]``, ``gram [K, K]`` (float64)."""
    e, v = np.linalg.eigh(gram)
    return weight @ v @ np.diag(np_scales(e, alpha)) @ v.T


def np_patches(x: np.ndarray) -> np.ndarray:
    """im2col rows ``[N * H * W, C * KS * KS]`` (columns in ``weight.flatten(1)`` order), padding 1."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (KS, KS), axis=(2, 3))  # [N, C, H, W, KS, KS]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, C * KS * KS)


def np_reference(tokens: np.ndarray, images: np.ndarray, w_lin: np.ndarray,
                 w_conv: np.ndarray) -> dict[str, np.ndarray]:
    """float64 Grams and projections of the whole data: ``gram [K, K]``, ``conv_gram [K_c, K_c]``,
    ``linear [OUT_L, K]``, ``conv [OUT_C, C, KS, KS]``."""
    rows = tokens.astype(np.float64).reshape(-1, K)
    patches = np_patches(images)
    g_lin, g_conv = rows.T @ rows, patches.T @ patches
    return {"gram": g_lin, "conv_gram": g_conv,
            "linear": np_project(w_lin.astype(np.float64), g_lin, ALPHA),
            "conv": np_project(w_conv.reshape(OUT_C, -1).astype(np.float64), g_conv, ALPHA).reshape(w_conv.shape)}


# ----------------------------------------------------------------------------- the ops on foreign arrays


def sap_on(tokens: list[Any], images: list[Any], w_lin: Any, w_conv: Any,
           pointer: Callable[[Any], int]) -> dict[str, torch.Tensor]:
    """Run the ops on another framework's arrays (lists are batches; ``pointer(a)`` is the address
    of array ``a``'s buffer, to check that ``torch.from_dlpack`` did not copy).

    tokens: ``[b, T, K]`` float32 batches; images: ``[n, C, H, W]`` float32 batches;
    w_lin ``[OUT_L, K]``, w_conv ``[OUT_C, C, KS, KS]``. Returns torch tensors on the arrays' device:
    ``gram [K, K]``, ``conv_gram [1, C*KS*KS, C*KS*KS]``, and per layer the projection by eigh +
    ``scaled_projection`` (``linear``, ``conv``) and by ``gram_projection`` (``linear_solve``,
    ``conv_solve``), shaped like the weights.
    """
    def wrap(a: Any) -> torch.Tensor:
        t = torch.from_dlpack(a)
        if t.data_ptr() != pointer(a):
            raise AssertionError("torch.from_dlpack copied the array")
        return t

    first = wrap(tokens[0])
    g_lin = torch.zeros(K, K, dtype=torch.float32, device=first.device)
    g_conv = torch.zeros(1, C * KS * KS, C * KS * KS, dtype=torch.float32, device=first.device)
    for a in tokens:
        ops.gram(wrap(a), out=g_lin)  # leading dims [b, T] are rows
    for a in images:
        ops.conv_gram(wrap(a), KS, padding=1, out=g_conv)
    wl, wc = wrap(w_lin), wrap(w_conv).reshape(OUT_C, -1)
    out = {"gram": g_lin, "conv_gram": g_conv}
    for name, w, g in (("linear", wl, g_lin), ("conv", wc, g_conv[0])):
        e, v = torch.linalg.eigh(g.double())
        out[name] = ops.scaled_projection(w.double(), e, v, ALPHA).float()
        out[name + "_solve"] = ops.gram_projection(w, g, ALPHA)
    out["conv"] = out["conv"].reshape(w_conv.shape)
    out["conv_solve"] = out["conv_solve"].reshape(w_conv.shape)
    return out


def compare(name: str, got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> float:
    worst = 0.0
    pairs = [("gram", "gram"), ("conv_gram", "conv_gram"), ("linear", "linear"), ("linear_solve", "linear"),
             ("conv", "conv"), ("conv_solve", "conv")]
    for key, rkey in pairs:
        g, r = got[key].astype(np.float64).reshape(ref[rkey].shape), ref[rkey]
        err = float(np.linalg.norm(g - r) / np.linalg.norm(r))
        worst = max(worst, err)
        print(f"  {name:<5} {key:<13} relative error vs NumPy float64: {err:.2e}")
    return worst


def inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded float32 ``tokens [B, T, K]``, ``images [N, C, H, W]``, ``w_lin [OUT_L, K]``,
    ``w_conv [OUT_C, C, KS, KS]``."""
    rng = np.random.default_rng(seed)
    shapes = ((B, T, K), (N, C, H, W), (OUT_L, K), (OUT_C, C, KS, KS))
    tok, img, wl, wc = (rng.standard_normal(s, dtype=np.float32) for s in shapes)
    return tok, img, wl, wc


# ----------------------------------------------------------------------------- JAX (CPU)


def run_jax() -> Optional[float]:
    """Worst relative error of the JAX CPU path, or None (with a SKIP line) without JAX."""
    try:
        import jax
        import jax.dlpack
        import jax.numpy as jnp
    except ImportError:
        print("SKIP jax: not installed (pip install \"jax[cpu]\")")
        return None
    cpu = jax.devices("cpu")[0]
    tok, img, wl, wc = inputs(0)
    with jax.default_device(cpu):
        jt = [jnp.asarray(a) for a in np.array_split(tok, 3)]
        ji = [jnp.asarray(a) for a in np.array_split(img, 4)]
        jwl, jwc = jnp.asarray(wl), jnp.asarray(wc)
    out = sap_on(jt, ji, jwl, jwc, pointer=lambda a: a.unsafe_buffer_pointer())
    back = {k: jax.dlpack.from_dlpack(v.contiguous()) for k, v in out.items()}  # torch -> JAX
    assert all(isinstance(v, jax.Array) for v in back.values())
    print(f"jax {jax.__version__} on {cpu}: DLPack both ways, no copy into torch")
    return compare("jax", {k: np.asarray(v) for k, v in back.items()}, np_reference(tok, img, wl, wc))


# ----------------------------------------------------------------------------- CuPy (GPU)


def run_cupy() -> Optional[float]:
    """Worst relative error of the CuPy GPU path, or None (with a SKIP line) without a GPU or CuPy."""
    if not torch.cuda.is_available():
        print("SKIP cupy: no CUDA device")
        return None
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # not installed, or no usable driver/runtime
        print(f"SKIP cupy: {type(exc).__name__}: {exc}")
        return None
    tok, img, wl, wc = inputs(1)
    ct = [cupy.asarray(a) for a in np.array_split(tok, 3)]
    ci = [cupy.asarray(a) for a in np.array_split(img, 4)]
    cwl, cwc = cupy.asarray(wl), cupy.asarray(wc)
    out = sap_on(ct, ci, cwl, cwc, pointer=lambda a: int(a.data.ptr))
    torch.cuda.synchronize()
    assert all(v.is_cuda for v in out.values())
    back = {k: cupy.from_dlpack(v.contiguous()) for k, v in out.items()}  # torch -> CuPy, on the GPU
    print(f"cupy {cupy.__version__} on {torch.cuda.get_device_name()}: DLPack both ways, no copy into torch")
    return compare("cupy", {k: cupy.asnumpy(v) for k, v in back.items()}, np_reference(tok, img, wl, wc))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", choices=["jax", "cupy"], default=["jax", "cupy"])
    parser.add_argument("--require", action="store_true", help="exit 1 when a chosen framework is skipped")
    args = parser.parse_args(argv)
    runners = {"jax": run_jax, "cupy": run_cupy}
    failed = False
    for name in args.frameworks:
        worst = runners[name]()
        if worst is None:
            failed |= args.require
        elif not worst < TOL:
            print(f"MISMATCH {name}: worst relative error {worst:.2e} >= {TOL:.0e}")
            failed = True
        else:
            print(f"OK {name}: worst relative error {worst:.2e} < {TOL:.0e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
