"""Which LAPACK solves the decomposition's symmetric eigenproblems, and on how many threads: one policy.

Both candidates run the same algorithm (divide and conquer, ``?syevd``), so they agree to
rounding; they differ in speed. On the CPU, SciPy's (``scipy.linalg.eigh`` on the OpenBLAS it
ships) measured faster than torch's (MKL) on every Gram measured on the 2-core AMD EPYC VM
(``benchmarks/RESULTS.md``, "Eigensolver"): ResNet-18/32x32 Grams from 1,000 samples, float32, 7.2-7.7 s
against 9.2-10.3 s at K = 4608, 0.80-0.88 s against 1.0 s at 2304; random Grams in float64 1.2x at
1152. So problems wider than ``SINGLE_THREAD_MAX_N`` on the CPU go to SciPy (its thread pool held
at torch's thread count), the rest to torch: smaller ones on one thread, since a threaded
``eigh`` gains nothing there and, on shared cores, its thread barriers were measured to cost 100x
(a 256-wide float64 ``eigh``: 2.6 s on 2 busy cores against 6 ms on one thread). Other devices
use torch. ``SAP_KERNELS_EIGH=torch`` forces torch everywhere.

SciPy's BLAS thread count is a process-wide setting: it is held reference-counted, like torch's
(``guards``), so concurrent calls compose and the value a user had comes back after the last.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Optional, Union

import torch

from ..runtime.guards import SharedSetting, flush_denormals, single_thread

ENV_VAR = "SAP_KERNELS_EIGH"
SINGLE_THREAD_MAX_N = 1024


def uses_scipy(n: int, device: torch.device) -> bool:
    """Whether an ``n``-wide problem on ``device`` goes to SciPy (see the module docstring)."""
    if device.type != "cpu" or n <= SINGLE_THREAD_MAX_N or os.environ.get(ENV_VAR, "").strip().lower() == "torch":
        return False
    try:
        import scipy.linalg  # noqa: F401
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def eigh(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of the symmetric ``g [groups, n, n]`` (float32 or float64; both triangles equal).

    Returns:
        eigvals ``[groups, n]`` ascending and eigvecs ``[groups, n, n]`` (column ``i`` pairs with
        eigenvalue ``i``), in ``g``'s dtype and on its device.
    """
    n = g.shape[-1]
    if uses_scipy(n, g.device):
        return _scipy_eigh(g)
    with _torch_context(n, g.device):
        vals, vecs = torch.linalg.eigh(g)
    return vals, vecs


def _scipy_eigh(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import scipy.linalg

    vals, vecs = [], []
    with _blas_threads().held(torch.get_num_threads()):
        for block in g.detach():
            e, v = scipy.linalg.eigh(block.contiguous().numpy(), driver="evd", check_finite=False)
            vals.append(torch.from_numpy(e).to(g.dtype))
            vecs.append(torch.from_numpy(v).to(g.dtype))
    return torch.stack(vals), torch.stack(vecs)


_blas: Optional[SharedSetting[Any]] = None
_blas_lock = threading.Lock()


def _blas_threads() -> SharedSetting[Any]:
    """The thread counts of the BLAS libraries loaded (SciPy's OpenBLAS among them), as one
    reference-counted setting: held at one count, restored to each library's own."""
    global _blas
    with _blas_lock:
        if _blas is None:
            from threadpoolctl import ThreadpoolController

            libs = ThreadpoolController().select(user_api="blas").lib_controllers

            def get() -> list[int]:
                return [lib.num_threads for lib in libs]

            def set_(value: Union[int, list[int]]) -> None:
                counts = value if isinstance(value, list) else [value] * len(libs)
                for lib, n in zip(libs, counts):
                    lib.set_num_threads(n)

            _blas = SharedSetting(get, set_)
        return _blas


def _torch_context(n: int, device: torch.device) -> contextlib.ExitStack[Optional[bool]]:
    """Subnormals flushed on the calling thread (rank-deficient Grams drove MKL's float32 ``eigh``
    through subnormal numbers, 10x slower on a K = 4608 ResNet-18 layer; values that small are
    far below the eigenvalue rounding error) and, for small problems, one thread."""
    stack = contextlib.ExitStack()
    if device.type == "cpu":
        stack.enter_context(flush_denormals())
        if n <= SINGLE_THREAD_MAX_N and torch.get_num_threads() > 1:
            stack.enter_context(single_thread())
    return stack
