"""``ops.gram_projection`` (fixed alpha, Cholesky solve) against a float64 eigendecomposition."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sap_kernels import ops


def eigh_reference(weight: torch.Tensor, gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """``W V diag(lambda) V^T`` from a float64 ``eigh`` of the Gram."""
    e, v = torch.linalg.eigh(gram.double())
    lam = ops.sap_scales(e, alpha)
    return weight.double() @ v @ (lam[..., :, None] * v.transpose(-1, -2))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300))


@settings(max_examples=40, deadline=None)
@given(
    out=st.integers(1, 9),
    k=st.integers(1, 37),
    rows=st.integers(1, 60),
    lead=st.sampled_from([(), (1,), (3,), (2, 2)]),
    log_alpha=st.floats(-3, 6),
    seed=st.integers(0, 2**16),
)
def test_matches_float64_eigendecomposition(out, k, rows, lead, log_alpha, seed):
    """Random Grams, full rank or not (rows < K), with columns of very different scale."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(*lead, rows, k, generator=g, dtype=torch.float64)
    a = a * torch.logspace(0, -3, k, dtype=torch.float64)  # spread the spectrum over decades
    gram = a.transpose(-1, -2) @ a
    w = torch.randn(*lead, out, k, generator=g, dtype=torch.float64)
    alpha = 10.0 ** log_alpha
    got = ops.gram_projection(w, gram, alpha)
    assert got.shape == w.shape and got.dtype == torch.float64
    assert rel(got, eigh_reference(w, gram, alpha)) < 1e-8


def test_float32_inputs_are_solved_in_float64():
    torch.manual_seed(1)
    a = torch.randn(300, 48)
    a[:, :8] *= 1e-3  # directions of tiny energy: lambda ~ alpha r, the error-prone ones
    gram = a.T @ a
    w = torch.randn(5, 48)
    got = ops.gram_projection(w, gram, 1e5)
    assert got.dtype == torch.float32
    assert rel(got, eigh_reference(w, gram, 1e5)) < 1e-6


def test_limits_zero_energy_and_identity():
    torch.manual_seed(2)
    a = torch.randn(20, 6, dtype=torch.float64)
    gram = torch.stack([a.T @ a, torch.zeros(6, 6, dtype=torch.float64)])
    w = torch.randn(2, 3, 6, dtype=torch.float64)
    got = ops.gram_projection(w, gram, 10.0)
    assert torch.equal(got[1], torch.zeros(3, 6, dtype=torch.float64))  # no energy: lambda = 0
    assert rel(got[0], eigh_reference(w[0], gram[0], 10.0)) < 1e-10
    assert torch.equal(ops.gram_projection(w, gram, math.inf), w)
    # alpha = 1: lambda = r, the projection onto G / trace(G)
    assert rel(ops.gram_projection(w[0], gram[0], 1.0), w[0] @ gram[0] / torch.trace(gram[0])) < 1e-12


def test_errors_name_the_problem():
    w, g = torch.randn(3, 4), torch.eye(4)
    with pytest.raises(ValueError, match="shapes do not match"):
        ops.gram_projection(w, torch.eye(5), 2.0)
    with pytest.raises(ValueError, match=r"weight must be \[..., out, K\]"):
        ops.gram_projection(torch.randn(4), g, 2.0)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        ops.gram_projection(w, g, 0.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        ops.gram_projection(w, torch.full((4, 4), math.nan), 2.0)
    with pytest.raises(ValueError, match="not positive semi-definite"):
        ops.gram_projection(w, -torch.eye(4) * 5 + 0.1, 2.0)  # indefinite after the trace scaling
    with pytest.raises(TypeError, match="gram must be a real float tensor"):
        ops.gram_projection(w, torch.eye(4, dtype=torch.int64), 2.0)
