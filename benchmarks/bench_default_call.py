#!/usr/bin/env python3
"""The default call ``project(model, loader)`` on ResNet-18 / 32x32 (random weights), this
checkout against another (``--baseline DIR``: a directory holding an older ``sap_kernels``
package, e.g. ``git archive <commit> sap_kernels | tar -x -C DIR``), each in a fresh subprocess,
alternating, in one run: wall time per phase and in all.

    git archive c43e3d5 sap_kernels | tar -x -C /tmp/old
    python benchmarks/bench_default_call.py --baseline /tmp/old --n 5000 --val 0 1000
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
kw = {{}}
if {val}:
    xv, yv = torch.randn({val}, 3, 32, 32, generator=g), torch.randint(0, 10, ({val},), generator=g)
    kw["val_loader"] = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=100)
t0 = time.perf_counter()
res = sap_kernels.project(model, loader, progress=False, **kw)
print(json.dumps(dict(wall=time.perf_counter() - t0, phases=res.timings, alpha=res.alpha, scored=len(res.scores),
                      n_trusted=len(res.trusted_indices), where=sap_kernels.__file__)))
"""


def run(package_dir: str, n: int, threads: int, val: int = 0) -> dict:
    """One call in a fresh interpreter that imports ``sap_kernels`` from ``package_dir``: run there
    (``python -c`` puts the working directory first on ``sys.path``) and checked afterwards, since
    an editable install or the caller's directory would otherwise win."""
    code = _CHILD.format(bench=HERE, threads=threads, n=n, val=val)
    env = {**os.environ, "PYTHONPATH": package_dir}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=package_dir, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"the run for {package_dir} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    expected = os.path.realpath(os.path.join(package_dir, "sap_kernels"))
    if os.path.dirname(os.path.realpath(result["where"])) != expected:
        raise RuntimeError(f"the run meant for {package_dir} imported {result['where']}")
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="directory containing the older sap_kernels package")
    ap.add_argument("--n", type=int, default=5000, help="training samples (default %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--val", type=int, nargs="+", default=[0],
                    help="validation samples: 0 = no val_loader (alpha from training samples), N = a val_loader of "
                         "N separate samples; one setting per value (default %(default)s)")
    args = ap.parse_args(argv)
    print(f"# ResNet-18/32x32, {args.n} samples, project(model, loader[, val_loader]) with defaults, "
          f"{args.threads} threads")
    for val in args.val:
        setting = "no val_loader" if not val else f"val_loader of {val} samples"
        print(f"\n## {setting}")
        rows = []
        for i in range(args.repeat):
            for name, where in (("baseline", args.baseline), ("this checkout", ROOT)):
                t0 = time.perf_counter()
                r = run(where, args.n, args.threads, val)
                rows.append((name, r))
                print(f"  {name} ({os.path.dirname(r['where'])}) run {i + 1}: {r['wall']:.1f} s "
                      f"({time.perf_counter() - t0:.0f} s with start-up), alpha {r['alpha']:.4g}, "
                      f"{r['scored'] - 1} alphas scored, {r['n_trusted']} trusted; phases "
                      + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()), flush=True)
        best = {name: min(r["wall"] for m, r in rows if m == name) for name in ("baseline", "this checkout")}
        print(f"best of {args.repeat} ({setting}): baseline {best['baseline']:.1f} s, this checkout "
              f"{best['this checkout']:.1f} s, speed-up {best['baseline'] / best['this checkout']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
