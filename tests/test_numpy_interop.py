"""``python/numpy_interop.py``: the array-level ops on NumPy data, against a NumPy float64 reference."""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
import numpy_interop as ni  # noqa: E402


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.reshape(b.shape) - b) / np.linalg.norm(b))


def test_numpy_data_through_the_ops_matches_numpy_float64():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((23, ni.C, ni.H, ni.W), dtype=np.float32)
    w = rng.standard_normal((ni.OUT, ni.C, ni.KS, ni.KS), dtype=np.float32)
    by_eigh, by_solve = ni.project_numpy(np.array_split(x, 4), w, 300.0)
    ref = ni.numpy_reference(x, w, 300.0)
    assert by_eigh.dtype == by_solve.dtype == np.float32 and by_eigh.shape == w.shape
    assert rel(by_eigh, ref) < 1e-5 and rel(by_solve, ref) < 1e-5
    assert rel(by_eigh, ni.numpy_reference(x, w, 30.0)) > 1e-2  # the comparison tells alphas apart


def test_script_exits_zero():
    assert ni.main() == 0
