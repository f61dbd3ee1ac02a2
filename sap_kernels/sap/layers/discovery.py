"""Which modules are projected, and why the others are not.

``discover`` walks the model once and returns *units* (one per projectable module: a Linear or
ConvNd layer, or an ``nn.MultiheadAttention`` block), each of which knows the activation streams
it feeds (``StreamSpec``), the weights it projects (``Target``) and how to hook its module, plus
``(name, reason)`` for every parametrised module that is left alone.

A weight shared by several Linear/Conv modules (tied weights) is one target: the first module
owns it, the others feed its stream. A weight shared with a module that is not projected (an
embedding tied to a classifier) is refused, since projecting it would change that module too.

Selection (``layers=``/``skip=``) takes module names, ``fnmatch`` glob patterns or module types.
A name or pattern selects a target when it matches the target's name (``"features.0"``,
``"encoder.layers.0.self_attention.out_proj"``, ``"...self_attention.in_proj_weight"``), the name
of the module it belongs to, or a module tied to it; a type selects a target when its module or
its owning module is an instance. A selector that matches nothing is an error, for both.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

from torch import nn

from ..options.configs import Selector
from .attention import AttentionUnit
from .linear_conv import CONV_TYPES, LAYER_TYPES, Layer, LayerUnit
from .targets import Target
from .units import Unit
from .weight_access import weight_access

__all__ = ["Discovery", "LayerFilter", "Selector", "as_selectors", "discover", "nothing_to_project"]
SelectorKey = Union[str, tuple[str, type]]  # a selector as kept in LayerFilter.matched
PROJECTABLE = LAYER_TYPES + (nn.MultiheadAttention,)
_NOT_PROJECTED_REASONS = (
    ((nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm), "normalisation layer: no weight projection"),
    ((nn.Embedding, nn.EmbeddingBag), "embedding: its input is indices, not activations"),
    ((nn.modules.conv._ConvTransposeNd,), "transposed convolution: not supported"),
    ((nn.RNNBase,), "recurrent layer: not supported"),
)


@dataclass
class LayerFilter:
    """``layers=``/``skip=`` selectors, and which of them matched something."""

    include: Optional[list[Selector]] = None
    exclude: Optional[list[Selector]] = None
    matched: set[SelectorKey] = field(default_factory=set)

    def reason(self, target: Target, modules: tuple[nn.Module, ...]) -> Optional[str]:
        """None when ``target`` (of the module(s) ``modules``: its own, its owner) is selected, else why not."""
        def hits(selectors: list[Selector]) -> list[Selector]:
            found = [s for s in selectors if _matches(target, modules, s)]
            self.matched.update(map(_key, found))
            return found

        if self.include is not None and not hits(self.include):
            return "not selected by layers="
        if self.exclude is not None and hits(self.exclude):
            return "excluded by skip="
        return None

    def unmatched(self) -> list[tuple[str, list[Selector]]]:
        return [(arg, [s for s in sel if _key(s) not in self.matched])
                for arg, sel in (("layers", self.include), ("skip", self.exclude)) if sel is not None
                if any(_key(s) not in self.matched for s in sel)]


def _matches(target: Target, modules: tuple[nn.Module, ...], s: Selector) -> bool:
    if isinstance(s, type):
        return any(isinstance(m, s) for m in modules)
    base = target.name.split("[", 1)[0]
    return any(fnmatch.fnmatchcase(n, s) for n in {target.name, base, target.unit, *target.tied})


def as_selectors(sel: Optional[Union[Selector, Iterable[Selector]]], arg: str) -> Optional[list[Selector]]:
    """``layers=``/``skip=`` as a list of names, patterns or module types; a named error otherwise."""
    if sel is None:
        return None
    if isinstance(sel, (str, type)):
        return [sel]
    try:
        items = list(sel)
    except TypeError:
        raise TypeError(f"{arg} must be a module name, glob pattern or module type, or a list of them; "
                        f"got {sel!r}") from None
    for s in items:
        if not isinstance(s, (str, type)):
            raise TypeError(f"{arg} entries must be module names, glob patterns or module types; got {s!r}")
    return items


def _key(sel: Selector) -> SelectorKey:
    return sel if isinstance(sel, str) else ("type", sel)


def _why_not(module: nn.Module) -> Optional[str]:
    """Reason a Linear/Conv module cannot be projected, or None."""
    weight = getattr(module, "weight", None)
    if weight is None or isinstance(weight, nn.parameter.UninitializedParameter):
        return "weight missing or not yet initialised (lazy module)"
    if weight.device.type == "meta":
        return "weight on the meta device (no values to project)"
    if not weight.is_floating_point():
        return f"weight is {weight.dtype}, not floating point (quantised?)"
    if isinstance(module, CONV_TYPES) and module.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
        return f"padding_mode {module.padding_mode!r} not supported"
    _, why = weight_access(module, "weight")
    return why


def _reason_for(mod: nn.Module) -> str:
    for types, reason in _NOT_PROJECTED_REASONS:
        if isinstance(mod, types):
            return reason
    own = [n for n, _ in mod.named_parameters(recurse=False)]
    return f"{type(mod).__name__}: not a Linear/Conv/attention layer (parameters {', '.join(own)} left as they are)"


@dataclass
class Discovery:
    """What ``discover`` found: units to hook, the filter applied to their targets, and
    ``(name, reason)`` for every parametrised module (or target) that is not projected."""

    units: list[Unit]
    filter: LayerFilter
    skipped: list[tuple[str, str]]

    def targets(self) -> list[Target]:
        return [t for u in self.units for t in u.targets() if self.filter.reason(t, _owners(u, t)) is None]


def _owners(unit: Unit, target: Target) -> tuple[nn.Module, ...]:
    inside = target.path.startswith(unit.name + ".")
    own = unit.module.get_submodule(target.path[len(unit.name) + 1:]) if inside else None
    return (unit.module,) if own is None else (own, unit.module)


def _hidden(named: list[tuple[str, nn.Module]]) -> set[str]:
    """Modules handled by their parent: inside attention blocks and parametrization containers."""
    out: set[str] = set()
    for name, mod in named:
        prefix = f"{name}." if name else ""
        if isinstance(mod, nn.MultiheadAttention):
            out.update(prefix + c for c, _ in mod.named_modules() if c)
        if hasattr(mod, "parametrizations") and isinstance(mod.parametrizations, nn.ModuleDict):
            out.update(prefix + "parametrizations" + ("." + c if c else "")
                       for c, _ in mod.parametrizations.named_modules())
    return out


def _param_users(named: list[tuple[str, nn.Module]]) -> dict[int, list[str]]:
    users: dict[int, list[str]] = {}
    for name, mod in named:
        for _, p in mod.named_parameters(recurse=False):
            users.setdefault(id(p), []).append(name or "<root>")
    return users


def _layer_unit(name: str, mod: Layer, owners: dict[int, LayerUnit], users: dict[int, list[str]],
                layer_names: set[str], skipped: list[tuple[str, str]], post: bool = False) -> Optional[LayerUnit]:
    """The unit of a Linear/Conv module (a stream feeder when its weight is tied to an earlier
    one's), or None with the reason recorded in ``skipped``."""
    reason = _why_not(mod)
    if reason is None:
        blockers = [u for u in users.get(id(mod.weight), []) if u != name and u not in layer_names]
        if blockers:
            reason = (f"weight shared with {', '.join(blockers)}, which is not projected "
                      "(projecting would change it too)")
    if reason is not None:
        skipped.append((name, reason))
        return None
    owner = owners.get(id(mod.weight))
    if owner is not None:
        if (owner.k, owner.groups) != (LayerUnit(name, mod).k, int(getattr(mod, "groups", 1))):
            skipped.append((name, f"weight tied to {owner.name} with another layout"))
            return None
        owner.tied.append(name)
        return LayerUnit(name, mod, stream=owner.stream, post=post)
    unit = LayerUnit(name, mod, post=post)
    owners[id(mod.weight)] = unit
    return unit


def _units(model: nn.Module, skipped: list[tuple[str, str]], post: bool = False) -> list[Unit]:
    """Every projectable unit of ``model`` (before selection), in module order."""
    named = list(model.named_modules())
    hidden = _hidden(named)
    users = _param_users(named)
    layer_names = {n or "<root>" for n, m in named if isinstance(m, LAYER_TYPES) and n not in hidden}
    owners: dict[int, LayerUnit] = {}
    units: list[Unit] = []
    for name, mod in named:
        label = name or "<root>"
        if name in hidden:
            continue
        if isinstance(mod, nn.MultiheadAttention):
            units.append(AttentionUnit(label, mod))
        elif isinstance(mod, LAYER_TYPES):
            unit = _layer_unit(label, mod, owners, users, layer_names, skipped, post)
            if unit is not None:
                units.append(unit)
        elif any(True for _ in mod.parameters(recurse=False)):
            skipped.append((label, _reason_for(mod)))
    return units


def discover(
    model: nn.Module,
    layers: Optional[Union[Selector, Iterable[Selector]]] = None,
    skip: Optional[Union[Selector, Iterable[Selector]]] = None,
    post: bool = False,
) -> Discovery:
    """The units to hook, the filter to apply to their targets, and the modules left alone.

    A unit is kept when at least one of its targets is selected (a tied feeder when its owner
    is). A ``layers=`` or ``skip=`` entry that matches nothing raises, naming the projectable modules.
    ``post``: Linear/Conv units also stream their outputs (for output-side projection).
    """
    filt = LayerFilter(as_selectors(layers, "layers"), as_selectors(skip, "skip"))
    skipped: list[tuple[str, str]] = []
    kept: list[Unit] = []
    chosen_streams: set[str] = set()
    for unit in _units(model, skipped, post):
        chosen = False
        for t in unit.targets():
            reason = filt.reason(t, _owners(unit, t))
            if reason is None:
                chosen = True
            else:
                skipped.append((t.name, reason))
        if chosen:
            chosen_streams.update(s.key for s in unit.streams())
        if chosen or (isinstance(unit, LayerUnit) and unit.feeds_only and unit.stream in chosen_streams):
            kept.append(unit)
    unused = filt.unmatched()
    if unused:
        names = [u.name for u in _units(model, [])]
        arg, sel = unused[0]
        raise ValueError(f"{arg}={sel!r} matched no Linear/Conv/attention module; projectable modules are: "
                         + ", ".join(names[:20]) + (" ..." if len(names) > 20 else ""))
    return Discovery(kept, filt, skipped)


def nothing_to_project(disc: Discovery) -> ValueError:
    return ValueError(
        "nothing to project: the model has no selected nn.Linear/nn.Conv1d/2d/3d/nn.MultiheadAttention layer"
        + "".join(f"\n  {n}: {why}" for n, why in disc.skipped[:20]))
