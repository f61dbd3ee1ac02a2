"""scikit-learn's handwritten digits as normalised image tensors, split train/val/test."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NUM_CLASSES = 10


@dataclass(frozen=True)
class DigitsSplits:
    """Stratified splits of the digits data set.

    ``x_*`` are float32 ``[N, 1, 8, 8]`` images standardised with the training split's pixel
    mean and std; ``y_*`` are int64 ``[N]`` clean labels in ``[0, 10)``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def sizes(self) -> tuple[int, int, int]:
        """``(n_train, n_val, n_test)``."""
        return len(self.y_train), len(self.y_val), len(self.y_test)


def load_digits_splits(
    seed: int = 0, *, val_fraction: float = 0.15, test_fraction: float = 0.25
) -> DigitsSplits:
    """Load the 1797 bundled 8x8 digits and split them, stratified by class.

    Args:
        seed: seeds the split (same seed, same split).
        val_fraction: share of all samples in the validation split.
        test_fraction: share of all samples in the test split; the rest is training data.
    Returns:
        :class:`DigitsSplits`; with the defaults about 1078 / 270 / 449 samples.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits demo needs scikit-learn: pip install 'sap_kernels[demo]'"
        ) from exc
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 < val_fraction, test_fraction and val_fraction + test_fraction < 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    digits = load_digits()
    x = digits.images.astype(np.float32)  # [1797, 8, 8], values 0..16
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, stratify=y[rest], random_state=seed)
    mean = float(x[train].mean())
    std = float(x[train].std())

    def images(i: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x[i] - mean) / std).unsqueeze(1).contiguous()

    def labels(i: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y[i]).clone()

    return DigitsSplits(
        images(train), labels(train), images(val), labels(val), images(test), labels(test)
    )


def tensor_loader(
    x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
) -> torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]:
    """A re-iterable, unshuffled loader of ``(x[B, ...], y[B])`` batches in sample order.

    Sample order matters: :func:`sap_kernels.project` reports trusted samples as indices into it.
    """
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
