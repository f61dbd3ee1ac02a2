"""The report's HTML page: self-contained (relative image links, inline style, no scripts from
elsewhere), readable without a server."""
from __future__ import annotations

import html
from typing import Any, Optional

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.warning { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.6em; margin: 0.6em 0; }
.notice { background: #eef4ff; border: 1px solid #9db4e0; padding: 0.6em; margin: 0.6em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
"""

# Marks the page once every image has loaded (or failed), for headless checks of the page.
_CHECK = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
});
</script>
"""


TOP_PAIRS = 20


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _alpha_text(a: Optional[float]) -> str:
    return "unchanged (inf)" if a is None else f"{a:.4g}"


def _summary(data: dict[str, Any]) -> str:
    lines = [f"<p><b>alpha = {_e(_alpha_text(data['alpha']))}</b>; {data['n_trusted']} trusted of "
             f"{data['n_samples']} samples; {len(data['layers'])} weights projected.<br>"
             f"alpha chosen on: {_e(data['validation'])}; rule: {_e(data['rule'])}</p>"]
    lines += [f'<div class="warning">{_e(w)}</div>' for w in data["warnings"]]
    lines += [f'<div class="notice">{_e(n)}</div>' for n in data["notices"]]
    return "\n".join(lines)


def _scores(data: dict[str, Any]) -> str:
    if not data["scores"]:
        return "<p>No sweep: alpha was given.</p>"
    rows = [[_alpha_text(a), f"{100 * s:.2f}%", "chosen" if a == data["alpha"] else ""] for a, s in data["scores"]]
    return _table(["alpha", "score", ""], rows)


def _layers(data: dict[str, Any]) -> str:
    rows = [[la["name"], la["kind"], la["K"], la["groups"], la["rows"], "-" if la["rank99"] is None else la["rank99"],
             la["method"], ", ".join(la.get("tied", []))] for la in data["layers"]]
    return _table(["layer", "kind", "K", "groups", "rows", "rank (99% energy)", "method", "tied with"], rows)


def _img(name: Optional[str], alt: str) -> str:
    return f'<p><img src="{_e(name)}" alt="{_e(alt)}"></p>' if name else ""


def _issue_rows(section: dict[str, Any]) -> str:
    names = section["class_names"]
    pairs = [[names[g], names[p], n] for g, p, n in section["top_pairs"][:TOP_PAIRS]]
    pair_table = _table(["given", "predicted", "flagged"], pairs) if pairs else ""
    rows = [[pos, names[g], names[p], f"{q:.4f}", "yes" if flagged else "no"]
            for pos, g, p, q, flagged in section["top"]]
    return pair_table + f"<h3>The {len(rows)} least likely labels</h3>" + _table(
        ["position", "given", "predicted", "label quality", "flagged"], rows)


def issues_section(data: dict[str, Any], images: dict[str, Optional[str]]) -> str:
    """The label-issues section (empty for a report without ``label_issues``)."""
    section = data.get("label_issues")
    if not section:
        return ""
    share = 100 * section["n_issues"] / max(1, section["n_samples"])
    head = (f"<h2>Label issues</h2>\n<p><b>{section['n_issues']} of {section['n_samples']} labels flagged "
            f"({share:.1f} %)</b> by rule {_e(section['rule'])}, scored by the corrected model (alpha "
            f"{_e(_alpha_text(section['alpha']))}). Positions are dataset indices (dataset[i]).</p>")
    notes = "".join(f'<div class="notice">{_e(n)}</div>' for n in section["notices"])
    pairs = _img(images.get("pairs"), "flagged labels per given -> predicted class") or (
        "<p>No label was flagged.</p>" if section["n_issues"] == 0 else "")
    grid = _img(images.get("samples"), "top flagged samples")
    why = section["grid"]["why"]
    grid_note = f"<p>{'' if grid else 'No grid of samples: '}{_e(why)}</p>" if why else ""
    return head + notes + pairs + _issue_rows(section) + "<h3>Top flagged samples</h3>" + grid + grid_note


def render(data: dict[str, Any], images: dict[str, Optional[str]],
           issue_images: Optional[dict[str, Optional[str]]] = None) -> str:
    """The whole page as a string; ``images`` maps figure names to files beside the page,
    ``issue_images`` the label-issues figures (``"pairs"``, ``"samples"``)."""
    figures = "".join(f'<p><img src="{_e(f)}" alt="{_e(n)}"></p>' for n, f in images.items() if f)
    skipped = _table(["module", "reason"], data["skipped"]) if data["skipped"] else "<p>Nothing.</p>"
    timings = _table(["phase", "seconds"], [[k, f"{v:.2f}"] for k, v in data["timings"].items()])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SAP report</title><style>{_STYLE}</style></head>
<body>
<h1>Scaled Activation Projection: report</h1>
{_summary(data)}
<h2>Alpha</h2>
{figures}
{_scores(data)}
<h2>Projected layers</h2>
{_layers(data)}
<h2>Not projected</h2>
{skipped}
<h2>Time per phase</h2>
{timings}
{issues_section(data, issue_images or {})}
{_CHECK}
</body></html>
"""
