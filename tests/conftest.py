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
