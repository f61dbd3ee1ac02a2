"""Label issues' flagging rules: the built-in confident learning gives cleanlab's own set on the
same probabilities (random tables, absent classes, ties at the thresholds), argmax disagreement,
and cleanlab's prune_by_noise_rate reached through the package."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sap_kernels.sap.issues.rules import class_thresholds, confident_learning_builtin, flag, self_confidence

cleanlab_filter = pytest.importorskip("cleanlab.filter", reason="cleanlab is in the dev extra")


def _table(seed: int, n: int, c: int, sharp: float, absent: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, sharp), size=n)
    labels = rng.integers(0, c - absent, size=n)  # the last `absent` classes are nobody's label
    labels[: c - absent] = np.arange(c - absent)
    return labels, probs


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(12, 300), c=st.integers(2, 12),
       sharp=st.sampled_from([0.05, 0.3, 1.0, 5.0]), absent=st.integers(0, 1))
def test_builtin_confident_learning_equals_cleanlab(seed, n, c, sharp, absent):
    labels, probs = _table(seed, n, c, sharp, absent if c > 2 else 0)
    want = cleanlab_filter.find_label_issues(labels, probs, filter_by="confident_learning")
    got = confident_learning_builtin(labels, probs)
    assert np.array_equal(got, want)
    t = torch.from_numpy
    assert torch.equal(flag(t(labels), t(probs), "confident_learning", use_cleanlab=False), t(want))
    assert torch.equal(flag(t(labels), t(probs), "confident_learning", use_cleanlab=True), t(want))


def test_probabilities_at_a_threshold_count_as_confident():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.3, 0.7], [0.7, 0.3]])  # t = [0.7, 0.5]
    assert np.allclose(class_thresholds(labels, probs), [0.7, 0.5])
    # sample 3: p0 = 0.7 reaches t0 exactly (p1 = 0.3 < t1): confidently class 0 -> flagged
    want = cleanlab_filter.find_label_issues(labels, probs, filter_by="confident_learning")
    assert np.array_equal(confident_learning_builtin(labels, probs), want)
    assert confident_learning_builtin(labels, probs).tolist() == [False, False, False, True]


def test_a_class_the_model_never_predicts_gets_the_floor_threshold():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=40)
    probs[:, 2] = 1e-9 * rng.random(40)  # class 2 is labelled but never predicted: threshold ~1e-9
    probs /= probs.sum(1, keepdims=True)
    labels = rng.integers(0, 3, size=40)
    assert class_thresholds(labels, probs)[2] == pytest.approx(2e-6)
    want = cleanlab_filter.find_label_issues(labels, probs, filter_by="confident_learning")
    assert np.array_equal(confident_learning_builtin(labels, probs), want)


def test_argmax_and_prune_by_noise_rate():
    labels, probs = _table(0, 200, 4, 0.3, 0)
    y, p = torch.from_numpy(labels), torch.from_numpy(probs)
    assert torch.equal(flag(y, p, "argmax"), p.argmax(1) != y)
    want = cleanlab_filter.find_label_issues(labels, probs, filter_by="prune_by_noise_rate")
    assert torch.equal(flag(y, p, "prune_by_noise_rate"), torch.from_numpy(want))
    assert torch.allclose(self_confidence(y, p), p[torch.arange(200), y])
    with pytest.raises(ValueError, match="rule must be one of"):
        flag(y, p, "majority")  # type: ignore[arg-type]
