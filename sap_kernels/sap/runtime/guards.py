"""Scoped changes to module modes and to torch's process-wide switches, always undone.

``hooks_paused`` makes every Gram collector ignore what its hooks see (a forward pass that must
not count, such as the layout trial), for the current context only.

``eval_modes`` puts a model in eval mode and gives every module back its own train/eval flag.
The process-wide switches SAP needs for a while (the attention fast path off while Grams are
collected; one LAPACK thread for small eigenproblems) are reference-counted: concurrent calls in
several threads compose, and the value a user had is restored when the last of them ends.
``flush_denormals`` changes only the calling thread's floating-point mode and restores it.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Callable, Generic, Iterator, TypeVar

import torch
from torch import nn


@contextlib.contextmanager
def eval_modes(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the duration; every module's own flag restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for m, training in modes:
            m.training = training


_T = TypeVar("_T")


class SharedSetting(Generic[_T]):
    """A process-wide setting held at a value while any holder needs it (reference-counted)."""

    def __init__(self, get: Callable[[], _T], set_: Callable[[_T], None]):
        self._get, self._set = get, set_
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: _T  # the value before the first holder, set when it arrives

    @contextlib.contextmanager
    def held(self, value: _T) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._saved = self._get()
                self._set(value)
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    self._set(self._saved)


_MHA_FASTPATH = SharedSetting(torch.backends.mha.get_fastpath_enabled, torch.backends.mha.set_fastpath_enabled)
_THREADS = SharedSetting(torch.get_num_threads, torch.set_num_threads)


def attention_fastpath_off() -> contextlib.AbstractContextManager[None]:
    """Torch's fused attention fast path disabled (so attention modules call their submodules and
    hooks see every input); concurrent holders compose."""
    return _MHA_FASTPATH.held(False)


def single_thread() -> contextlib.AbstractContextManager[None]:
    """torch's intra-op pool at one thread; concurrent holders compose."""
    return _THREADS.held(1)


def _denormals_flushed() -> bool:
    """Whether the calling thread flushes subnormal floats (a subnormal times one reads as 0)."""
    return bool(torch.tensor([1e-310], dtype=torch.float64).mul(1.0)[0] == 0)


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Subnormal floats flushed to zero on the calling thread, its previous mode restored after."""
    before = _denormals_flushed()
    if before or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


_paused: contextvars.ContextVar[bool] = contextvars.ContextVar("sap_kernels_hooks_paused", default=False)


@contextlib.contextmanager
def hooks_paused() -> Iterator[None]:
    """While active, every collector ignores what its hooks see (a forward pass that must not count)."""
    token = _paused.set(True)
    try:
        yield
    finally:
        _paused.reset(token)


def hooks_are_paused() -> bool:
    """Whether a ``hooks_paused`` block is active in this context."""
    return _paused.get()
