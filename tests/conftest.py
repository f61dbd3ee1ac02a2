"""Shared test setup.

Without a GPU, Triton kernels run on CPU tensors through Triton's interpreter. Triton reads
``TRITON_INTERPRET`` when ``@triton.jit`` decorates a kernel, i.e. when
``sap_kernels.kernels.triton`` is first imported, so it is set here, before any test module
imports anything. On a CUDA machine it is left alone and the kernels are compiled.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist the workers share the cores: each gets its share of torch's threads, since
# oversubscribed threads make every worker slower than running alone.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))

# Property tests draw the same examples on every run, so a suite that passed keeps passing and a
# failure reproduces; SAP_KERNELS_HYPOTHESIS=explore draws fresh examples to search further.
from hypothesis import settings  # noqa: E402

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile("explore" if os.environ.get("SAP_KERNELS_HYPOTHESIS") == "explore" else "repeatable")
