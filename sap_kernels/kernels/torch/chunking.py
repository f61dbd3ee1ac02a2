"""Bounded working memory for the torch backend."""
from __future__ import annotations

import os

ENV_VAR = "SAP_KERNELS_CHUNK_MB"
_DEFAULT_MB = 64


def chunk_bytes() -> int:
    """Upper bound on one materialised chunk of rows (bytes); ``$SAP_KERNELS_CHUNK_MB``, default 64."""
    raw = os.environ.get(ENV_VAR)
    mb = _DEFAULT_MB if raw in (None, "") else float(raw)
    if mb <= 0:
        raise ValueError(f"${ENV_VAR} must be a positive number of MiB, got {raw!r}")
    return int(mb * 2**20)


def rows_per_chunk(row_bytes: int) -> int:
    """How many rows of ``row_bytes`` bytes fit in one chunk (at least one)."""
    return max(1, chunk_bytes() // max(1, row_bytes))
