"""``Statistics`` on disk: one safetensors file, tensors plus a JSON table in its header.

Tensors: ``"<stream key>/gram"`` (``[groups, K, K]``) or ``"<stream key>/rows"`` (``[groups, m, K]``)
per stream and ``"trusted_indices"``. Header metadata ``"sap_kernels"``: format name and version,
package version, the stream and target tables, skipped layers, notices and the fingerprint of the
projected weights' shapes. safetensors never unpickles, so a tampered file can only be refused.
"""
from __future__ import annotations

import json
import os
from typing import Any, Union

import torch

from ...ops._checks import all_finite
from ..layers.targets import StreamSpec
from .streams import StreamStats

FORMAT = "sap_kernels.statistics"
FORMAT_VERSION = 1
META_KEY = "sap_kernels"


def save_file(path: Union[str, os.PathLike[str]], streams: dict[str, StreamStats], trusted_indices: torch.Tensor,
              table: str) -> None:
    """Write the streams' tensors, the trusted indices and the JSON ``table`` to ``path``."""
    from safetensors.torch import save_file as write

    tensors: dict[str, torch.Tensor] = {"trusted_indices": trusted_indices.to(torch.long).contiguous()}
    for key, s in streams.items():
        if s.gram is not None:
            tensors[f"{key}/gram"] = s.gram.detach().cpu().contiguous()
        elif s.kept is not None:
            tensors[f"{key}/rows"] = s.kept.detach().cpu().contiguous()
    write(tensors, os.fspath(path), metadata={META_KEY: table})


def read_file(path: Union[str, os.PathLike[str]]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors reports a bad header or truncated data as its own error type
        raise ValueError(f"{os.fspath(path)!r} is not a valid sap_kernels statistics file ({exc})") from None
    try:
        meta = json.loads(header[META_KEY])
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"{os.fspath(path)!r} has no sap_kernels statistics table in its header") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a sap_kernels statistics file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{os.fspath(path)!r} has statistics format version {meta.get('format_version')!r}; "
                         f"this sap_kernels reads version {FORMAT_VERSION}")
    return tensors, meta


def stream_of(m: dict[str, Any], tensors: dict[str, torch.Tensor]) -> StreamStats:
    spec = StreamSpec(str(m["key"]), int(m["groups"]), int(m["k"]), str(m["kind"]))
    data = tensors.get(f"{spec.key}/{m['storage']}")
    if m["storage"] not in ("gram", "rows") or (data is None and m["rows"]):
        raise ValueError(f"statistics file: stream {spec.key!r} has no {m['storage']} tensor")
    expected = (spec.groups, spec.k, spec.k) if m["storage"] == "gram" else (spec.groups, -1, spec.k)
    if data is not None and (data.dim() != 3 or any(e not in (-1, d) for e, d in zip(expected, data.shape))):
        raise ValueError(f"statistics file: stream {spec.key!r} has a tensor of shape {list(data.shape)}, "
                         f"expected {expected}")
    if data is not None and not all_finite(data):
        raise ValueError(f"statistics file: stream {spec.key!r} holds non-finite values")
    gram = data if m["storage"] == "gram" else None
    kept = data if m["storage"] == "rows" else None
    return StreamStats(spec, int(m["rows"]), gram, kept, int(m["exp"]))

