"""``python -m sap_kernels <command>``, also installed as ``sap-kernels``: see ``sap_kernels.cli``.

Commands: ``project`` (SAP on a model and data named by entry points), ``report`` (draw a saved
report page again), ``demo`` (SAP on noisy scikit-learn digits against the baselines).
"""
from __future__ import annotations

import sys

from .cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
