"""A SAP result as plain JSON-able data: what the report page and ``sap-kernels report`` read.

Layout (``report.json``): ``alpha`` (``null`` for the unchanged model), ``scores`` (list of
``[alpha or null, score]``), ``rule``, ``validation``, ``warnings``, ``notices``, ``n_samples``,
``n_trusted``, ``timings`` (phase -> seconds), ``skipped`` (list of ``[name, reason]``) and
``layers``: per layer ``name``, ``kind``, ``K``, ``groups``, ``rows``, ``method``, ``rank99``
and ``energies`` (descending, the largest-energy group's, or null without a spectrum).
Optional: ``label_issues`` (``sap_kernels.report.issues``) and ``variant`` (``mode``,
``location``, ``rounds``; absent in older reports, read as ``sap``/``pre``/1); a report without
them is read as before.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Optional, Union

from ..file_sets import FileSet, write_file, write_text
from .schema import check_report

FORMAT = "sap_kernels.report"
FORMAT_VERSION = 1


def _alpha(a: float) -> Optional[float]:
    return None if math.isinf(a) else float(a)


def _layer(layer: Any) -> dict[str, Any]:
    energies = None
    if layer.eigenvalues is not None:
        e = layer.eigenvalues.double().clamp_min(0)
        energies = e[int(e.sum(1).argmax())].tolist()  # the group holding most energy
    return {"name": layer.name, "kind": layer.kind, "K": layer.K, "groups": layer.groups, "rows": layer.rows,
            "method": layer.method, "rank99": layer.energy_rank(), "energies": energies,
            "tied": list(getattr(layer, "tied", ()))}


def report_data(result: Any) -> dict[str, Any]:
    """The JSON-able description of a ``SAPResult``."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "alpha": _alpha(result.alpha),
        "scores": [[_alpha(a), float(s)] for a, s in sorted(result.scores.items(), key=lambda kv: kv[0])],
        "rule": result.rule, "validation": result.validation,
        "warnings": list(result.warnings), "notices": list(result.notices),
        "n_samples": int(result.n_samples), "n_trusted": int(len(result.trusted_indices)),
        "timings": {k: float(v) for k, v in result.timings.items()},
        "skipped": [[str(n), str(r)] for n, r in result.skipped],
        "layers": [_layer(layer) for layer in result.layers],
        "variant": {"mode": str(getattr(result, "mode", "sap")), "location": str(getattr(result, "location", "pre")),
                    "rounds": int(getattr(result, "rounds", 1))},
    }


def write_json(data: dict[str, Any], directory: Union[str, os.PathLike[str]], files: Optional[FileSet] = None) -> str:
    """``report.json`` in ``directory``, as part of ``files`` (or on its own: a temporary name, then renamed)."""
    path = os.path.join(os.fspath(directory), "report.json")
    text = json.dumps(data, indent=1)
    return write_file(path, lambda tmp: write_text(tmp, text), files)


def read_json(directory: Union[str, os.PathLike[str]]) -> dict[str, Any]:
    """``report.json`` of a report directory, checked to be one, field by field (``report.schema``)."""
    path = os.path.join(os.fspath(directory), "report.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist: {os.fspath(directory)!r} is not a SAP report directory") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sap_kernels report")
    try:
        check_report(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return data
