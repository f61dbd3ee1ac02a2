"""Moving, slicing and feeding the nested batches a loader yields.

Inputs may be a tensor, a tuple/list of tensors (passed as positional arguments) or a dict of
tensors (passed as keyword arguments); dim 0 of every tensor is the sample dim.

A loader may yield ``(inputs, labels)`` pairs (the default) or anything else, dicts included,
with ``make_splitter``: ``label_key=`` and ``input_key=`` name the entries of a dict batch, or
``batch_fn=`` maps a batch to ``(inputs, labels)``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import nn


Splitter = Callable[[Any], tuple]


def split_batch(batch: Any) -> tuple[Any, torch.Tensor]:
    """``(inputs, labels)`` from one loader batch, with a clear error for anything else."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        inputs, labels = batch
    elif isinstance(batch, dict):
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
        labels = torch.as_tensor(labels)
    return inputs, labels


def make_splitter(
    batch_fn: Optional[Splitter] = None,
    input_key: Optional[Union[str, Sequence[str]]] = None,
    label_key: Optional[str] = None,
) -> Splitter:
    """A function ``batch -> (inputs, labels [B] int)``.

    Args:
        batch_fn: maps one loader batch to ``(inputs, labels)``; excludes the keys.
        input_key: for dict batches, the entry passed to the model as its one positional
            argument (a str), or several entries passed as keyword arguments (a list of str).
            Default with ``label_key``: every other entry, as keyword arguments.
        label_key: for dict batches, the entry holding the labels.
    """
    if batch_fn is not None:
        if input_key is not None or label_key is not None:
            raise ValueError("give either batch_fn or input_key/label_key, not both")

        def split_fn(batch):
            out = batch_fn(batch)
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError(f"batch_fn must return (inputs, labels), got {type(out).__name__}")
            return split_batch(tuple(out))

        return split_fn
    if input_key is None and label_key is None:
        return split_batch
    if label_key is None:
        raise ValueError("input_key needs label_key (the dict entry holding the labels)")

    def split_dict(batch):
        if not isinstance(batch, dict):
            raise TypeError(f"input_key/label_key need dict batches; the loader yielded {type(batch).__name__}")
        missing = [k for k in ([label_key] + ([input_key] if isinstance(input_key, str) else list(input_key or [])))
                   if k not in batch]
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


def map_tensors(obj: Any, fn) -> Any:
    """Apply ``fn`` to every tensor in a nested tuple/list/dict structure."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    return obj


def first_tensor(obj: Any) -> torch.Tensor:
    """The first tensor in a nested structure (its dim 0 is the batch size)."""
    if isinstance(obj, torch.Tensor):
        return obj
    values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (tuple, list)) else ()
    for v in values:
        try:
            return first_tensor(v)
        except TypeError:
            continue
    raise TypeError(f"no tensor found in model inputs of type {type(obj).__name__}")


def batch_len(inputs: Any) -> int:
    return int(first_tensor(inputs).shape[0])


def to_device(obj: Any, device: torch.device) -> Any:
    return map_tensors(obj, lambda t: t.to(device, non_blocking=True))


def select(obj: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` (a LongTensor on CPU) of every tensor in ``obj``."""
    return map_tensors(obj, lambda t: t.index_select(0, index.to(t.device)))


def concat(parts: Sequence[Any]) -> Any:
    """Concatenate a list of same-structured nested batches along dim 0."""
    head = parts[0]
    if isinstance(head, torch.Tensor):
        return torch.cat(list(parts))
    if isinstance(head, dict):
        return {k: concat([p[k] for p in parts]) for k in head}
    if isinstance(head, (tuple, list)):
        return type(head)(concat([p[i] for p in parts]) for i in range(len(head)))
    return head


def slice_rows(obj: Any, start: int, stop: int) -> Any:
    return map_tensors(obj, lambda t: t[start:stop])


def call_model(model: nn.Module, inputs: Any) -> torch.Tensor:
    """Run ``model`` on inputs and return its logits ``[B, C]``."""
    if isinstance(inputs, dict):
        out = model(**inputs)
    elif isinstance(inputs, (tuple, list)):
        out = model(*inputs)
    else:
        out = model(inputs)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a logits tensor [batch, classes]; it returned {type(out).__name__}")
    if out.dim() != 2:
        raise ValueError(f"the model must return logits of shape [batch, classes]; got shape {list(out.shape)}")
    return out
