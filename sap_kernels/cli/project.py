"""``sap-kernels project``: SAP on a model and data named by entry points, weights written to a file."""
from __future__ import annotations

import enum
import math
import os
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Optional, TypeVar, Union

import torch
import typer
from torch import nn

from ..sap.result import SAPResult
from .common import CLIError, RunFailure, check_writable_dir, check_writable_file, one_line_errors, require_matplotlib
from .entry import build_loaders, build_model, load_callable

T = TypeVar("T")

ModelOpt = Annotated[str, typer.Option(
    "--model", metavar="MODULE:FN",
    help="callable returning the nn.Module to repair: 'package.module:build_model' (imported with the "
         "current directory on the path) or 'path/to/file.py:build_model'.")]
DataOpt = Annotated[str, typer.Option(
    "--data", metavar="MODULE:FN",
    help="callable returning (train_loader, val_loader), each an iterable of (inputs, labels) batches; "
         "val_loader (samples the model never trained on) may be None. Same forms as --model.")]
OutOpt = Annotated[str, typer.Option(
    "--out", metavar="FILE",
    help="where to write the corrected weights (safetensors; the report's data goes to FILE.json beside "
         "it).")]
WeightsOpt = Annotated[Optional[str], typer.Option(
    "--weights", metavar="FILE",
    help="safetensors state dict loaded into the model before SAP (safetensors.torch.load_model). "
         "[default: the weights the --model callable gives]")]
AlphaOpt = Annotated[Optional[float], typer.Option(
    "--alpha", metavar="A",
    help="use this alpha, no sweep (inf: leave the model unchanged); not with --alphas. "
         "[default: choose alpha from --alphas]")]
AlphasOpt = Annotated[Optional[list[float]], typer.Option(
    "--alphas", metavar="A1 A2 ...",
    help="alpha grid to choose from, on val_loader (or, without one, on training samples by the plateau "
         "rule). [default: project()'s grid, 1, 10**0.5, ..., 1e6]")]
NTrustedOpt = Annotated[Optional[str], typer.Option(
    "--n-trusted", metavar="N",
    help="trusted samples: a count, or a fraction of the training set in (0, 1). "
         "[default: 1000, or a quarter of the training set when that is fewer]")]
BalancedOpt = Annotated[Optional[bool], typer.Option(
    "--class-balanced/--no-class-balanced",
    help="choose the trusted samples per class (the best N/classes of each) or from one pool. "
         "[default: per class for class labels]")]


class Ranking(str, enum.Enum):
    """``--trusted``: how training samples are ranked for trust (``project(trusted=...)``).
    An Enum rather than a Literal: typer takes Enum choices in every version since 0.9."""

    loss = "loss"
    curvature = "curvature"
    random = "random"


TrustedOpt = Annotated[Ranking, typer.Option(
    "--trusted",
    help="how training samples are ranked for trust: lowest per-sample loss (the paper), lowest input "
         "curvature (the published scripts), or at random (project()'s trusted=).")]
LayersOpt = Annotated[Optional[list[str]], typer.Option(
    "--layers", metavar="NAME ...",
    help="project only these modules: names or glob patterns ('features.*'). [default: every Linear, "
         "Conv and MultiheadAttention layer]")]
SkipOpt = Annotated[Optional[list[str]], typer.Option(
    "--skip", metavar="NAME ...",
    help="leave these modules as they are: names or glob patterns. [default: none]")]
SkipHeadOpt = Annotated[bool, typer.Option(
    "--skip-head",
    help="leave the classifier head (the layer whose output is the logits) as it is. [default: off]")]
LabelKeyOpt = Annotated[Optional[str], typer.Option(
    "--label-key", metavar="KEY",
    help="dict batches: the key of the labels (e.g. 'labels'). [default: batches are (inputs, labels)]")]
InputKeyOpt = Annotated[Optional[str], typer.Option(
    "--input-key", metavar="KEY",
    help="dict batches: the key of the model's input. [default: every key but --label-key, as keyword "
         "arguments]")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", metavar="N", min=1, help="torch CPU threads. [default: torch's setting]")]
SEED_LIMIT = 2 ** 63  # torch.Generator.manual_seed takes any int64 >= 0 below this as project() uses it


def check_seed(value: int) -> int:
    """``--seed``: an integer in [0, 2**63), what ``project(seed=)`` and torch's generators take."""
    if not 0 <= value < SEED_LIMIT:
        raise typer.BadParameter(f"must be in [0, 2**63) (torch's generator seeds), got {value}")
    return value


SeedOpt = Annotated[int, typer.Option(
    "--seed", metavar="S", callback=check_seed,
    help="seed of the training samples alpha is chosen on without val_loader and of --trusted random; "
         "torch's generator is also seeded with it before the entry points run; in [0, 2**63).")]
ReportOpt = Annotated[Optional[str], typer.Option(
    "--report", metavar="DIR",
    help="also write the report page (DIR/index.html, figures, report.json; needs matplotlib). "
         "[default: no report]")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="no progress bars, no summary; only errors are printed. [default: off]")]


def parse_n_trusted(text: Optional[str]) -> Optional[Union[int, float]]:
    """``--n-trusted``: an integer count, or a fraction in (0, 1)."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise CLIError(f"--n-trusted must be a count or a fraction in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise CLIError(f"--n-trusted must be a count or a fraction in (0, 1), got {text!r}")
    return value


def load_model(model_spec: str, weights: Optional[str], fn: Optional[Any] = None) -> nn.Module:
    """The ``--model`` entry point's module (``fn``, already loaded), with ``--weights`` loaded into it."""
    model = build_model(model_spec, fn)
    if weights is not None:
        from safetensors.torch import load_model as load_weights

        try:
            load_weights(model, weights)
        except Exception as exc:  # safetensors' own error types, missing files, key mismatches
            raise CLIError(f"--weights {weights}: cannot load into the --model: {exc}") from exc
    return model


def project_options(alpha: Optional[float], alphas: Optional[list[float]], n_trusted: Optional[str],
                    class_balanced: Optional[bool], trusted: Ranking, layers: Optional[list[str]],
                    skip: Optional[list[str]], skip_head: bool, label_key: Optional[str], input_key: Optional[str],
                    seed: int, quiet: bool) -> dict[str, Any]:
    """``sap_kernels.project``'s keyword arguments for the command's options."""
    if alpha is not None and alphas:
        raise CLIError("--alpha and --alphas were both given: pass one alpha, or a grid to choose from")
    return dict(alpha=alpha, alphas=alphas or None, n_trusted=parse_n_trusted(n_trusted),
                class_balanced=class_balanced, trusted=trusted.value, layers=layers or None, skip=skip or None,
                skip_head=skip_head, label_key=label_key, input_key=input_key, seed=seed, progress=not quiet)


def _alpha_text(alpha: float) -> str:
    return "inf (model unchanged)" if math.isinf(alpha) else f"{alpha:.4g}"


def prepare(alpha: Optional[float], alphas: Optional[list[float]], n_trusted: Optional[str],
            class_balanced: Optional[bool], trusted: Ranking, layers: Optional[list[str]], skip: Optional[list[str]],
            skip_head: bool, label_key: Optional[str], input_key: Optional[str], threads: Optional[int], seed: int,
            quiet: bool) -> dict[str, Any]:
    """What every command running ``project`` does with its shared options first: ``project``'s
    keyword arguments, torch's thread count, torch's generator seeded with ``seed``."""
    options = project_options(alpha, alphas, n_trusted, class_balanced, trusted, layers, skip, skip_head,
                              label_key, input_key, seed, quiet)
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return options


def load_and_project(model_spec: str, data_spec: str, weights: Optional[str],
                     options: dict[str, Any]) -> tuple[SAPResult, Iterable[Any]]:
    """The entry points' model (with ``--weights``) and loaders, repaired: ``(result, train_loader)``.
    Both entry points and ``--weights`` are resolved before either callable runs."""
    model, train, val = load_inputs(model_spec, data_spec, weights)
    return _project(model, train, val, options), train


def load_inputs(model_spec: str, data_spec: str, weights: Optional[str]
                ) -> tuple[nn.Module, Iterable[Any], Optional[Iterable[Any]]]:
    """The entry points' model (with ``--weights``) and ``(train_loader, val_loader)``."""
    model_fn, data_fn = load_callable(model_spec, "--model"), load_callable(data_spec, "--data")
    if weights is not None and not os.path.isfile(weights):
        raise CLIError(f"--weights {weights}: no such file")
    model = load_model(model_spec, weights, model_fn)
    train, val = build_loaders(data_spec, data_fn)
    return model, train, val


def check_outputs(out: str, report: Optional[str]) -> None:
    """``--out`` (and ``FILE.json``) and ``--report`` can be written: checked before any work."""
    check_writable_file(out, "--out")
    check_writable_file(out + ".json", "--out")
    if report is not None:
        require_matplotlib("--report")
        check_writable_dir(report, "--report")


def run_project(model_spec: str, data_spec: str, weights: Optional[str], out: str, report: Optional[str],
                options: dict[str, Any], quiet: bool) -> None:
    """Check the outputs, load, repair, write; every message but errors goes to stdout unless ``quiet``."""
    check_outputs(out, report)
    result, _ = load_and_project(model_spec, data_spec, weights, options)
    if not quiet:
        typer.echo(result.summary())
    try:
        result.save(out)
        page = None if report is None else result.save_report(report)
    except OSError as exc:
        raise RunFailure(f"cannot write the result: {exc}") from exc
    if not quiet:
        typer.echo(f"alpha {_alpha_text(result.alpha)}: corrected weights in {out}, report data in {out}.json")
        if page is not None:
            typer.echo(f"report: {page}")


def _project(model: nn.Module, train: Iterable[Any], val: Optional[Iterable[Any]],
             options: dict[str, Any]) -> SAPResult:
    """``sap_kernels.project``; the ValueError/TypeError it raises for what it was given become
    :class:`CLIError` (their messages name the argument, layer or key)."""
    from .. import project as sap_project

    return as_cli_errors(lambda: sap_project(model, train, val_loader=val, **options), options)


def as_cli_errors(work: Callable[[], T], options: dict[str, Any]) -> T:
    """``work()``, the ValueError/TypeError/ImportError it raises for what it was given as
    :class:`CLIError` (their messages name the argument, layer, key or rule)."""
    try:
        return work()
    except (ValueError, TypeError, ImportError) as exc:
        raise CLIError(str(exc)) from exc
    except KeyError as exc:
        raise key_error(exc, options) from exc


def key_error(exc: KeyError, options: dict[str, Any]) -> Exception:
    """A batch without the ``--label-key``/``--input-key`` entry: a :class:`CLIError` naming the
    option (status 2); any other KeyError stays as it is (a failure, status 1)."""
    named = [f"{flag} {options[k]!r}" for flag, k in (("--label-key", "label_key"), ("--input-key", "input_key"))
             if options.get(k) is not None]
    text = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    if named and text.startswith("batch has no entries"):
        return CLIError(f"{', '.join(named)}: {text}")
    return exc


def project(
    model: ModelOpt, data: DataOpt, out: OutOpt, weights: WeightsOpt = None, alpha: AlphaOpt = None,
    alphas: AlphasOpt = None, n_trusted: NTrustedOpt = None, class_balanced: BalancedOpt = None,
    trusted: TrustedOpt = Ranking.loss, layers: LayersOpt = None, skip: SkipOpt = None, skip_head: SkipHeadOpt = False,
    label_key: LabelKeyOpt = None, input_key: InputKeyOpt = None, threads: ThreadsOpt = None, seed: SeedOpt = 0,
    report: ReportOpt = None, quiet: QuietOpt = False,
) -> None:
    """Repair a classifier trained on noisy labels: sap_kernels.project on the model and loaders the
    --model and --data callables return, corrected weights written to --out.

    Prints the result's summary (alpha, scores per alpha, layers projected), writes the corrected
    weights to --out FILE (load them with safetensors.torch.load_model) and the report's data to
    FILE.json beside it, and with --report the report page.

    Errors in what was given (an entry point that cannot be loaded or returns the wrong thing, an
    option project() refuses, an output that cannot be written, checked before any work) are one
    line on stderr, exit status 2; failures after the work started (an error raised by the --model
    or --data callable, a result that cannot be written), one line, status 1. --debug (before or
    after the command) shows the traceback instead.
    """
    with one_line_errors("project"):
        options = prepare(alpha, alphas, n_trusted, class_balanced, trusted, layers, skip, skip_head, label_key,
                          input_key, threads, seed, quiet)
        run_project(model, data, weights, out, report, options, quiet)
