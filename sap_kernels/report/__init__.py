"""A report people look at: ``save_report(result, directory)`` writes ``index.html`` with PNG
figures (the alpha sweep, the per-layer spectra with the chosen lambda) and ``report.json``;
with ``issues=`` (a ``LabelIssues``) also a label-issues section (flagged labels per given ->
predicted class as a heat map and a table, the least likely labels, and with ``samples=`` the
training loader, a grid of the top flagged inputs when they are images). ``render_report(directory)``
draws the page again from ``report.json``. The files are written as a set (``sap_kernels.file_sets``):
all to temporary names first, then renamed together, ``index.html`` last, so a failure leaves the old
report whole; it is an ``OSError`` naming the path. ``report.json`` is checked field by field when
read (``report.schema``). Needs matplotlib (``pip install "sap_kernels[report]"``); importing this
package does not.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Optional, Sequence, Union

from ..file_sets import FileSet, write_text
from ..sap.data import batches
from ..sap.issues.label_issues import LabelIssues
from .data import read_json, report_data, write_json
from .issues import fetch_samples, issues_data, load_samples, save_samples
from .page import render

PathLike = Union[str, "os.PathLike[str]"]


def _issue_figures(data: dict[str, Any], directory: str, images: Any, files: FileSet) -> dict[str, Optional[str]]:
    from .issue_plots import PAIRS_FILE, SAMPLES_FILE, pairs_figure, samples_figure

    section = data.get("label_issues")
    if not section:
        return {}
    pairs = pairs_figure(section, os.path.join(directory, PAIRS_FILE), files)
    grid = samples_figure(section, images, os.path.join(directory, SAMPLES_FILE), files)
    return {"pairs": pairs and PAIRS_FILE, "samples": grid and SAMPLES_FILE}


def _write_page(data: dict[str, Any], directory: str, files: FileSet, images: Any = None) -> str:
    """The figures and ``index.html`` (added last, so renamed last) into ``files``."""
    try:
        from .plots import draw

        figures = draw(data, directory, files)
        issue_figures = _issue_figures(data, directory, images, files)
    except ImportError as exc:
        raise ImportError('the report needs matplotlib: pip install "sap_kernels[report]"') from exc
    page = render(data, figures, issue_figures)
    path = os.path.join(directory, "index.html")
    files.write(path, lambda tmp: write_text(tmp, page))
    return path


def _make_dir(directory: str) -> None:
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(f"the report directory {directory!r} is not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the report directory {directory!r}: {exc.strerror}") from None


def save_report(result: Any, directory: PathLike, issues: Optional[LabelIssues] = None,
                samples: Optional[Iterable[Any]] = None, *, batch_fn: Optional[batches.Splitter] = None,
                input_key: Optional[Union[str, Sequence[str]]] = None, label_key: Optional[str] = None) -> str:
    """Write the report of a ``SAPResult`` into ``directory`` (created); returns the page's path.

    Args:
        issues: ``LabelIssues`` (``result.label_issues(train_loader)``): adds the label-issues section.
        samples: the training loader the issues were computed on: its inputs at the top flagged
            positions (read again in dataset order) are drawn as a grid when they are images
            ``[C, H, W]`` with C 1 or 3; other inputs get a line saying why there is no grid.
        batch_fn, input_key, label_key: how ``samples``' batches split, as for ``project``.
    """
    directory = os.fspath(directory)
    if samples is not None and issues is None:
        raise ValueError("samples= draws the top flagged samples of issues=: pass issues= too")
    _make_dir(directory)
    data = report_data(result)
    found = None
    if issues is not None:
        found = None if samples is None else fetch_samples(issues, samples,
                                                           batches.make_splitter(batch_fn, input_key, label_key))
        data["label_issues"] = issues_data(issues, found)
    with FileSet() as files:  # every file or none: the old report stays whole on a failure
        if found is not None:
            save_samples(found, directory, files)
        write_json(data, directory, files)
        return _write_page(data, directory, files, None if found is None else found.images)


def render_report(directory: PathLike) -> str:
    """Draw ``index.html`` and its figures again from the ``report.json`` in ``directory`` (and,
    for the label-issues grid, the samples file saved beside it)."""
    directory = os.fspath(directory)
    data = read_json(directory)
    section = data.get("label_issues")
    images = load_samples(directory, section) if section else None
    with FileSet() as files:
        return _write_page(data, directory, files, images)


__all__ = ["render_report", "report_data", "save_report"]
