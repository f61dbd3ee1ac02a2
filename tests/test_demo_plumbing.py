"""Fast checks of the digits demo's data, noise, seeding and command line (no SAP run)."""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("sklearn")

from sap_kernels.demo.data import load_digits_splits, tensor_loader  # noqa: E402
from sap_kernels.demo.experiment import ExperimentConfig, gap_closed, make_noisy_digits  # noqa: E402
from sap_kernels.demo.models import make_model  # noqa: E402
from sap_kernels.demo.noise import add_label_noise, asymmetric_noise, symmetric_noise  # noqa: E402
from sap_kernels.demo.train import TrainConfig, accuracy, train  # noqa: E402


@pytest.fixture(scope="module")
def splits():
    return load_digits_splits(0)


def test_split_sizes_shapes_and_stratification(splits):
    n_train, n_val, n_test = splits.sizes
    assert n_train + n_val + n_test == 1797
    assert abs(n_test - 0.25 * 1797) <= 1 and abs(n_val - 0.15 * 1797) <= 1
    for x, y in ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)):
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8) and x.shape[0] == y.shape[0]
        assert y.dtype == torch.int64
        counts = torch.bincount(y, minlength=10).double() / len(y)
        assert counts.min() > 0.08 and counts.max() < 0.12  # about 10% per class in every split
    assert abs(float(splits.x_train.mean())) < 1e-4 and abs(float(splits.x_train.std()) - 1) < 1e-2


def test_splits_are_seeded(splits):
    again = load_digits_splits(0)
    other = load_digits_splits(1)
    assert torch.equal(again.x_train, splits.x_train) and torch.equal(again.y_test, splits.y_test)
    assert not torch.equal(other.y_train, splits.y_train)


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.4, 1.0])
def test_symmetric_noise_rate_and_targets(rate):
    y = torch.arange(20000) % 10
    noisy = symmetric_noise(y, rate, 10, seed=3)
    changed = noisy.labels != y
    assert torch.equal(changed, noisy.flipped)  # a flip always lands on another class
    assert noisy.rate == pytest.approx(float(changed.float().mean()))
    assert noisy.rate == pytest.approx(rate, abs=0.015)
    if 0 < rate:
        # uniform over the 9 other classes: each (clean, noisy) pair near 1/9 of the flips
        pairs = torch.bincount((10 * y[changed] + noisy.labels[changed]), minlength=100).view(10, 10)
        share = pairs.double() / pairs.sum(1, keepdim=True)
        off = share[~torch.eye(10, dtype=torch.bool)]
        assert torch.all((off - 1 / 9).abs() < 0.05)
        assert torch.all(share.diagonal() == 0)


def test_asymmetric_noise_follows_the_map():
    y = torch.arange(10000) % 10
    noisy = asymmetric_noise(y, 0.3, 10, seed=5)
    assert noisy.rate == pytest.approx(0.3, abs=0.02)
    assert torch.equal(noisy.labels[noisy.flipped], (y[noisy.flipped] + 1) % 10)
    assert torch.equal(noisy.labels[~noisy.flipped], y[~noisy.flipped])


def test_noise_is_seeded_and_validated():
    y = torch.arange(500) % 10
    a = add_label_noise(y, 0.4, "symmetric", 10, seed=1)
    b = add_label_noise(y, 0.4, "symmetric", 10, seed=1)
    c = add_label_noise(y, 0.4, "symmetric", 10, seed=2)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)
    with pytest.raises(ValueError):
        add_label_noise(y, 1.5, "symmetric", 10, seed=0)
    with pytest.raises(ValueError):
        add_label_noise(y, 0.2, "pairwise", 10, seed=0)


def test_experiment_noise_hits_train_and_val_independently():
    data = make_noisy_digits(ExperimentConfig(noise_rate=0.4, seed=2))
    assert data.train_noise.rate == pytest.approx(0.4, abs=0.06)
    assert data.val_noise.rate == pytest.approx(0.4, abs=0.1)
    assert torch.equal((data.train_noise.labels != data.splits.y_train), data.train_noise.flipped)


def test_model_and_training_are_deterministic(splits):
    x, y = splits.x_train[:200], splits.y_train[:200]
    state = torch.random.get_rng_state()
    m0, m1 = make_model(7), make_model(7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    for p, q in zip(m0.parameters(), m1.parameters()):
        assert torch.equal(p, q)
    cfg = TrainConfig(epochs=2, batch_size=32)
    a, b = train(m0, x, y, cfg, seed=1), train(m1, x, y, cfg, seed=1)
    c = train(make_model(7), x, y, cfg, seed=2)
    xt = splits.x_test[:64]
    with torch.no_grad():
        assert torch.equal(a(xt), b(xt))
        assert not torch.equal(a(xt), c(xt))
    assert a(xt).shape == (64, 10) and not a.training


def test_accuracy_and_gap(splits):
    class Oracle(torch.nn.Module):
        def __init__(self, y):
            super().__init__()
            self.y, self.i = y, 0

        def forward(self, x):
            out = torch.nn.functional.one_hot(self.y[self.i : self.i + len(x)], 10).float()
            self.i += len(x)
            return out

    y = splits.y_test
    assert accuracy(Oracle(y), splits.x_test, y, batch_size=100) == 1.0
    assert accuracy(Oracle((y + 1) % 10), splits.x_test, y, batch_size=100) == 0.0
    assert gap_closed({"vanilla": 0.8, "sap": 0.9, "retrain": 1.0}) == pytest.approx(0.5)
    assert math.isnan(gap_closed({"vanilla": 0.9, "sap": 0.9, "retrain": 0.9}))


def test_loader_keeps_sample_order(splits):
    batches = list(tensor_loader(splits.x_val, splits.y_val, batch_size=64))
    assert torch.equal(torch.cat([b[1] for b in batches]), splits.y_val)
    assert [len(b[1]) for b in batches][:-1] == [64] * (len(batches) - 1)


def test_cli_help_lists_demo(capsys):
    from sap_kernels.__main__ import main

    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--noise-rate" in out and "--n-trusted" in out and "--threads" in out
    assert out.startswith("Usage: sap-kernels demo")
    assert main([]) == 2


def test_demo_options_make_the_config():
    from sap_kernels.demo.cli import DEFAULTS, config_from_options

    assert config_from_options() == DEFAULTS
    config = config_from_options(0.4, "asymmetric", 3, 100, False, 5, [1.0, 10.0])
    assert (config.noise_rate, config.noise_type, config.seed, config.n_trusted) == (0.4, "asymmetric", 3, 100)
    assert config.class_balanced is False and config.train.epochs == 5 and config.alphas == (1.0, 10.0)
    assert config.train.lr == DEFAULTS.train.lr and config.width == DEFAULTS.width


def test_summary_of_one_seed_has_no_spread_line():
    from sap_kernels.demo.experiment import ExperimentConfig, ExperimentResult
    from sap_kernels.demo.report import format_summary

    acc = {"vanilla": 0.8, "sap": 0.9, "sap_default": 0.88, "retrain": 1.0}
    one = ExperimentResult(ExperimentConfig(seed=3), acc, 100.0, {}, 0.25, {}, 316.0)
    text = format_summary([one])
    assert "±" not in text and "seeds [3]" in text
    assert "gap closed by SAP without validation data: 40%" in text
    two = format_summary([one, ExperimentResult(ExperimentConfig(seed=4), acc, 100.0, {}, 0.25, {}, 316.0)])
    assert "± 0.00" in two and "per seed" in two
