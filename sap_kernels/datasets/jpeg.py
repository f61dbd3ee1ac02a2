"""The image-folder tree (``train/<class>/NNNN.jpg``, ``test/<class>/NNNN.jpg``), as a folder or a tar."""
from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np
from PIL import Image

from .paths import cache_dir, require

_MEMORY: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def decode_jpeg(data: bytes) -> np.ndarray:
    """uint8 ``[3, H, W]`` RGB of one encoded image."""
    with Image.open(io.BytesIO(data)) as img:
        pixels: np.ndarray = np.asarray(img.convert("RGB"), dtype=np.uint8)
    chw: np.ndarray = pixels.transpose(2, 0, 1)
    return chw


Index = Optional[Sequence[int]]
Getter = Callable[[str], np.ndarray]


def order_names(names: Iterable[str], classes: Sequence[str], train_files: Sequence[str] | None,
                where: str) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}`` member names in the documented order: by class, then file
    name, or for the training split ``train_files`` itself (each must be present)."""
    present = set(names)
    out = {}
    for split in ("train", "test"):
        listed = sorted((n for n in present if n.startswith(split + "/")),
                        key=lambda n: (classes.index(n.split("/")[1]), n))
        if split == "train" and train_files is not None:
            missing = [f for f in train_files if f not in present]
            if missing:
                raise FileNotFoundError(f"{where}: {len(missing)} of train_files not found, e.g. {missing[0]}")
            listed = list(train_files)
        if not listed:
            raise FileNotFoundError(f"{where}: no {split}/<class>/*.jpg images")
        out[split] = listed
    return out


def stack_splits(order: dict[str, list[str]], get: Getter, classes: Sequence[str], train_index: Index,
                 test_index: Index) -> dict[str, np.ndarray]:
    """The four arrays (uint8 ``[N, 3, 32, 32]``, int64 ``[N]``) of the selected positions of each split,
    decoding (``get``) only those."""
    out: dict[str, np.ndarray] = {}
    for split, index in (("train", train_index), ("test", test_index)):
        names = order[split] if index is None else [order[split][int(i)] for i in index]
        out[f"{split}_x"] = np.stack([get(n) for n in names]) if names else np.zeros((0, 3, 32, 32), np.uint8)
        out[f"{split}_y"] = np.array([classes.index(n.split("/")[1]) for n in names], dtype=np.int64)
    return out


def _is_image(name: str, classes: Sequence[str]) -> bool:
    parts = PurePosixPath(name).parts
    return len(parts) == 3 and parts[0] in ("train", "test") and parts[1] in classes and name.endswith(".jpg")


def read_jpeg_tree(folder: Path, classes: Sequence[str], train_files: Sequence[str] | None,
                   train_index: Index = None, test_index: Index = None) -> dict[str, np.ndarray]:
    """The four arrays (uint8 ``[N, 3, 32, 32]`` images, int64 ``[N]`` labels) of a tree on disk;
    ``train_index``/``test_index``: positions (in the documented order) to decode, default all."""
    for split in ("train", "test"):
        require(folder / split, "image-folder split (expected <root>/train/<class>/*.jpg)")
    names = [n for n in (p.relative_to(folder).as_posix() for p in folder.glob("*/*/*.jpg")) if _is_image(n, classes)]
    order = order_names(names, classes, train_files, str(folder))
    return stack_splits(order, lambda n: decode_jpeg((folder / n).read_bytes()), classes, train_index, test_index)


def read_jpeg_members(tar_path: Path, classes: Sequence[str]) -> dict[str, bytes]:
    """``{"train/<class>/f.jpg": JPEG bytes}`` for every image member of a (gzipped) tar, read in one
    pass over the stream without extracting anything (about 60 MB for CIFAR-10)."""
    images = {}
    with tarfile.open(require(tar_path, "CIFAR-10 image tar"), "r:*") as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if member.isfile() and _is_image(name, classes):
                f = tar.extractfile(member)
                if f is not None:
                    images[name] = f.read()
    return images


def _cache_file(tar_path: Path, key: tuple[str, int, int]) -> Path:
    return cache_dir() / "cifar10" / f"{tar_path.name}.{key[1]}.{key[2]}.npz"


def _decoded(tar_path: Path, classes: Sequence[str], cache: bool) -> dict[str, np.ndarray]:
    """Every image of the tar decoded, from memory, the ``.npz`` cache, or the tar (then cached)."""
    stat = require(tar_path, "CIFAR-10 image tar").stat()
    key = (str(tar_path.resolve()), stat.st_size, int(stat.st_mtime))
    if cache and key in _MEMORY:
        return _MEMORY[key]
    disk = _cache_file(tar_path, key)
    if cache and disk.is_file():
        with np.load(disk, allow_pickle=False) as z:
            images = dict(zip((str(n) for n in z["names"]), z["images"]))
    else:
        images = {n: decode_jpeg(b) for n, b in read_jpeg_members(tar_path, classes).items()}
        if cache:
            _save_cache(disk, images)
    if cache:
        _MEMORY[key] = images
    return images


def read_jpeg_tar(tar_path: Path, classes: Sequence[str], train_files: Sequence[str] | None, *,
                  train_index: Index = None, test_index: Index = None, cache: bool = True) -> dict[str, np.ndarray]:
    """The four arrays of a tree stored as a tar. With positions (``train_index``/``test_index``)
    and no full decode cached yet, only those images are decoded (one pass over the stream).
    Otherwise every image is decoded; with ``cache`` they are kept in memory and in an ``.npz`` in
    ``cache_dir()`` (loaded without pickle), so a later call does not decode again."""
    full = train_index is None and test_index is None
    if full or _has_cache(tar_path):
        images: Mapping[str, np.ndarray] = _decoded(tar_path, classes, cache)
        get: Getter = images.__getitem__
    else:
        raw = read_jpeg_members(tar_path, classes)
        images, get = {n: np.empty(0) for n in raw}, lambda n: decode_jpeg(raw[n])
    order = order_names(images, classes, train_files, str(tar_path))
    return stack_splits(order, get, classes, train_index, test_index)


def _has_cache(tar_path: Path) -> bool:
    if not tar_path.exists():
        return False
    stat = tar_path.stat()
    key = (str(tar_path.resolve()), stat.st_size, int(stat.st_mtime))
    return key in _MEMORY or _cache_file(tar_path, key).is_file()


def _save_cache(disk: Path, images: dict[str, np.ndarray]) -> None:
    """Write the cache atomically (a temporary name, then a rename); a read-only cache is skipped."""
    names = sorted(images)
    try:
        disk.parent.mkdir(parents=True, exist_ok=True)
        tmp = disk.with_suffix(".tmp.npz")
        np.savez(tmp, names=np.array(names), images=np.stack([images[n] for n in names]))
        tmp.replace(disk)
    except OSError:
        pass
