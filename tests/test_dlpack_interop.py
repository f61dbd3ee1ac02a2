"""``python/dlpack_interop.py``: the array-level ops on JAX (CPU) arrays through DLPack, against a
NumPy float64 reference. The CuPy (GPU) half runs where a GPU is (``benchmarks/gpu_check.sh``-style
runs of the script); here it reports SKIP."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
import dlpack_interop as di  # noqa: E402


def test_jax_arrays_through_the_ops_match_numpy_float64():
    import jax.numpy as jnp

    tok, img, wl, wc = di.inputs(7)
    ref = di.np_reference(tok, img, wl, wc)
    out = di.sap_on([jnp.asarray(a) for a in np.array_split(tok, 2)], [jnp.asarray(a) for a in np.array_split(img, 3)],
                    jnp.asarray(wl), jnp.asarray(wc), pointer=lambda a: a.unsafe_buffer_pointer())
    assert out["gram"].shape == (di.K, di.K) and out["conv"].shape == wc.shape
    for key, rkey in (("gram", "gram"), ("conv_gram", "conv_gram"), ("linear", "linear"),
                      ("linear_solve", "linear"), ("conv", "conv"), ("conv_solve", "conv")):
        got = out[key].double().numpy().reshape(ref[rkey].shape)
        assert np.linalg.norm(got - ref[rkey]) / np.linalg.norm(ref[rkey]) < di.TOL, key
    # The reference tells alphas apart, so agreeing with it means something.
    other = di.np_project(wl.astype(np.float64), ref["gram"], di.ALPHA / 100)
    assert np.linalg.norm(out["linear"].double().numpy() - other) / np.linalg.norm(other) > 1e-2


def test_script_passes_on_jax_and_skips_cupy_without_a_gpu():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "python" / "dlpack_interop.py")], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "OK jax" in out.stdout
    assert ("OK cupy" in out.stdout) or ("SKIP cupy" in out.stdout)


def test_script_exits_one_on_a_mismatch(monkeypatch, capsys):
    real = di.np_reference

    def off(*args):
        ref = real(*args)
        ref["conv"] = ref["conv"] * 1.001
        return ref

    monkeypatch.setattr(di, "np_reference", off)
    assert di.main(["--frameworks", "jax"]) == 1
    assert "MISMATCH jax" in capsys.readouterr().out
