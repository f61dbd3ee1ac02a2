"""``project`` end to end on a CUDA ResNet-18 (32x32): Triton kernels against the torch backend.

Runs the same fixed-alpha projection on the GPU three times: default dispatch (Triton Gram and
projection kernels) with ``solver="eigh"``, ``backend="torch"`` with ``solver="eigh"``, and the
default dispatch with ``solver="solve"`` (float64 Cholesky on the GPU). Prints wall times, phases
and peak GPU memory of each, and the largest relative weight differences triton vs torch and
solve vs eigh.

    python benchmarks/project_gpu_check.py --n 1000
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_cifar import ResNet18  # noqa: E402

import sap_kernels  # noqa: E402


def run(model, loader, alpha, backend, solver):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = sap_kernels.project(model, loader, alpha=alpha, n_trusted=len(loader.dataset), progress=False,
                              backend=backend, solver=solver)
    torch.cuda.synchronize()
    return res, time.perf_counter() - t0, res.timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=3e4)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA device")
    torch.manual_seed(0)
    model = ResNet18().cuda()
    x, y = torch.randn(args.n, 3, 32, 32, device="cuda"), torch.randint(0, 10, (args.n,), device="cuda")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=250)
    print("device", torch.cuda.get_device_name(), "torch", torch.__version__)
    run(model, loader, args.alpha, None, "eigh")  # warm-up: Triton compilation
    results = {}
    for backend, solver in ((None, "eigh"), ("torch", "eigh"), (None, "solve")):
        torch.cuda.reset_peak_memory_stats()
        res, wall, phases = run(model, loader, args.alpha, backend, solver)
        peak = torch.cuda.max_memory_allocated() / 2**30
        name = f"{backend or 'auto (triton)'}, {solver}"
        results[(backend, solver)] = dict(res.model.named_parameters())
        print(f"{name:<22} wall {wall:7.2f} s  peak GPU mem {peak:6.2f} GiB  "
              + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))

    def worst(a, b):
        return max(float((a[n] - b[n]).norm() / b[n].norm()) for n in a if n.endswith("weight"))

    print(f"max relative weight difference: triton vs torch backend (eigh) "
          f"{worst(results[(None, 'eigh')], results[('torch', 'eigh')]):.2e}; solve vs eigh (triton) "
          f"{worst(results[(None, 'solve')], results[(None, 'eigh')]):.2e}")


if __name__ == "__main__":
    main()
