"""The memory layout the package's own forward passes feed image batches in: one policy.

On the CPU, oneDNN runs 2-d convolutions faster on channels-last inputs (ResNet-18 at 32x32, 2
threads: 1.18-1.38x by batch size; ``benchmarks/bench_layout_cpu.py``, ``benchmarks/RESULTS.md``).
The layout changes no value a layer computes, only the order of its sums. A model's own code can
still depend on it (``.view`` on an activation raises; code reading raw memory would compute
garbage), so the first samples of the first batch a model is given first run both ways with the
activation hooks paused, and the model gets channels-last batches (that one included) only if
both outputs agree to rounding. The verdict is kept per model object. Passes that build gradients keep the caller's
layout, and so does every device other than the CPU (unmeasured there).
``SAP_KERNELS_CHANNELS_LAST=0`` turns it off.
"""
from __future__ import annotations

import os
import weakref
from typing import Any, Callable

import torch
from torch import nn

from ..data import batches
from .guards import hooks_paused

ENV_VAR = "SAP_KERNELS_CHANNELS_LAST"
# Outputs agree when every float leaf differs by at most this share of its largest magnitude
# (a different summation order moves float32 logits by ~1e-6 of their scale).
AGREEMENT = 1e-3

_verdicts: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()
_has_conv: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()


def enabled() -> bool:
    """``$SAP_KERNELS_CHANNELS_LAST`` is not ``0``/``false``/``off``."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "off", "no")


def _candidate(model: nn.Module, inputs: Any) -> bool:
    """Whether channels-last could help: no gradients, a Conv2d, a 4-d float32 CPU input."""
    if torch.is_grad_enabled() or not enabled():
        return False
    conv = _has_conv.get(model)
    if conv is None:
        conv = _has_conv[model] = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return conv and any(_image(t.tensor if isinstance(t, batches.Shared) else t) for _, t in batches.leaves(inputs))


def _image(t: object) -> bool:
    """A float32 batch of images on the CPU (the case measured; oneDNN has no float64 path)."""
    return isinstance(t, torch.Tensor) and t.dim() == 4 and t.dtype == torch.float32 and t.device.type == "cpu"


def channels_last(inputs: Any) -> Any:
    """``inputs`` with every 4-d float32 CPU tensor in channels-last memory (values unchanged)."""
    return batches.map_tensors(inputs, lambda t: t.contiguous(memory_format=torch.channels_last) if _image(t) else t,
                               shared=True)


def call(model: nn.Module, inputs: Any, run: Callable[[Any], Any]) -> Any:
    """``run(inputs)``, in channels-last once ``model`` was seen to compute the same that way.

    Every batch of a model runs in the one layout of its verdict, the first included, so that a
    result does not depend on which pass happened to meet the model first."""
    if not _candidate(model, inputs):
        return run(inputs)
    verdict = _verdicts.get(model)
    if verdict is None:
        verdict = _verdicts[model] = _trial(run, inputs)
    return run(channels_last(inputs) if verdict else inputs)


# Samples of the first batch the trial runs both ways: whether a model's code depends on the
# layout does not depend on how many samples it sees, and the trial's passes are pure overhead.
TRIAL_SAMPLES = 8


def _trial(run: Callable[[Any], Any], inputs: Any) -> bool:
    """Run the first ``TRIAL_SAMPLES`` samples of ``inputs`` both ways with the hooks paused; True
    when the outputs agree. False when either way raises: the real pass then runs in the caller's
    layout and reports its own error, if any."""
    head = batches.slice_rows(inputs, 0, TRIAL_SAMPLES)
    with hooks_paused():
        try:
            expected = run(head)
            got = run(channels_last(head))
        except Exception:  # e.g. ``.view`` on an activation: the model's code needs its own layout
            return False
    return agree(expected, got)


def agree(a: Any, b: Any) -> bool:
    """Same structure, integer/bool tensors equal, float tensors within ``AGREEMENT`` of their scale."""
    la, lb = list(batches.leaves(a, "out")), list(batches.leaves(b, "out"))
    if len(la) != len(lb) or not any(isinstance(x, torch.Tensor) for _, x in la):
        return False
    return all(_same(x, y) for (_, x), (_, y) in zip(la, lb))


def _same(x: object, y: object) -> bool:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        return not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor)
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if not x.is_floating_point():
        return bool(torch.equal(x, y))
    finite = torch.isfinite(x)
    if not torch.equal(finite, torch.isfinite(y)):
        return False
    if not torch.equal(x[~finite].nan_to_num(0.0), y[~finite].nan_to_num(0.0)):  # same infinities, NaN anywhere
        return False
    xf, yf = x[finite].double(), y[finite].double()
    if xf.numel() == 0:
        return True
    scale = float(xf.abs().max()) or 1.0
    return float((xf - yf).abs().max()) <= AGREEMENT * scale
