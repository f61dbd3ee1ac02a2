"""Micro-benchmarks of the array ops with pytest-benchmark: ``gram``, ``conv_gram``,
``scaled_projection`` and ``gram_projection`` on every backend that serves the device, each next
to what it replaces (``F.unfold`` + matmul, ``eigh`` + matmul), so that a change that slows a
kernel shows itself against a saved run.

Not part of the default test run (``testpaths = ["tests"]``). Run from the repository root:

    python3 -m pytest benchmarks/ops --benchmark-autosave                 # store this run (.benchmarks/)
    python3 -m pytest benchmarks/ops --benchmark-compare                  # against the last stored run
    python3 -m pytest benchmarks/ops --benchmark-compare=0001 --benchmark-compare-fail=median:10%
    python3 -m pytest benchmarks/ops --ops-size large --ops-device cuda   # realistic shapes on a GPU

Each benchmark's group is the op and shape; ``extra_info`` records the shape, the backend and the
FLOP count of the full product (``2 M K^2`` for a Gram).
"""
from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F

from sap_kernels import ops
from sap_kernels.ops.dispatch import available_backends

Timed = Callable[[Callable[[], Any]], Callable[[], Any]]


def _backends(op: str) -> list[str]:
    """Backends that would run a float32 call of ``op`` on the default device, forced."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return [name for name, why in available_backends(op, device).items() if why is None]


def _gen(device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(0)


# ---- gram: x^T x ------------------------------------------------------------------------------

def _gram_shape(large: bool) -> tuple[int, int]:
    return (65536, 1024) if large else (4096, 256)


def _gram_input(device: torch.device, large: bool) -> torch.Tensor:
    m, k = _gram_shape(large)
    return torch.randn(m, k, device=device, generator=_gen(device))


@pytest.mark.parametrize("backend", _backends("gram"))
def test_gram(benchmark: Any, device: torch.device, large: bool, timed: Timed, backend: str) -> None:
    x = _gram_input(device, large)
    out = torch.zeros(x.shape[1], x.shape[1], device=device)
    benchmark.group = f"gram {list(x.shape)}"
    benchmark.extra_info.update(shape=list(x.shape), backend=backend, flop=2 * x.shape[0] * x.shape[1] ** 2)
    benchmark(timed(lambda: ops.gram(x, out=out.zero_(), backend=backend)))
    torch.testing.assert_close(out, x.T @ x, rtol=1e-4, atol=1e-2)


def test_gram_matmul(benchmark: Any, device: torch.device, large: bool, timed: Timed) -> None:
    x = _gram_input(device, large)
    benchmark.group = f"gram {list(x.shape)}"
    benchmark.extra_info.update(shape=list(x.shape), backend="matmul", flop=2 * x.shape[0] * x.shape[1] ** 2)
    benchmark(timed(lambda: x.T @ x))


# ---- conv_gram: the Gram of im2col patch rows, never materialised -----------------------------

def _conv_input(device: torch.device, large: bool) -> torch.Tensor:
    shape = (64, 128, 32, 32) if large else (8, 32, 16, 16)
    return torch.randn(*shape, device=device, generator=_gen(device))


def _unfold_gram(x: torch.Tensor) -> torch.Tensor:
    rows = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, x.shape[1] * 9)
    return rows.T @ rows


@pytest.mark.parametrize("backend", _backends("conv_gram"))
def test_conv_gram(benchmark: Any, device: torch.device, large: bool, timed: Timed, backend: str) -> None:
    x = _conv_input(device, large)
    k = x.shape[1] * 9
    out = torch.zeros(1, k, k, device=device)
    benchmark.group = f"conv_gram 3x3 {list(x.shape)}"
    benchmark.extra_info.update(shape=list(x.shape), backend=backend,
                                flop=2 * x.shape[0] * x.shape[2] * x.shape[3] * k * k)
    benchmark(timed(lambda: ops.conv_gram(x, 3, padding=1, out=out.zero_(), backend=backend)))
    torch.testing.assert_close(out[0], _unfold_gram(x), rtol=1e-4, atol=1e-1)


def test_conv_gram_unfold_matmul(benchmark: Any, device: torch.device, large: bool, timed: Timed) -> None:
    x = _conv_input(device, large)
    k = x.shape[1] * 9
    benchmark.group = f"conv_gram 3x3 {list(x.shape)}"
    benchmark.extra_info.update(shape=list(x.shape), backend="unfold+matmul",
                                flop=2 * x.shape[0] * x.shape[2] * x.shape[3] * k * k)
    benchmark(timed(lambda: _unfold_gram(x)))


# ---- scaled_projection: W V diag(lambda) V^T --------------------------------------------------

def _spectrum(device: torch.device, large: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out, k = (512, 4608) if large else (128, 512)
    g = _gen(device)
    a = torch.randn(4 * k, k, device=device, generator=g)
    vals, vecs = torch.linalg.eigh(a.T @ a)
    return torch.randn(out, k, device=device, generator=g), vals, vecs


@pytest.mark.parametrize("backend", _backends("scaled_projection"))
def test_scaled_projection(benchmark: Any, device: torch.device, large: bool, timed: Timed, backend: str) -> None:
    w, vals, vecs = _spectrum(device, large)
    benchmark.group = f"scaled_projection {list(w.shape)}"
    benchmark.extra_info.update(shape=list(w.shape), backend=backend, flop=4 * w.shape[0] * w.shape[1] ** 2)
    got = benchmark(timed(lambda: ops.scaled_projection(w, vals, vecs, 1e3, backend=backend)))
    assert got.shape == w.shape


def test_scaled_projection_matmul(benchmark: Any, device: torch.device, large: bool, timed: Timed) -> None:
    w, vals, vecs = _spectrum(device, large)
    benchmark.group = f"scaled_projection {list(w.shape)}"
    benchmark.extra_info.update(shape=list(w.shape), backend="matmul", flop=4 * w.shape[0] * w.shape[1] ** 2)
    benchmark(timed(lambda: ((w @ vecs) * ops.sap_scales(vals, 1e3)) @ vecs.T))


# ---- gram_projection: one alpha straight from the Gram (Cholesky solve) -----------------------

def _gram_and_weight(device: torch.device, large: bool) -> tuple[torch.Tensor, torch.Tensor]:
    out, k = (512, 2304) if large else (128, 256)
    g = _gen(device)
    a = torch.randn(4 * k, k, device=device, generator=g, dtype=torch.float64)
    return torch.randn(1, out, k, device=device, generator=g), (a.T @ a)[None]


def test_gram_projection(benchmark: Any, device: torch.device, large: bool, timed: Timed) -> None:
    w, gram = _gram_and_weight(device, large)
    benchmark.group = f"gram_projection {list(w.shape[1:])}"
    benchmark.extra_info.update(shape=list(w.shape), backend="solve")
    got = benchmark(timed(lambda: ops.gram_projection(w, gram, 1e3)))
    assert got.shape == w.shape


def test_gram_projection_eigh_matmul(benchmark: Any, device: torch.device, large: bool, timed: Timed) -> None:
    w, gram = _gram_and_weight(device, large)
    benchmark.group = f"gram_projection {list(w.shape[1:])}"
    benchmark.extra_info.update(shape=list(w.shape), backend="eigh+matmul")

    def eigh_then_project() -> torch.Tensor:
        vals, vecs = torch.linalg.eigh(gram)
        return ((w.double() @ vecs) * ops.sap_scales(vals, 1e3)[:, None, :]) @ vecs.transpose(-1, -2)

    benchmark(timed(eigh_then_project))
