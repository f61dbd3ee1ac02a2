"""Label noise as the SAP paper defines it, with an exact share flipped, and the label sets of a run.

The digits demo's generators (``sap_kernels.demo.noise``) flip each label independently with a
probability; these flip an exact count, as the authors' code does (github.com/sangamesh-kodge/SAP,
``utils.get_mislabeled_dataset``: ``int(rate * N)`` samples drawn by a random permutation, each given
a class drawn uniformly from the other ``C - 1``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .cifar10n import CIFAR10N_SETS, Cifar10N

#: The usual CIFAR-10 class-dependent flips (Patrini et al. 2017): truck -> automobile,
#: bird -> airplane, deer -> horse, cat <-> dog (class indices of ``CLASSES``).
ASYMMETRIC_PAIRS: dict[int, int] = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


@dataclass(frozen=True)
class LabelSet:
    """A training label set beside the clean labels it corrupts. ``name``: e.g. ``"sym25"``,
    ``"asym40"``, ``"aggre"``; ``labels``/``clean``: int64 ``[N]``."""

    name: str
    labels: torch.Tensor
    clean: torch.Tensor

    @property
    def is_wrong(self) -> torch.Tensor:
        """bool ``[N]``: the given label differs from the clean one."""
        return self.labels != self.clean

    @property
    def noise_rate(self) -> float:
        """The share of wrong labels."""
        return float(self.is_wrong.float().mean()) if len(self.labels) else 0.0

    def subset(self, index: torch.Tensor) -> LabelSet:
        """The same set restricted to int64 positions ``index``."""
        return LabelSet(self.name, self.labels[index], self.clean[index])


def _check(labels: torch.Tensor, rate: float) -> None:
    if labels.dim() != 1 or labels.dtype != torch.int64:
        raise ValueError(f"labels must be an int64 [N] tensor, got {labels.dtype} {tuple(labels.shape)}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must lie in [0, 1], got {rate}")


def exact_symmetric_noise(labels: torch.Tensor, rate: float, num_classes: int, seed: int) -> torch.Tensor:
    """Exactly ``int(rate * N)`` labels, chosen uniformly without replacement, each moved to a class
    drawn uniformly from the other ``num_classes - 1``. Returns int64 ``[N]`` (``labels`` unchanged)."""
    _check(labels, rate)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    g = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(labels), generator=g)[: int(rate * len(labels))]
    offset = torch.randint(1, num_classes, (len(chosen),), generator=g)  # 1..C-1: never the same class
    noisy = labels.clone()
    noisy[chosen] = (labels[chosen] + offset) % num_classes
    return noisy


def asymmetric_pairs_noise(labels: torch.Tensor, rate: float, seed: int,
                           pairs: dict[int, int] | None = None) -> torch.Tensor:
    """In every source class of ``pairs`` (default :data:`ASYMMETRIC_PAIRS`), exactly
    ``int(rate * n_c)`` of its ``n_c`` samples, chosen uniformly, get the paired class; other classes
    stay. Returns int64 ``[N]``."""
    _check(labels, rate)
    g = torch.Generator().manual_seed(seed)
    noisy = labels.clone()
    for source, target in sorted((pairs or ASYMMETRIC_PAIRS).items()):
        members = torch.nonzero(labels == source).flatten()
        chosen = members[torch.randperm(len(members), generator=g)[: int(rate * len(members))]]
        noisy[chosen] = target
    return noisy


def make_label_set(name: str, clean: torch.Tensor, seed: int, *, num_classes: int = 10,
                   cifar10n: Cifar10N | None = None, index: torch.Tensor | None = None) -> LabelSet:
    """The label set ``name`` for the clean int64 ``[N]`` labels: ``"clean"``, ``"symNN"`` (NN % symmetric),
    ``"asymNN"`` (NN % of each paired class), or a CIFAR-10N set (``aggre``, ``random1..3``, ``worse``;
    needs ``cifar10n`` and, for a subset of the training images, ``index``: their int64 positions in
    the original order, so that ``clean == cifar10n.clean[index]``). Synthetic noise is drawn on
    ``clean`` itself (seeded by ``seed``)."""
    if name == "clean":
        return LabelSet(name, clean.clone(), clean)
    if name.startswith("sym") and name[3:].isdigit():
        return LabelSet(name, exact_symmetric_noise(clean, int(name[3:]) / 100, num_classes, seed), clean)
    if name.startswith("asym") and name[4:].isdigit():
        return LabelSet(name, asymmetric_pairs_noise(clean, int(name[4:]) / 100, seed), clean)
    if name in CIFAR10N_SETS:
        if cifar10n is None:
            raise ValueError(f"label set {name!r} is a CIFAR-10N set: pass cifar10n=load_cifar10n(...)")
        pos = torch.arange(len(cifar10n.clean)) if index is None else index
        if not torch.equal(cifar10n.clean[pos], clean):
            raise ValueError(f"{name}: the images' labels differ from CIFAR-10N's clean labels (order not joined)")
        return LabelSet(name, cifar10n.labels(name)[pos].clone(), clean)
    raise ValueError(f"unknown label set {name!r}: clean, symNN, asymNN, {', '.join(CIFAR10N_SETS)}")
