"""Which modules are projected, and why the others are not.

``discover`` walks the model once and returns *units* (one per projectable module: a Linear or
ConvNd layer, or an ``nn.MultiheadAttention`` block), each of which knows the activation streams
it feeds (``StreamSpec``) and the weights it projects (``Target``), plus ``(name, reason)`` for
every parametrised module that is left alone.

Selection (``layers=``/``skip=``) takes module names, ``fnmatch`` glob patterns or module types.
A name or pattern selects a target when it matches the target's name (``"features.0"``,
``"encoder.layers.0.self_attention.out_proj"``, ``"...self_attention.in_proj_weight"``) or the
name of the module it belongs to (an attention block's name selects all of its targets); a type
selects a target when the target's own module or its owning module is an instance.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable, Optional, Protocol, Union

from torch import nn

from .targets import StreamSpec, Target

Selector = Union[str, type]
LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
PROJECTABLE = LAYER_TYPES + (nn.MultiheadAttention,)
_NOT_PROJECTED_REASONS = (
    ((nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm), "normalisation layer: no weight projection"),
    ((nn.Embedding, nn.EmbeddingBag), "embedding: its input is indices, not activations"),
    ((nn.modules.conv._ConvTransposeNd,), "transposed convolution: not supported"),
    ((nn.RNNBase,), "recurrent layer: not supported"),
)


class Unit(Protocol):
    """A module that feeds activation streams and owns projection targets."""

    name: str
    module: nn.Module

    def streams(self) -> list[StreamSpec]: ...

    def targets(self) -> list[Target]: ...

    def install(self, collector) -> list: ...


class LayerUnit:
    """An ``nn.Linear`` or ``nn.ConvNd``: one stream (its input, via a forward pre-hook), one target."""

    def __init__(self, name: str, module: nn.Module):
        self.name, self.module = name, module
        groups = int(getattr(module, "groups", 1))
        w = module.weight
        self.k = int(w[0].numel() if w.dim() > 1 else w.numel())
        self.groups = groups
        self.is_conv = isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec(self.name, self.groups, self.k, self.module if self.is_conv else None)]

    def targets(self) -> list[Target]:
        return [Target(self.name, self.module, "weight", None, self.groups, self.k, self.name,
                       type(self.module).__name__, self.name)]

    def install(self, collector) -> list:
        key = self.name

        def hook(module: nn.Module, args: tuple) -> None:
            if not args or not collector.is_activation(args[0]):
                raise TypeError(f"layer {key!r} was called without a tensor input")
            collector.add(key, args[0])

        return [self.module.register_forward_pre_hook(hook)]


@dataclass
class Selection:
    """``layers=``/``skip=`` selectors and which of the ``layers=`` entries matched something."""

    include: Optional[list] = None
    exclude: Optional[list] = None
    matched: set = field(default_factory=set)

    def reason(self, target: Target, owner: nn.Module) -> Optional[str]:
        """None when ``target`` is selected, else why not."""
        def hits(selectors):
            return [s for s in selectors if _matches(target, owner, s)]

        if self.include is not None:
            found = hits(self.include)
            self.matched.update(map(_key, found))
            if not found:
                return "not selected by layers="
        if self.exclude is not None and hits(self.exclude):
            return "excluded by skip="
        return None


def _matches(target: Target, owner: nn.Module, s: Selector) -> bool:
    if isinstance(s, type):
        return isinstance(target.module, s) or isinstance(owner, s)
    base = target.name.split("[", 1)[0]
    return any(fnmatch.fnmatchcase(n, s) for n in {target.name, base, target.unit})


def _as_list(sel: Optional[Union[Selector, Iterable[Selector]]], arg: str) -> Optional[list]:
    if sel is None:
        return None
    items = [sel] if isinstance(sel, (str, type)) else list(sel)
    for s in items:
        if not isinstance(s, (str, type)):
            raise TypeError(f"{arg} entries must be module names, glob patterns or module types; got {s!r}")
    return items


def _key(sel: Selector):
    return sel if isinstance(sel, str) else ("type", sel)


def _why_not(module: nn.Module) -> Optional[str]:
    """Reason a Linear/Conv module cannot be projected, or None."""
    weight = getattr(module, "weight", None)
    if weight is None or isinstance(weight, nn.parameter.UninitializedParameter):
        return "weight missing or not yet initialised (lazy module)"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
        return f"padding_mode {module.padding_mode!r} not supported"
    return None


def _reason_for(mod: nn.Module) -> str:
    for types, reason in _NOT_PROJECTED_REASONS:
        if isinstance(mod, types):
            return reason
    own = [n for n, _ in mod.named_parameters(recurse=False)]
    return f"{type(mod).__name__}: not a Linear/Conv/attention layer (parameters {', '.join(own)} left as they are)"


def discover(
    model: nn.Module,
    layers: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip: Optional[Union[Selector, Iterable[Selector]]] = None,
) -> tuple[list[Unit], Selection, list[tuple[str, str]]]:
    """The units to hook, the selection to apply to their targets, and the modules left alone.

    A unit is returned when at least one of its (planned) targets is selected. ``skipped`` holds
    ``(name, reason)`` for every parametrised module that is not projected (and, for selected
    units, every target that selection turned down).
    """
    from .attention import AttentionUnit

    selection = Selection(_as_list(layers, "layers"), _as_list(skip, "skip"))
    named = list(model.named_modules())
    inside_attention: set[str] = set()
    for name, mod in named:
        if isinstance(mod, nn.MultiheadAttention):
            inside_attention.update(f"{name}.{c}" if name else c for c, _ in mod.named_modules() if c)
    units: list[Unit] = []
    skipped: list[tuple[str, str]] = []
    for name, mod in named:
        if name in inside_attention:
            continue
        if isinstance(mod, PROJECTABLE):
            label = name or "<root>"
            if isinstance(mod, nn.MultiheadAttention):
                unit: Unit = AttentionUnit(label, mod)
            else:
                reason = _why_not(mod)
                if reason is not None:
                    skipped.append((label, reason))
                    continue
                unit = LayerUnit(label, mod)
            chosen = False
            for t in unit.targets():
                reason = selection.reason(t, mod)
                if reason is None:
                    chosen = True
                else:
                    skipped.append((t.name, reason))
            if chosen:
                units.append(unit)
        elif any(True for _ in mod.parameters(recurse=False)):
            skipped.append((name or "<root>", _reason_for(mod)))
    if selection.include is not None:
        unused = [s for s in selection.include if _key(s) not in selection.matched]
        if unused:
            names = [n for n, m in named if isinstance(m, PROJECTABLE) and n not in inside_attention]
            raise ValueError(
                f"layers={unused!r} matched no Linear/Conv/attention module; projectable modules are: "
                + ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
            )
    return units, selection, skipped
