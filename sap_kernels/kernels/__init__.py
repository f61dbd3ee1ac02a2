"""Backend implementations of the ops in ``sap_kernels.ops``; each subpackage registers itself
with ``sap_kernels.ops.dispatch`` when imported (lazily, on first use)."""
