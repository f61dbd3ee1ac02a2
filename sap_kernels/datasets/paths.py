"""Where the data lives: the project's shared copy and the user cache for decoded arrays."""
from __future__ import annotations

import os
from pathlib import Path

#: The shared copy's folder relative to the project root (README of that folder: provenance, licences).
SHARED_RELATIVE = Path("..") / "shared" / "data" / "cifar10"


def project_root() -> Path:
    """The repository root: the folder holding the ``sap_kernels`` package (an editable install)."""
    return Path(__file__).resolve().parents[2]


def shared_cifar10_dir(root: Path | None = None) -> Path:
    """``<root>/../shared/data/cifar10`` (``root``: the project root by default). Not checked to exist."""
    return ((root or project_root()) / SHARED_RELATIVE).resolve()


def cache_dir() -> Path:
    """The folder for decoded arrays: ``$SAP_KERNELS_CACHE``, else ``$XDG_CACHE_HOME/sap_kernels``,
    else ``~/.cache/sap_kernels``. Not created here."""
    explicit = os.environ.get("SAP_KERNELS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "sap_kernels"


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else a FileNotFoundError naming it and what was expected there."""
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path
