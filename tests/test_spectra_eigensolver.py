"""``all_finite`` (one min/max reduction) and the eigensolver policy (SciPy's LAPACK or torch's)."""
from __future__ import annotations

import pytest
import torch

from sap_kernels.ops._checks import all_finite
from sap_kernels.sap.spectra import eigensolver
from sap_kernels.sap.spectra.eigenpairs import decompose

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 31, 64, 257, 4099])
def test_all_finite_finds_one_bad_value_anywhere(device, dtype, n):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g).to(dtype).to(device)
    assert all_finite(x) and all_finite(x.reshape(1, n, 1))
    positions = sorted({0, n // 2, n - 1, int(torch.randint(0, n, (1,), generator=g))})
    for bad in (float("nan"), float("inf"), -float("inf")):
        for i in positions:
            y = x.clone()
            y[i] = bad
            assert not all_finite(y), (bad, i)
            if n > 2:
                assert not all_finite(y[::2] if i % 2 == 0 else y[1::2])  # strided views too


def test_all_finite_on_empty_integer_and_complex_tensors():
    assert all_finite(torch.zeros(0)) and all_finite(torch.zeros(3, 0))
    assert all_finite(torch.tensor([1, 2, 3])) and all_finite(torch.tensor([True]))
    z = torch.randn(5, dtype=torch.complex64)
    assert all_finite(z)
    z[3] = complex(0.0, float("nan"))
    assert not all_finite(z)


def _gram(n: int, groups: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(groups, n + 37, n, generator=g, dtype=torch.float64) * torch.logspace(0, -4, n, dtype=torch.float64)
    return (a.transpose(1, 2) @ a).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scipy_and_torch_solvers_agree_on_a_wide_problem(dtype, monkeypatch):
    pytest.importorskip("scipy")
    pytest.importorskip("threadpoolctl")
    n = eigensolver.SINGLE_THREAD_MAX_N + 7  # the smallest kind of problem SciPy takes
    gram = _gram(n, 2, dtype, 0)
    assert eigensolver.uses_scipy(n, torch.device("cpu"))
    via_scipy = decompose(gram, dtype)
    monkeypatch.setenv(eigensolver.ENV_VAR, "torch")
    assert not eigensolver.uses_scipy(n, torch.device("cpu"))
    via_torch = decompose(gram, dtype)
    assert via_scipy.eigvals.dtype == via_scipy.eigvecs.dtype == dtype
    assert via_scipy.eigvecs.shape == (2, n, n)
    # Against a float64 reference: the same accuracy either way.
    ref = torch.linalg.eigvalsh(gram.double())
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    top = ref.abs().amax(-1, keepdim=True)
    for spec in (via_scipy, via_torch):
        assert float(((spec.eigvals.double() - ref).abs() / top).max()) < tol
        v = spec.eigvecs.double()
        recon = v @ torch.diag_embed(spec.eigvals.double()) @ v.transpose(1, 2)
        assert float((recon - gram.double()).norm() / gram.double().norm()) < 10 * tol
        assert float((v.transpose(1, 2) @ v - torch.eye(n, dtype=torch.float64)).abs().max()) < 100 * tol


def test_small_problems_and_other_devices_stay_with_torch():
    assert not eigensolver.uses_scipy(eigensolver.SINGLE_THREAD_MAX_N, torch.device("cpu"))
    assert not eigensolver.uses_scipy(4096, torch.device("meta"))
    vals, vecs = eigensolver.eigh(_gram(5, 3, torch.float64, 1))
    assert vals.shape == (3, 5) and vecs.shape == (3, 5, 5)


def test_scipy_runs_on_torchs_thread_count_and_gives_the_blas_setting_back(monkeypatch):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def counts() -> list[int]:
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    seen: list[list[int]] = []
    real = scipy_linalg.eigh

    def spy(*args, **kwargs):
        seen.append(counts())
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy_linalg, "eigh", spy)
    gram = _gram(eigensolver.SINGLE_THREAD_MAX_N + 1, 2, torch.float32, 2)
    before, threads = counts(), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        eigensolver.eigh(gram)
    finally:
        torch.set_num_threads(threads)
    assert len(seen) == 2 and all(c and set(c) == {1} for c in seen)  # one per group, on one thread
    assert counts() == before
