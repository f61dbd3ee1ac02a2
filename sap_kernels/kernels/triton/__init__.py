"""The ``"triton"`` backend: Triton kernels for CUDA tensors, and for CPU tensors when
``TRITON_INTERPRET=1`` was set before this package was imported (the interpreter, used by the
test-suite). Importing it registers the ops with ``sap_kernels.ops.dispatch``; it fails to
import, and dispatch reports why, when Triton is not installed."""
from . import conv_gram, gram, projection  # noqa: F401  (importing registers the ops)
from ._common import interpreted

__all__ = ["interpreted"]
