"""``project`` against the published SAP pipeline (``authors_pipeline.py``), wall time and peak memory.

Each measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its
own. Random weights, random inputs, class-balanced random labels. Prints a table (``--csv PATH``
also writes it), the phases of every method, and this machine's floor: the model's forward pass
over the samples plus the Gram work (one triangle of every Gram, ``M K (K + 1)`` FLOP per layer)
at the fp32 GEMM rate measured here (a 2048^3 ``torch.mm``).

    python benchmarks/bench_project_cpu.py                   # ResNet-18/32x32: published at 300, 1000; project at 1000
    python benchmarks/bench_project_cpu.py --model vit_b_16  # torchvision ViT-B/16 at 224x224, 1,000 samples
    python benchmarks/bench_project_cpu.py --quick           # 20 samples (ViT at 32x32): checks the script only
    python benchmarks/bench_project_cpu.py --methods project-solve project-sweep --n 1000

Methods: ``published`` (the authors' pipeline as their scripts run it: curvature ranking,
per-batch row budget, 50,000-row cut, float32 SVD of input- and output-side rows, input-side
projection at ``--alpha``; at each ``--authors-n``), ``project-solve`` (fixed alpha, one float64
Cholesky solve per layer: the default when alpha is given), ``project-eigh`` (fixed alpha through
the eigendecomposition), ``project-sweep`` (``project`` without alpha: eigendecomposition and the
default alpha sweep, scored on ``SWEEP_SAMPLES`` of the given samples as ``val_loader``: the plain
call scores at most that many training samples, and with every given sample trusted it has no
untrusted one left to score on).

Both rank only the samples they are given (``--n`` / ``--authors-n``, all of them trusted); on a
real training set both rank every training sample: ``project`` with one forward pass per sample,
the published code with ten curvature probes of two forward passes and one backward pass each.
The published phases printed separate the ranking from the rest.
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
MODELS = {"resnet18": dict(size=32, classes=10, authors_batch=64, rank_batch=64),
          "vit_b_16": dict(size=224, classes=1000, authors_batch=128, rank_batch=16)}
QUICK_VIT_SIZE = 32
SWEEP_SAMPLES = 250  # project's default max_holdout: what the plain call scores each alpha on
METHODS = ["published", "project-solve", "project-eigh", "project-sweep"]
NAMES = {"published": "published (authors' pipeline)", "project-solve": "project, fixed alpha, solve",
         "project-eigh": "project, fixed alpha, eigh", "project-sweep": "project, alpha sweep"}


def _image_size(args) -> int:
    return QUICK_VIT_SIZE if args.quick and args.model == "vit_b_16" else MODELS[args.model]["size"]


def _build(args):
    import torch

    torch.manual_seed(0)
    if args.model == "resnet18":
        sys.path.insert(0, HERE)
        from resnet_cifar import ResNet18

        return ResNet18(num_classes=MODELS["resnet18"]["classes"])
    from torchvision.models import vit_b_16

    return vit_b_16(weights=None, image_size=_image_size(args))


def _data(args, n: int):
    import torch

    g = torch.Generator().manual_seed(1)
    size, classes = _image_size(args), MODELS[args.model]["classes"]
    inputs = torch.randn(n, 3, size, size, generator=g)
    labels = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]  # every class equally often
    return inputs, labels


def _child(method: str, n: int, args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    model = _build(args)
    inputs, labels = _data(args, n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    extra = {}
    if method.startswith("project"):
        import sap_kernels

        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=args.batch)
        solver = method.split("-")[1]
        kw: dict = dict(alpha=args.alpha, solver=solver)
        if solver == "sweep":
            m = min(SWEEP_SAMPLES, n)
            kw = dict(val_loader=torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(inputs[:m], labels[:m]), batch_size=args.batch))
        res = sap_kernels.project(model, loader, n_trusted=n, progress=False, inplace=True,
                                  eig_dtype=None if args.eig_dtype == "auto" else getattr(torch, args.eig_dtype), **kw)
        phases = dict(res.timings)
        extra.update(alpha=res.alpha, scored=sum(1 for a in res.scores if a != float("inf")))
    else:
        sys.path.insert(0, HERE)
        from authors_pipeline import authors_project

        out = authors_project(model, inputs, labels, args.alpha, n_trusted=n, num_classes=MODELS[args.model]["classes"],
                              ranking=args.authors_ranking, batch_size=args.authors_batch,
                              rank_batch_size=args.authors_rank_batch, output_side=not args.authors_input_only,
                              forget_samples=args.authors_forget)
        phases = out["phases"]
        extra.update(n_trusted=out["n_trusted"], per_batch=out["per_batch"], max_rows=max(out["rows"].values()))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "n": n, "wall_s": wall, "peak_rss_gb": peak / 2**20,
            "extra_rss_gb": (peak - base) / 2**20, "phases": phases, **extra}


def _floor(n: int, args) -> dict:
    """What this CPU needs at the least: the model's forward pass over ``n`` samples, the Gram
    work at the measured GEMM rate; and, from one sample's shapes, the host memory the published
    pipeline's kept rows will take (an estimate, not a measurement)."""
    import torch

    torch.set_num_threads(args.threads)
    model = _build(args).eval()
    size = _image_size(args)
    work = []

    def count(mod, inp, out):
        x = inp[0]
        if isinstance(mod, torch.nn.MultiheadAttention):  # packed in-projection input and out_proj input
            rows, k = x.numel() // x.shape[-1], x.shape[-1]
            work.append(2 * rows * k * (k + 1))
        elif isinstance(mod, torch.nn.Conv2d):
            k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            work.append(out.shape[-1] * out.shape[-2] * k * (k + 1) * mod.groups)
        else:
            k = x.shape[-1]
            work.append(x.numel() // k * k * (k + 1))  # FLOP per sample, one triangle

    kinds = (torch.nn.Conv2d, torch.nn.Linear, torch.nn.MultiheadAttention)
    inner = {id(m.out_proj) for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)}
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, kinds) and id(m) not in inner]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()

    sys.path.insert(0, HERE)
    import authors_pipeline as ap

    with ap._Capture(ap.published_layers(model), output_side=True) as cap, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    shapes = {key: (rows.shape[0], rows.shape[1]) for key, rows in cap.batch.items()}  # per sample: rows, K

    def kept_gb(count: int, side: str) -> tuple[float, float]:
        budget, bs, total, batch = ap.rows_per_batch(count, args.authors_batch), args.authors_batch, 0.0, 0.0
        for (_, s), (rps, k) in shapes.items():
            if side != "both" and s != side:
                continue
            kept = sum(min(min(bs, count - a) * rps, budget) for a in range(0, count, bs))
            total += min(kept, ap.MAX_SAMPLES) * k * 4
            batch += min(bs, count) * rps * k * 4
        return total / 2**30, batch / 2**30

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    rate = 2 * 2048**3 / sorted(times)[2]
    x = torch.randn(min(args.batch, n), 3, size, size)
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        done = 0
        while done < n:
            model(x[: n - done])
            done += x.shape[0]
        forward = time.perf_counter() - t0
    memory = {str(m): {"input_side": kept_gb(m, "pre"), "both_sides": kept_gb(m, "both")} for m in args.authors_n}
    return {"gemm_gflops": rate / 1e9, "gram_tflop": sum(work) * n / 1e12, "forward_s": forward,
            "published_rows_gb": memory}


def _run(method: str, n: int, args, argv: list[str]) -> dict:
    cmd = [sys.executable, __file__, *argv, "--child", method, "--child-n", str(n)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"method": method, "n": n, "error": f"over the {args.timeout:g} s timeout"}
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [""])[-1]
        if proc.returncode in (-9, 137):
            why = f"killed (exit {proc.returncode}; out of memory?) {why}"
        return {"method": method, "n": n, "error": why or f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18", choices=sorted(MODELS),
                    help="resnet18 (CIFAR ResNet-18, 32x32, 10 classes), vit_b_16 (torchvision, 224x224, 1000 classes)")
    ap.add_argument("--n", type=int, default=1000, help="trusted samples for project")
    ap.add_argument("--authors-n", type=int, nargs="+", default=[300, 1000],
                    help="sample counts for the published pipeline")
    ap.add_argument("--alpha", type=float, default=3e4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100, help="project's loader batch")
    ap.add_argument("--authors-batch", type=int, help="published --max-batch-size (default: the scripts' batch, "
                    "64 for CIFAR ResNet-18, 128 for the real-noise models)")
    ap.add_argument("--authors-rank-batch", type=int,
                    help="published curvature ranking batch (default 64 for resnet18; 16 for vit_b_16: two ViT-B/16 "
                    "graphs of 128 samples, as the scripts rank on a GPU, need ~40 GB)")
    ap.add_argument("--authors-ranking", default="curvature", choices=["curvature", "loss", "none"])
    ap.add_argument("--authors-input-only", action="store_true",
                    help="published without its output-side rows and SVDs (which the default projection discards)")
    ap.add_argument("--authors-forget", type=int, default=0,
                    help="also run the published forget set (the scripts: 1350 highest-curvature samples, unused)")
    ap.add_argument("--eig-dtype", default="auto", choices=["auto", "float32", "float64"],
                    help="project's eigendecomposition dtype (auto: its default policy)")
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--quick", action="store_true", help="20 samples (ViT at 32x32), for checking the script only")
    ap.add_argument("--timeout", type=float, help="seconds per measurement")
    ap.add_argument("--csv")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.n, args.authors_n, args.batch = 20, [20], 10
        args.authors_batch = args.authors_batch or 10
        args.authors_rank_batch = args.authors_rank_batch or 10
    args.authors_batch = args.authors_batch or MODELS[args.model]["authors_batch"]
    args.authors_rank_batch = args.authors_rank_batch or MODELS[args.model]["rank_batch"]
    if args.child == "floor":
        print(json.dumps(_floor(args.child_n, args)))
        return
    if args.child:
        print(json.dumps(_child(args.child, args.child_n, args)))
        return
    argv = [a for a in sys.argv[1:] if a != "--quick"] + ["--authors-batch", str(args.authors_batch),
                                                         "--authors-rank-batch", str(args.authors_rank_batch)]
    if args.quick:
        argv += ["--quick"]
    import torch

    rows = []
    for m in args.methods:
        for n in (args.authors_n if m == "published" else [args.n]):
            rows.append(_run(m, n, args, argv))
    size = _image_size(args)
    print(f"{args.model} ({size}x{size}), CPU, {args.threads} threads, torch {torch.__version__}, alpha={args.alpha:g}"
          f"{' (quick: not a measurement)' if args.quick else ''}")
    sides = "input side only" if args.authors_input_only else "input and output side"
    print(f"published: ranking {args.authors_ranking} (batch {args.authors_rank_batch}), --max-batch-size "
          f"{args.authors_batch}, max 50,000 rows, {sides}"
          f"{f', forget set {args.authors_forget}' if args.authors_forget else ''}; project: batch {args.batch}, "
          f"eig dtype {args.eig_dtype}")
    print(f"{'method':<32} {'samples':>7} {'wall s':>8} {'peak RSS GB':>12} {'s/sample':>9}")
    for r in rows:
        if "error" in r:
            print(f"{NAMES[r['method']]:<32} {r['n']:>7}  failed: {r['error']}")
            continue
        print(f"{NAMES[r['method']]:<32} {r['n']:>7} {r['wall_s']:>8.1f} {r['peak_rss_gb']:>12.2f} "
              f"{r['wall_s'] / r['n']:>9.3f}")
    ok = [r for r in rows if "error" not in r]
    for r in ok:
        note = ""
        if r["method"] == "published":
            note = (f" ({r['n_trusted']} trusted, {r['per_batch']} rows per layer per batch, largest layer "
                    f"{r['max_rows']} rows)")
        elif r["method"] == "project-sweep":
            note = f" (alpha chosen {r['alpha']:g})"
        print(f"{NAMES[r['method']]} at {r['n']}: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["phases"].items()) + note)
    pub = {r["n"]: r for r in ok if r["method"] == "published"}
    for r in ok:
        if r["method"] != "published" and r["n"] in pub:
            b = pub[r["n"]]
            print(f"published at {r['n']} samples took {b['wall_s'] / r['wall_s']:.1f}x the wall time of "
                  f"{NAMES[r['method']]}")
    floor = _run("floor", args.n, args, argv)
    if "error" in floor:
        print(f"floor: failed: {floor['error']}")
    else:
        gram_s = floor["gram_tflop"] * 1e3 / floor["gemm_gflops"]
        least = floor["forward_s"] + gram_s
        m = min(SWEEP_SAMPLES, args.n)
        pass_s = floor["forward_s"] * m / args.n

        def sweep_floor(scored: int) -> float:  # + a scoring pass per alpha scored and the unchanged model
            return least + (scored + 1) * pass_s

        print(f"floor at {args.n} samples: forward pass {floor['forward_s']:.1f} s; one triangle of every Gram "
              f"({floor['gram_tflop']:.2f} TFLOP) at the measured {floor['gemm_gflops']:.0f} GFLOP/s fp32 GEMM rate "
              f"{gram_s:.1f} s; fixed alpha: {least:.1f} s together; sweep: that plus {pass_s:.1f} s per scoring "
              f"forward pass over {m} samples (one per alpha scored and one for the unchanged model; "
              "decompositions not counted)")
        for r in ok:
            if r["method"].startswith("project") and "trusted+activations" in r["phases"]:
                act = r["phases"]["trusted+activations"]
                own = sweep_floor(r["scored"]) if r["method"] == "project-sweep" else least
                print(f"{NAMES[r['method']]}: ranking + activation pass {act:.1f} s = {act / least:.2f}x the "
                      f"fixed-alpha floor; whole call {r['wall_s'] / own:.2f}x its floor")
        for m, est in floor["published_rows_gb"].items():
            print(f"published at {m}, estimated from one sample's shapes (not measured): kept rows "
                  f"{est['input_side'][0]:.1f} GB input side / {est['both_sides'][0]:.1f} GB both sides, plus one "
                  f"batch's rows held at once {est['input_side'][1]:.1f} / {est['both_sides'][1]:.1f} GB")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["model", "method", "n", "wall_s", "peak_rss_gb", "extra_rss_gb", "phases",
                                              "error"], extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({**r, "model": args.model, "phases": json.dumps(r.get("phases", {}))})


if __name__ == "__main__":
    main()
