#!/usr/bin/env python3
"""Benchmark the Gram kernels on every conv layer shape of ResNet-18 (CIFAR, 32x32) and
torchvision ResNet-50 (224x224), and the fused scaled projection.

Per conv layer shape (input channels, input size, kernel, stride, padding; layers that share a
shape are measured once and counted), with one batch size per model chosen so that the explicit
im2col matrix of the largest layer fills about a third of the GPU memory:

- ``triton-ieee`` / ``triton-tf32``: ``sap_kernels`` implicit-im2col Triton ``conv_gram``;
- ``unfold+mm-ieee`` / ``unfold+mm-tf32``: ``F.unfold`` + ``torch.mm`` (unfold time included);
- ``unfold+syrk``: ``F.unfold`` + cuBLAS ``syrk`` through CuPy, when CuPy is installed;
- ``torch-shift``: the torch backend's shift route (stride-1 layers with >= 16 channels: one GEMM
  per kernel-offset shift, no im2col), in fp32.

Reported: median time and the 10th/90th percentiles (``triton.testing.do_bench`` on CUDA),
achieved TFLOP/s, % of the matmul peak measured here (an 8192^3 ``torch.mm`` in fp32 and in TF32),
extra peak memory over the inputs, and the max relative difference to the unfold+mm result.

FLOP convention: a Gram of ``M`` rows and width ``K`` counts ``2 M K^2`` FLOP (``M K^2``
multiply-adds, the full product), per group; a syrk-style kernel that computes only half the
tiles therefore shows up to 2x the "achieved" rate of the work it really does.

``--smoke`` runs tiny shapes on CPU (torch backend, and the Triton interpreter) so the script
itself can be tested without a GPU. The table is printed; a CSV is written only where asked:
``--out`` (a file, or a directory that gets ``bench_gram.csv``) or, without it, ``$OUT`` if set.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

if "--smoke" in sys.argv and not torch.cuda.is_available():
    # Triton reads this when the kernels are decorated, i.e. at their first import below.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sap_kernels import ops  # noqa: E402
from sap_kernels.kernels.torch import shift_gram  # noqa: E402


@dataclass(frozen=True)
class ConvShape:
    c: int
    h: int
    k: int
    stride: int
    pad: int

    def out_size(self) -> int:
        return (self.h + 2 * self.pad - self.k) // self.stride + 1

    @property
    def width(self) -> int:  # K: one patch row
        return self.c * self.k * self.k


def resnet18_cifar() -> list[tuple[str, ConvShape]]:
    """ResNet-18 for 32x32 inputs: 3x3 stride-1 stem, no max-pool, BasicBlocks [2, 2, 2, 2]."""
    layers = [("conv1", ConvShape(3, 32, 3, 1, 1))]
    c, h = 64, 32
    for stage, width in enumerate([64, 128, 256, 512], start=1):
        for block in range(2):
            s = 2 if (block == 0 and stage > 1) else 1
            name = f"layer{stage}.{block}"
            layers.append((f"{name}.conv1", ConvShape(c, h, 3, s, 1)))
            if s != 1 or c != width:
                layers.append((f"{name}.downsample", ConvShape(c, h, 1, s, 0)))
            h = (h + 2 - 3) // s + 1
            layers.append((f"{name}.conv2", ConvShape(width, h, 3, 1, 1)))
            c = width
    return layers


def resnet50_imagenet() -> list[tuple[str, ConvShape]]:
    """torchvision ResNet-50 at 224x224: 7x7/2 stem, 3x3/2 max-pool, Bottlenecks [3, 4, 6, 3]
    with the stride on the 3x3 conv (v1.5)."""
    layers = [("conv1", ConvShape(3, 224, 7, 2, 3))]
    c, h = 64, 56
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for block in range(blocks):
            s = 2 if (block == 0 and stage > 1) else 1
            name = f"layer{stage}.{block}"
            layers.append((f"{name}.conv1", ConvShape(c, h, 1, 1, 0)))
            layers.append((f"{name}.conv2", ConvShape(width, h, 3, s, 1)))
            ho = (h + 2 - 3) // s + 1
            layers.append((f"{name}.conv3", ConvShape(width, ho, 1, 1, 0)))
            if block == 0:
                layers.append((f"{name}.downsample", ConvShape(c, h, 1, s, 0)))
            c, h = 4 * width, ho
    return layers


def unique(layers: list[tuple[str, ConvShape]]) -> list[tuple[list[str], ConvShape]]:
    seen: dict[ConvShape, list[str]] = {}
    for name, shape in layers:
        seen.setdefault(shape, []).append(name)
    return [(names, shape) for shape, names in seen.items()]


# ----------------------------------------------------------------------------- timing
def bench(fn: Callable[[], object], device: torch.device, smoke: bool) -> tuple[float, float, float]:
    """(median, p10, p90) milliseconds."""
    if device.type == "cuda":
        import triton.testing

        q = triton.testing.do_bench(fn, warmup=10, rep=60, quantiles=[0.5, 0.1, 0.9])
        return float(q[0]), float(q[1]), float(q[2])
    fn()
    times = []
    for _ in range(2 if smoke else 5):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[0], times[-1]


def extra_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory allocated by one call beyond what was live before it (MiB); NaN on CPU."""
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def matmul_peak(device: torch.device, tf32: bool, smoke: bool) -> float:
    """Measured dense matmul TFLOP/s (fp32 or TF32) on an n^3 product."""
    n = 256 if smoke else 8192
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        ms = bench(lambda: a @ b, device, smoke)[0]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return 2 * n**3 / (ms * 1e-3) / 1e12


# ----------------------------------------------------------------------------- methods
def unfold_mm(x: torch.Tensor, s: ConvShape, out: torch.Tensor) -> None:
    p = F.unfold(x, s.k, padding=s.pad, stride=s.stride)  # [N, K, L]: the materialised im2col
    p = p.transpose(1, 2).reshape(-1, s.width)
    out.addmm_(p.t(), p)


def make_syrk() -> Optional[Callable]:
    try:
        import cupy
        from cupy import cublas
    except Exception:
        return None

    def unfold_syrk(x: torch.Tensor, s: ConvShape, out: torch.Tensor) -> None:
        p = F.unfold(x, s.k, padding=s.pad, stride=s.stride).transpose(1, 2).reshape(-1, s.width)
        # Row-major P [M, K] is column-major P^T [K, M]: syrk('N') gives P^T P (upper triangle).
        pt = cupy.from_dlpack(p.t())
        o = cupy.from_dlpack(out)
        cublas.syrk("N", pt, out=o, alpha=1.0, beta=1.0, lower=False)

    return unfold_syrk


def triton_available(device: torch.device) -> Optional[str]:
    return ops.available_backends("conv_gram", device).get("triton")


def run_conv(args, device: torch.device, peaks: dict[str, float]) -> list[dict]:
    rows: list[dict] = []
    deadline = time.perf_counter() + args.budget_s if args.budget_s else float("inf")
    syrk = make_syrk() if device.type == "cuda" else None
    why_not_triton = triton_available(device)
    if why_not_triton:
        print(f"# triton skipped: {why_not_triton}")
    models = [("resnet18-cifar", resnet18_cifar(), 1024), ("resnet50-224", resnet50_imagenet(), 256)]
    for model, layers, max_batch in models:
        shapes = unique(layers)
        if args.smoke:
            # Tiny stand-ins with the same kernel/stride/padding: channels /16, size /8.
            shapes = [(n, ConvShape(max(1, s.c // 16), max(s.k, s.h // 8), s.k, s.stride, s.pad)) for n, s in shapes]
            shapes = list({s: n for n, s in shapes}.items())
            shapes = [(n, s) for s, n in shapes][: args.smoke_layers]
            batch = 2
        else:
            budget = args.mem_fraction * torch.cuda.get_device_properties(device).total_memory
            per_sample = max(s.width * s.out_size() ** 2 * 4 for _, s in shapes)
            batch = int(max(1, min(max_batch, budget // per_sample)))
        for i, (names, s) in enumerate(shapes):
            if time.perf_counter() > deadline:
                print(f"# time budget reached: {len(shapes) - i} of {len(shapes)} {model} shapes not measured",
                      flush=True)
                break
            rows += measure_conv_shape(args, device, peaks, model, names, s, batch, syrk, why_not_triton)
    return rows


def measure_conv_shape(args, device: torch.device, peaks: dict[str, float], model: str, names: list[str],
                       s: ConvShape, batch: int, syrk: Optional[Callable], why_not_triton: Optional[str]) -> list[dict]:
    """Every method on one conv shape. Its input and Grams are locals the methods' closures share,
    freed when this returns (before the next shape allocates its own)."""
    rows: list[dict] = []
    x = torch.randn(batch, s.c, s.h, s.h, device=device)
    o = s.out_size()
    m = batch * o * o
    flop = 2.0 * m * s.width**2
    out = torch.zeros(s.width, s.width, device=device)
    ref = torch.zeros_like(out)
    unfold_mm(x, s, ref)
    methods: list[tuple[str, str, Callable[[], object], str]] = []
    for prec in ("ieee", "tf32"):
        tf32 = prec == "tf32"

        def base(tf32=tf32):
            prev = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                unfold_mm(x, s, out)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = prev

        methods.append(("unfold+mm", prec, base, "fp32" if not tf32 else "tf32"))
        if not why_not_triton:
            g3 = out.view(1, s.width, s.width)
            methods.append(("triton", prec, lambda prec=prec, g3=g3: ops.conv_gram(
                x, s.k, stride=s.stride, padding=s.pad, out=g3, backend="triton", precision=prec),
                "fp32" if not tf32 else "tf32"))
        shifted = shift_gram.preferred(ops.conv_geometry(x.shape, s.k, s.stride, s.pad))
        if (args.smoke or shifted) and prec == "ieee":
            # On a GPU only where it takes the shift route (no im2col; torch GEMMs).
            g3 = out.view(1, s.width, s.width)
            methods.append(("torch-shift" if shifted else "torch-backend", prec, lambda g3=g3: ops.conv_gram(
                x, s.k, stride=s.stride, padding=s.pad, out=g3, backend="torch"), "fp32"))
    if syrk is not None:
        methods.append(("unfold+syrk", "ieee", lambda: syrk(x, s, out), "fp32"))
    for method, prec, fn, peak_key in methods:
        try:
            out.zero_()
            fn()
            sym = torch.triu(out) + torch.triu(out, 1).t() if method == "unfold+syrk" else out
            diff = ((sym - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
            mem = extra_memory_mb(fn, device)
            med, lo, hi = bench(fn, device, args.smoke)
        except Exception as exc:  # one failing method must not hide the others
            print(f"# {model} {s} {method}-{prec} failed: {type(exc).__name__}: {exc}")
            continue
        tflops = flop / (med * 1e-3) / 1e12
        print(f"# {model} {'+'.join(names)[:40]} K={s.width} {method}-{prec}: {med:.3f} ms, "
              f"{tflops:.1f} TFLOP/s", flush=True)
        rows.append(dict(
            kind="conv_gram", model=model, layers="+".join(names), count=len(names), batch=batch,
            C=s.c, H=s.h, k=s.k, stride=s.stride, pad=s.pad, K=s.width, M=m,
            method=method, precision=prec, median_ms=med, p10_ms=lo, p90_ms=hi, tflops=tflops,
            pct_peak=100 * tflops / peaks[peak_key], extra_mem_mb=mem,
            gram_mb=s.width**2 * 4 / 2**20, rel_diff_vs_unfold_mm=diff,
        ))
    return rows


def run_projection(args, device: torch.device, peaks: dict[str, float]) -> list[dict]:
    """Fused ``(W V * lambda) V^T`` vs two ``torch.mm`` (+ the lambda computation)."""
    from sap_kernels.ops.scales import sap_scales

    rows = []
    cases = [(8, 27), (16, 40)] if args.smoke else [(64, 576), (128, 1152), (256, 2304), (512, 4608), (10, 512),
                                                      (2048, 512), (1000, 2048)]
    why_not_triton = ops.available_backends("scaled_projection", device).get("triton")
    for o, k in cases:
        a = torch.randn(2 * k, k, device=device)
        e, v = torch.linalg.eigh(a.T @ a)
        w = torch.randn(o, k, device=device)
        alpha = 3e4
        flop = 2.0 * 2 * o * k * k

        def two_mm():
            return ((w @ v) * sap_scales(e, alpha)) @ v.T

        ref = two_mm()
        methods = [("two-torch.mm", "ieee", two_mm)]
        if not why_not_triton:
            for prec in ("ieee", "tf32"):
                methods.append(("triton-fused", prec, lambda prec=prec: ops.scaled_projection(
                    w, e, v, alpha, backend="triton", precision=prec)))
        for method, prec, fn in methods:
            diff = ((fn() - ref).abs().max() / ref.abs().max()).item()
            med, lo, hi = bench(fn, device, args.smoke)
            tflops = flop / (med * 1e-3) / 1e12
            rows.append(dict(
                kind="scaled_projection", model="", layers=f"out={o},K={k}", count=1, batch="", C="", H="",
                k="", stride="", pad="", K=k, M=o, method=method, precision=prec, median_ms=med, p10_ms=lo,
                p90_ms=hi, tflops=tflops, pct_peak=100 * tflops / peaks["fp32" if prec == "ieee" else "tf32"],
                extra_mem_mb=extra_memory_mb(fn, device), gram_mb="", rel_diff_vs_unfold_mm=diff,
            ))
    return rows


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    cols = [("kind", 5), ("model", 14), ("layers", 24), ("batch", 5), ("K", 5), ("M", 9), ("method", 13),
            ("precision", 4), ("median_ms", 9), ("p10_ms", 9), ("p90_ms", 9), ("tflops", 9), ("pct_peak", 8),
            ("extra_mem_mb", 9), ("rel_diff_vs_unfold_mm", 9)]
    names = {"precision": "prec", "extra_mem_mb": "extra_MiB", "rel_diff_vs_unfold_mm": "rel_diff", "kind": "op"}
    print(" ".join(f"{names.get(c, c)[:w]:>{w}}" for c, w in cols))
    for r in rows:
        cells = []
        for c, w in cols:
            v = r[c]
            if c == "kind":
                v = "gram" if v == "conv_gram" else "proj"
            if isinstance(v, float):
                cells.append(f"{v:>{w}.3g}")  # numbers are never cut
            else:
                v = str(v)
                cells.append(f"{v[-w:]:>{w}}")  # long layer lists keep their end
        print(" ".join(cells))


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (tests the script)")
    ap.add_argument("--smoke-layers", type=int, default=3, help="layers per model in --smoke")
    ap.add_argument("--out", default=os.environ.get("OUT") or None,
                    help="CSV file or directory (default: $OUT when set, else no CSV is written)")
    ap.add_argument("--mem-fraction", type=float, default=0.3,
                    help="GPU memory share for the largest layer's im2col matrix (sets the batch)")
    ap.add_argument("--skip-projection", action="store_true")
    ap.add_argument("--budget-s", type=float, default=0.0,
                    help="stop starting new conv shapes after this many seconds (0: no limit)")
    args = ap.parse_args(argv)

    if torch.cuda.is_available() and not args.smoke:
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
    elif args.smoke:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    else:
        print("no CUDA device: run with --smoke for the CPU check of this script", file=sys.stderr)
        return 2
    try:
        import triton

        tver = triton.__version__
    except Exception:
        tver = "absent"
    peaks = {"fp32": matmul_peak(device, False, args.smoke), "tf32": matmul_peak(device, True, args.smoke)}
    header = (f"# device: {name}; torch {torch.__version__}; triton {tver}; measured matmul peak: "
              f"fp32 {peaks['fp32']:.1f} TFLOP/s, tf32 {peaks['tf32']:.1f} TFLOP/s; FLOP = 2*M*K^2 per Gram")
    rows = run_conv(args, device, peaks)
    if not args.skip_projection:
        rows += run_projection(args, device, peaks)
    if not rows:
        print("no measurement finished", file=sys.stderr)
        return 1
    print_table(rows, header)
    path = args.out
    if path is None:
        return 0
    if os.path.isdir(path) or path.endswith(os.sep):
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, "bench_gram.csv")
    with open(path, "w", newline="") as f:
        f.write(header + "\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    print(f"# wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
