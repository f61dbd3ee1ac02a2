"""CIFAR-10 as uint8 image tensors, from any of the three formats users have, in a fixed order."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .batches import read_batches_folder
from .jpeg import read_jpeg_tar, read_jpeg_tree
from .paths import require

CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
NUM_CLASSES = len(CLASSES)


@dataclass(frozen=True)
class Cifar10:
    """The two splits. ``train_x``/``test_x``: uint8 ``[N, 3, 32, 32]`` (channels first, RGB);
    ``train_y``/``test_y``: int64 ``[N]`` class indices into :data:`CLASSES`; ``source``: where they
    were read from; ``train_order``: ``"original"`` (CIFAR-10's own training order) or
    ``"sorted"`` (class, then file name: a tree read without ``train_files``)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str
    train_order: str

    def float_images(self, split: str = "train") -> torch.Tensor:
        """float32 ``[N, 3, 32, 32]`` in ``[0, 1]`` of ``split`` (``"train"`` or ``"test"``)."""
        x = self.train_x if split == "train" else self.test_x
        return x.float().div_(255.0)


def _from_arrays(arrays: dict[str, np.ndarray], source: str, order: str) -> Cifar10:
    return Cifar10(
        torch.from_numpy(np.ascontiguousarray(arrays["train_x"])), torch.from_numpy(arrays["train_y"].astype(np.int64)),
        torch.from_numpy(np.ascontiguousarray(arrays["test_x"])), torch.from_numpy(arrays["test_y"].astype(np.int64)),
        source, order,
    )


def load_cifar10(
    source: str | Path, *, train_files: Sequence[str] | np.ndarray | None = None,
    train_index: Sequence[int] | None = None, test_index: Sequence[int] | None = None, cache: bool = True,
) -> Cifar10:
    """Read CIFAR-10 from ``source``, one of:

    - torchvision's ``cifar-10-batches-py`` folder (or a folder holding it): the original Python
      pickle batches (``data_batch_1..5``, ``test_batch``), the format torchvision itself reads; the
      training order is the original one natively (``train_files`` must be None);
    - an image-folder tree ``<source>/train/<class>/*.jpg`` and ``<source>/test/<class>/*.jpg``;
    - that tree as a ``.tar``/``.tar.gz`` file, read member by member (no extraction).

    For the tree and the tar, ``train_files`` (``train_files[i]``: the path of training image ``i``
    inside the tree, e.g. CIFAR-10N's ``train_file``) puts the training split in the original order;
    without it the order is by class, then file name. The test split is by class, then file name.
    ``train_index``/``test_index``: positions (in those orders) to return, default all; for the tree, and
    for the tar while no full decode is cached, only those images are decoded.
    ``cache``: decoded tar arrays are kept in memory and as an ``.npz`` in the user cache folder
    (``paths.cache_dir``), keyed by the tar's name, size and modification time.

    Returns: :class:`Cifar10` (uint8 ``[N, 3, 32, 32]`` images, int64 ``[N]`` labels).
    Raises: FileNotFoundError naming the path when it (or a part the format needs) is missing.
    """
    path = require(Path(source), "CIFAR-10 source")
    files = None if train_files is None else [str(f) for f in train_files]
    if path.is_file():
        arrays = read_jpeg_tar(path, CLASSES, files, train_index=train_index, test_index=test_index, cache=cache)
    elif (path / "cifar-10-batches-py").is_dir() or (path / "data_batch_1").is_file():
        if files is not None:
            raise ValueError("train_files orders an image-folder tree; torchvision's folder is already in order")
        folder = path if (path / "data_batch_1").is_file() else path / "cifar-10-batches-py"
        arrays = read_batches_folder(folder)
        for split, index in (("train", train_index), ("test", test_index)):
            if index is not None:
                pick = np.asarray(index, dtype=np.int64)
                arrays[f"{split}_x"], arrays[f"{split}_y"] = arrays[f"{split}_x"][pick], arrays[f"{split}_y"][pick]
        return _from_arrays(arrays, str(folder), "original")
    else:
        arrays = read_jpeg_tree(path, CLASSES, files, train_index, test_index)
    return _from_arrays(arrays, str(path), "sorted" if files is None else "original")
