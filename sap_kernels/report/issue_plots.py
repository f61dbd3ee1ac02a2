"""The label-issues figures (matplotlib, Agg), drawn from ``report.json``'s ``label_issues``:

- ``label_issues_pairs.png``: flagged samples per given (row) -> predicted (column) class, a heat
  map with the counts written in;
- ``label_issues_samples.png``: the top flagged samples' inputs, most likely wrong first, each
  titled with its position and given -> predicted class.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch

from ..file_sets import FileSet
from .plots import _pyplot, save_figure

PAIRS_FILE = "label_issues_pairs.png"
SAMPLES_FILE = "label_issues_samples.png"
MAX_HEATMAP_CLASSES = 40
GRID_COLUMNS = 8


def pairs_figure(section: dict[str, Any], path: str, files: Optional[FileSet] = None) -> Optional[str]:
    """The heat map, or None when nothing was flagged or there are too many classes to read it."""
    counts = section["pair_counts"]
    c = len(counts)
    if section["n_issues"] == 0 or c > MAX_HEATMAP_CLASSES:
        return None
    names = section["class_names"]
    plt = _pyplot()
    size = min(10.0, 2.5 + 0.45 * c)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=100)
    im = ax.imshow(counts, cmap="Reds", vmin=0)
    top = max(max(row) for row in counts) or 1
    for g in range(c):
        for p in range(c):
            if counts[g][p]:
                ax.text(p, g, str(counts[g][p]), ha="center", va="center", fontsize=7,
                        color="white" if counts[g][p] > top / 2 else "black")
    ax.set_xticks(range(c), names, rotation=90 if c > 10 else 0, fontsize=7)
    ax.set_yticks(range(c), names, fontsize=7)
    ax.set_xlabel("predicted by the corrected model")
    ax.set_ylabel("given label")
    ax.set_title(f"{section['n_issues']} flagged labels, given -> predicted", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(plt, fig, path, files)


def _as_image(x: torch.Tensor) -> Any:
    """``[C, H, W]`` -> an HxW (C 1) or HxWx3 array scaled to [0, 1] for imshow."""
    x = x.double()
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def samples_figure(section: dict[str, Any], images: Optional[torch.Tensor], path: str,
                   files: Optional[FileSet] = None) -> Optional[str]:
    """The grid of the top flagged samples, or None without images."""
    positions = section["grid"]["positions"]
    if images is None or not positions:
        return None
    names, labels = section["class_names"], section.get("labels", {})
    plt = _pyplot()
    n = min(len(positions), int(images.shape[0]))
    cols = min(GRID_COLUMNS, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, pos, img in zip(axes.flat, positions[:n], images[:n]):
        ax.imshow(_as_image(img), cmap="gray" if img.shape[0] == 1 else None, interpolation="nearest")
        given, predicted = labels.get(str(pos), [None, None])
        text = f"#{pos}" if given is None else f"#{pos}\n{names[given]} -> {names[predicted]}"
        ax.set_title(text, fontsize=7)
    fig.suptitle("flagged samples, most likely wrong first (given -> predicted)", fontsize=9)
    return save_figure(plt, fig, path, files)
