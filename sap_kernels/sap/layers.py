"""Which modules are projected, and why the others are not."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Iterable, Optional, Union

from torch import nn

Selector = Union[str, type]
PROJECTABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NOT_PROJECTED_REASONS = (
    ((nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm), "normalisation layer: no weight projection"),
    ((nn.Embedding, nn.EmbeddingBag), "embedding: its input is indices, not activations"),
    ((nn.modules.conv._ConvTransposeNd,), "transposed convolution: not supported"),
    ((nn.MultiheadAttention,), "nn.MultiheadAttention: its packed projections are called functionally"),
    ((nn.RNNBase,), "recurrent layer: not supported"),
)


@dataclass
class LayerSpec:
    """A module to project. ``k`` is the per-group width ``K_g`` of a weight row."""

    name: str
    module: nn.Module
    groups: int
    k: int

    @property
    def kind(self) -> str:
        return type(self.module).__name__

    @property
    def is_conv(self) -> bool:
        return isinstance(self.module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))


def _matches(name: str, module: nn.Module, selectors: Iterable[Selector]) -> bool:
    for s in selectors:
        if isinstance(s, type):
            if isinstance(module, s):
                return True
        elif fnmatch.fnmatchcase(name, s):
            return True
    return False


def _as_list(sel: Optional[Union[Selector, Iterable[Selector]]], arg: str) -> Optional[list]:
    if sel is None:
        return None
    items = [sel] if isinstance(sel, (str, type)) else list(sel)
    for s in items:
        if not isinstance(s, (str, type)):
            raise TypeError(f"{arg} entries must be module names, glob patterns or module types; got {s!r}")
    return items


def _why_not(name: str, module: nn.Module, parents: dict[str, nn.Module]) -> Optional[str]:
    """Reason a projectable-looking module cannot be projected, or None."""
    owner = parents.get(name)
    if owner is not None:
        return f"inside {type(owner).__name__} {name.rsplit('.', 1)[0]!r}: called functionally, inputs not observable"
    weight = getattr(module, "weight", None)
    if weight is None or isinstance(weight, nn.parameter.UninitializedParameter):
        return "weight missing or not yet initialised (lazy module)"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
        return f"padding_mode {module.padding_mode!r} not supported"
    return None


def discover(
    model: nn.Module,
    layers: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip: Optional[Union[Selector, Iterable[Selector]]] = None,
) -> tuple[list[LayerSpec], list[tuple[str, str]]]:
    """The layers to project, and ``(name, reason)`` for every parametrised module left alone.

    ``layers``/``skip``: module names, glob patterns on names (``"features.*"``) or module types.
    """
    include, exclude = _as_list(layers, "layers"), _as_list(skip, "skip")
    named = list(model.named_modules())
    # Linear layers owned by an attention module are called functionally (no hook fires).
    parents: dict[str, nn.Module] = {}
    for name, mod in named:
        if isinstance(mod, nn.MultiheadAttention):
            for child_name, _ in mod.named_modules():
                if child_name:
                    parents[f"{name}.{child_name}" if name else child_name] = mod
    specs: list[LayerSpec] = []
    skipped: list[tuple[str, str]] = []
    matched_include: set = set()
    for name, mod in named:
        if isinstance(mod, PROJECTABLE):
            if include is not None:
                hits = [s for s in include if _matches(name, mod, [s])]
                matched_include.update(map(_key, hits))
                if not hits:
                    skipped.append((name, "not selected by layers="))
                    continue
            if exclude is not None and _matches(name, mod, exclude):
                skipped.append((name, "excluded by skip="))
                continue
            reason = _why_not(name, mod, parents)
            if reason is not None:
                skipped.append((name, reason))
                continue
            groups = getattr(mod, "groups", 1)
            k = mod.weight[0].numel() if mod.weight.dim() > 1 else mod.weight.numel()
            specs.append(LayerSpec(name, mod, groups, int(k)))
        elif any(True for _ in mod.parameters(recurse=False)) and name not in parents:
            skipped.append((name or "<root>", _reason_for(mod)))
    if include is not None:
        unused = [s for s in include if _key(s) not in matched_include]
        if unused:
            names = [n for n, m in named if isinstance(m, PROJECTABLE)]
            raise ValueError(
                f"layers={unused!r} matched no Linear/Conv module; projectable modules are: "
                + ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
            )
    return specs, skipped


def _key(sel: Selector):
    return sel if isinstance(sel, str) else ("type", sel)


def _reason_for(mod: nn.Module) -> str:
    for types, reason in _NOT_PROJECTED_REASONS:
        if isinstance(mod, types):
            return reason
    return f"{type(mod).__name__}: not a Linear/Conv layer"


def gram_bytes(spec: LayerSpec) -> int:
    """fp32 bytes of the layer's accumulated Gram, ``groups * K_g^2 * 4``."""
    return spec.groups * spec.k * spec.k * 4


def describe(spec: LayerSpec) -> str:
    return f"{spec.name} ({spec.kind}, K={spec.k}, groups={spec.groups}, Gram {gram_bytes(spec) / 2**20:.1f} MiB)"

