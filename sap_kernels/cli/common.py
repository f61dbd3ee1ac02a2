"""What the commands share: the program name, one-line errors, variadic options."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
from typing import Any, Iterator, NoReturn

import typer
from typer.core import TyperCommand

PROG = "sap-kernels"
# Exit status of every error in what the command was given (as click does for usage errors).
EXIT_ERROR = 2
# Exit status of a run that was given what it needs but could not finish (writing its results).
EXIT_FAILURE = 1


class CLIError(Exception):
    """An error the command line reports as one line on stderr (exit status 2), no traceback."""

    status = EXIT_ERROR


class RunFailure(CLIError):
    """A failure after the work started (a result that cannot be written): one line, status 1."""

    status = EXIT_FAILURE


def fail(command: str, message: str, status: int = EXIT_ERROR) -> NoReturn:
    """Print ``sap-kernels <command>: error: <message>`` on stderr and exit with ``status``."""
    typer.echo(f"{PROG} {command}: error: {message}", err=True)
    raise typer.Exit(status)


@contextlib.contextmanager
def one_line_errors(command: str) -> Iterator[None]:
    """Turn a :class:`CLIError` raised inside the block into :func:`fail` with its status."""
    try:
        yield
    except CLIError as exc:
        fail(command, " ".join(str(exc).split()) or type(exc).__name__, exc.status)


def require_matplotlib(option: str) -> None:
    """Fail before any work when ``option`` will need matplotlib and it is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError(f'{option} needs matplotlib: pip install "sap_kernels[report]"')


def prepare_output_file(path: str, option: str) -> None:
    """Create ``path``'s directory now, so that a long run does not end unable to write."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"{option} {path}: cannot create {parent}: {exc.strerror or exc}") from exc
    if os.path.isdir(path):
        raise CLIError(f"{option} {path} is a directory; give a file name (e.g. corrected.safetensors)")


def _probe(folder: str, what: str) -> None:
    """Create and remove a file in ``folder``: the one sure test that a file can be written there."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sap-kernels-probe-", dir=folder)
    except OSError as exc:
        raise CLIError(f"{what}: cannot write in {folder}: {exc.strerror or exc}") from exc
    os.close(fd)
    os.unlink(tmp)


def check_writable_file(path: str, option: str) -> None:
    """Fail now, before any work, when ``path`` cannot be written: its directory is created and a
    file is written there and removed; an existing ``path`` must be writable."""
    prepare_output_file(path, option)
    _probe(os.path.dirname(os.path.abspath(path)), f"{option} {path}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise CLIError(f"{option} {path}: the file exists and is not writable")


def check_writable_dir(path: str, option: str) -> None:
    """Fail now when the directory ``path`` cannot be created or written in."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"{option} {path} is a file; give a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"{option} {path}: cannot create it: {exc.strerror or exc}") from exc
    _probe(path, f"{option} {path}")


def _is_option(token: str) -> bool:
    """``--name``/``-x`` are options; ``-1.5`` and ``-`` are values."""
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


def spread_variadic(args: list[str], names: set[str]) -> list[str]:
    """Rewrite ``--opt a b c`` as ``--opt a --opt b --opt c`` for every option in ``names``.

    Values are taken up to the next option or ``--``; an option without values is kept as it is
    (click then reports that it needs a value).
    """
    out: list[str] = []
    current, taken = None, 0
    for i, token in enumerate(args):
        if token == "--":
            if current is not None and not taken:
                out.append(current)
            return out + args[i:]
        if current is not None and not _is_option(token):
            out += [current, token]
            taken += 1
            continue
        if current is not None and not taken:
            out.append(current)
        current, taken = (token, 0) if token in names else (None, 0)
        if current is None:
            out.append(token)
    if current is not None and not taken:
        out.append(current)
    return out


class VariadicCommand(TyperCommand):
    """A command whose list-valued options take several values after one flag
    (``--alphas 1 10 100``), as argparse's ``nargs="+"`` did; repeating the flag also works."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Spread the values of every ``multiple`` option, then parse as click does."""
        names = {name for p in self.params if getattr(p, "multiple", False) for name in p.opts}
        return super().parse_args(ctx, spread_variadic(list(args), names))
