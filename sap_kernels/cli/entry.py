"""Entry points named on the command line: ``package.module:function`` or ``path/to/file.py:function``."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any, Callable, Optional

from torch import nn

from .common import CLIError, RunFailure, describe

FORMS = "'package.module:function' or 'path/to/file.py:function'"


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def _import_module(where: str, what: str) -> ModuleType:
    """Import ``where`` as ``python -m`` would: the current directory first on the path."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except ImportError as exc:
        raise CLIError(f"{what}: cannot import module {where!r} ({exc})") from exc
    except SyntaxError as exc:
        raise CLIError(f"{what}: cannot import module {where!r} ({describe(exc)})") from exc
    except Exception as exc:  # the user's module raised while being imported
        raise RunFailure(f"{what}: importing {where!r} raised {describe(exc)}") from exc


def _load_file(where: str, what: str) -> ModuleType:
    """Load the Python file ``where`` as a module (its directory first on the path, as for a script)."""
    path = os.path.abspath(where)
    if not os.path.isfile(path):
        raise CLIError(f"{what}: no such file {where!r}")
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    name = f"_sap_kernels_entry_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"{what}: cannot load {where!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (ImportError, SyntaxError) as exc:
        del sys.modules[name]
        raise CLIError(f"{what}: importing {where!r} failed ({describe(exc)})") from exc
    except Exception as exc:  # the user's file raised while being run
        del sys.modules[name]
        raise RunFailure(f"{what}: importing {where!r} raised {describe(exc)}") from exc
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_callable(spec: str, option: str) -> Callable[[], Any]:
    """The callable ``spec`` names (``module:function``, ``file.py:function``; ``function`` may be
    dotted, ``module:Class.create``); a :class:`CLIError` naming ``option`` and ``spec`` otherwise."""
    what = f"{option} {spec!r}"
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise CLIError(f"{what}: expected {FORMS}")
    obj: Any = _load_file(where, what) if _is_file(where) else _import_module(where, what)
    for part in name.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"{what}: {where} has no attribute {name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CLIError(f"{what}: {name} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def call_entry(fn: Callable[[], Any], spec: str, option: str) -> Any:
    """``fn()``; an exception it raises is a :class:`RunFailure` (status 1) naming ``option``,
    ``spec`` and the exception's type and message (its traceback with ``--debug``)."""
    try:
        return fn()
    except Exception as exc:
        raise RunFailure(f"{option} {spec!r} raised {describe(exc)}") from exc


def build_model(spec: str, fn: Optional[Callable[[], Any]] = None) -> nn.Module:
    """Call the ``--model`` entry point (``fn``, already loaded, or the one ``spec`` names); it
    must return an ``nn.Module``."""
    model = call_entry(fn or load_callable(spec, "--model"), spec, "--model")
    if not isinstance(model, nn.Module):
        raise CLIError(f"--model {spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def build_loaders(spec: str, fn: Optional[Callable[[], Any]] = None) -> tuple[Iterable[Any], Optional[Iterable[Any]]]:
    """Call the ``--data`` entry point (``fn`` or the one ``spec`` names); it must return
    ``(train_loader, val_loader)``, val may be None."""
    loaders = call_entry(fn or load_callable(spec, "--data"), spec, "--data")
    if not isinstance(loaders, (tuple, list)) or len(loaders) != 2:
        got = f"{len(loaders)} items" if isinstance(loaders, (tuple, list)) else f"a {type(loaders).__name__}"
        raise CLIError(f"--data {spec!r} must return (train_loader, val_loader) (val_loader may be None), got {got}")
    train, val = loaders
    for name, loader in (("train_loader", train), ("val_loader", val)):
        if loader is not None and not isinstance(loader, Iterable):
            raise CLIError(f"--data {spec!r}: {name} is a {type(loader).__name__}, not an iterable of batches")
    if train is None:
        raise CLIError(f"--data {spec!r}: train_loader is None")
    return train, val
