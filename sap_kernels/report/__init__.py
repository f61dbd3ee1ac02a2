"""A report people look at: ``save_report(result, directory)`` writes ``index.html`` with PNG
figures (the alpha sweep, the per-layer spectra with the chosen lambda) and ``report.json``;
``render_report(directory)`` draws the page again from ``report.json``. Needs matplotlib
(``pip install "sap_kernels[report]"``); importing this package does not.
"""
from __future__ import annotations

import os
from typing import Any, Union

from .data import read_json, report_data, write_json
from .page import render


def _write_page(data: dict[str, Any], directory: str) -> str:
    try:
        from .plots import draw

        images = draw(data, directory)
    except ImportError as exc:
        raise ImportError('the report needs matplotlib: pip install "sap_kernels[report]"') from exc
    path = os.path.join(directory, "index.html")
    with open(path, "w") as f:
        f.write(render(data, images))
    return path


def save_report(result: Any, directory: Union[str, "os.PathLike[str]"]) -> str:
    """Write the report of a ``SAPResult`` into ``directory`` (created); returns the page's path."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    data = report_data(result)
    write_json(data, directory)
    return _write_page(data, directory)


def render_report(directory: Union[str, "os.PathLike[str]"]) -> str:
    """Draw ``index.html`` and its figures again from the ``report.json`` in ``directory``."""
    directory = os.fspath(directory)
    return _write_page(read_json(directory), directory)


__all__ = ["render_report", "report_data", "save_report"]
