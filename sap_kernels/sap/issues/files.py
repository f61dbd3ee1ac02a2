"""``LabelIssues`` on disk: one safetensors file (tensors, and a JSON table in its header), written
atomically: to a temporary name beside the target, then renamed, so a failure leaves the old
file or none, never half of one. safetensors never unpickles."""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Union

import torch

from ...file_sets import write_file

FORMAT = "sap_kernels.label_issues"
FORMAT_VERSION = 1
META_KEY = "sap_kernels"
PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path`` (a file set of one, ``sap_kernels.file_sets``):
    errors are ``OSError``s naming ``path``; the file gets the user's umask."""
    write_file(path, write)


def save_tables(path: PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    body = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **meta})}
    atomic_write(path, lambda tmp: save_file(body, tmp, metadata=header))


def load_tables(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the JSON table of a file ``save_tables`` wrote, or a ValueError naming it."""
    from safetensors import safe_open

    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"no label-issues file at {name!r}")
    try:
        with safe_open(name, framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors reports a bad header or truncated data as its own error type
        raise ValueError(f"{name!r} is not a valid sap_kernels label-issues file ({exc})") from None
    try:
        meta = json.loads(header[META_KEY])
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"{name!r} has no sap_kernels label-issues table in its header") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{name!r} is not a sap_kernels label-issues file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{name!r} has label-issues format version {meta.get('format_version')!r}; this "
                         f"sap_kernels reads version {FORMAT_VERSION}")
    return tensors, meta
