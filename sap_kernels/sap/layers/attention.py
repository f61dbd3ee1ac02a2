"""``nn.MultiheadAttention``: the activations its functional call hides from ordinary hooks.

The module calls ``F.multi_head_attention_forward`` (or a fused kernel) with its weights, so a
hook on ``out_proj`` never fires and the packed ``in_proj_weight`` has no module of its own.
This unit captures, exactly:

- the in-projection inputs: ``query``, ``key`` and ``value`` from a forward pre-hook (all rows,
  masked positions included: the in-projection multiplies every row). While every call passes
  the same tensor for all three (self-attention), only the query stream is accumulated and the
  packed ``[3E, E]`` weight is projected with that one Gram; once a call passes distinct inputs,
  the key and value streams get their own Grams (seeded with what the query stream held) and
  each third of ``in_proj_weight`` (or ``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ) is
  projected with its own Gram.
- the attention output that ``out_proj`` multiplies: for the duration of the call ``out_proj``
  is replaced by an identity map, so the module returns the attention output itself (softmax,
  masks, ``batch_first``, ``need_weights``, dropout mode all handled by torch's own code); a
  forward hook accumulates it, applies the real ``out_proj`` and returns what the module would
  have returned. Multiplying by an identity matrix is exact in floating point.

The fused "fast path" kernels are disabled while the Grams are collected (see ``gram.collector``), so
that the same code path runs whatever the inputs.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from .targets import StreamSpec, Target
from .units import Collector, Handle

_QKV = ("query", "key", "value")


class _IdentityProjection(nn.Module):
    """Stands in for ``out_proj`` during a call: weight ``I [E, E]``, no bias."""

    def __init__(self, like: torch.Tensor):
        super().__init__()
        self.weight = torch.eye(like.shape[0], like.shape[1], dtype=like.dtype, device=like.device)
        self.bias = None


class _Restore:
    """Handle whose ``remove()`` puts the real ``out_proj`` back if a call was interrupted."""

    def __init__(self, unit: "AttentionUnit"):
        self.unit = unit

    def remove(self) -> None:
        self.unit.put_back()


class AttentionUnit:
    """Streams ``<name>:q``, ``:k``, ``:v`` (in-projection inputs) and ``:out`` (out_proj input)."""

    def __init__(self, name: str, module: nn.MultiheadAttention):
        self.name, self.module = name, module
        self.path = "" if name == "<root>" else name
        self.shared = True  # every call so far had query is key is value
        self._real_out: list[NonDynamicallyQuantizableLinear] = []

    @property
    def packed(self) -> bool:
        return bool(self.module._qkv_same_embed_dim) and self.module.in_proj_weight is not None

    def key(self, part: str) -> str:
        return f"{self.name}:{part}"

    def streams(self) -> list[StreamSpec]:
        m = self.module
        return [StreamSpec(self.key("q"), 1, m.embed_dim), StreamSpec(self.key("k"), 1, m.kdim),
                StreamSpec(self.key("v"), 1, m.vdim), StreamSpec(self.key("out"), 1, m.embed_dim)]

    def _target(self, name: str, param: str, rows: Optional[tuple[int, int]], k: int, stream: str, kind: str,
                out_proj: bool = False) -> Target:
        owner: nn.Module = self.module.out_proj if out_proj else self.module
        path = (f"{self.path}.out_proj" if self.path else "out_proj") if out_proj else self.path
        return Target(name, path, param, rows, 1, k, stream, kind, self.name, tuple(getattr(owner, param).shape))

    def targets(self) -> list[Target]:
        m, n, e = self.module, self.name, self.module.embed_dim
        out: list[Target] = []
        if self.packed and self.shared:
            out.append(self._target(f"{n}.in_proj_weight", "in_proj_weight", None, e, self.key("q"), "MHA.in_proj"))
        elif self.packed:
            for i, part in enumerate("qkv"):
                out.append(self._target(f"{n}.in_proj_weight[{part}]", "in_proj_weight", (i * e, (i + 1) * e), e,
                                        self.key(part), f"MHA.in_proj[{part}]"))
        else:
            for part, k in zip("qkv", (e, m.kdim, m.vdim)):
                stream = self.key("q" if self.shared else part)
                out.append(self._target(f"{n}.{part}_proj_weight", f"{part}_proj_weight", None, k, stream,
                                        f"MHA.{part}_proj"))
        out.append(self._target(f"{n}.out_proj", "weight", None, e, self.key("out"), "MHA.out_proj", out_proj=True))
        return out

    def put_back(self) -> None:
        if self._real_out:
            self.module.out_proj = self._real_out[0]
            self._real_out.clear()

    def install(self, collector: Collector) -> list[Handle]:
        self.shared = True
        handles: list[Handle] = [_Restore(self)]
        handles.append(self.module.register_forward_pre_hook(partial(self._pre_hook, collector=collector),
                                                             with_kwargs=True))
        handles.append(self.module.register_forward_hook(partial(self._post_hook, collector=collector)))
        return handles

    def _pre_hook(self, module: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                  collector: Collector) -> None:
        q, k, v = (self._input(args, kwargs, i, n, collector) for i, n in enumerate(_QKV))
        if self.shared and not (q is k and k is v):
            collector.copy_stream(self.key("q"), self.key("k"))
            collector.copy_stream(self.key("q"), self.key("v"))
            self.shared = False
        collector.add(self.key("q"), q)
        if not self.shared:
            collector.add(self.key("k"), k)
            collector.add(self.key("v"), v)
        if self._real_out:
            raise RuntimeError(f"attention {self.name!r} was re-entered during its own call")
        real = module.out_proj
        self._real_out.append(real)
        # a stand-in of another type for the duration of the call (torch types out_proj as a Linear)
        setattr(module, "out_proj", _IdentityProjection(real.weight))

    def _input(self, args: tuple[Any, ...], kwargs: dict[str, Any], i: int, n: str,
               collector: Collector) -> torch.Tensor:
        """The call's ``n`` (``"query"``, ...): positional argument ``i`` or keyword ``n``, a tensor."""
        t = args[i] if i < len(args) else kwargs.get(n)
        if not collector.is_activation(t):
            raise TypeError(f"attention {self.name!r} was called without a tensor {n}")
        return t

    def _post_hook(self, module: nn.MultiheadAttention, args: tuple[Any, ...], output: Any, *,
                   collector: Collector) -> Any:
        real = self._real_out[0]
        self.put_back()
        attn = output[0] if isinstance(output, tuple) else output
        collector.add(self.key("out"), attn)
        projected = F.linear(attn, real.weight, real.bias)
        return (projected, *output[1:]) if isinstance(output, tuple) else projected
