"""Callbacks for Lightning and the Hugging Face ``Trainer`` (``sap_kernels.integrations``).

- Importing ``sap_kernels`` and ``sap_kernels.integrations`` needs none of the optional
  frameworks (a fresh interpreter with them blocked).
- Lightning: a tiny LightningModule trained 2 epochs with the callback ends with exactly the
  weights ``project`` gives on the same loaders from the weights training left, and the
  ``CSVLogger`` file holds ``sap/alpha`` and the scores.
- Hugging Face: a tiny BERT trained a few steps by ``Trainer`` (``DataCollatorWithPadding``
  batches) ends with exactly ``project``'s weights on the trainer's own dataloaders; the metrics
  reach ``state.log_history`` and, with the trainer attached, every callback's ``on_log``.
- ``torch.distributed`` (2 CPU processes, gloo): rank 0 computes on the whole dataset, every rank
  ends with rank 0's weights, and a failure on rank 0 raises on both ranks.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels
from sap_kernels.sap.issues.rules import DEFAULT_RULE

ROOT = Path(__file__).resolve().parents[1]
ALPHAS = [1.0, 10.0, 100.0, 1000.0]
OPTIONAL = ("lightning", "pytorch_lightning", "lightning_fabric", "transformers", "accelerate", "timm", "jax",
            "jaxlib", "cupy")


def _python(code: str, env_extra: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)


def test_imports_need_no_optional_framework():
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {OPTIONAL!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked for this test: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import sap_kernels, sap_kernels.ops, sap_kernels.integrations
        assert callable(sap_kernels.project) and callable(sap_kernels.integrations.sap_metrics)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        for sub, extra in (("lightning", "lightning"), ("transformers", "transformers")):
            try:
                __import__("sap_kernels.integrations." + sub)
            except ImportError as exc:
                assert f"sap_kernels[{{extra}}]" in str(exc), exc
            else:
                raise AssertionError(sub + " imported without its framework")
        print("ok")
    """)
    out = _python(code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_callbacks_refuse_unknown_or_owned_options_before_training():
    pytest.importorskip("lightning")
    from sap_kernels.integrations.lightning import SAPCallback

    with pytest.raises(TypeError, match="not an argument of sap_kernels.project"):
        SAPCallback(n_trustd=10)
    with pytest.raises(TypeError, match="inplace"):
        SAPCallback(inplace=False)
    assert SAPCallback(alpha=10.0, skip="head").project_kwargs == {"alpha": 10.0, "skip": "head"}


# ----------------------------------------------------------------------------- Lightning


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def _loaders():
    train = DataLoader(TensorDataset(*_data(48, 1)), batch_size=8)
    val = DataLoader(TensorDataset(*_data(24, 2)), batch_size=8)
    return train, val


def _lit_module():
    import lightning.pytorch as pl

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    return Tiny


def test_lightning_callback_projects_on_the_trainers_loaders_and_logs(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    from sap_kernels.integrations.lightning import SAPCallback

    class Snapshot(pl.Callback):
        """The weights training left, taken in on_train_end before SAPCallback runs."""

        def on_train_end(self, trainer, pl_module):
            self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    Tiny = _lit_module()
    torch.manual_seed(0)
    module = Tiny()
    train, val = _loaders()
    snap = Snapshot()
    sap = SAPCallback(alphas=ALPHAS, n_trusted=24, progress=False, report_dir=tmp_path / "report")
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, logger=CSVLogger(tmp_path), callbacks=[snap, sap],
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(module, train, val)

    # Exactly what project() gives on the same loaders from the trained weights.
    trained = Tiny()
    trained.load_state_dict(snap.state)
    expected = sap_kernels.project(trained, train, val_loader=val, alphas=ALPHAS, n_trusted=24, progress=False)
    assert sap.result is not None and sap.result.model is module
    assert sap.result.validation == "val_loader" and set(sap.result.scores) >= set(ALPHAS)
    assert sap.result.alpha == expected.alpha and sap.result.scores == expected.scores
    final, want = module.state_dict(), expected.model.state_dict()
    assert sorted(final) == sorted(want)
    for k in want:
        assert torch.equal(final[k], want[k]), k
    assert any(not torch.equal(final[k], snap.state[k]) for k in want)

    # The CSV log holds sap/alpha and every score, at the last training step.
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [r for r in rows if r.get("sap/alpha")]
    assert len(logged) == 1
    assert float(logged[0]["sap/alpha"]) == sap.result.alpha
    for a, s in expected.scores.items():
        assert float(logged[0][f"sap/score@{a:g}"]) == pytest.approx(s)
    assert int(logged[0]["step"]) == trainer.global_step
    assert sap.metrics["sap/alpha"] == sap.result.alpha
    # report_dir=: the report page and its data.
    assert sap.report is not None and Path(sap.report).exists()
    assert json.loads((tmp_path / "report" / "report.json").read_text())


# ----------------------------------------------------------------------------- Hugging Face


@pytest.fixture(scope="module")
def hf_text(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    words = [f"w{i}" for i in range(30)]
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    tok = transformers.BertTokenizer(vocab_file=str(vocab))
    g = torch.Generator().manual_seed(0)

    def features(n):
        out = []
        for _ in range(n):
            k = int(torch.randint(2, 10, (1,), generator=g))
            ids = torch.randint(0, len(words), (k,), generator=g)
            out.append({**tok(" ".join(words[int(i)] for i in ids)), "label": int(ids[0]) % 3})
        return out

    return tok, features(16), features(8)


def _tiny_bert():
    import transformers

    cfg = transformers.BertConfig(vocab_size=35, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                  intermediate_size=37, max_position_embeddings=32, num_labels=3)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg)


def _sequential_sampling() -> bool:
    try:
        import transformers
    except ImportError:
        return False
    return "train_sampling_strategy" in transformers.TrainingArguments.__dataclass_fields__


# transformers >= 5 can read the training set in order; older versions shuffle it on every pass,
# and the same weights then agree to rounding (the Gram sums in another order), not bit for bit.
_SEQUENTIAL = _sequential_sampling()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a, b) if _SEQUENTIAL else bool(torch.allclose(a, b, rtol=1e-5, atol=1e-7))


def _hf_trainer(tmp_path, hf_text, callbacks, **args):
    import transformers

    tok, train, val = hf_text
    if _SEQUENTIAL:  # the same batch order on every pass, so that the Grams add up in the same order
        args["train_sampling_strategy"] = "sequential"
    targs = transformers.TrainingArguments(
        output_dir=str(tmp_path), report_to=[], max_steps=4, per_device_train_batch_size=4,
        per_device_eval_batch_size=4, learning_rate=1e-3, save_strategy="no", logging_steps=2, use_cpu=True,
        disable_tqdm=True, dataloader_num_workers=0, seed=0, **args)
    return transformers.Trainer(model=_tiny_bert(), args=targs, train_dataset=train, eval_dataset=val,
                                data_collator=transformers.DataCollatorWithPadding(tok), callbacks=callbacks)


def test_hf_trainer_callback_projects_on_the_trainers_loaders_and_logs(tmp_path, hf_text):
    import transformers

    from sap_kernels.integrations.transformers import SAPCallback

    class Snapshot(transformers.TrainerCallback):
        def on_train_end(self, args, state, control, model=None, train_dataloader=None, eval_dataloader=None, **kw):
            self.model = copy.deepcopy(model)
            self.loaders = (train_dataloader, eval_dataloader)

    class Recorder(transformers.TrainerCallback):
        """Stands in for a report_to integration: every on_log call's logs."""

        def __init__(self):
            self.logs = []

        def on_log(self, args, state, control, logs=None, **kw):
            self.logs.append(dict(logs or {}))

    snap, rec = Snapshot(), Recorder()
    trainer = _hf_trainer(tmp_path, hf_text, [snap, rec], eval_strategy="steps", eval_steps=4)
    sap = SAPCallback(alphas=ALPHAS, n_trusted=8, progress=False).attach(trainer)
    assert trainer.callback_handler.callbacks.count(sap) == 1
    assert sap.project_kwargs["label_key"] == "labels"
    trainer.train()

    train_dl, eval_dl = snap.loaders
    assert eval_dl is not None, "the trainer evaluated, so it handed its eval dataloader over"
    batch = next(iter(train_dl))
    assert {"input_ids", "attention_mask", "labels"} <= set(batch)
    expected = sap_kernels.project(snap.model, train_dl, val_loader=eval_dl, alphas=ALPHAS, n_trusted=8,
                                   label_key="labels", progress=False)
    assert sap.result is not None and sap.result.model is trainer.model
    assert sap.result.validation == "val_loader" and set(sap.result.scores) >= set(ALPHAS)
    assert sap.result.alpha == expected.alpha and sap.result.scores == expected.scores
    final, want = trainer.model.state_dict(), expected.model.state_dict()
    for k in want:
        assert _same(final[k], want[k]), k
    names = {r.name for r in sap.result.layers}
    assert {"classifier", "bert.pooler.dense", "bert.encoder.layer.0.attention.self.query"} <= names

    history = [h for h in trainer.state.log_history if "sap/alpha" in h]
    assert len(history) == 1 and history[0]["sap/alpha"] == sap.result.alpha
    assert history[0]["step"] == trainer.state.global_step == 4
    for a, s in expected.scores.items():
        assert history[0][f"sap/score@{a:g}"] == pytest.approx(s)
    assert [lg["sap/alpha"] for lg in rec.logs if "sap/alpha" in lg] == [sap.result.alpha]


def test_hf_trainer_callback_without_attach_fills_log_history(tmp_path, hf_text):
    from sap_kernels.integrations.transformers import SAPCallback

    sap = SAPCallback(alpha=100.0, n_trusted=16, progress=False)
    trainer = _hf_trainer(tmp_path, hf_text, [sap])
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    assert sap.result is not None and sap.result.alpha == 100.0 and sap.result.rule == "given"
    history = [h for h in trainer.state.log_history if "sap/alpha" in h]
    assert history == [{**sap.metrics, "step": 4}]
    assert sap.metrics["sap/n_trusted"] == 16.0
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "classifier.weight" in changed


# ----------------------------------------------------------------------------- torch.distributed

_DIST_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    import torch.distributed as dist
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset, DistributedSampler
    import sap_kernels
    from sap_kernels.integrations._common import run_sap

    rank, out = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", init_method="file://" + os.path.join(out, "store"), rank=rank, world_size=2)
    torch.manual_seed(rank)  # the ranks start from different weights: only the broadcast can make them equal
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(5)
    data = TensorDataset(torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g))
    val = TensorDataset(torch.randn(20, 6, generator=g), torch.randint(0, 3, (20,), generator=g))
    shard = lambda ds: DataLoader(ds, batch_size=5, sampler=DistributedSampler(ds, 2, rank, shuffle=False))
    outcome = run_sap(model, shard(data), shard(val), dict(alphas=[1.0, 10.0, 100.0], n_trusted=40,
                                                          progress=False), issues_rule="argmax")
    issues = outcome.label_issues
    errors = []
    try:
        run_sap(model, shard(data), None, dict(alpha=10.0, layers=["no_such_layer"], progress=False))
    except Exception as exc:
        errors.append(type(exc).__name__ + ": " + str(exc)[:200])
    torch.save(dict(start=start, final=model.state_dict(), metrics=outcome.metrics,
                    has_result=outcome.result is not None, errors=errors,
                    issues=(issues.positions, issues.given_labels, issues.is_issue, issues.probabilities)),
               os.path.join(out, f"rank{rank}.pt"))
    if rank == 0:  # what project() gives rank 0's model on the whole, unsharded data
        ref = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        ref.load_state_dict(start)
        res = sap_kernels.project(ref, DataLoader(data, batch_size=5), val_loader=DataLoader(val, batch_size=5),
                                  alphas=[1.0, 10.0, 100.0], n_trusted=40, progress=False, distributed=False)
        li = res.label_issues(DataLoader(data, batch_size=5), rule="argmax", progress=False, distributed=False)
        torch.save(dict(weights=res.model.state_dict(), alpha=res.alpha, is_issue=li.is_issue),
                   os.path.join(out, "expected.pt"))
    dist.destroy_process_group()
""")


def test_distributed_rank0_computes_and_every_rank_ends_identical(tmp_path):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    script = tmp_path / "dist_sap.py"
    script.write_text(_DIST_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    expected = torch.load(tmp_path / "expected.pt")
    assert any(not torch.equal(r0["start"][k], r1["start"][k]) for k in r0["start"])
    for k, want in expected["weights"].items():
        assert torch.equal(r0["final"][k], want), k  # rank 0 read the whole dataset, not its shard
        assert torch.equal(r1["final"][k], want), k  # broadcast: rank 1 holds rank 0's weights
    assert r0["has_result"] and not r1["has_result"]
    assert r0["metrics"] == r1["metrics"] and r0["metrics"]["sap/alpha"] == expected["alpha"]
    assert r0["metrics"]["sap/n_trusted"] == 40.0
    # label issues: computed once on rank 0 over the whole dataset, every rank holds them.
    for a, b in zip(r0["issues"], r1["issues"]):
        assert torch.equal(a, b)
    assert torch.equal(r0["issues"][0], torch.arange(40)) and torch.equal(r0["issues"][2], expected["is_issue"])
    assert r0["metrics"]["sap/label_issues"] == float(expected["is_issue"].sum())
    # A failure on rank 0 raises on both ranks (rank 1 learns of it instead of waiting).
    assert r0["errors"] and r0["errors"][0].startswith("ValueError") and "no_such_layer" in r0["errors"][0]
    assert r1["errors"] and r1["errors"][0].startswith("RuntimeError: SAP failed on rank 0")
    assert not math.isnan(r0["metrics"]["sap/alpha"])


# ----------------------------------------------------------------------------- label issues


def test_label_issues_option_is_checked_at_construction():
    pytest.importorskip("lightning")
    from sap_kernels.integrations.lightning import SAPCallback

    with pytest.raises(ValueError, match="label_issues"):
        SAPCallback(label_issues="vote")
    assert SAPCallback(label_issues=True).issues_rule == DEFAULT_RULE
    assert SAPCallback().issues_rule is None and SAPCallback().label_issues is None


def test_lightning_callback_returns_label_issues_in_dataset_order(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from sap_kernels.integrations.lightning import SAPCallback

    Tiny = _lit_module()
    torch.manual_seed(0)
    module = Tiny()
    data = TensorDataset(*_data(48, 1))
    train = DataLoader(data, batch_size=8, shuffle=True)
    sap = SAPCallback(alpha=10.0, n_trusted=24, progress=False, label_issues=True, report_dir=tmp_path / "report")
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, logger=False, callbacks=[sap], enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(module, train)
    issues = sap.label_issues
    assert issues is not None and torch.equal(issues.positions, torch.arange(48))
    assert torch.equal(issues.given_labels, data.tensors[1])  # read in dataset order, not the shuffled one
    want = sap.result.label_issues(DataLoader(data, batch_size=8), progress=False)  # the corrected module itself
    assert torch.equal(issues.is_issue, want.is_issue) and torch.allclose(issues.probabilities, want.probabilities)
    assert sap.metrics["sap/label_issues"] == float(issues.n_issues)
    section = json.loads((tmp_path / "report" / "report.json").read_text())["label_issues"]
    assert section["n_samples"] == 48 and "not an image" in section["grid"]["why"]


def test_hf_callback_returns_label_issues_on_collator_batches(tmp_path, hf_text):
    from sap_kernels.integrations.transformers import SAPCallback

    sap = SAPCallback(alpha=100.0, n_trusted=8, progress=False, label_issues="argmax")
    trainer = _hf_trainer(tmp_path, hf_text, [sap])
    trainer.train()
    issues = sap.label_issues
    assert issues is not None and len(issues) == 16 and issues.rule == "argmax"
    assert torch.equal(issues.positions, torch.arange(16))
    assert issues.given_labels.tolist() == [f["label"] for f in hf_text[1]]
    assert torch.equal(issues.is_issue, issues.predicted_labels != issues.given_labels)
    assert [h["sap/label_issues"] for h in trainer.state.log_history if "sap/alpha" in h] == [float(issues.n_issues)]
