"""Shapes and devices of the op micro-benchmarks (``test_ops.py``)."""
from __future__ import annotations

from typing import Any, Callable

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--ops-device", default=None,
                     help="device to benchmark on (default: cuda when available, else cpu)")
    parser.addoption("--ops-size", default="small", choices=("small", "large"),
                     help="small: seconds on a CPU (the default); large: realistic layer sizes")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.config.getoption("--ops-device")
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


@pytest.fixture(scope="session")
def large(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--ops-size") == "large")


@pytest.fixture
def timed(device: torch.device) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """``fn`` wrapped so that a CUDA call is timed to its end, not to its launch."""
    def wrap(fn: Callable[[], Any]) -> Callable[[], Any]:
        if device.type != "cuda":
            return fn

        def synced() -> Any:
            out = fn()
            torch.cuda.synchronize(device)
            return out

        return synced

    return wrap
