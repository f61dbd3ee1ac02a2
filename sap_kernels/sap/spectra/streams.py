"""One stream's accumulated data, as phase 2 leaves it: a Gram, or the rows themselves while the
stream has seen no more rows than its width."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..layers.targets import StreamSpec


@dataclass
class StreamStats:
    """One stream's data. Activations were divided by ``2^exp`` before accumulating (exact).

    gram: ``[groups, K, K]`` float32/float64, or None while the stream holds rows.
    kept: ``[groups, m, K]`` rows (``m <= K``), or None once the Gram took over.
    rows: rows seen per group.
    """

    spec: StreamSpec
    rows: int
    gram: Optional[torch.Tensor] = None
    kept: Optional[torch.Tensor] = None
    exp: int = 0

    def meta(self) -> dict[str, Any]:
        s = self.spec
        data = self.gram if self.gram is not None else self.kept
        return {"key": s.key, "groups": s.groups, "k": s.k, "kind": s.kind, "rows": self.rows, "exp": self.exp,
                "storage": "gram" if self.gram is not None else "rows",
                "dtype": str(data.dtype) if data is not None else None}

