"""The legal values of ``project()``'s discrete knobs and counts, each check raising an error that
names its argument: mode, location, solver, trusted-sample strategy, counts, flags, fractions."""
from __future__ import annotations

import operator
from typing import Any, Optional, Union

MODES = ("sap", "sgp", "gpm")
LOCATIONS = ("pre", "post", "all")
SOLVERS = ("auto", "eigh", "solve")
# The trusted-sample rankings (``trusted.rankers.RANKERS`` implements one per name).
STRATEGIES = ("curvature", "loss", "random")


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return str(mode)


def check_location(location: object) -> str:
    if location not in LOCATIONS:
        raise ValueError(f"location must be one of {LOCATIONS}, got {location!r}")
    return str(location)


def check_solver(solver: object) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be 'auto', 'eigh' or 'solve', got {solver!r}")
    return str(solver)


def check_count(value: Any, name: str) -> int:
    """A positive integral count (``int``, ``numpy.int64``, ...; not bool), or a named error."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n


def check_n_trusted(value: Any) -> Optional[Union[int, float]]:
    """``n_trusted``: None (the default policy), a count, or a fraction in (0, 1]."""
    if value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        if not 0 < value <= 1:
            raise ValueError(f"n_trusted must be a count >= 1 or a fraction in (0, 1], got {value!r}")
        return value
    return check_count(value, "n_trusted")


def check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_fraction(value: Any, name: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be None or a fraction in [0, 1), got {value!r}")
    return float(value)
