"""The ``"cuda"`` backend: hand-written CUDA C++ kernels from ``csrc/`` (the ``sap_kernels._C`` extension).

Importing this package loads the extension and registers ``gram``, ``conv_gram`` and
``scaled_projection`` for CUDA tensors. When the extension was not built, the import raises an
``ImportError`` that says how to build it; ``sap_kernels.ops.dispatch`` records that message as the
reason the backend is unavailable and the other backends keep working. See ``docs/cuda.md``.
"""
from ._loader import load_extension

_C = load_extension()

from . import ops  # noqa: E402,F401  (importing registers the ops)
