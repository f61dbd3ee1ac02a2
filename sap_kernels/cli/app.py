"""The ``sap-kernels`` program: ``project``, ``issues``, ``report`` and ``demo``; :func:`main` runs it."""
from __future__ import annotations

import sys
from typing import Annotated, Optional, Sequence

import typer

from ..demo.cli import demo
from .common import DEBUG_OPTION, PROG, CLIError, OneLineGroup, RunFailure, VariadicCommand, one_line_errors
from .issues import issues
from .project import project

app = typer.Typer(
    name=PROG,
    cls=OneLineGroup,
    help="Scaled Activation Projection (SAP): one-shot repair of classifiers trained on noisy labels.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: every option and default in full, at any terminal width
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

DebugOpt = Annotated[bool, typer.Option(
    DEBUG_OPTION, help="show the traceback of an error instead of one line (also after the command).")]


@app.callback()
def options(debug: DebugOpt = False) -> None:
    """``--debug`` is read by ``OneLineGroup.main`` before the command runs (from any position)."""


DirArg = Annotated[str, typer.Argument(metavar="DIR", help="a directory written by --report (holds report.json).")]


def report(directory: DirArg) -> None:
    """Draw the report page (index.html and its figures) again from DIR/report.json and print the
    page's path (needs matplotlib)."""
    from ..report import render_report
    from ..report.data import read_json

    with one_line_errors("report"):
        try:
            read_json(directory)  # every field checked: an error names report.json and the field
        except (OSError, ValueError) as exc:  # no report.json, not JSON, not a report, a field off
            raise CLIError(str(exc)) from exc
        try:
            page = render_report(directory)
        except (ImportError, ValueError) as exc:  # no matplotlib, a damaged samples file
            raise CLIError(str(exc)) from exc
        except OSError as exc:  # the page cannot be written: the old one stays whole
            raise RunFailure(f"cannot write the report: {exc}") from exc
    typer.echo(page)


app.command("project", cls=VariadicCommand,
            short_help="repair a model named by entry points; write the corrected weights")(project)
app.command("issues", cls=VariadicCommand,
            short_help="find the wrong training labels with the repaired model; write them as CSV")(issues)
app.command("report", short_help="draw a saved report page again from its report.json")(report)
app.command("demo", cls=VariadicCommand,
            short_help="SAP on noisy scikit-learn digits vs fine-tuning and retraining (about a minute)")(demo)


def exit_status(code: object) -> int:
    """The exit status a ``SystemExit`` code stands for (a message is printed, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints it when nothing catches the exit
    return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``sap-kernels`` on ``argv`` (default ``sys.argv[1:]``); returns the exit status: 0 done,
    2 a usage error or an error in what was given, 1 a failure after the work started (an output
    that cannot be written, an error raised by the user's own callables); each error is one line
    on stderr, its traceback only with ``--debug``."""
    try:
        status = app(args=list(sys.argv[1:] if argv is None else argv), prog_name=PROG, standalone_mode=False)
    except SystemExit as exc:
        return exit_status(exc.code)
    return status if isinstance(status, int) else 0
