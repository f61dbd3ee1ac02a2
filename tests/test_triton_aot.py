"""Ahead-of-time compilation of every Triton kernel variant for an H100 (sm_90), without a GPU.

The interpreter lane never runs Triton's compiler, so type errors or unsupported operations in
the compiled path (fp64 dots, bf16 casts, dynamic loop bounds, runtime branches) would only
show on a GPU. ``triton.compile`` with an explicit target lowers each kernel to PTX and a cubin
here. This checks compilation only, not results (``tests/test_triton_gpu.py`` does that).
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(r'''
    import inspect
    import sys
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from sap_kernels.kernels.triton import _common, conv_gram, gram, projection

    target = GPUTarget("cuda", 90, 32)
    SMEM_MAX = 227 * 1024  # an H100's shared memory per block

    def build(kernel, ptrs, consts, stages=3, warps=4):
        sig = {p: "i32" for p in inspect.signature(kernel.fn).parameters}
        sig.update(ptrs)
        sig.update({k: "constexpr" for k in consts})
        out = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts), target=target,
                             options=dict(num_warps=warps, num_stages=stages))
        assert out.asm["cubin"], kernel.fn.__name__
        assert out.metadata.shared <= SMEM_MAX, (kernel.fn.__name__, consts, out.metadata.shared)
        return 1

    part = sys.argv[1]
    n = 0
    variants = [v for v in [("fp32", 1, "ieee"), ("fp32", 1, "tf32"), ("fp32", 2, "ieee"), ("bf16", 0, "ieee"),
                            ("fp16", 0, "ieee"), ("fp64", 0, "ieee")] if (v[0] == "fp32") == (part == "fp32")
                and part != "tilings"]
    for xdt, cast, prec in variants:
        fp64 = xdt == "fp64"
        acc = "fp64" if fp64 else "fp32"
        for split in (False, True):
            common = dict(CAST=cast, PRECISION=prec, INTERPRET=False, ACC_FP64=fp64, SPLIT=split)
            n += build(gram._gram_kernel, dict(x_ptr="*" + xdt, tiles_ptr="*i32", dst_ptr="*" + acc),
                       dict(BLOCK_K=64, BLOCK_M=32, **common))
            n += build(conv_gram._conv_gram_kernel, dict(x_ptr="*" + xdt, tiles_ptr="*i32", dst_ptr="*" + acc),
                       dict(KD=1, KH=3, KW=3, SD=1, SH=2, SW=1, PD=0, PH=1, PW=1, DD=1, DH=1, DW=2,
                            BLOCK_K=32, BLOCK_M=64, **common), stages=2)
        if xdt in ("fp32", "fp64"):
            for scale in (False, True):
                n += build(projection._scaled_mm_kernel,
                           dict(a_ptr="*" + acc, b_ptr="*" + acc, c_ptr="*" + acc, e_ptr="*" + acc, alpha="fp32"),
                           dict(SCALE=scale, BLOCK_R=64, BLOCK_C=64, BLOCK_I=32, CAST=cast, PRECISION=prec,
                                INTERPRET=False, ACC_FP64=fp64))
    # every tiling the GPU tiling search (benchmarks/tune_triton.py) tries, in TF32
    sys.path.insert(0, "benchmarks")
    from tune_triton import CONFIGS
    for bk, bm, warps, stages in (CONFIGS if part == "tilings" else []):
        n += build(conv_gram._conv_gram_kernel, dict(x_ptr="*fp32", tiles_ptr="*i32", dst_ptr="*fp32"),
                   dict(KD=1, KH=3, KW=3, SD=1, SH=1, SW=1, PD=0, PH=1, PW=1, DD=1, DH=1, DW=1,
                        BLOCK_K=bk, BLOCK_M=bm, CAST=1, PRECISION="tf32", INTERPRET=False, ACC_FP64=False,
                        SPLIT=True), stages=stages, warps=warps)
    for acc in (("fp32", "fp64") if part == "tilings" else ()):
        n += build(_common._reduce_splits_kernel, dict(ws_ptr="*" + acc, tiles_ptr="*i32", out_ptr="*" + acc),
                   dict(BLOCK=64))
    print("compiled", n)
''')


# Three parts (the fp32 variants; the bf16, fp16 and fp64 ones; the tiling search's tilings and the
# split reduction), so that a parallel test run compiles them at once; each part's count proves that
# none was left out (gram + conv_gram, with and without split, per variant; projection with and
# without scale for fp32 and fp64).
PARTS = {"fp32": 3 * 2 * 2 + 3 * 2, "other_dtypes": 3 * 2 * 2 + 1 * 2, "tilings": None}


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_kernel_compiles_for_sm90(tmp_path, part):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "cache")  # really compile, no cached cubins
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", SCRIPT, part], env=env, capture_output=True, text=True, timeout=600,
                         cwd=root)
    if res.returncode != 0 and "ptxas" in res.stderr and "not found" in res.stderr.lower():
        pytest.skip("Triton's bundled ptxas is not available")
    assert res.returncode == 0, res.stderr[-4000:]
    expected = PARTS[part] if PARTS[part] is not None else len(_tiling_configs(root)) + 2
    assert f"compiled {expected}\n" in res.stdout, res.stdout


def _tiling_configs(root: str) -> list[tuple[int, int, int, int]]:
    """``benchmarks/tune_triton.CONFIGS``, read without importing the script."""
    tree = ast.parse(open(os.path.join(root, "benchmarks", "tune_triton.py")).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONFIGS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError("benchmarks/tune_triton.py defines no CONFIGS")
