#!/usr/bin/env python3
"""Measure how alpha could be chosen without unseen data: curves over alpha on real data sets.

For each data set, noise kind, rate and seed: train a model that fits its noisy training labels
(vanilla) and one on clean labels (retrain), select trusted samples, collect Grams, decompose once,
and for every alpha of a grid record what each candidate rule could see (accuracy on the noisy
training labels, on the trusted samples, on a held-out half of the trusted samples with Grams
from the other half, on a noisy validation split) beside what it should get (clean test accuracy).
Everything is written to a JSON file; ``alpha_study_report.py`` turns it into the comparison.

    python python/alpha_study.py --out alpha_study.json --datasets digits_cnn wine --seeds 0 1 2
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

from sap_kernels.demo.models import make_model
from sap_kernels.demo.noise import add_label_noise
from sap_kernels.demo.train import TrainConfig, train
from sap_kernels.sap.evaluation import default_alphas
from sap_kernels.sap.layers import discover
from sap_kernels.sap.project import _collect, _selected, _spectrum
from sap_kernels.sap.trusted import select_trusted
from sap_kernels.sap.weights import LayerProjector


@dataclass
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int


def _split(x: np.ndarray, y: np.ndarray, seed: int, image: bool) -> Data:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=0.25, stratify=y, random_state=seed)
    train_i, val = train_test_split(rest, test_size=0.2, stratify=y[rest], random_state=seed)
    mean, std = x[train_i].mean(0), x[train_i].std(0) + 1e-6
    if image:
        mean, std = x[train_i].mean(), x[train_i].std()

    def t(i):
        v = torch.from_numpy(((x[i] - mean) / std).astype(np.float32))
        return v.unsqueeze(1) if image else v

    def lab(i):
        return torch.from_numpy(y[i].astype(np.int64))

    return Data(t(train_i), lab(train_i), t(val), lab(val), t(test), lab(test), int(y.max()) + 1)


def load(name: str, seed: int) -> Data:
    from sklearn import datasets

    if name.startswith("digits"):
        d = datasets.load_digits()
        image = name == "digits_cnn"
        x = d.images.astype(np.float32) if image else d.data.astype(np.float32)
        return _split(x, d.target, seed, image)
    loader = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer, "iris": datasets.load_iris}[name]
    d = loader()
    return _split(d.data.astype(np.float64), d.target, seed, image=False)


def mlp(features: int, classes: int, width: int, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             nn.Linear(width, classes))


def build(name: str, data: Data, seed: int) -> Callable[[], nn.Module]:
    if name == "digits_cnn":
        return lambda: make_model(seed, data.classes, 32)
    width = 256 if name.startswith("digits") else 128
    return lambda: mlp(data.x_train.shape[1], data.classes, width, seed)


RECIPES = {
    "digits_cnn": TrainConfig(epochs=60, batch_size=32, lr=2e-3),
    "digits_mlp": TrainConfig(epochs=100, batch_size=32, lr=1e-3),
    "wine": TrainConfig(epochs=400, batch_size=16, lr=2e-3),
    "breast_cancer": TrainConfig(epochs=300, batch_size=32, lr=2e-3),
    "iris": TrainConfig(epochs=600, batch_size=16, lr=2e-3),
}


@torch.no_grad()
def acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    if len(y) == 0:
        return math.nan
    return float((model(x).argmax(1) == y).float().mean())


def loader(x, y, bs=256):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=bs)


def projectors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_trusted: int, balanced: bool):
    """Trusted selection, Grams and spectra with the package's own code; one projector per layer."""
    model.eval()
    units, selection, _ = discover(model)
    sel = select_trusted(model, loader(x, y), n_trusted=n_trusted, class_balanced=balanced, holdout=0.0,
                         max_holdout=0, seed=0, device=torch.device("cpu"), progress=False)
    return sel, _projectors_for(model, units, selection, sel)


def _projectors_for(model, units, selection, sel):
    collector = _collect(model, units, sel, 256, torch.device("cpu"), None, False)
    out = []
    for t in _selected(units, selection):
        acc_ = collector.streams[t.stream]
        out.append(LayerProjector(t, _spectrum(acc_, None)))
    return out


def half_projectors(model, sel, seed):
    """Projectors from the Grams of a random half of the trusted samples, and the other half's indices."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(sel.labels), generator=g)
    a, b = perm[: len(perm) // 2].sort().values, perm[len(perm) // 2:].sort().values
    units, selection, _ = discover(model)
    half = type(sel)(sel.inputs[a], sel.labels[a], sel.indices[a], sel.losses[a], sel.num_classes, sel.n_seen,
                     sel.batch_size)
    return _projectors_for(model, units, selection, half), b


def curves(model, projs, data, y_noisy, yv_noisy, trusted_idx, alphas, half=None):
    untrusted = torch.ones(len(y_noisy), dtype=torch.bool)
    untrusted[trusted_idx] = False
    rows = []
    for a in [math.inf] + list(alphas):
        for p in projs:
            p.write(a)
        with torch.no_grad():
            pred_tr = model(data.x_train).argmax(1)
            row = {
                "alpha": a,
                "test": acc(model, data.x_test, data.y_test),
                "val_noisy": acc(model, data.x_val, yv_noisy),
                "val_clean": acc(model, data.x_val, data.y_val),
                "train_noisy": float((pred_tr == y_noisy).float().mean()),
                "train_clean": float((pred_tr == data.y_train).float().mean()),
                "untrusted_noisy": float((pred_tr[untrusted] == y_noisy[untrusted]).float().mean()),
                "trusted_noisy": float((pred_tr[~untrusted] == y_noisy[~untrusted]).float().mean()),
            }
        for p in projs:
            p.restore()
        if half is not None:
            hprojs, hidx = half
            for p in hprojs:
                p.write(a)
            idx = trusted_idx[hidx]
            row["half_trusted"] = acc(model, data.x_train[idx], y_noisy[idx])
            for p in hprojs:
                p.restore()
        rows.append(row)
    return rows


def per_layer_curves(model, projs, data, y_noisy, multipliers):
    """Test accuracy with alpha_l = c * K_l per layer, and the rules' inputs."""
    rows = []
    for c in multipliers:
        for p in projs:
            p.write(c * p.target.k)
        with torch.no_grad():
            pred_tr = model(data.x_train).argmax(1)
            rows.append({"c": c, "test": acc(model, data.x_test, data.y_test),
                         "train_noisy": float((pred_tr == y_noisy).float().mean())})
        for p in projs:
            p.restore()
    return rows


def run_one(name: str, kind: str, rate: float, seed: int, trusted_policies, alphas, clean_cache) -> dict:
    data = load(name, seed)
    noisy = add_label_noise(data.y_train, rate, kind, data.classes, 1000 * seed + 1)
    vnoisy = add_label_noise(data.y_val, rate, kind, data.classes, 1000 * seed + 2)
    make = build(name, data, seed)
    recipe = RECIPES[name]
    t0 = time.perf_counter()
    vanilla = train(make(), data.x_train, noisy.labels, recipe, seed)
    key = (name, seed)
    if key not in clean_cache:
        clean_cache[key] = acc(train(make(), data.x_train, data.y_train, recipe, seed), data.x_test, data.y_test)
    out = {
        "dataset": name, "noise": kind, "rate": rate, "seed": seed, "n_train": len(data.y_train),
        "actual_rate": noisy.rate, "retrain": clean_cache[key],
        "vanilla_train_fit": acc(vanilla, data.x_train, noisy.labels),
        "train_seconds": time.perf_counter() - t0, "policies": [],
    }
    for n_trusted, balanced in trusted_policies:
        n = n_trusted if n_trusted >= 1 else max(data.classes, int(round(n_trusted * len(data.y_train))))
        n = min(n, len(data.y_train))
        sel, projs = projectors(vanilla, data.x_train, noisy.labels, n, balanced)
        trusted_idx = sel.indices
        entry = {
            "n_trusted": n, "fraction": n_trusted if n_trusted < 1 else None, "balanced": balanced,
            "trusted_flipped": float(noisy.flipped[trusted_idx].float().mean()),
            "layers": [{"name": p.target.name, "K": p.target.k,
                        "energies": p.spectrum.eigvals.flip(-1).double().clamp_min(0).tolist()} for p in projs],
            "curve": curves(vanilla, projs, data, noisy.labels, vnoisy.labels, trusted_idx, alphas,
                            half=half_projectors(vanilla, sel, seed)),
            "per_layer": per_layer_curves(vanilla, projs, data, noisy.labels, [0.25, 0.5, 1, 2, 4, 8, 16, 32]),
        }
        out["policies"].append(entry)
    return out


def parse(argv: Sequence[str] | None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--datasets", nargs="+", default=["digits_cnn", "digits_mlp", "breast_cancer", "wine"])
    p.add_argument("--noise", nargs="+", default=["symmetric", "asymmetric"])
    p.add_argument("--rates", type=float, nargs="+", default=[0.25, 0.4])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trusted", nargs="+", default=["0.1:1", "0.25:1", "0.25:0", "0.5:1", "1000:0"],
                   help="n_trusted (a fraction of the training set when < 1) : class_balanced")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    policies = []
    for s in args.trusted:
        n, b = s.split(":")
        policies.append((float(n) if float(n) < 1 else int(float(n)), b == "1"))
    alphas = default_alphas()
    results, cache = [], {}
    for name in args.datasets:
        for kind in args.noise:
            for rate in args.rates:
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    r = run_one(name, kind, rate, seed, policies, alphas, cache)
                    results.append(r)
                    best = max(r["policies"][0]["curve"], key=lambda row: row["test"])
                    print(f"{name} {kind} {rate} seed {seed}: fit {r['vanilla_train_fit']:.3f} "
                          f"vanilla {r['policies'][0]['curve'][0]['test']:.3f} best {best['test']:.3f} "
                          f"(alpha {best['alpha']:.3g}) retrain {r['retrain']:.3f} "
                          f"[{time.perf_counter() - t0:.0f}s]", flush=True)
                    with open(args.out, "w") as f:
                        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
