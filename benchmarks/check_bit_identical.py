#!/usr/bin/env python3
"""Whether two checkouts of the package give bit-identical ``project()`` results.

Runs ``sap_kernels.project`` on a fixed set of small models (the digits CNN of
``sap_kernels.demo``, an MLP, a model with ``nn.MultiheadAttention``, a grouped and depthwise
CNN), seeds and argument variants (without and with ``val_loader``, ``alpha`` given on both
solvers, every ``mode`` and ``location``, ``rounds``, every trusted-sample strategy, given clean
samples, a clean loader, the one-pass route, ``skip_head``) once per checkout, each in its own
process with ``PYTHONPATH`` set to that checkout, and compares the projected weights, alpha, alpha
scores, trusted and hold-out indices exactly (``torch.equal``: same dtype, same bits).

    python3 benchmarks/check_bit_identical.py --before /tmp/before --after . [--work DIR]

The models are built and trained once, by the ``--before`` checkout's process, and saved, so both
sides start from the same weights. Everything runs on the CPU on one thread. Exit status 0 when
every case is identical.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable

import torch
from torch import nn

SEEDS = (0, 1)


class MLP(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Linear(12, 48), nn.ReLU(), nn.Linear(48, 32), nn.Tanh(), nn.Linear(32, 3))


class Attention(nn.Module):
    """Tokens ``[B, 6, 8]``: an input Linear, self-attention, a pooled classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.mlp = nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        a, _ = self.attn(h, h, h, need_weights=False)
        h = torch.relu(self.mlp(h + a))
        out: torch.Tensor = self.head(h.mean(1))
        return out


class Grouped(nn.Sequential):
    """Grouped and depthwise convolutions on ``[B, 4, 10, 10]``."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(4, 12, 3, padding=1), nn.ReLU(),
            nn.Conv2d(12, 12, 3, padding=1, groups=12), nn.ReLU(),  # depthwise
            nn.Conv2d(12, 16, 3, stride=2, groups=4), nn.ReLU(),  # grouped
            nn.Conv2d(16, 16, 1, dilation=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
        )


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g)
        for start in range(0, len(y), 64):
            idx = order[start:start + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def _noisy(y: torch.Tensor, classes: int, seed: int, rate: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    flip = torch.rand(len(y), generator=g) < rate
    return torch.where(flip, torch.randint(0, classes, y.shape, generator=g), y)


def _synthetic(shape: tuple[int, ...], classes: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    w = torch.randn(int(torch.tensor(shape).prod()), classes, generator=g)
    return x, (x.reshape(n, -1) @ w).argmax(1)


def prepare(path: str) -> None:
    """Build, train and save every model and data set (run by the ``--before`` checkout)."""
    from sap_kernels.demo.data import load_digits_splits
    from sap_kernels.demo.models import make_model

    out: dict[str, Any] = {}
    for seed in SEEDS:
        torch.manual_seed(seed)
        d = load_digits_splits(seed)
        y_train = _noisy(d.y_train, 10, seed)
        y_val = _noisy(d.y_val, 10, seed + 7)
        cnn = _train(make_model(seed, width=8), d.x_train, y_train, seed, 6)
        clean = (d.x_train[:300], d.y_train[:300])
        out[f"cnn/{seed}"] = (cnn.state_dict(), (d.x_train, y_train), (d.x_val, y_val), clean)
        for name, cls, shape, classes in (("mlp", MLP, (12,), 3), ("attention", Attention, (6, 8), 4),
                                          ("grouped", Grouped, (4, 10, 10), 5)):
            torch.manual_seed(seed)
            x, y = _synthetic(shape, classes, 500, seed)
            y = _noisy(y, classes, seed)
            model = _train(cls(), x[:400], y[:400], seed, 5)
            out[f"{name}/{seed}"] = (model.state_dict(), (x[:400], y[:400]), (x[400:], y[400:]), (x[:100], y[:100]))
    torch.save(out, path)


def _loader(data: tuple[torch.Tensor, torch.Tensor], batch_size: int = 128) -> Any:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=batch_size)


def _cases(key: str) -> dict[str, Callable[[Any, Any, Any], dict[str, Any]]]:
    """Argument variants per model: name -> (train loader, val loader, clean loader) -> kwargs."""
    common: dict[str, Callable[[Any, Any, Any], dict[str, Any]]] = {
        "plain": lambda tr, va, cl: {},
        "val": lambda tr, va, cl: {"val_loader": va},
        "alpha-solve": lambda tr, va, cl: {"alpha": 100.0},
        "alpha-eigh": lambda tr, va, cl: {"alpha": 100.0, "solver": "eigh"},
        "gpm-val": lambda tr, va, cl: {"val_loader": va, "mode": "gpm"},
        "all-val": lambda tr, va, cl: {"val_loader": va, "location": "all"},
        "one-pass": lambda tr, va, cl: {"alpha": 30.0, "n_trusted": len(tr.dataset)},
    }
    if key != "cnn":
        return common
    return {
        **common,
        "sgp-val": lambda tr, va, cl: {"val_loader": va, "mode": "sgp"},
        "post-alpha": lambda tr, va, cl: {"alpha": 1000.0, "location": "post"},
        "rounds": lambda tr, va, cl: {"alpha": 30.0, "rounds": 2},
        "curvature": lambda tr, va, cl: {"alpha": 100.0, "trusted": "curvature", "n_trusted": 150},
        "random-val": lambda tr, va, cl: {"val_loader": va, "trusted": "random"},
        "unbalanced": lambda tr, va, cl: {"val_loader": va, "class_balanced": False, "n_trusted": 200},
        "holdout": lambda tr, va, cl: {"holdout": 0.2, "alphas": [1.0, 10.0, 100.0, 1000.0]},
        "given-indices": lambda tr, va, cl: {"alpha": 100.0, "trusted": list(range(0, 600, 3))},
        "clean-loader": lambda tr, va, cl: {"val_loader": va, "trusted": cl},
        "skip-head": lambda tr, va, cl: {"val_loader": va, "skip_head": True},
        "eig-f32": lambda tr, va, cl: {"val_loader": va, "eig_dtype": torch.float32, "batch_size": 50},
    }


def _model(key: str) -> nn.Module:
    if key == "cnn":
        from sap_kernels.demo.models import make_model

        return make_model(0, width=8)
    return {"mlp": MLP, "attention": Attention, "grouped": Grouped}[key]()


def dump(models_path: str, out_path: str) -> None:
    """Run every case with the ``sap_kernels`` on ``sys.path`` and save what it returned."""
    import sap_kernels

    torch.set_num_threads(1)
    print(f"sap_kernels from {sap_kernels.__file__}", flush=True)
    stored = torch.load(models_path, weights_only=False)
    results: dict[str, Any] = {}
    for name, (state, train, val, clean) in stored.items():
        key, seed = name.split("/")
        for case, kwargs in _cases(key).items():
            model = _model(key)
            model.load_state_dict(state)
            tr, va, cl = _loader(train), _loader(val), _loader(clean)
            res = sap_kernels.project(model, tr, progress=False, seed=int(seed), **kwargs(tr, va, cl))
            results[f"{name}/{case}"] = {
                "weights": {k: v.clone() for k, v in res.model.state_dict().items()},
                "alpha": res.alpha, "scores": dict(res.scores), "trusted": res.trusted_indices.clone(),
                "holdout": None if res.holdout_indices is None else res.holdout_indices.clone(),
                "layers": [(r.name, r.method, r.rows) for r in res.layers],
            }
            print(f"{name}/{case}: alpha {res.alpha:g}, {len(res.trusted_indices)} trusted", flush=True)
    torch.save(results, out_path)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems = [f"{k}: only in one run" for k in sorted(set(before) ^ set(after))]
    for k in sorted(set(before) & set(after)):
        for field in ("weights", "alpha", "scores", "trusted", "holdout", "layers"):
            if not _same(before[k][field], after[k][field]):
                problems.append(f"{k}: {field} differs")
    return problems


def _run_side(root: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(root), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, os.path.abspath(__file__), *args], env=env, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="the checkout to compare against (also builds the models)")
    ap.add_argument("--after", help="the checkout under test")
    ap.add_argument("--work", help="directory for the models and the two result files (default: a temporary one)")
    ap.add_argument("--prepare", help=argparse.SUPPRESS)
    ap.add_argument("--dump", nargs=2, metavar=("MODELS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return 0
    if args.dump:
        dump(*args.dump)
        return 0
    if not (args.before and args.after):
        ap.error("--before and --after are required")
    work = args.work or tempfile.mkdtemp(prefix="sap_bit_identical_")
    os.makedirs(work, exist_ok=True)
    models, out_before, out_after = (os.path.join(work, f) for f in ("models.pt", "before.pt", "after.pt"))
    if not os.path.exists(models):
        _run_side(args.before, "--prepare", models)
    if not os.path.exists(out_before):
        _run_side(args.before, "--dump", models, out_before)
    _run_side(args.after, "--dump", models, out_after)
    before = torch.load(out_before, weights_only=False)
    after = torch.load(out_after, weights_only=False)
    problems = compare(before, after)
    for p in problems:
        print("DIFFERS", p)
    verdict = "bit-identical" if not problems else f"{len(problems)} differences"
    print(f"{len(before)} cases ({len(SEEDS)} seeds); {verdict}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
