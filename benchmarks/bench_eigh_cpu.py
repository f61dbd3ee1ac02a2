#!/usr/bin/env python3
"""The CPU eigensolvers the decomposition can use, side by side in one run: torch's
``torch.linalg.eigh`` (MKL's ``?syevd`` in the PyPI wheels) and SciPy's ``scipy.linalg.eigh(driver="evd")``
(``?syevd`` on the OpenBLAS SciPy ships), on Grams of the widths of ResNet-18's layers, at
1 and at ``--threads`` threads; and how far each eigenbasis is from orthonormal. What
``sap_kernels.sap.spectra.eigensolver`` chooses is decided on these numbers.

    python benchmarks/bench_eigh_cpu.py --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Optional, Sequence

import torch

SIZES = ((576, torch.float64), (1152, torch.float64), (2304, torch.float32), (4608, torch.float32))


def gram(k: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """``A^T A / max diag`` of ``A [3.5 K, K]`` with column scales over three decades (a spectrum
    that falls like an activation Gram's), in ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(int(3.5 * k), k, generator=g) * torch.logspace(0, -3, k)
    s = a.T @ a
    s = (s + s.T) / 2
    return (s / s.diagonal().max()).to(dtype)


def seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import scipy.linalg
    from threadpoolctl import threadpool_limits

    torch.set_flush_denormal(True)  # as the package's torch route runs it
    print(f"# symmetric eigh on the CPU, s per problem; torch {torch.__version__}")
    print("| K | dtype | threads | torch | SciPy evd | torch / SciPy | orthonormality torch | SciPy |")
    print("|---|---|---|---|---|---|---|---|")
    for k, dtype in SIZES:
        g = gram(k, dtype)
        gn = g.numpy()
        repeat = 3 if k < 2000 else 1
        eye = torch.eye(k, dtype=torch.float64)
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            with threadpool_limits(limits=threads, user_api="blas"):
                t_torch = seconds(lambda: torch.linalg.eigh(g), repeat)
                t_scipy = seconds(lambda: scipy.linalg.eigh(gn, driver="evd", check_finite=False), repeat)
                _, vt = torch.linalg.eigh(g)
                _, vs = scipy.linalg.eigh(gn, driver="evd", check_finite=False)
            ot = float((vt.double().T @ vt.double() - eye).abs().max())
            os_ = float((torch.from_numpy(vs).double().T @ torch.from_numpy(vs).double() - eye).abs().max())
            print(f"| {k} | {str(dtype).removeprefix('torch.')} | {threads} | {t_torch:.3f} | {t_scipy:.3f} | "
                  f"{t_torch / t_scipy:.2f}x | {ot:.1e} | {os_:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
