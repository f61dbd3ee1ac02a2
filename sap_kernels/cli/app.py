"""The ``sap-kernels`` program: ``project``, ``issues``, ``report`` and ``demo``; :func:`main` runs it."""
from __future__ import annotations

import sys
from typing import Annotated, Optional, Sequence

import typer

from ..demo.cli import demo
from .common import PROG, CLIError, VariadicCommand, one_line_errors
from .issues import issues
from .project import project

app = typer.Typer(
    name=PROG,
    help="Scaled Activation Projection (SAP): one-shot repair of classifiers trained on noisy labels.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: every option and default in full, at any terminal width
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

DirArg = Annotated[str, typer.Argument(metavar="DIR", help="a directory written by --report (holds report.json).")]


def report(directory: DirArg) -> None:
    """Draw the report page (index.html and its figures) again from DIR/report.json and print the
    page's path (needs matplotlib)."""
    from ..report import render_report

    with one_line_errors("report"):
        try:
            page = render_report(directory)
        except KeyError as exc:
            raise CLIError(f"{directory}: report.json lacks the entry {exc}") from exc
        except (ImportError, OSError, ValueError) as exc:  # no report.json or not one, no matplotlib
            raise CLIError(str(exc)) from exc
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
    """Run ``sap-kernels`` on ``argv`` (default ``sys.argv[1:]``); returns the exit status
    (0 done, 2 a usage error or an error in what was given, reported in one line, as for
    ``--help``-less calls; 1 a run that could not write its results)."""
    try:
        app(args=list(sys.argv[1:] if argv is None else argv), prog_name=PROG)
    except SystemExit as exc:
        return exit_status(exc.code)
    return 0
