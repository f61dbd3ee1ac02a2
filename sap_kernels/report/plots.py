"""The report's figures, drawn with matplotlib's non-interactive Agg backend into PNG files.

- ``alpha_sweep.png``: the score at every alpha tried (log axis), the unchanged model as a
  horizontal line, the pick marked;
- ``spectra.png``: per layer (up to ``MAX_PANELS``), the sorted energy fractions ``r = e / sum e``
  (log scale) with the chosen alpha's ``lambda = alpha r / ((alpha - 1) r + 1)`` over them.
"""
from __future__ import annotations

import math
import os
from typing import Any, Optional

from ..file_sets import FileSet, write_file

MAX_PANELS = 24


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt: Any, fig: Any, path: str, files: Optional[FileSet] = None) -> str:
    """Write ``fig`` to ``path`` as PNG (as part of ``files``, or on its own: a temporary name,
    then renamed) and close it."""
    try:
        fig.tight_layout()
        write_file(path, lambda tmp: fig.savefig(tmp, format="png"), files)
    finally:
        plt.close(fig)
    return path


def sweep_figure(data: dict[str, Any], path: str, files: Optional[FileSet] = None) -> Optional[str]:
    """``alpha_sweep.png``, or None when no sweep was run (alpha given)."""
    finite = [(a, s) for a, s in data["scores"] if a is not None]
    if not finite:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([a for a, _ in finite], [100 * s for _, s in finite], "o-", ms=3, label="projected at alpha")
    unchanged = [s for a, s in data["scores"] if a is None]
    if unchanged:
        ax.axhline(100 * unchanged[0], color="gray", ls="--", label="unchanged model")
    if data["alpha"] is not None:
        picked = dict(finite).get(data["alpha"])
        if picked is not None:
            ax.plot([data["alpha"]], [100 * picked], "r*", ms=14, label=f"chosen alpha = {data['alpha']:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel("alpha")
    ax.set_ylabel("score on the alpha-choice data (%)")
    ax.set_title(data["validation"] or "alpha sweep", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(plt, fig, path, files)


def _lam(r: list[float], alpha: Optional[float]) -> list[float]:
    if alpha is None:
        return [1.0] * len(r)
    return [alpha * x / ((alpha - 1.0) * x + 1.0) for x in r]


def spectra_figure(data: dict[str, Any], path: str, files: Optional[FileSet] = None) -> Optional[str]:
    """``spectra.png`` for the layers that have a spectrum (the first ``MAX_PANELS``), or None."""
    layers = [la for la in data["layers"] if la["energies"]][:MAX_PANELS]
    if not layers:
        return None
    plt = _pyplot()
    cols = min(4, len(layers))
    rows = math.ceil(len(layers) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), dpi=100, squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        e = layer["energies"]
        total = sum(e) or 1.0
        r = [x / total for x in e]
        ax.semilogy(range(1, len(r) + 1), [max(x, 1e-300) for x in r], lw=1, label="r (energy share)")
        ax.set_ylim(max(min(x for x in r if x > 0) if any(r) else 1e-12, 1e-16), 1.0)
        twin = ax.twinx()
        twin.plot(range(1, len(r) + 1), _lam(r, data["alpha"]), "r", lw=1, label="lambda")
        twin.set_ylim(-0.02, 1.02)
        ax.set_title(f"{layer['name']} (K={layer['K']})", fontsize=8)
        ax.tick_params(labelsize=6)
        twin.tick_params(labelsize=6, colors="r")
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle("sorted energy shares r (blue, log) and the chosen alpha's lambda (red)", fontsize=9)
    return save_figure(plt, fig, path, files)


def draw(data: dict[str, Any], directory: str, files: Optional[FileSet] = None) -> dict[str, Optional[str]]:
    """The SAP figures, written into ``directory`` (as part of ``files``); name -> file name (None
    when not drawn)."""
    out = {}
    for name, fn in (("alpha_sweep.png", sweep_figure), ("spectra.png", spectra_figure)):
        written = fn(data, os.path.join(directory, name), files)
        out[name] = None if written is None else name
    return out
