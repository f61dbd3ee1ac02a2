"""torchvision's CIFAR-10 folder (``cifar-10-batches-py``): the original Python pickle batches.

This is the format CIFAR-10's authors distribute and ``torchvision.datasets.CIFAR10`` reads (with
``pickle``, as here): each batch a dict with ``b"data"`` (uint8 ``[10000, 3072]``, the 1024 red, then
green, then blue pixels of each row-major 32x32 image) and ``b"labels"`` (10,000 ints). Unpickling
runs code named in the file, so read only a copy you trust (the official archive, or one written by
:func:`write_batches_folder`).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .paths import require

TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(require(path, "CIFAR-10 batch file"), "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(entry[b"labels"], dtype=np.int64)
    if len(data) != len(labels):
        raise ValueError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def read_batches_folder(folder: Path) -> dict[str, np.ndarray]:
    """``train_x``/``test_x`` uint8 ``[N, 3, 32, 32]``, ``train_y``/``test_y`` int64 ``[N]`` from a
    ``cifar-10-batches-py`` folder, training batches 1..5 concatenated (the original order)."""
    train = [_read_batch(folder / name) for name in TRAIN_BATCHES]
    test_x, test_y = _read_batch(folder / TEST_BATCH)
    return {"train_x": np.concatenate([x for x, _ in train]), "train_y": np.concatenate([y for _, y in train]),
            "test_x": test_x, "test_y": test_y}


def write_batches_folder(folder: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                         test_y: np.ndarray) -> Path:
    """Write uint8 ``[N, 3, 32, 32]`` images and int ``[N]`` labels as a ``cifar-10-batches-py``
    folder (``folder`` is created): five training batches of ``N/5`` and one test batch. Returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in zip(TRAIN_BATCHES, np.array_split(train_x, 5), np.array_split(train_y, 5)):
        _write_batch(folder / name, x, y)
    _write_batch(folder / TEST_BATCH, test_x, test_y)
    return folder


def _write_batch(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    entry = {b"batch_label": path.name.encode(), b"data": np.ascontiguousarray(x, dtype=np.uint8).reshape(len(x), -1),
             b"labels": [int(v) for v in y]}
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
