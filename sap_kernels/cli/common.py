"""What the commands share: the program name, one-line errors (a traceback only with ``--debug``),
the checks that outputs can be written, variadic options."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import traceback
from typing import Any, Iterator, NoReturn, Optional, Sequence

import typer
from typer.core import TyperCommand, TyperGroup

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


def _base(cls: type, name: str) -> type[Exception]:
    """The class called ``name`` among ``cls``'s bases: click's exception types, wherever the
    installed typer takes them from (click itself, or its own copy since typer 0.22)."""
    found: type[Exception] = next(c for c in cls.__mro__ if c.__name__ == name)
    return found


UsageError = _base(typer.BadParameter, "UsageError")
ClickException = _base(typer.BadParameter, "ClickException")
PASS_THROUGH = (typer.Exit, typer.Abort, ClickException)  # the command line's own outcomes

DEBUG_OPTION = "--debug"
_state = {"debug": False}


def set_debug(on: bool) -> None:
    """``--debug``: errors are raised with their traceback instead of printed as one line."""
    _state["debug"] = on


def debugging() -> bool:
    return _state["debug"]


def one_line(text: str) -> str:
    return " ".join(text.split())


def fail(command: str, message: str, status: int = EXIT_ERROR) -> NoReturn:
    """Print ``sap-kernels <command>: error: <message>`` on stderr and exit with ``status``."""
    typer.echo(f"{PROG} {command}: error: {one_line(message)}", err=True)
    raise typer.Exit(status)


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, in one line."""
    text = one_line(str(exc.args[0]) if isinstance(exc, KeyError) and len(exc.args) == 1 else str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def one_line_errors(command: str) -> Iterator[None]:
    """Turn a :class:`CLIError` raised inside the block into :func:`fail` with its status, and any
    other exception into one line with status 1; with ``--debug`` both are raised as they are."""
    try:
        yield
    except PASS_THROUGH:
        raise
    except CLIError as exc:
        if debugging():
            raise
        fail(command, str(exc) or type(exc).__name__, exc.status)
    except Exception as exc:
        if debugging():
            raise
        fail(command, f"{describe(exc)} (run with {DEBUG_OPTION} for the traceback)", EXIT_FAILURE)


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
    """Create a file in ``folder``, write a byte into it and remove it: the one sure test that a
    file can be written there (a read-only folder fails to create, a full disk to write)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sap-kernels-probe-", dir=folder)
    except OSError as exc:
        raise CLIError(f"{what}: cannot write in {folder}: {exc.strerror or exc}") from exc
    try:
        os.write(fd, b"\0")
    except OSError as exc:
        raise CLIError(f"{what}: cannot write in {folder}: {exc.strerror or exc}") from exc
    finally:
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


def lift_debug(args: Sequence[str]) -> tuple[bool, list[str]]:
    """Whether ``--debug`` is among ``args`` (before ``--``), and ``args`` without it: the flag
    may be given before or after the command."""
    out: list[str] = []
    debug = False
    for i, token in enumerate(args):
        if token == "--":
            return debug, out + list(args[i:])
        if token == DEBUG_OPTION:
            debug = True
        else:
            out.append(token)
    return debug, out


def _command_name(ctx: Any) -> str:
    return str(ctx.command.name or "") if ctx is not None and ctx.parent is not None else ""


def _usage_error(exc: Any) -> int:
    """A usage error as one line naming the command and where its help is."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()  # the help itself, as for no arguments at all
        return int(exc.exit_code)
    name = _command_name(exc.ctx)
    where = f"{PROG} {name}".strip()
    typer.echo(f"{where}: error: {one_line(exc.format_message())} (see '{where} -h')", err=True)
    return int(exc.exit_code)


class OneLineGroup(TyperGroup):
    """The program: ``--debug`` anywhere before ``--``; usage errors, ``CLIError`` and any other
    exception reported as one line on stderr (2 for errors in what was given, 1 for failures),
    with ``--debug`` the traceback instead (and the same status)."""

    def main(self, *positional: Any, **extra: Any) -> Any:
        """Run as click's ``main(args, prog_name, ..., standalone_mode=True)`` does, reporting errors
        in one line; returns the status only without ``standalone_mode``."""
        args = extra.pop("args", positional[0] if positional else None)
        prog_name = extra.pop("prog_name", positional[1] if len(positional) > 1 else None)
        standalone_mode = extra.pop("standalone_mode", True)
        debug, argv = lift_debug(sys.argv[1:] if args is None else list(args))
        set_debug(debug)
        try:
            status = self._run(argv, prog_name, debug, extra)
        finally:
            set_debug(False)
        if not standalone_mode:
            return status
        sys.exit(status)

    def _run(self, argv: list[str], prog_name: Optional[str], debug: bool, extra: dict[str, Any]) -> int:
        try:
            rv = super().main(args=(["--debug"] if debug else []) + argv, prog_name=prog_name or PROG,
                              standalone_mode=False, **extra)
        except UsageError as exc:
            return _usage_error(exc)
        except ClickException as exc:
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            return EXIT_FAILURE
        except CLIError as exc:  # raised on with --debug: the traceback, then the status
            traceback.print_exc()
            return exc.status
        except Exception as exc:
            if debug:
                traceback.print_exc()
            else:
                typer.echo(f"{PROG}: error: {describe(exc)} (run with {DEBUG_OPTION} for the traceback)", err=True)
            return EXIT_FAILURE
        return rv if isinstance(rv, int) else 0
