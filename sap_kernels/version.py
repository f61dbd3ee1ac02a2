"""The package version (one place: ``sap_kernels.__version__`` and the files it writes)."""

__version__ = "0.2.0"
