"""CIFAR-10N (Wei et al., ICLR 2022): real human label sets for the 50,000 CIFAR-10 training images.

The labels are under CC BY-NC 4.0: cite "Learning with Noisy Labels Revisited: A Study Using
Real-World Human Annotations" wherever results on them are reported. The shared copy's README
(``../shared/data/cifar10/README.md``) says how the file was joined to the image tree.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .paths import require

#: Short name -> key in the ``.npz`` (the file's own names).
CIFAR10N_SETS: dict[str, str] = {
    "aggre": "aggre_label", "random1": "random_label1", "random2": "random_label2", "random3": "random_label3",
    "worse": "worse_label",
}


@dataclass(frozen=True)
class Cifar10N:
    """``clean``: int64 ``[50000]`` the original labels, in the original training order; ``sets``:
    short name (:data:`CIFAR10N_SETS`) -> int64 ``[50000]`` human labels, same order; ``train_file``:
    ``[50000]`` str, the path inside the image tree of the image at each index."""

    clean: torch.Tensor
    sets: dict[str, torch.Tensor]
    train_file: np.ndarray

    def labels(self, name: str) -> torch.Tensor:
        """The int64 ``[50000]`` label set ``name`` (``"clean"`` or a key of :data:`CIFAR10N_SETS`)."""
        if name == "clean":
            return self.clean
        if name not in self.sets:
            raise KeyError(f"unknown CIFAR-10N label set {name!r}; known: clean, {', '.join(self.sets)}")
        return self.sets[name]


def load_cifar10n(path: str | Path) -> Cifar10N:
    """Read ``cifar10n_labels.npz`` (keys ``clean_label``, ``aggre_label``, ``random_label1..3``,
    ``worse_label``, ``train_file``; no pickle). Raises FileNotFoundError naming a missing file and
    KeyError naming a missing key."""
    with np.load(require(Path(path), "CIFAR-10N label file"), allow_pickle=False) as z:
        missing = [k for k in ("clean_label", "train_file", *CIFAR10N_SETS.values()) if k not in z.files]
        if missing:
            raise KeyError(f"{path}: missing keys {missing}")
        clean = torch.from_numpy(z["clean_label"].astype(np.int64))
        sets = {name: torch.from_numpy(z[key].astype(np.int64)) for name, key in CIFAR10N_SETS.items()}
        files = np.asarray(z["train_file"]).astype(str)
    if any(len(s) != len(clean) for s in sets.values()) or len(files) != len(clean):
        raise ValueError(f"{path}: label sets of different lengths")
    return Cifar10N(clean, sets, files)
