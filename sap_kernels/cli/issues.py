"""``sap-kernels issues``: which training labels are wrong, from the model SAP corrects; a CSV
(one row per sample, most likely wrong first), optionally the LabelIssues file and the report."""
from __future__ import annotations

import csv
import enum
from collections.abc import Iterable
from typing import Annotated, Any, Optional

import typer
from torch import nn

from ..sap.find_issues import project_and_find
from ..sap.issues.files import atomic_write
from ..sap.issues.label_issues import LabelIssues
from ..sap.issues.rules import DEFAULT_RULE
from ..sap.result import SAPResult
from . import project as shared  # the options and the loading code of ``sap-kernels project``
from .common import RunFailure, check_writable_dir, check_writable_file, one_line_errors, require_matplotlib


class IssueRule(str, enum.Enum):
    """``--rule`` (``sap.issues.rules.RULES``)."""

    neighbours = "neighbours"
    argmax = "argmax"
    confident_learning = "confident_learning"
    prune_by_noise_rate = "prune_by_noise_rate"


CsvOpt = Annotated[str, typer.Option(
    "--out", metavar="FILE",
    help="where to write the CSV: a header (position, given, predicted, label_quality, is_issue) and one row per "
         "training sample, most likely wrong first; position is the sample's dataset index.")]
RuleOpt = Annotated[IssueRule, typer.Option(
    "--rule",
    help="which samples are flagged: another class winning the vote of the sample's 20 nearest training samples in "
         "the corrected model's feature space (the model's probabilities one vote more; the default), the "
         "predicted class differing from the label, confident learning's per-class thresholds (cleanlab's own "
         "where installed), or cleanlab's prune_by_noise_rate (needs cleanlab).")]
IssuesFileOpt = Annotated[Optional[str], typer.Option(
    "--issues-file", metavar="FILE",
    help="also write the LabelIssues (probabilities included; safetensors, sap_kernels.LabelIssues.load). "
         "[default: none]")]


def write_csv(issues: LabelIssues, path: str) -> None:
    """``issues.to_csv_rows()`` to ``path`` (atomic: a temporary name, then renamed)."""
    rows = issues.to_csv_rows()

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(rows)

    atomic_write(path, write)


def _check_outputs(out: str, issues_file: Optional[str], report: Optional[str]) -> None:
    """Every output can be written: checked before the model is loaded or any pass runs."""
    check_writable_file(out, "--out")
    if issues_file is not None:
        check_writable_file(issues_file, "--issues-file")
    if report is not None:
        require_matplotlib("--report")
        check_writable_dir(report, "--report")


def _project_and_find(model: nn.Module, train: Iterable[Any], val: Optional[Iterable[Any]], rule: IssueRule,
                      options: dict[str, Any]) -> tuple[SAPResult, LabelIssues]:
    """``find_label_issues``' work (labels scored at ``detection_alpha`` where the plain call keeps the
    model), with the result for the report; what the calls refuse by name is a ``CLIError``."""
    return shared.as_cli_errors(
        lambda: project_and_find(model, train, val_loader=val, rule=rule.value, **options), options)


def _write(result: SAPResult, issues: LabelIssues, train: Iterable[Any], out: str, issues_file: Optional[str],
           report: Optional[str], options: dict[str, Any]) -> Optional[str]:
    try:
        write_csv(issues, out)
        if issues_file is not None:
            issues.save(issues_file)
        if report is None:
            return None
        return result.save_report(report, issues=issues, samples=train, label_key=options["label_key"],
                                  input_key=options["input_key"])
    except OSError as exc:
        raise RunFailure(f"cannot write the results: {exc}") from exc


def run_issues(model_spec: str, data_spec: str, weights: Optional[str], out: str, issues_file: Optional[str],
               report: Optional[str], rule: IssueRule, options: dict[str, Any], quiet: bool) -> None:
    """Check the outputs, load, repair, score, write; messages but errors go to stdout unless ``quiet``."""
    _check_outputs(out, issues_file, report)
    model, train, val = shared.load_inputs(model_spec, data_spec, weights)
    result, issues = _project_and_find(model, train, val, rule, options)
    if not quiet:
        typer.echo(str(issues))
    page = _write(result, issues, train, out, issues_file, report, options)
    if not quiet:
        typer.echo(f"{issues.n_issues} of {len(issues)} labels flagged: {out}"
                   + (f", {issues_file}" if issues_file else "") + (f"; report: {page}" if page else ""))


def issues(
    model: shared.ModelOpt, data: shared.DataOpt, out: CsvOpt, rule: RuleOpt = IssueRule(DEFAULT_RULE),
    issues_file: IssuesFileOpt = None, report: shared.ReportOpt = None, weights: shared.WeightsOpt = None,
    alpha: shared.AlphaOpt = None, alphas: shared.AlphasOpt = None, n_trusted: shared.NTrustedOpt = None,
    class_balanced: shared.BalancedOpt = None, trusted: shared.TrustedOpt = shared.Ranking.loss,
    layers: shared.LayersOpt = None, skip: shared.SkipOpt = None, skip_head: shared.SkipHeadOpt = False,
    label_key: shared.LabelKeyOpt = None, input_key: shared.InputKeyOpt = None, threads: shared.ThreadsOpt = None,
    seed: shared.SeedOpt = 0, quiet: shared.QuietOpt = False,
) -> None:
    """Which training labels are wrong: sap_kernels.project on the model and loaders the --model and
    --data callables return (the same options as 'sap-kernels project'), then every training sample
    scored by the corrected model (res.label_issues); no cross-validation, no retraining.

    Prints what was flagged, writes the CSV to --out FILE, with --issues-file the LabelIssues, and
    with --report DIR the report page with its label-issues section (a grid of the top flagged
    samples for image inputs). Every output is checked writable before the work starts.

    Errors in what was given (entry points, options, an output that cannot be written) are one line
    on stderr, exit status 2; failures after the work started (an error raised by the --model or
    --data callable, results that cannot be written), one line, status 1; --debug shows the traceback.
    """
    with one_line_errors("issues"):
        options = shared.prepare(alpha, alphas, n_trusted, class_balanced, trusted, layers, skip, skip_head, label_key,
                          input_key, threads, seed, quiet)
        run_issues(model, data, weights, out, issues_file, report, rule, options, quiet)
