"""Scales, data and resumable JSONL records of ``cifar10.py``."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from cifar10_train import Recipe, normalise

from sap_kernels.datasets import load_cifar10, load_cifar10n, make_label_set, shared_cifar10_dir


@dataclass(frozen=True)
class Scale:
    """``n_train`` training images and ``n_val`` validation images drawn (seeded) from the 50,000,
    ``n_test`` test images (one fixed subset, or all 10,000), the recipe, cleanlab's ``folds``, and the
    fine-tuning baseline's epochs and peak learning rate; ``project_options``: keyword arguments of every
    ``project`` call beyond its defaults (none but at the tiny scale, where a short grid keeps it quick)."""

    n_train: int
    n_val: int
    n_test: int
    recipe: Recipe
    folds: int
    finetune_epochs: int
    finetune_lr: float
    project_options: tuple[tuple[str, Any], ...] = ()

    def config_id(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


SCALES: dict[str, Scale] = {
    # A smoke run: a few hundred images, seconds per training.
    "tiny": Scale(192, 64, 200, Recipe(epochs=4, width=8, blocks=1, batch_size=32), 2, 1, 0.01,
                  (("alphas", (100.0, 1e4)), ("max_holdout", 64))),
    # 2 CPU cores (see python/README.md for how it was chosen): the vanilla model fits its noisy labels.
    "cpu": Scale(2000, 500, 5000, Recipe(epochs=20, width=16, blocks=1, batch_size=128, lr=0.05), 4, 10, 0.005),
    # 2 CPU cores, four times the data and half again the epochs: one cell in about 25 minutes.
    "cpu8k": Scale(8000, 1000, 5000, Recipe(epochs=30, width=16, blocks=1, batch_size=128, lr=0.05), 4, 10, 0.005),
    # One GPU, a short schedule (benchmarks/cifar10_gpu.sh): ResNet-18, the authors' augmentation.
    "gpu": Scale(45000, 5000, 10000, Recipe(epochs=15, width=64, blocks=2, batch_size=512, lr=0.2, augment=True),
                 5, 5, 0.01),
    # The paper: ResNet-18 on 45,000 (+5,000 validation) images, SGD 0.9 / 5e-4, crop + flip, 350 epochs.
    "paper": Scale(45000, 5000, 10000, Recipe(epochs=350, width=64, blocks=2, batch_size=128, lr=0.05, augment=True),
                   5, 10, 0.005),
}


@dataclass
class SeedData:
    """The images of one seed's split (float, normalised, on the device), their clean labels, their
    positions in the original training order, and the fixed test set."""

    x: torch.Tensor
    x_val: torch.Tensor
    pos: torch.Tensor
    pos_val: torch.Tensor
    clean: torch.Tensor
    clean_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def split_positions(scale: Scale, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(50000, generator=torch.Generator().manual_seed(seed))
    return perm[: scale.n_train], perm[scale.n_train : scale.n_train + scale.n_val]


def test_positions(scale: Scale) -> list[int] | None:
    """One seeded subset of the test split for every seed and arm (None: all 10,000)."""
    if scale.n_test >= 10000:
        return None
    return sorted(torch.randperm(10000, generator=torch.Generator().manual_seed(12345))[: scale.n_test].tolist())


def load_data(scale: Scale, seeds: list[int], data: Path | None, labels: Path | None, device: str) -> tuple[
        dict[int, SeedData], Any]:
    """Decode what the seeds need (from the tar, a tree, or torchvision's folder) and CIFAR-10N."""
    shared = shared_cifar10_dir()
    n10 = load_cifar10n(labels or shared / "cifar10n_labels.npz")
    source = data or shared / "cifar10-jpg.tar.gz"
    native = source.is_dir() and ((source / "cifar-10-batches-py").is_dir() or (source / "data_batch_1").is_file())
    splits = {s: split_positions(scale, s) for s in seeds}
    need = sorted({int(p) for a, b in splits.values() for p in torch.cat([a, b])})
    d = load_cifar10(source, train_files=None if native else n10.train_file, train_index=need,
                     test_index=test_positions(scale))
    row = {p: i for i, p in enumerate(need)}
    x_all, x_test = normalise(d.train_x), normalise(d.test_x).to(device)
    out = {}
    for s, (pos, pos_val) in splits.items():
        r, rv = torch.tensor([row[int(p)] for p in pos]), torch.tensor([row[int(p)] for p in pos_val])
        out[s] = SeedData(x_all[r].to(device), x_all[rv].to(device), pos, pos_val, d.train_y[r], d.train_y[rv],
                          x_test, d.test_y.to(device))
    return out, n10


def label_sets(name: str, sd: SeedData, seed: int, n10: Any) -> tuple[Any, Any]:
    """The training and validation label sets ``name`` of one seed (synthetic noise drawn per seed)."""
    train = make_label_set(name, sd.clean, 1000 * seed + 1, cifar10n=n10, index=sd.pos)
    val = make_label_set(name, sd.clean_val, 1000 * seed + 2, cifar10n=n10, index=sd.pos_val)
    return train, val


class Records:
    """The JSONL file: one record per finished arm, keyed by config, seed, label set and arm."""

    def __init__(self, path: Path):
        self.path = path
        self.done: set[tuple[str, int, str, str]] = set()
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    self.done.add((r["config_id"], r["seed"], r["label_set"], r["arm"]))

    def has(self, config_id: str, seed: int, label_set: str, arm: str) -> bool:
        return (config_id, seed, label_set, arm) in self.done

    def add(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.done.add((record["config_id"], record["seed"], record["label_set"], record["arm"]))
