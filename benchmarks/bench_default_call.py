#!/usr/bin/env python3
"""The default call ``project(model, loader)`` on ResNet-18 / 32x32 (random weights), this
checkout against another (``--baseline DIR``: a directory holding an older ``sap_kernels``
package, e.g. ``git archive <commit> sap_kernels | tar -x -C DIR``), each in a fresh subprocess,
alternating, in one run: wall time per phase and in all.

    git archive c43e3d5 sap_kernels | tar -x -C /tmp/old
    python benchmarks/bench_default_call.py --baseline /tmp/old --n 5000 --repeat 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_CHILD = """
import json, sys, time, torch
sys.path.insert(0, {bench!r})
from resnet_cifar import ResNet18
import sap_kernels
torch.set_num_threads({threads})
torch.manual_seed(0)
model = ResNet18()
g = torch.Generator().manual_seed(0)
x, y = torch.randn({n}, 3, 32, 32, generator=g), torch.randint(0, 10, ({n},), generator=g)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=100)
t0 = time.perf_counter()
res = sap_kernels.project(model, loader, progress=False)
print(json.dumps(dict(wall=time.perf_counter() - t0, phases=res.timings, alpha=res.alpha,
                      n_trusted=len(res.trusted_indices), where=sap_kernels.__file__)))
"""


def run(package_dir: str, n: int, threads: int) -> dict:
    code = _CHILD.format(bench=HERE, threads=threads, n=n)
    env = {**os.environ, "PYTHONPATH": package_dir}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="directory containing the older sap_kernels package")
    ap.add_argument("--n", type=int, default=5000, help="training samples (default %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    print(f"# ResNet-18/32x32, {args.n} samples, project(model, loader) with defaults, {args.threads} threads")
    rows = []
    for i in range(args.repeat):
        for name, where in (("baseline", args.baseline), ("this checkout", ROOT)):
            t0 = time.perf_counter()
            r = run(where, args.n, args.threads)
            rows.append((name, r))
            print(f"  {name} run {i + 1}: {r['wall']:.1f} s ({time.perf_counter() - t0:.0f} s with start-up), "
                  f"alpha {r['alpha']:.4g}, {r['n_trusted']} trusted; phases "
                  + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()), flush=True)
    best = {name: min(r["wall"] for m, r in rows if m == name) for name in ("baseline", "this checkout")}
    print(f"\nbest of {args.repeat}: baseline {best['baseline']:.1f} s, this checkout {best['this checkout']:.1f} s, "
          f"speed-up {best['baseline'] / best['this checkout']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
