"""``project``: the whole SAP method on any ``nn.Module``."""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from . import batches
from .capture import Accumulator, GramCollector
from .evaluation import CachedSplit, best_alpha, sweep, validate_alphas
from .head import find_head
from .layers import Selector, Selection as LayerSelection, Unit, discover
from .plan import DryRun, RowCounter, plan_targets
from .result import LayerReport, SAPResult
from .spectrum import Spectrum, decompose, decompose_rows
from .targets import Target
from .trusted import Selection, select_trusted
from .weights import GramSolveProjector, LayerProjector
from .wrappers import unwrap, working_copy

# Eigendecomposition precision, chosen by measured error against a float64 SVD (README
# "Precision"): fp32 eigh of a K = 300..1440 Gram moved the projection by up to 3e-4 at
# alpha = 1e4, fp64 by 1e-5; fp64 costs little below K ~ 2048 and about 2x above, where the
# widest layers (K = 4608 in ResNet-18) dominate the CPU time, so those stay in fp32.
EIG_FP64_MAX_K = 2048


def _eig_dtype(width: int, data: torch.Tensor) -> torch.dtype:
    """float64 for float64 data and for problems up to ``EIG_FP64_MAX_K`` wide, else float32."""
    if data.dtype == torch.float64 or width <= EIG_FP64_MAX_K:
        return torch.float64
    return torch.float32


def _spectrum(acc: Accumulator, eig_dtype: Optional[torch.dtype]) -> Spectrum:
    """Eigenpairs of one stream: dual from its rows while it holds rows, else from its Gram."""
    rows = acc.kept()
    if rows is not None:
        # Always float64 by default: the dual route divides by singular values, so float32 there
        # was measured 100x less accurate than a float32 Gram eigh (0.5% vs 1e-5 at alpha 1e4,
        # 2500 rows of a 2880-wide conv input whose spectrum spans four decades).
        return decompose_rows(rows, eig_dtype or torch.float64)
    return decompose(acc.gram, eig_dtype or _eig_dtype(acc.spec.k, acc.gram))


def _solve_gram(acc: Accumulator) -> Optional[torch.Tensor]:
    """The Gram ``[groups, K, K]`` for the fixed-alpha Cholesky route, or None where the dual
    route is cheaper: a stream holding ``m`` rows costs about ``m^2 K + 9 m^3`` that way against
    ``m K^2 + K^3 / 3`` for building the Gram and solving (the dual route wins for few rows of a
    wide layer, e.g. a 25,088-wide classifier on 1000 samples)."""
    rows = acc.kept()
    if rows is None:
        return acc.gram
    m, k = rows.shape[-2], rows.shape[-1]
    if m * k * k + k ** 3 / 3 >= m * m * k + 9 * m ** 3:
        return None
    r = rows.to(torch.float64)
    return r.transpose(-1, -2) @ r


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


def _collect(target: nn.Module, units: list[Unit], sel: Selection, batch_size: int,
             device: torch.device, backend: Optional[str], progress: bool) -> GramCollector:
    collector = GramCollector(units, backend=backend)
    n = sel.labels.shape[0]
    with collector, torch.no_grad():
        for a in tqdm(range(0, n, batch_size), desc="SAP: collecting activations", disable=not progress, leave=False):
            batches.call_model(target, batches.to_device(batches.slice_rows(sel.inputs, a, a + batch_size), device))
    return collector


def _selected(units: list[Unit], selection: LayerSelection) -> list[Target]:
    return [t for u in units for t in u.targets() if selection.reason(t, u.module) is None]


def _drop_head(units: list[Unit], head: str, skipped: list[tuple[str, str]]) -> list[Unit]:
    skipped.append((head, "classifier head (skip_head=True)"))
    return [u for u in units if u.name != head]


@torch.no_grad()
def _dry_run(model: nn.Module, loader: Iterable, split, *, layers, skip, skip_head: bool,
             n_trusted: int, progress: bool) -> DryRun:
    inner, _ = unwrap(model)
    units, selection, skipped = discover(inner, layers, skip)
    device = _device_of(inner)
    batch = next(iter(loader), None)
    if batch is None:
        raise ValueError("the loader yielded no samples")
    inputs, labels = split(batch)
    inputs = batches.to_device(inputs, device)
    modes = {m: m.training for m in inner.modules()}
    head = None
    try:
        inner.eval()
        if skip_head:
            head = find_head(inner, units, inputs)
            units = _drop_head(units, head, skipped)
        counter = RowCounter(units)
        with counter:
            batches.call_model(inner, inputs)
    finally:
        for m, training in modes.items():
            m.train(training)
    targets = _selected(units, selection)
    plan = DryRun(plan_targets(targets, counter, batches.batch_len(inputs), n_trusted), skipped, head, n_trusted)
    if progress:
        print(plan.summary())
    return plan


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
    skip_head: bool = False,
    inplace: bool = False,
    progress: bool = True,
    holdout: float = 0.1,
    max_holdout: int = 10_000,
    seed: int = 0,
    batch_size: Optional[int] = None,
    eig_dtype: Optional[torch.dtype] = None,
    solver: str = "auto",
    backend: Optional[str] = None,
    batch_fn: Optional[Callable[[Any], tuple]] = None,
    input_key: Optional[Union[str, Sequence[str]]] = None,
    label_key: Optional[str] = None,
    dry_run: bool = False,
) -> Union[SAPResult, DryRun]:
    """Correct a classifier trained on noisy labels with Scaled Activation Projection.

    Every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (groups included) and every
    ``nn.MultiheadAttention`` (its in-projection, packed or per q/k/v, and its ``out_proj``) has
    its weight ``W`` (flattened to ``[out, K]`` per group) replaced by ``W V diag(lambda) V^T``,
    where ``V``/``e`` are the eigenpairs of the Gram of the layer's inputs on the trusted samples
    and ``lambda = alpha r / ((alpha - 1) r + 1)``, ``r = e / sum(e)``. Biases stay as they are.
    A layer that saw no more activation rows than its width ``K`` is decomposed through its rows
    (rank <= rows; directions of zero energy get ``lambda = 0``), so time and memory scale with
    ``min(rows, K)``. See ``docs/architectures.md``.

    Args:
        model: a classifier returning logits ``[batch, classes]``; on CPU or GPU (inputs are
            moved to the device of its first parameter), in float32, float64, float16 or
            bfloat16 (Grams are accumulated in float32 or float64 whatever the model's dtype).
            ``nn.DataParallel``/``DistributedDataParallel``/``torch.compile`` wrappers are peeled
            off: the module inside is run eagerly and projected, and layer names are reported
            relative to it (no ``module.``/``_orig_mod.`` prefix).
        loader: re-iterable of batches of the (noisy) training set: ``(inputs, labels)`` pairs, or
            anything ``batch_fn``/``input_key``/``label_key`` turn into one; inputs a tensor, a
            tuple (positional args) or a dict (keyword args); labels int class indices.
            Iterated once (the trusted samples are kept in host memory, so shuffling loaders
            are fine).
        val_loader: batches (read like ``loader``'s) used to choose alpha (labels may be as noisy
            as the training labels). Without it, and without ``alpha``, a seeded ``holdout``
            fraction of ``loader`` (at most ``max_holdout`` samples) is set aside and never trusted.
        alpha: use this alpha (> 0; ``math.inf`` leaves the model unchanged); no sweep.
        alphas: grid to search (default ``1, 10**0.25, ..., 1e6``), picked by ``best_alpha`` (scores
            averaged over +-half a decade of alpha); the unchanged model is always a
            candidate, so the result never scores below it on the validation data.
        n_trusted: number of lowest-loss samples used (paper: 1000).
        class_balanced: take the lowest ``n_trusted / classes`` per class instead.
        layers, skip: module names, glob patterns or types to include / exclude (an attention
            block's name or type selects all of its weights; ``"<name>.out_proj"`` or
            ``"<name>.in_proj_weight"`` one of them).
        skip_head: leave the classifier head alone: the Linear/Conv layer whose output is the
            logits the model returns (found by one forward pass on two samples; see ``head``).
        inplace: modify ``model`` itself; otherwise a deep copy is corrected and ``model`` is left
            exactly as it was.
        progress: show tqdm progress bars (and print the plan of a dry run).
        holdout, max_holdout, seed: the automatic validation split.
        batch_size: batch size of the activation pass (default: the loader's).
        eig_dtype: dtype of the eigendecomposition (default: float64 for Grams up to 2048
            wide, for float64 models and for the dual route through rows; float32 for wider
            Grams). The ``"solve"`` route always runs in float64.
        solver: how each Gram becomes a projection. ``"eigh"``: eigendecomposition (one serves
            every alpha of a sweep; the report gets each layer's spectrum). ``"solve"``: for a
            given ``alpha`` only, ``alpha G ((alpha - 1) G + trace(G) I)^-1`` by one float64
            Cholesky solve per group (``ops.gram_projection``; several times faster than
            ``eigh`` for wide layers and more accurate than a float32 ``eigh``; the report has
            no spectrum, ``method == "solve"``). ``"auto"`` (default): ``"solve"`` when
            ``alpha`` is given, else ``"eigh"``. Layers that saw fewer rows than their width
            use the dual decomposition either way.
        backend: force a kernel backend (``"torch"``, ``"triton"``, ``"cuda"``).
        batch_fn: maps one loader batch to ``(inputs, labels)``.
        input_key, label_key: for loaders yielding dicts: the label entry, and the entry passed
            as the model's input (a str: one positional argument; a list of str: keyword
            arguments; default: every entry but the label, as keyword arguments).
        dry_run: only report what would be projected (each target's K, groups, rows per sample,
            method and accumulator memory) from one forward pass on the first batch, with no
            Gram, no trusted-sample pass and no change to the model; returns a ``DryRun``.
    Returns:
        ``SAPResult`` with ``.model``, ``.alpha``, ``.scores``, ``.trusted_indices``, ``.layers``,
        ``.skipped`` (every parametrised module or weight not projected, and why); a ``DryRun``
        when ``dry_run=True``.

    Memory: beyond the model (and its copy), the trusted samples and hold-out split on the host,
    per stream one ``[groups, K, K]`` fp32 Gram, or at most ``K`` kept rows (``groups * K^2``
    values at most, ``groups * rows * K`` when the rows are fewer), and one bounded im2col chunk.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if loader is None:
        raise ValueError("loader is None: pass the (noisy) training data as (inputs, labels) batches")
    if isinstance(n_trusted, bool) or not isinstance(n_trusted, int) or n_trusted < 1:
        raise ValueError(f"n_trusted must be a positive int, got {n_trusted!r}")
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout!r}")
    split = batches.make_splitter(batch_fn, input_key, label_key)
    if dry_run:
        return _dry_run(model, loader, split, layers=layers, skip=skip, skip_head=skip_head,
                        n_trusted=n_trusted, progress=progress)
    grid = validate_alphas(alpha, alphas)
    if solver not in ("auto", "eigh", "solve"):
        raise ValueError(f"solver must be 'auto', 'eigh' or 'solve', got {solver!r}")
    if solver == "solve" and grid is not None:
        raise ValueError("solver='solve' needs one fixed alpha (pass alpha=...); an alpha sweep uses 'eigh'")
    use_solve = grid is None and solver != "eigh"
    use_holdout = grid is not None and val_loader is None
    if use_holdout and holdout == 0:
        raise ValueError("choosing alpha needs validation data: pass val_loader, alpha, or holdout > 0")

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    returned, target, _ = working_copy(model, inplace)
    device = _device_of(target)
    units, selection, skipped = discover(target, layers, skip)
    if not units:
        raise ValueError(
            "nothing to project: the model has no selected nn.Linear/nn.Conv1d/2d/3d/nn.MultiheadAttention layer"
            + ("".join(f"\n  {n}: {why}" for n, why in skipped[:20]))
        )
    modes = {m: m.training for m in target.modules()}
    projectors: list[LayerProjector] = []
    try:
        target.eval()
        single_pass = not use_holdout and _known_size(loader) == n_trusted and not class_balanced
        collector = GramCollector(units, backend=backend) if single_pass else None
        with collector if collector is not None else contextlib.nullcontext():
            sel = select_trusted(
                target, loader, n_trusted=n_trusted, class_balanced=class_balanced,
                holdout=holdout if use_holdout else 0.0, max_holdout=max_holdout,
                seed=seed, device=device, progress=progress, split=split,
            )
        if skip_head:
            head = find_head(target, units, batches.to_device(batches.slice_rows(sel.inputs, 0, 2), device))
            units = _drop_head(units, head, skipped)
        if collector is None or sel.labels.shape[0] != sel.n_seen:
            timings["score"] = time.perf_counter() - clock
            clock = time.perf_counter()
            bs = batch_size or getattr(loader, "batch_size", None) or sel.batch_size
            collector = _collect(target, units, sel, int(bs), device, backend, progress)
        timings["activations"] = time.perf_counter() - clock
        clock = time.perf_counter()

        targets = _selected(units, selection)
        uses = {}
        for t in targets:
            uses[t.stream] = uses.get(t.stream, 0) + 1
        spectra: dict[str, Spectrum] = {}
        reports: list[LayerReport] = []
        for t in tqdm(targets, desc="SAP: decomposition", disable=not progress, leave=False):
            acc = collector.streams.get(t.stream)
            if acc is None or acc.rows == 0:
                skipped.append((t.name, "never called during the forward pass"))
                continue
            gram = _solve_gram(acc) if use_solve else None
            if gram is not None:
                projectors.append(GramSolveProjector(t, gram, float(alpha)))
                reports.append(LayerReport(t.name, t.kind, t.k, t.groups, acc.rows, None, "solve"))
            else:
                spectrum = spectra.get(t.stream)
                if spectrum is None:
                    spectrum = spectra[t.stream] = _spectrum(acc, eig_dtype)
                projectors.append(LayerProjector(t, spectrum, backend=backend))
                reports.append(LayerReport(t.name, t.kind, t.k, t.groups, acc.rows, spectrum.energies(t.k),
                                           "rows" if spectrum.dual else "gram"))
            uses[t.stream] -= 1
            if uses[t.stream] == 0:  # free the accumulator and spectrum refs as soon as possible
                collector.streams.pop(t.stream, None)
                spectra.pop(t.stream, None)
        if not projectors:
            raise ValueError("nothing to project: no selected layer was called during the forward pass")
        timings["decompose"] = time.perf_counter() - clock
        clock = time.perf_counter()

        scores: dict[float, float] = {}
        if grid is None:
            chosen = float(alpha)
            validation = "none (alpha given)"
        else:
            if val_loader is not None:
                data, validation, val_split = val_loader, "val_loader", split
            else:
                if sel.holdout_labels is None:
                    raise ValueError("no samples were held out for choosing alpha; pass val_loader or alpha")
                n_hold = int(sel.holdout_labels.shape[0])
                data = CachedSplit(sel.holdout_inputs, sel.holdout_labels, sel.batch_size)
                validation = f"hold-out of {n_hold} training samples (seed {seed}, never trusted)"
                val_split = batches.split_batch
            scores = sweep(target, projectors, grid, data, device, progress, val_split)
            chosen = best_alpha(scores)
            timings["sweep"] = time.perf_counter() - clock
        for p in projectors:
            p.write(chosen)
    except BaseException:
        for p in projectors:
            p.restore()
        raise
    finally:
        for m, training in modes.items():
            m.train(training)
    return SAPResult(
        model=returned,
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
