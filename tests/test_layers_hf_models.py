"""``project`` on Hugging Face transformers models, fed the way HF users feed them.

Models are built from tiny configs with random weights (no download); batches come from HF
collators: ``DataCollatorWithPadding`` over a tokenizer built from a local vocabulary (dicts of
``input_ids``/``token_type_ids``/``attention_mask``/``labels``, padded per batch), and
``default_data_collator`` over image samples (``pixel_values``/``labels``). Outputs are
``SequenceClassifierOutput`` objects, read through ``.logits``.

Every projected weight is compared with a float64 reference written here: a float64 copy of the
model is run on the same trusted samples, each Linear's token-wise input ``[B, T, K]`` is cut to
the rows where ``attention_mask == 1`` (per-sample inputs ``[B, K]``, such as the pooler's and
the classifier's, keep every row), and the weight is projected through an SVD of those rows
(``reference.sap_weight``).
"""
from __future__ import annotations

import copy

import pytest
import torch
from reference import layer_rows, sap_weight
from torch import nn
from torch.utils.data import DataLoader

import sap_kernels

transformers = pytest.importorskip("transformers")

ALPHA = 100.0
TOL = 1e-4
N_SAMPLES, N_CLASSES = 12, 3
WORDS = [f"w{i}" for i in range(40)]


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


# ----------------------------------------------------------------------------- text: BERT


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A BERT WordPiece tokenizer over a 45-entry local vocabulary (no hub access)."""
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    return transformers.BertTokenizer(vocab_file=str(vocab))


@pytest.fixture(scope="module")
def text_features(tokenizer):
    """12 tokenised sentences of 2..11 words with labels 0..2 (what ``Dataset.map(tokenize)`` gives)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(N_SAMPLES):
        n = int(torch.randint(2, 12, (1,), generator=g))
        words = [WORDS[int(j)] for j in torch.randint(0, len(WORDS), (n,), generator=g)]
        out.append({**tokenizer(" ".join(words)), "label": i % N_CLASSES})
    return out


def bert_config(attn: str = "sdpa"):
    cfg = transformers.BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
                                  num_labels=N_CLASSES)
    cfg._attn_implementation = attn
    return cfg


def tiny_bert(attn: str = "sdpa", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return transformers.AutoModelForSequenceClassification.from_config(bert_config(attn), attn_implementation=attn)


def text_loader(features, tokenizer, bs=4, repad=None):
    """Padded dict batches from ``DataCollatorWithPadding``; ``repad(batch)`` may rewrite them."""
    collate = transformers.DataCollatorWithPadding(tokenizer)

    def collate_fn(samples):
        batch = collate(samples)
        return repad(batch) if repad is not None else batch

    return DataLoader(features, batch_size=bs, collate_fn=collate_fn)


def bert_layer_names(model: nn.Module) -> list[str]:
    out = []
    for i in range(model.config.num_hidden_layers):
        p = f"bert.encoder.layer.{i}."
        out += [p + "attention.self.query", p + "attention.self.key", p + "attention.self.value",
                p + "attention.output.dense", p + "intermediate.dense", p + "output.dense"]
    return out + ["bert.pooler.dense", "classifier"]


@torch.no_grad()
def reference_weights(model: nn.Module, batches: list[dict], names: list[str], alpha: float) -> dict:
    """Float64 SAP weights of the named layers, every sample of ``batches`` trusted.

    A float64 copy of ``model`` runs each batch (without ``labels``); a forward pre-hook on each
    named layer keeps its input rows: a token-wise input ``[B, T, K]`` (B, T: the batch's
    ``attention_mask`` shape) only at ``attention_mask != 0``, a per-sample input ``[B, K]`` whole,
    a convolution's patch rows from ``reference.layer_rows``. Returns ``name -> weight`` float64.
    """
    m64 = copy.deepcopy(model).double().eval()
    mods = dict(m64.named_modules())
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    current: dict[str, torch.Tensor] = {}

    def keep(mod, args, name):
        x = args[0]
        mask = current.get("mask")
        if isinstance(mod, nn.Linear):
            if x.dim() == 3 and mask is not None:
                assert tuple(x.shape[:2]) == tuple(mask.shape)
                x = x[mask]
            rows[name].append(x.reshape(-1, x.shape[-1]).double())
        else:
            rows[name].append(layer_rows(mod, x)[0])

    handles = [mods[n].register_forward_pre_hook(lambda mod, args, n=n: keep(mod, args, n)) for n in names]
    try:
        for batch in batches:
            inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in batch.items() if k != "labels"}
            mask = inputs.get("attention_mask")
            current["mask"] = None if mask is None else mask != 0
            m64(**inputs)
    finally:
        for h in handles:
            h.remove()
    return {n: sap_weight(mods[n].weight, torch.cat(rows[n]).unsqueeze(0), alpha) for n in names}


def subset_batches(batches: list[dict], indices: torch.Tensor) -> list[dict]:
    """The samples ``indices`` (positions in loader order) of ``batches``, each in its own batch's padding."""
    out, start = [], 0
    wanted = set(indices.tolist())
    for b in batches:
        n = b["labels"].shape[0]
        keep = torch.tensor([i - start for i in range(start, start + n) if i in wanted], dtype=torch.long)
        if keep.numel():
            out.append({k: v[keep] for k, v in b.items()})
        start += n
    return out


def test_bert_from_auto_config_projects_every_linear_and_lists_the_rest(tokenizer, text_features):
    model = tiny_bert()
    assert isinstance(model, transformers.BertForSequenceClassification)
    loader = text_loader(text_features, tokenizer)
    first = next(iter(loader))
    assert sorted(first) == ["attention_mask", "input_ids", "labels", "token_type_ids"]
    assert bool((first["attention_mask"] == 0).any()), "the collator should pad this batch"

    res = sap_kernels.project(model, loader, alpha=ALPHA, n_trusted=N_SAMPLES, label_key="labels", progress=False)
    names = bert_layer_names(model)
    assert sorted(r.name for r in res.layers) == sorted(names)
    skipped = dict(res.skipped)
    for emb in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        assert "embedding" in skipped[f"bert.embeddings.{emb}"]
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 1 + 2 * model.config.num_hidden_layers
    assert all("normalisation" in skipped[n] for n in norms)
    # Token-wise layers see one row per real token, the pooler and the classifier one per sample.
    real_tokens = sum(int(b["attention_mask"].sum()) for b in loader)
    padded = sum(b["attention_mask"].numel() for b in loader)
    assert real_tokens < padded
    rows = {r.name: r.rows for r in res.layers}
    assert all(rows[n] == real_tokens for n in names[:-2]), rows
    assert rows["bert.pooler.dense"] == rows["classifier"] == N_SAMPLES
    # The caller's model is untouched; the copy's weights all moved.
    before, after = dict(model.named_modules()), dict(res.model.named_modules())
    for n in names:
        assert not torch.equal(before[n].weight, after[n].weight), n


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("n_trusted", [N_SAMPLES, 6])
def test_bert_matches_float64_reference_without_padding_rows(tokenizer, text_features, attn, n_trusted):
    model = tiny_bert(attn)
    loader = text_loader(text_features, tokenizer)
    res = sap_kernels.project(model, loader, alpha=ALPHA, n_trusted=n_trusted, label_key="labels", progress=False)
    assert len(res.trusted_indices) == n_trusted
    names = bert_layer_names(model)
    ref = reference_weights(model, subset_batches(list(loader), res.trusted_indices), names, ALPHA)
    mods = dict(res.model.named_modules())
    errors = {n: rel(mods[n].weight, ref[n]) for n in names}
    print(f"max rel error {max(errors.values()):.1e} over {len(errors)} weights")
    assert max(errors.values()) < TOL, errors


def _scramble_padding(seed: int):
    """A collator post-step that writes random token ids wherever ``attention_mask == 0``."""
    g = torch.Generator().manual_seed(seed)

    def repad(batch):
        ids = batch["input_ids"].clone()
        pad = batch["attention_mask"] == 0
        ids[pad] = torch.randint(5, len(WORDS) + 5, (int(pad.sum()),), generator=g)
        return {**batch, "input_ids": ids}

    return repad


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("n_trusted", [N_SAMPLES, 6])
def test_token_ids_under_padding_do_not_change_any_weight(tokenizer, text_features, attn, n_trusted):
    model = tiny_bert(attn)
    runs = []
    for repad in (None, _scramble_padding(1), _scramble_padding(2)):
        loader = text_loader(text_features, tokenizer, repad=repad)
        runs.append(sap_kernels.project(model, loader, alpha=ALPHA, n_trusted=n_trusted, label_key="labels",
                                        progress=False))
    names = bert_layer_names(model)
    base = dict(runs[0].model.named_modules())
    for other in runs[1:]:
        assert torch.equal(other.trusted_indices, runs[0].trusted_indices)
        mods = dict(other.model.named_modules())
        # Masked attention gives padded keys exactly zero weight, so every real token's activation
        # and every trusted sample's loss are bit-identical: so are the projected weights.
        changed = [n for n in names if not torch.equal(mods[n].weight, base[n].weight)]
        assert not changed, changed


def test_padding_rows_would_matter_without_the_mask(tokenizer, text_features):
    """Control for the test above: with ``row_mask=None`` the padded rows enter the Grams, and the
    token ids under them move the token-wise layers' weights (not the pooler's or classifier's)."""
    model = tiny_bert()
    runs = [sap_kernels.project(model, text_loader(text_features, tokenizer, repad=repad), alpha=ALPHA,
                                n_trusted=N_SAMPLES, label_key="labels", row_mask=None, progress=False)
            for repad in (None, _scramble_padding(1))]
    a, b = dict(runs[0].model.named_modules()), dict(runs[1].model.named_modules())
    q = "bert.encoder.layer.0.attention.self.query"
    assert float((a[q].weight - b[q].weight).detach().abs().max()) > 1e-4
    assert torch.equal(a["classifier"].weight, b["classifier"].weight)


def test_bert_with_validation_loader_sweeps_alpha(tokenizer, text_features):
    model = tiny_bert()
    train = text_loader(text_features[:8], tokenizer)
    val = text_loader(text_features[8:], tokenizer)
    res = sap_kernels.project(model, train, val_loader=val, alphas=[1.0, 10.0, 1e3], n_trusted=8,
                              label_key="labels", progress=False)
    assert res.validation == "val_loader"
    assert set(res.scores) >= {1.0, 10.0, 1e3}
    assert res.alpha in set(res.scores)


# ----------------------------------------------------------------------------- images: ViT


def tiny_vit(seed: int = 0) -> nn.Module:
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=37, num_labels=N_CLASSES)
    torch.manual_seed(seed)
    return transformers.ViTForImageClassification(cfg)


def image_loader(n=8, bs=4):
    g = torch.Generator().manual_seed(1)
    samples = [{"pixel_values": torch.randn(3, 16, 16, generator=g), "labels": i % N_CLASSES} for i in range(n)]
    return DataLoader(samples, batch_size=bs, collate_fn=transformers.default_data_collator)


def vit_layer_names(model: nn.Module) -> list[str]:
    """Every Linear/Conv2d of the ViT: the patch embedding, q/k/v/o and the two MLP layers of each
    block, the classifier (module names differ between transformers versions, so they are found)."""
    out = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(out) == 1 + 6 * model.config.num_hidden_layers + 1
    return out


def test_vit_for_image_classification_matches_float64_reference():
    model = tiny_vit()
    loader = image_loader()
    batch = next(iter(loader))
    assert sorted(batch) == ["labels", "pixel_values"]
    res = sap_kernels.project(model, loader, alpha=ALPHA, n_trusted=8, label_key="labels", progress=False)
    names = vit_layer_names(model)
    assert sorted(r.name for r in res.layers) == sorted(names)
    skipped = dict(res.skipped)
    assert "cls_token" in skipped["vit.embeddings"] and "position_embeddings" in skipped["vit.embeddings"]
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all("normalisation" in skipped[n] for n in norms)
    rows = {r.name: r.rows for r in res.layers}
    assert rows["classifier"] == 8  # the CLS vector: one row per sample
    token_wise = [n for n in names if n.startswith("vit.") and "embeddings" not in n]
    assert token_wise and all(rows[n] == 8 * (1 + 16) for n in token_wise)  # CLS + 4x4 patches per image

    ref = reference_weights(model, list(loader), names, ALPHA)
    mods = dict(res.model.named_modules())
    errors = {n: rel(mods[n].weight, ref[n]) for n in names}
    print(f"max rel error {max(errors.values()):.1e} over {len(errors)} weights")
    assert max(errors.values()) < TOL, errors
