"""The ``"torch"`` backend: plain PyTorch, any device. The CPU path of the package and the
fallback everywhere else."""
from . import conv_gram, gram, projection  # noqa: F401  (importing registers the ops)
