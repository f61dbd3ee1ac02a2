"""Reading the batches a loader yields: splitting, checking, moving, slicing and feeding them.

Inputs may be a tensor, a tuple/list (passed as positional arguments) or a dict (keyword
arguments), nested freely; dim 0 of every tensor in them is the sample dim, and that is checked
against the number of labels. A tensor that is *not* per sample (a lookup table, a shared mask)
goes in wrapped as ``Shared(t)`` (from ``batch_fn``): it is moved to the model's device and passed
as it is, never sliced.

A loader may yield ``(inputs, labels)`` pairs (the default) or anything else, dicts included,
with ``make_splitter``: ``label_key=`` and ``input_key=`` name the entries of a dict batch, or
``batch_fn=`` maps a batch to ``(inputs, labels)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch

from ..options.configs import Splitter

__all__ = ["Shared", "Signature", "Splitter", "make_splitter", "split_batch"]

# What must agree for two batches to be concatenated: (path, per-sample shape, dtype) per leaf.
Signature = tuple[tuple[str, object, object], ...]


class Shared:
    """A tensor passed to the model with every batch as it is (not a per-sample tensor).

    Example: ``batch_fn=lambda b: ({"x": b["x"], "table": Shared(b["table"])}, b["y"])``.
    """

    def __init__(self, tensor: torch.Tensor):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"Shared wraps a tensor, got {type(tensor).__name__}")
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"Shared({list(self.tensor.shape)}, {self.tensor.dtype})"


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, labels)`` from one loader batch, with a clear error for anything else."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        inputs, labels = batch
    elif isinstance(batch, Mapping):
        raise TypeError(
            f"the loader yields dict batches (keys {sorted(map(str, batch))}); say which entries are the "
            "model input and the label with input_key=/label_key=, or pass batch_fn=lambda b: (inputs, labels)"
        )
    else:
        raise TypeError(
            "the loader must yield (inputs, labels) pairs; got a batch of type "
            f"{type(batch).__name__}" + (f" with {len(batch)} items" if isinstance(batch, (tuple, list)) else "")
        )
    if not isinstance(labels, torch.Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"labels must be a tensor (or convertible to one), got {type(labels).__name__}") from exc
    return inputs, labels


def _dict_splitter(input_key: Optional[Union[str, Sequence[str]]], label_key: str) -> Splitter:
    if input_key is not None and not isinstance(input_key, str):
        keys = list(input_key)
        if not keys or not all(isinstance(k, str) for k in keys):
            raise TypeError(f"input_key must be a str or a list of str, got {input_key!r}")
    if not isinstance(label_key, str):
        raise TypeError(f"label_key must be a str, got {label_key!r}")

    def split_dict(batch: Any) -> tuple[Any, Any]:
        if not isinstance(batch, Mapping):
            raise TypeError(f"input_key/label_key need dict batches; the loader yielded {type(batch).__name__}")
        wanted = [label_key] + ([input_key] if isinstance(input_key, str) else list(input_key or []))
        missing = [k for k in wanted if k not in batch]
        if missing:
            raise KeyError(f"batch has no entries {missing}; its keys are {sorted(map(str, batch))}")
        if isinstance(input_key, str):
            inputs = batch[input_key]
        elif input_key is not None:
            inputs = {k: batch[k] for k in input_key}
        else:
            inputs = {k: v for k, v in batch.items() if k != label_key}
        return split_batch((inputs, batch[label_key]))

    return split_dict


def make_splitter(
    batch_fn: Optional[Splitter] = None,
    input_key: Optional[Union[str, Sequence[str]]] = None,
    label_key: Optional[str] = None,
) -> Splitter:
    """A function ``batch -> (inputs, labels)``.

    Args:
        batch_fn: maps one loader batch to ``(inputs, labels)``; excludes the keys.
        input_key: for dict batches, the entry passed to the model as its one positional
            argument (a str), or several entries passed as keyword arguments (a list of str).
            Default with ``label_key``: every other entry, as keyword arguments.
        label_key: for dict batches, the entry holding the labels.
    """
    if batch_fn is not None:
        if not callable(batch_fn):
            raise TypeError(f"batch_fn must be callable, got {type(batch_fn).__name__}")
        if input_key is not None or label_key is not None:
            raise ValueError("give either batch_fn or input_key/label_key, not both")

        def split_fn(batch: Any) -> tuple[Any, Any]:
            out = batch_fn(batch)
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError(f"batch_fn must return (inputs, labels), got {type(out).__name__}")
            return split_batch(tuple(out))

        return split_fn
    if input_key is None and label_key is None:
        return split_batch
    if label_key is None:
        raise ValueError("input_key needs label_key (the dict entry holding the labels)")
    return _dict_splitter(input_key, label_key)


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor], shared: bool = False) -> Any:
    """Apply ``fn`` to every per-sample tensor in a nested tuple/list/dict (and to ``Shared``
    tensors too when ``shared``)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, Shared):
        return Shared(fn(obj.tensor)) if shared else obj
    if isinstance(obj, Mapping):
        return {k: map_tensors(v, fn, shared) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(map_tensors(v, fn, shared) for v in obj)
    return obj


def leaves(obj: Any, path: str = "inputs") -> Iterator[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf of a nested structure, e.g. ``("inputs['ids']", t)``."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from leaves(v, f"{path}[{k!r}]")
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def check_samples(inputs: Any, n: int, batch_index: int) -> None:
    """Every per-sample tensor in ``inputs`` has ``n`` (the number of labels) rows on dim 0."""
    found = False
    for path, leaf in leaves(inputs):
        if not isinstance(leaf, torch.Tensor):
            continue
        found = True
        if leaf.dim() == 0 or leaf.shape[0] != n:
            shape = list(leaf.shape)
            raise ValueError(
                f"batch {batch_index}: {path} has shape {shape} but the batch has {n} labels; dim 0 of every "
                "input tensor must be the sample dim (a sequence-first [T, B, ...] input must be transposed; a "
                "tensor shared by all samples goes in as sap_kernels.Shared(t) through batch_fn)"
            )
    if not found:
        raise TypeError(f"batch {batch_index}: the inputs hold no tensor (got {type(inputs).__name__})")


def signature(inputs: Any) -> Signature:
    """What must agree for two batches to be concatenated: structure, per-sample shapes, dtypes."""
    out: list[tuple[str, object, object]] = []
    for path, leaf in leaves(inputs):
        if isinstance(leaf, torch.Tensor):
            out.append((path, tuple(leaf.shape[1:]), leaf.dtype))
        elif isinstance(leaf, Shared):
            out.append((path, "shared", id(leaf.tensor)))
        else:
            out.append((path, type(leaf).__name__, repr(leaf)))
    return tuple(out)


def to_device(obj: Any, device: torch.device) -> Any:
    return map_tensors(obj, lambda t: t.to(device, non_blocking=True), shared=True)


def to_host(obj: Any) -> Any:
    return map_tensors(obj, lambda t: t.detach().cpu())


def select(obj: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` (an int64 tensor) of every per-sample tensor in ``obj``."""
    return map_tensors(obj, lambda t: t.index_select(0, index.to(t.device)))


def concat(parts: Sequence[Any]) -> Any:
    """Concatenate same-signature nested batches along dim 0 (``Shared`` leaves taken from the first)."""
    head = parts[0]
    if isinstance(head, torch.Tensor):
        return torch.cat(list(parts))
    if isinstance(head, Mapping):
        return {k: concat([p[k] for p in parts]) for k in head}
    if isinstance(head, (tuple, list)):
        return type(head)(concat([p[i] for p in parts]) for i in range(len(head)))
    return head


def slice_rows(obj: Any, start: int, stop: int) -> Any:
    return map_tensors(obj, lambda t: t[start:stop])


def batch_len(inputs: Any) -> int:
    """Samples in a nested batch: dim 0 of its first per-sample tensor."""
    for _, leaf in leaves(inputs):
        if isinstance(leaf, torch.Tensor):
            return int(leaf.shape[0]) if leaf.dim() else 1
    raise TypeError(f"no tensor found in model inputs of type {type(inputs).__name__}")
