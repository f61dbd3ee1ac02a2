"""``project`` against the published pipeline on ResNet-18 / 32x32, wall time and peak memory.

Each measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its
own. Prints a table; ``--csv PATH`` also writes it.

    python benchmarks/bench_project_cpu.py                 # project at 1000, published at 300
    python benchmarks/bench_project_cpu.py --authors-n 100 --n 1000 --threads 2
    python benchmarks/bench_project_cpu.py --methods project-eigh project-solve

``project-eigh`` eigendecomposes every Gram (what an alpha sweep needs); ``project-solve`` is the
fixed-alpha route (one float64 Cholesky solve per layer), the default when ``alpha`` is given.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _child(method: str, n: int, alpha: float, threads: int, eig_dtype: str) -> dict:
    import torch

    sys.path.insert(0, HERE)
    from resnet_cifar import ResNet18

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ResNet18()
    inputs = torch.randn(n, 3, 32, 32)
    labels = torch.randint(0, 10, (n,))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if method.startswith("project"):
        import sap_kernels

        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=100)
        res = sap_kernels.project(model, loader, alpha=alpha, n_trusted=n, progress=False, inplace=True,
                                  solver=method.split("-")[1],
                                  eig_dtype=None if eig_dtype == "auto" else getattr(torch, eig_dtype))
        phases = res.timings
    else:
        from authors_pipeline import authors_project

        authors_project(model, inputs, alpha)
        phases = {}
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "n": n, "wall_s": wall, "peak_rss_gb": peak / 2**20,
            "extra_rss_gb": (peak - base) / 2**20, "phases": phases}


def _floor(n: int, threads: int) -> dict:
    """What this CPU needs at the least for the activation pass: the model's forward pass plus
    the Gram work (one triangle, ``M K (K + 1)`` FLOP per layer) at the measured fp32 GEMM rate."""
    import torch

    sys.path.insert(0, HERE)
    from resnet_cifar import ResNet18

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ResNet18().eval()
    work = []

    def count(mod, inp, out):
        x = inp[0]
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
            rows = out.shape[-1] * out.shape[-2]
        else:
            k, rows = x.shape[-1], x.numel() // x.shape[-1] // x.shape[0]
        work.append(rows * k * (k + 1))  # FLOP per sample, one triangle

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    rate = 2 * 2048**3 / sorted(times)[2]
    x = torch.randn(100, 3, 32, 32)
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        for _ in range(n // 100):
            model(x)
        forward = time.perf_counter() - t0
    return {"gemm_gflops": rate / 1e9, "gram_tflop": sum(work) * n / 1e12, "forward_s": forward}


def _run(method: str, n: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--n", str(n), "--alpha", str(args.alpha),
           "--threads", str(args.threads), "--eig-dtype", args.eig_dtype]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"method": method, "n": n, "error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="trusted samples for project")
    ap.add_argument("--authors-n", type=int, default=300, help="samples for the published pipeline (1000 needs > 24 GB)")
    ap.add_argument("--alpha", type=float, default=3e4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eig-dtype", default="auto", choices=["auto", "float32", "float64"],
                    help="project's eigendecomposition dtype (auto: its default policy)")
    ap.add_argument("--methods", nargs="+", default=["published", "project-eigh", "project-solve"],
                    choices=["published", "project-eigh", "project-solve"])
    ap.add_argument("--csv")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "floor":
        print(json.dumps(_floor(args.n, args.threads)))
        return
    if args.child:
        print(json.dumps(_child(args.child, args.n, args.alpha, args.threads, args.eig_dtype)))
        return
    import torch

    rows = [_run(m, args.authors_n if m == "published" else args.n, args) for m in args.methods]
    print(f"ResNet-18 (32x32), CPU, {args.threads} threads, torch {torch.__version__}, alpha={args.alpha:g}, "
          f"project eig dtype {args.eig_dtype}")
    print(f"{'method':<26} {'samples':>7} {'wall s':>8} {'peak RSS GB':>12} {'s/sample':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<26} {r['n']:>7}  failed: {r['error']}")
            continue
        name = {"published": "published (unfold+SVD)", "project-eigh": "project, solver='eigh'",
                "project-solve": "project, solver='solve'"}[r["method"]]
        print(f"{name:<26} {r['n']:>7} {r['wall_s']:>8.1f} {r['peak_rss_gb']:>12.2f} {r['wall_s'] / r['n']:>9.3f}")
    ok = {r["method"]: r for r in rows if "error" not in r}
    base = ok.get("published")
    for name, p in ok.items():
        if name == "published":
            continue
        speed = f"per-sample speed-up over published {(base['wall_s'] / base['n']) / (p['wall_s'] / p['n']):.1f}x; " if base else ""
        print(f"{name}: {speed}phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in p["phases"].items()))
    floor = _run("floor", args.n, args)
    if "error" not in floor:
        gram_s = floor["gram_tflop"] * 1e3 / floor["gemm_gflops"]
        least = floor["forward_s"] + gram_s
        print(f"the hardware at {args.n} samples: forward pass {floor['forward_s']:.1f} s; every patch-row product "
              f"(one triangle, {floor['gram_tflop']:.2f} TFLOP) at the measured {floor['gemm_gflops']:.0f} GFLOP/s fp32 "
              f"GEMM rate {gram_s:.1f} s; {least:.1f} s together (the shift route needs fewer multiply-adds)")
        for name, p in ok.items():
            if "activations" in p["phases"]:
                act = p["phases"]["activations"]
                print(f"{name}: activation pass {act:.1f} s = {act / least:.2f}x that time")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["method", "n", "wall_s", "peak_rss_gb", "extra_rss_gb", "error"], extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
