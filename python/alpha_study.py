#!/usr/bin/env python3
"""How can alpha be chosen without unseen data? Curves over alpha on real data sets, to JSON.

For each data set, noise kind, rate and seed: train a model that fits its noisy training labels
(vanilla) and one on the clean labels (retrain); run the package's phases with its defaults
(``select_trusted`` -> ``collect`` -> ``decompose``); and for every alpha of the default grid
record what a rule could see (agreement with the noisy training labels, accuracy on a noisy
validation split) beside what it should get (clean test accuracy). ``alpha_study_report.py``
turns the file into the comparison of rules in python/README.md.

    python python/alpha_study.py --out study.json                       # 4 data sets, 3 seeds
    python python/alpha_study.py --out s.json --datasets wine --seeds 0
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

import sap_kernels
from sap_kernels.demo.models import make_model
from sap_kernels.demo.noise import add_label_noise
from sap_kernels.demo.train import TrainConfig, train
from sap_kernels.sap.options.grid import default_alphas


@dataclass
class Data:
    """Standardised ``x_*`` float32 (images ``[N, 1, 8, 8]`` or features ``[N, F]``), ``y_*`` int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int


def load(name: str, seed: int) -> Data:
    """A stratified 60/15/25 split (train/val/test) of a scikit-learn data set."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    image = name == "digits_cnn"
    d = {"digits_cnn": datasets.load_digits, "digits_mlp": datasets.load_digits, "wine": datasets.load_wine,
         "breast_cancer": datasets.load_breast_cancer}[name]()
    x = (d.images if image else d.data).astype(np.float64)
    y = d.target.astype(np.int64)
    rest, test = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=seed)
    tr, val = train_test_split(rest, test_size=0.2, stratify=y[rest], random_state=seed)
    mean, std = (x[tr].mean(), x[tr].std()) if image else (x[tr].mean(0), x[tr].std(0) + 1e-6)

    def t(i):
        v = torch.from_numpy(((x[i] - mean) / std).astype(np.float32))
        return v.unsqueeze(1) if image else v

    return Data(t(tr), torch.from_numpy(y[tr]), t(val), torch.from_numpy(y[val]), t(test), torch.from_numpy(y[test]),
                int(y.max()) + 1)


def builder(name: str, data: Data, seed: int) -> Callable[[], nn.Module]:
    if name == "digits_cnn":
        return lambda: make_model(seed, data.classes, 32)
    width = 256 if name.startswith("digits") else 128

    def mlp() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            f = data.x_train.shape[1]
            return nn.Sequential(nn.Linear(f, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, data.classes))

    return mlp


# Recipes that fit (memorise) the noisy training labels: 100 % training accuracy in every run.
RECIPES = {
    "digits_cnn": TrainConfig(epochs=60, batch_size=32, lr=2e-3),
    "digits_mlp": TrainConfig(epochs=100, batch_size=32, lr=1e-3),
    "wine": TrainConfig(epochs=400, batch_size=16, lr=2e-3),
    "breast_cancer": TrainConfig(epochs=300, batch_size=32, lr=2e-3),
}


def loader(x: torch.Tensor, y: torch.Tensor) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=256)


@torch.no_grad()
def acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model.eval()(x).argmax(1) == y).float().mean())


def curve(model: nn.Module, spectra: sap_kernels.Spectra, data: Data, y_noisy: torch.Tensor,
          yv_noisy: torch.Tensor) -> list[dict]:
    """Per alpha (``inf`` first): clean test accuracy, noisy val accuracy, noisy train agreement."""
    rows = []
    for a in [math.inf] + default_alphas():
        m = sap_kernels.apply(model, spectra, a)
        rows.append({"alpha": a, "test": acc(m, data.x_test, data.y_test), "val_noisy": acc(m, data.x_val, yv_noisy),
                     "train_noisy": acc(m, data.x_train, y_noisy), "train_clean": acc(m, data.x_train, data.y_train)})
    return rows


def run_one(name: str, kind: str, rate: float, seed: int, clean: dict) -> dict:
    data = load(name, seed)
    noisy = add_label_noise(data.y_train, rate, kind, data.classes, 1000 * seed + 1)
    vnoisy = add_label_noise(data.y_val, rate, kind, data.classes, 1000 * seed + 2)
    make, recipe = builder(name, data, seed), RECIPES[name]
    vanilla = train(make(), data.x_train, noisy.labels, recipe, seed)
    if (name, seed) not in clean:
        clean[(name, seed)] = acc(train(make(), data.x_train, data.y_train, recipe, seed), data.x_test, data.y_test)
    train_loader = loader(data.x_train, noisy.labels)
    trusted = sap_kernels.select_trusted(vanilla, train_loader, progress=False)
    spectra = sap_kernels.collect(vanilla, trusted, progress=False).decompose()
    picks = {
        "default": sap_kernels.project(vanilla, train_loader, progress=False).alpha,
        "val_loader": sap_kernels.project(vanilla, train_loader, val_loader=loader(data.x_val, vnoisy.labels),
                                          progress=False).alpha,
    }
    return {"dataset": name, "noise": kind, "rate": rate, "seed": seed, "n_train": len(data.y_train),
            "classes": data.classes, "actual_rate": noisy.rate, "retrain": clean[(name, seed)],
            "fit": acc(vanilla, data.x_train, noisy.labels), "n_trusted": len(trusted),
            "trusted_flipped": float(noisy.flipped[trusted.indices].float().mean()),
            "package_alpha": picks, "curve": curve(vanilla, spectra, data, noisy.labels, vnoisy.labels)}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--datasets", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--noise", nargs="+", default=["symmetric", "asymmetric"])
    p.add_argument("--rates", type=float, nargs="+", default=[0.25, 0.4])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: repeatable)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    results: list[dict] = []
    clean: dict = {}
    for name in args.datasets:
        for kind in args.noise:
            for rate in args.rates:
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    r = run_one(name, kind, rate, seed, clean)
                    results.append(r)
                    best = max(r["curve"], key=lambda row: row["test"])
                    print(f"{name} {kind} {rate} seed {seed}: fit {r['fit']:.3f} vanilla {r['curve'][0]['test']:.3f} "
                          f"best {best['test']:.3f} (alpha {best['alpha']:.3g}) retrain {r['retrain']:.3f} "
                          f"[{time.perf_counter() - t0:.0f}s]", flush=True)
                    with open(args.out, "w") as f:
                        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
