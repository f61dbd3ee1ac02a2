"""``project``: the whole SAP method on any ``nn.Module``."""
from __future__ import annotations

import contextlib
import copy
import math
import time
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from . import batches
from .capture import GramCollector
from .evaluation import CachedSplit, best_alpha, sweep, validate_alphas
from .layers import LayerSpec, Selector, discover
from .result import LayerReport, SAPResult
from .spectrum import decompose
from .trusted import Selection, select_trusted
from .weights import LayerProjector

# Eigendecomposition precision, chosen by measured error against a float64 SVD (README
# "Precision"): fp32 eigh of a K = 300..1440 Gram moved the projection by up to 3e-4 at
# alpha = 1e4, fp64 by 1e-5; fp64 costs little below K ~ 2048 and about 2x above, where the
# widest layers (K = 4608 in ResNet-18) dominate the CPU time, so those stay in fp32.
EIG_FP64_MAX_K = 2048


def _eig_dtype(spec: LayerSpec, gram: torch.Tensor) -> torch.dtype:
    if gram.dtype == torch.float64 or spec.k <= EIG_FP64_MAX_K:
        return torch.float64
    return torch.float32


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _known_size(loader: Iterable) -> Optional[int]:
    """Samples a DataLoader will yield, when that is knowable without iterating it."""
    dataset = getattr(loader, "dataset", None)
    bs = getattr(loader, "batch_size", None)
    if dataset is None or bs is None or getattr(loader, "batch_sampler", None) is None:
        return None
    try:
        n = len(dataset)
    except TypeError:
        return None
    if type(getattr(loader, "sampler", None)).__name__ not in ("SequentialSampler", "RandomSampler"):
        return None
    return (n // bs) * bs if getattr(loader, "drop_last", False) else n


def _collect(target: nn.Module, specs: list[LayerSpec], sel: Selection, batch_size: int,
             device: torch.device, backend: Optional[str], progress: bool) -> GramCollector:
    collector = GramCollector(specs, backend=backend)
    n = sel.labels.shape[0]
    with collector, torch.no_grad():
        for a in tqdm(range(0, n, batch_size), desc="SAP: collecting activations", disable=not progress, leave=False):
            batches.call_model(target, batches.to_device(batches.slice_rows(sel.inputs, a, a + batch_size), device))
    return collector


def project(
    model: nn.Module,
    loader: Iterable,
    *,
    val_loader: Optional[Iterable] = None,
    alpha: Optional[float] = None,
    alphas: Optional[Sequence[float]] = None,
    n_trusted: int = 1000,
    class_balanced: bool = False,
    layers: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip: Optional[Union[Selector, Iterable[Selector]]] = None,
    inplace: bool = False,
    progress: bool = True,
    holdout: float = 0.1,
    max_holdout: int = 10_000,
    seed: int = 0,
    batch_size: Optional[int] = None,
    eig_dtype: Optional[torch.dtype] = None,
    backend: Optional[str] = None,
) -> SAPResult:
    """Correct a classifier trained on noisy labels with Scaled Activation Projection.

    Every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (groups included) has its weight ``W`` (flattened
    to ``[out, K]`` per group) replaced by ``W V diag(lambda) V^T``, where ``V``/``e`` are the
    eigenpairs of the Gram of the layer's inputs on the trusted samples and
    ``lambda = alpha r / ((alpha - 1) r + 1)``, ``r = e / sum(e)``. Biases stay as they are.

    Args:
        model: a classifier returning logits ``[batch, classes]``; on CPU or GPU (inputs are
            moved to the device of its first parameter).
        loader: re-iterable of ``(inputs, labels)`` batches of the (noisy) training set; inputs a
            tensor, a tuple (positional args) or a dict (keyword args); labels int class indices.
            Iterated once (twice when not every sample is trusted it is not re-read: the trusted
            samples are kept in host memory, so shuffling loaders are fine).
        val_loader: ``(inputs, labels)`` batches used to choose alpha (labels may be as noisy as
            the training labels). Without it, and without ``alpha``, a seeded ``holdout``
            fraction of ``loader`` (at most ``max_holdout`` samples) is set aside and never trusted.
        alpha: use this alpha (> 0; ``math.inf`` leaves the model unchanged); no sweep.
        alphas: grid to search (default ``1, 10**0.5, ..., 1e6``); the unchanged model is always a
            candidate, so the result never scores below it on the validation data.
        n_trusted: number of lowest-loss samples used (paper: 1000).
        class_balanced: take the lowest ``n_trusted / classes`` per class instead.
        layers, skip: module names, glob patterns or types to include / exclude.
        inplace: modify ``model`` itself; otherwise a deep copy is corrected and ``model`` is left
            exactly as it was.
        progress: show tqdm progress bars.
        holdout, max_holdout, seed: the automatic validation split.
        batch_size: batch size of the activation pass (default: the loader's).
        eig_dtype: dtype of the eigendecomposition (default: float64 for layers with
            ``K <= 2048`` and float64 models, float32 for wider layers).
        backend: force a kernel backend (``"torch"``, ``"triton"``, ``"cuda"``).
    Returns:
        ``SAPResult`` with ``.model``, ``.alpha``, ``.scores``, ``.trusted_indices``, ``.layers``.

    Memory: beyond the model (and its copy), the trusted samples and hold-out split on the host,
    one ``[groups, K_g, K_g]`` fp32 Gram per layer, and one bounded im2col chunk at a time.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if loader is None:
        raise ValueError("loader is None: pass the (noisy) training data as (inputs, labels) batches")
    if isinstance(n_trusted, bool) or not isinstance(n_trusted, int) or n_trusted < 1:
        raise ValueError(f"n_trusted must be a positive int, got {n_trusted!r}")
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout!r}")
    grid = validate_alphas(alpha, alphas)
    use_holdout = grid is not None and val_loader is None
    if use_holdout and holdout == 0:
        raise ValueError("choosing alpha needs validation data: pass val_loader, alpha, or holdout > 0")

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    target = model if inplace else copy.deepcopy(model)
    device = _device_of(target)
    specs, skipped = discover(target, layers, skip)
    if not specs:
        raise ValueError(
            "nothing to project: the model has no selected nn.Linear/nn.Conv1d/2d/3d layer"
            + ("".join(f"\n  {n}: {why}" for n, why in skipped[:20]))
        )
    modes = {m: m.training for m in target.modules()}
    projectors: list[LayerProjector] = []
    written = False
    try:
        target.eval()
        single_pass = not use_holdout and _known_size(loader) == n_trusted and not class_balanced
        collector = GramCollector(specs, backend=backend) if single_pass else None
        with collector if collector is not None else contextlib.nullcontext():
            sel = select_trusted(
                target, loader, n_trusted=n_trusted, class_balanced=class_balanced,
                holdout=holdout if use_holdout else 0.0, max_holdout=max_holdout,
                seed=seed, device=device, progress=progress,
            )
        if collector is None or sel.labels.shape[0] != sel.n_seen:
            timings["score"] = time.perf_counter() - clock
            clock = time.perf_counter()
            bs = batch_size or getattr(loader, "batch_size", None) or sel.batch_size
            collector = _collect(target, specs, sel, int(bs), device, backend, progress)
        timings["activations"] = time.perf_counter() - clock
        clock = time.perf_counter()

        reports: list[LayerReport] = []
        for spec in tqdm(specs, desc="SAP: eigendecomposition", disable=not progress, leave=False):
            rows = collector.rows[spec.name]
            gram = collector.grams.pop(spec.name, None)
            if gram is None or rows == 0:
                skipped.append((spec.name, "never called during the forward pass"))
                continue
            spectrum = decompose(gram, eig_dtype or _eig_dtype(spec, gram))
            del gram
            projectors.append(LayerProjector(spec, spectrum, backend=backend))
            reports.append(LayerReport(spec.name, spec.kind, spec.k, spec.groups, rows,
                                       spectrum.eigvals.flip(-1).float().cpu()))
        if not projectors:
            raise ValueError("nothing to project: no selected layer was called during the forward pass")
        timings["eigh"] = time.perf_counter() - clock
        clock = time.perf_counter()

        scores: dict[float, float] = {}
        if grid is None:
            chosen = float(alpha)
            validation = "none (alpha given)"
        else:
            if val_loader is not None:
                data, validation = val_loader, "val_loader"
            else:
                if sel.holdout_labels is None:
                    raise ValueError("no samples were held out for choosing alpha; pass val_loader or alpha")
                n_hold = int(sel.holdout_labels.shape[0])
                data = CachedSplit(sel.holdout_inputs, sel.holdout_labels, sel.batch_size)
                validation = f"hold-out of {n_hold} training samples (seed {seed}, never trusted)"
            scores = sweep(target, projectors, grid, data, device, progress)
            chosen = best_alpha(scores)
            timings["sweep"] = time.perf_counter() - clock
        written = True
        for p in projectors:
            p.write(chosen)
    except BaseException:
        if written or projectors:
            for p in projectors:
                p.restore()
        raise
    finally:
        for m, training in modes.items():
            m.train(training)
    return SAPResult(
        model=target,
        alpha=chosen,
        scores=scores,
        trusted_indices=sel.indices.clone(),
        layers=reports,
        skipped=skipped,
        validation=validation,
        holdout_indices=sel.holdout_indices,
        n_samples=sel.n_seen,
        timings=timings,
    )
