"""Bounded working memory for the torch backend (``$SAP_KERNELS_CHUNK_MB``)."""
from __future__ import annotations

import math
import os

ENV_VAR = "SAP_KERNELS_CHUNK_MB"
DEFAULT_MB = 64.0


def chunk_mb() -> float:
    """``$SAP_KERNELS_CHUNK_MB`` as a positive, finite number of MiB (default 64).

    Raises:
        ValueError: naming the variable and its value when it is not a positive finite number
            (``abc``, ``nan``, ``inf``, ``0``, ``-1``).
    """
    raw = os.environ.get(ENV_VAR)
    if raw is None or raw.strip() == "":
        return DEFAULT_MB
    try:
        mb = float(raw)
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and mb > 0):
        raise ValueError(f"${ENV_VAR}={raw!r} is not a positive finite number of MiB (e.g. 64)")
    return mb


def chunk_bytes() -> int:
    """Upper bound on one materialised chunk of rows, in bytes."""
    return int(chunk_mb() * 2**20)


def rows_per_chunk(row_bytes: int) -> int:
    """How many rows of ``row_bytes`` bytes fit in one chunk (at least one)."""
    return max(1, chunk_bytes() // max(1, row_bytes))
