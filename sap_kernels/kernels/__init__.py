"""Backend implementations of the kernel ops in ``sap_kernels.ops``.

``spec`` is the contract (geometry, dtype rules, ``Request``, one ``Protocol`` per op,
``Backend``); each subpackage (``torch``, ``triton``, ``cuda``) exports ``BACKEND``. Nothing here
imports ``sap_kernels.ops``: ``sap_kernels.ops.dispatch`` imports the backends (lazily, on first
use) and chooses between them.
"""
