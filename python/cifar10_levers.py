#!/usr/bin/env python3
"""What moves SAP on the CIFAR-10 CPU cell: the method's variants, side, rounds, trusted samples
and layers, each on the same vanilla models ``cifar10.py`` trained and kept (``<out>.models/``).

For every setting, the whole alpha grid is scored on the test images (an oracle: the best alpha no
rule can see, an upper bound on what the setting can give) and on the noisy validation split (what
``val_loader=`` would pick), and the plain call (no validation data) is run; each row reports the
vanilla test accuracy, the best one on the grid with its alpha, the one at the validation pick and
the plain call's. Rows go to a JSONL file as each setting finishes; a rerun skips what is there.

    python python/cifar10.py --scale cpu --label-sets sym25 --seeds 0 1 2 --arms vanilla --out cifar10_cpu.jsonl
    python python/cifar10_levers.py --models cifar10_cpu.models --seeds 0 1 2 --out levers.jsonl
    python python/cifar10_levers.py --out levers.jsonl --summarize
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from cifar10 import make_cell
from cifar10_setup import SCALES, label_sets, load_data
from cifar10_train import accuracy

import sap_kernels

GRID = [10 ** (k / 2) for k in range(13)]
# name -> keyword arguments of project beyond the defaults ("clean" trusted: the positions whose label is right).
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "sgp": {"mode": "sgp"},
    "gpm": {"mode": "gpm"},
    "post": {"location": "post"},
    "all": {"location": "all"},
    "rounds 2": {"rounds": 2},
    "rounds 3": {"rounds": 3},
    "trusted curvature": {"trusted": "curvature"},
    "trusted random": {"trusted": "random"},
    "trusted clean": {"trusted": "clean"},
    "n_trusted 100": {"n_trusted": 100},
    "n_trusted 1000": {"n_trusted": 1000},
    "n_trusted 2000": {"n_trusted": 2000},
    "skip head": {"skip_head": True},
    "skip first conv": {"skip": ["conv1"]},
}


def _options(name: str, cell: Any) -> dict[str, Any]:
    opts = dict(SETTINGS[name])
    if opts.get("trusted") == "clean":  # an oracle: the samples whose given label is right, ranked by loss
        opts["trusted"] = torch.nonzero(cell.noisy == cell.clean).view(-1).cpu()
    return opts


def _per_alpha(cell: Any, vanilla: torch.nn.Module, opts: dict[str, Any]) -> tuple[dict[float, float], float]:
    """Test accuracy at every alpha and the validation pick for ``rounds`` settings, whose sweep
    scores the first round only (``project``'s notice): every alpha's model built with all rounds."""
    from sap_kernels.sap.alpha.rules import best_alpha

    test: dict[float, float] = {}
    val: dict[float, float] = {}
    loader = cell.loader(cell.x, cell.noisy)
    for a in GRID:
        m = sap_kernels.project(vanilla, loader, alpha=a, progress=False, seed=cell.seed, **opts).model
        test[a] = cell.test_acc(m)
        val[a] = accuracy(m, cell.x_val, cell.y_val)
    test[math.inf] = cell.test_acc(vanilla)
    val[math.inf] = accuracy(vanilla, cell.x_val, cell.y_val)
    return test, best_alpha(val)


def run_setting(cell: Any, vanilla: torch.nn.Module, name: str) -> dict[str, Any]:
    opts = _options(name, cell)
    if "rounds" in opts:
        t0 = time.perf_counter()
        test, val_alpha = _per_alpha(cell, vanilla, opts)
        plain = sap_kernels.project(vanilla, cell.loader(cell.x, cell.noisy), progress=False, seed=cell.seed, **opts)
        best = max(GRID, key=lambda a: test[a])
        return {"setting": name, "vanilla": test[math.inf], "best": test[best], "best_alpha": best,
                "val_pick": test[val_alpha], "val_alpha": val_alpha, "plain": cell.test_acc(plain.model),
                "plain_alpha": plain.alpha, "seconds": time.perf_counter() - t0}
    grid = None if opts.get("mode") == "gpm" else GRID  # gpm's grid is of energy shares (its default)
    train = cell.loader(cell.x, cell.noisy)
    t0 = time.perf_counter()
    common = {"progress": False, "seed": cell.seed, **opts}
    on_test = sap_kernels.project(vanilla, train, val_loader=cell.loader(cell.x_test, cell.y_test), alphas=grid,
                                  **common)
    on_val = sap_kernels.project(vanilla, train, val_loader=cell.loader(cell.x_val, cell.y_val), alphas=grid,
                                 **common)
    plain = sap_kernels.project(vanilla, train, **common)
    test = {a: s for a, s in on_test.scores.items()}
    best = max((a for a in test if not math.isinf(a)), key=lambda a: test[a])
    return {"setting": name, "vanilla": test[math.inf], "best": test[best], "best_alpha": best,
            "val_pick": test.get(on_val.alpha, test[math.inf]), "val_alpha": on_val.alpha,
            "plain": cell.test_acc(plain.model), "plain_alpha": plain.alpha, "seconds": time.perf_counter() - t0}


def summarize(rows: list[dict[str, Any]]) -> str:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["setting"], []).append(r)

    def ms(v: list[float]) -> str:
        return f"{statistics.mean(v):+.1f} ± {statistics.stdev(v):.1f}" if len(v) > 1 else f"{v[0]:+.1f}"

    out = ["| setting | seeds | best alpha on the grid (oracle), points | at the val_loader pick, points | "
           "plain call, points | oracle alphas |", "|---|---|---|---|---|---|"]
    for name in [n for n in SETTINGS if n in by]:
        g = by[name]
        out.append(f"| {name} | {len(g)} | {ms([100 * (r['best'] - r['vanilla']) for r in g])} | "
                   f"{ms([100 * (r['val_pick'] - r['vanilla']) for r in g])} | "
                   f"{ms([100 * (r['plain'] - r['vanilla']) for r in g])} | "
                   f"{', '.join(format(r['best_alpha'], '.3g') for r in g)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=Path("cifar10_cpu.models"), help="cifar10.py's kept models")
    p.add_argument("--label-set", default="sym25")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--out", type=Path, default=Path("cifar10_levers.jsonl"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--summarize", action="store_true")
    args = p.parse_args(argv)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.is_file() else []
    if args.summarize:
        print(summarize(rows))
        return 0
    torch.set_num_threads(args.threads)
    scale = SCALES["cpu"]
    data, n10 = load_data(scale, args.seeds, None, None, "cpu")
    for seed in args.seeds:
        path = args.models / f"{scale.config_id()}-s{seed}-{args.label_set}-vanilla.pt"
        if not path.is_file():
            print(f"seed {seed}: no vanilla model at {path} (run cifar10.py first)", file=sys.stderr)
            continue
        train_set, val_set = label_sets(args.label_set, data[seed], seed, n10)
        cell = make_cell(scale, data[seed], train_set, val_set, seed, "cpu")
        vanilla = cell.fresh_model()
        vanilla.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state"])
        vanilla.eval()
        for name in args.settings:
            if any(r["seed"] == seed and r["setting"] == name and r["label_set"] == args.label_set for r in rows):
                continue
            row = {"seed": seed, "label_set": args.label_set, **run_setting(cell, vanilla, name)}
            rows.append(row)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"seed {seed} {name:18s} vanilla {row['vanilla']:.4f} best {row['best']:.4f} "
                  f"(alpha {row['best_alpha']:.3g}) val {row['val_pick']:.4f} plain {row['plain']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
