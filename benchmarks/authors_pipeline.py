"""The published SAP pipeline, rebuilt step by step, to compare ``sap_kernels.project`` against.

Followed: the authors' public code, github.com/sangamesh-kodge/SAP at commit 6e776ef
(2025-01-02, "Official Code Repository for SAP ... AAAI 2025"; its ``utils.py`` and ``models/``
are the files of the earlier github.com/sangamesh-kodge/Verifix, commit 3cb742f, arXiv
2403.08618's first title). Files read, and what was taken from each (the code here is written
anew; none of it is copied):

- ``example_scripts/sap_cifar_example.sh``, ``sap_realnoise_example.sh``: the paper's runs pass
  ``--use-curvature --retain-samples 1000 --mode baseline,sap --mode-forget baseline,sap
  --projection-location pre --projection-type baseline,Mr --max-batch-size <batch size>``
  (64 for CIFAR, 128 for the real-noise data) and sweep ``--scale-coff`` 1e4..1e6 (CIFAR) or
  1e3..1e6; ``--max-samples`` stays at its default.
- ``main.py``: defaults ``--max-samples 50000``, ``--max-batch-size 150``,
  ``--forget-samples 1350``, ``--percentile-low-curve 0.0``; ``--do-not-project-classifier``.
- ``utils.py``: ``get_regularized_curvature_for_batch`` and ``get_high_low_curve_dataloader``
  (the ranking, step 1-2 below), ``get_representation_matrix_mislabeled`` (step 3),
  ``get_SVD`` (step 4), ``get_scaled_feature_mat`` and ``get_projections`` (step 5),
  ``activation_projection_based_unlearning`` (the order of the steps, the alpha loop).
- ``models/model_utils.py``: ``reshape_conv_input_activation`` (``F.unfold`` rows),
  ``forward_cache_activations`` (input *and* output rows of every Conv2d/Linear),
  ``project_weights_layer`` (step 6).
- ``models/resnet.py`` (``ResNet_cifar.get_activations``/``project_weights``: every conv, the
  1x1 shortcut convs included, and ``fc``) and ``models/vit.py`` (``EncoderBlock.get_activations``
  unrolls self-attention to capture the in-projection input and q/k/v, the attention output
  and out_proj's output; ``project_weights`` projects the packed q/k/v weight with the one input
  projection, out_proj, both MLP linears, ``conv_proj`` and the head).

The steps, as that code runs them with the scripts' settings:

1. Ranking (``--use-curvature``): every training sample gets the mean over 10 random +-1 input
   directions ``v`` (scaled by ``h = 1e-3``) of ``||grad_x [CE(x + h v) - CE(x)]||``, CE the
   batch-*mean* cross-entropy (so the last, smaller batch's scores are scaled differently), in
   batches of the training batch size, model in eval mode. ``ranking="loss"`` ranks by per-sample
   cross-entropy instead (what the paper's text describes; the public code has no such option:
   without ``--use-curvature`` it takes its trusted samples from the *known-clean* split).
2. Trusted samples: the samples sorted by score, descending, split by class; per class the last
   ``n_trusted // C + 1`` (lowest score), the window moved up by ``percentile`` of the class
   (``--percentile-low-curve``; a negative value draws at random from the lowest ``-percentile``
   of the class instead); then a random ``n_trusted`` of those.
3. Rows: the trusted samples in batches of ``batch_size`` (``--max-batch-size``); for each batch
   the input rows (``F.unfold`` patches of a conv, the input vectors of a Linear, tokens as rows)
   and the output rows of every layer are held for the whole batch, then each layer's are cut to
   ``int(max_samples / (N / batch_size)) + 1`` random rows (``N`` trusted samples: the budget
   assumes ``N / batch_size`` batches, but a partial last batch keeps up to a full budget too,
   so the total can pass ``max_samples``) and appended; at the end each layer is cut to
   ``max_samples`` random rows.
4. One float32 SVD per matrix of the ``K x rows`` matrix (``full_matrices=False``): left vectors
   ``U`` and singular values ``S``, for the output-side matrices too. The published code runs it
   on CUDA; here it runs where the activations are (CPU in the benchmark).
5. ``r = S^2 / sum(S^2)``, ``lambda = alpha r / ((alpha - 1) r + 1)``,
   ``M = (U diag(lambda^0.5)) (U diag(lambda^0.5))^T`` for every matrix; with
   ``--projection-location pre`` every output-side ``M`` is replaced by the identity.
6. ``W <- P_out^T W P_in^T`` per layer (``W`` flattened to ``[out, K]``), ``b <- b P_out``:
   with ``P_out = I`` that is ``W <- W M`` and biases unchanged. BatchNorm, LayerNorm,
   embeddings, ViT's class token untouched. ``--do-not-project-classifier`` only drops the
   classifier's ``P_out`` (and its bias update), so with ``P_out = I`` it changes nothing.

What the published script does besides, and this module does only on request: it also ranks a
*forget* set, the ``--forget-samples`` (1,350) highest-curvature samples (``n // C + 1`` per
class, then a random 1,350), runs steps 3-5 on it (``alpha = 1``) and forms ``Mf``, ``Mr Mf`` and
``Mf Mr``, which the ``Mr`` projection then discards (``forget_samples=``); it evaluates every
alpha on the validation, test and corrupted-training sets, each time on a fresh copy of the
model. Observed, not reproduced: ``main.py`` hands the ranking ``dataset1``, the training set
*before* its labels were corrupted (the corruption is applied to a deep copy), so the public
code ranks with the true labels; here the ranking uses the labels it is given.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

MAX_SAMPLES = 50_000  # --max-samples default
CURVATURE_H = 1e-3
CURVATURE_NITER = 10


def rows_per_batch(n_samples: int, batch_size: int, max_samples: int = MAX_SAMPLES) -> int:
    """Rows each layer keeps per batch: ``int(max_samples / (N / batch_size)) + 1``."""
    return int(max_samples / (n_samples / batch_size)) + 1


# ---------------------------------------------------------------------------------------------
# Steps 1-2: ranking and the trusted (and forget) samples


def curvature_scores(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 64,
                     h: float = CURVATURE_H, niter: int = CURVATURE_NITER,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``[N]`` input-curvature score per sample (step 1), in batches of ``batch_size``."""
    model.eval()
    out = []
    for a in range(0, inputs.shape[0], batch_size):
        x, y = inputs[a:a + batch_size].clone(), labels[a:a + batch_size]
        n = x.shape[0]
        regr, eigs = torch.zeros(n), torch.zeros(n)
        for _ in range(niter):
            v = torch.randint(0, 2, x.shape, generator=generator).to(x)
            v[v == 0] = -1
            v = h * (v + 1e-7)
            x.requires_grad_(True)
            loss_pos = F.cross_entropy(model(x + v), y)
            loss = F.cross_entropy(model(x), y)
            g = torch.autograd.grad(loss_pos - loss, x)[0]
            regr += g.reshape(n, -1).norm(dim=1).detach().cpu()
            # computed by the published code and unused by its ranking
            eigs += torch.diag(v.reshape(n, -1) @ g.reshape(n, -1).T).detach().cpu()
        out.append(regr / niter)
    return torch.cat(out)


@torch.no_grad()
def loss_scores(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """``[N]`` per-sample cross-entropy (``ranking="loss"``)."""
    model.eval()
    return torch.cat([F.cross_entropy(model(inputs[a:a + batch_size]), labels[a:a + batch_size], reduction="none")
                      for a in range(0, inputs.shape[0], batch_size)]).cpu()


def select_by_class(scores: torch.Tensor, labels: torch.Tensor, n: int, num_classes: int, *, lowest: bool = True,
                    percentile: float = 0.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Step 2: per class ``n // C + 1`` of the lowest scores (``lowest``; else the highest: the
    forget set), the window moved by ``percentile``; then a random ``n`` of them. Indices ``[<= n]``."""
    order = torch.sort(scores, descending=True).indices.tolist()
    by_class: list[list[int]] = [[] for _ in range(num_classes)]
    for i in order:
        by_class[int(labels[i])].append(i)
    per_class = n // num_classes + 1
    picked: list[int] = []
    for c in by_class:
        if not lowest:
            picked += c[:per_class]
        elif percentile >= 0:
            start = int(percentile * len(c))
            picked += c[max(0, len(c) - per_class - start):len(c) - start]
        else:
            start = int(-percentile * len(c))
            pool = c[len(c) - start:]
            if len(pool) < per_class:
                raise ValueError(f"percentile {percentile}: a class has {len(pool)} samples in its window, "
                                 f"fewer than {per_class} (the published code fails here too)")
            picked += [pool[j] for j in torch.randperm(len(pool), generator=generator)[:per_class].tolist()]
    picked_t = torch.tensor(picked, dtype=torch.long)
    return picked_t[torch.randperm(len(picked_t), generator=generator)[:n]]


def rank(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, ranking: str, *, batch_size: int,
         generator: Optional[torch.Generator] = None) -> Optional[torch.Tensor]:
    """Step 1 by name: ``"curvature"`` (the published scripts), ``"loss"`` or ``"none"`` (None)."""
    if ranking == "curvature":
        return curvature_scores(model, inputs, labels, batch_size=batch_size, generator=generator)
    if ranking == "loss":
        return loss_scores(model, inputs, labels, batch_size=batch_size)
    if ranking == "none":
        return None
    raise ValueError(f"ranking must be 'curvature', 'loss' or 'none', got {ranking!r}")


# ---------------------------------------------------------------------------------------------
# Step 3: the layers and their rows


@dataclass
class Layer:
    """A projected weight: ``module.weight`` (Conv2d/Linear) or an attention block's
    ``in_proj_weight`` and ``out_proj.weight``. ``pre``: the key of its input-row matrix per
    weight; ``post``: the keys of its output-row matrices (three for the packed q/k/v)."""

    name: str
    module: nn.Module
    kind: str  # "conv", "linear", "attention"
    classifier: bool = False


def published_layers(model: nn.Module) -> list[Layer]:
    """Every Conv2d, Linear and (self-)attention block, as the published models enumerate them;
    the last Linear/Conv called is the classifier (found by one forward pass elsewhere: here the
    last Linear in module order, which it is for ResNet-18, ViT and the digits CNN)."""
    out: list[Layer] = []
    attention = [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    for name, m in model.named_modules():
        if any(name.startswith(a + ".") for a in attention):
            continue  # out_proj: handled with its attention block
        if isinstance(m, nn.MultiheadAttention):
            if m.in_proj_weight is None:
                raise NotImplementedError(f"{name}: separate q/k/v weights (kdim/vdim); the published code "
                                          "unrolls packed self-attention only")
            out.append(Layer(name, m, "attention"))
        elif isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise NotImplementedError(f"{name}: groups, padding modes and string padding are not in the "
                                          "published code (it unfolds with groups=1 and zero padding)")
            out.append(Layer(name, m, "conv"))
        elif isinstance(m, nn.Linear):
            out.append(Layer(name, m, "linear"))
    linears = [layer for layer in out if layer.kind == "linear"]
    if linears:
        linears[-1].classifier = True
    return out


def pre_keys(layer: Layer) -> list[str]:
    return [f"{layer.name}.qkv", f"{layer.name}.out_proj"] if layer.kind == "attention" else [layer.name]


def post_keys(layer: Layer) -> list[str]:
    if layer.kind == "attention":
        return [f"{layer.name}.{p}" for p in ("query", "key", "value", "out_proj")]
    return [layer.name]


@dataclass
class Rows:
    """Step 3's result: per key the kept rows ``[rows, K]`` (float32), input side (``pre``) and
    output side (``post``, empty without ``output_side``); ``per_batch``: the formula's row budget;
    ``kept``: per key the rows kept from each batch (before the final cut)."""

    pre: dict[str, torch.Tensor]
    post: dict[str, torch.Tensor]
    per_batch: int
    kept: dict[str, list[int]] = field(default_factory=dict)


class _Capture:
    """Hooks that hold one batch's rows of every layer (the published ``get_activations`` returns
    them all at once), with self-attention unrolled as the published ViT does."""

    def __init__(self, layers: list[Layer], output_side: bool):
        self.layers, self.output_side = layers, output_side
        self.batch: dict[tuple[str, str], torch.Tensor] = {}
        self.handles: list = []

    def put(self, key: str, side: str, rows: torch.Tensor) -> None:
        if side == "post" and not self.output_side:
            return
        self.batch[(key, side)] = rows.detach().float().contiguous().clone()

    def _hook(self, layer: Layer):
        def hook(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
            x = args[0]
            if layer.kind == "conv":
                cols = F.unfold(x, mod.kernel_size, dilation=mod.dilation, padding=mod.padding, stride=mod.stride)
                self.put(layer.name, "pre", cols.permute(0, 2, 1).reshape(-1, cols.shape[1]))
                self.put(layer.name, "post", out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]))
            else:
                self.put(layer.name, "pre", x.reshape(-1, x.shape[-1]))
                self.put(layer.name, "post", out.reshape(-1, out.shape[-1]))
        return hook

    def _attention(self, layer: Layer):
        mha, name = layer.module, layer.name

        def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                    average_attn_weights=True, is_causal=False):
            if not (query is key is value) or key_padding_mask is not None or attn_mask is not None or is_causal:
                raise NotImplementedError(f"{name}: the published code unrolls unmasked self-attention only")
            x = query if mha.batch_first else query.transpose(0, 1)
            b, t, e = x.shape
            self.put(f"{name}.qkv", "pre", x.reshape(-1, e))
            q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
            for part, val in (("query", q), ("key", k), ("value", v)):
                self.put(f"{name}.{part}", "post", val.reshape(-1, e))
            heads = [z.reshape(b, t, mha.num_heads, e // mha.num_heads).transpose(1, 2) for z in (q, k, v)]
            o = F.scaled_dot_product_attention(*heads).transpose(1, 2).reshape(b * t, e)
            self.put(f"{name}.out_proj", "pre", o)
            o = F.linear(o, mha.out_proj.weight, mha.out_proj.bias)
            self.put(f"{name}.out_proj", "post", o)
            o = o.reshape(b, t, e)
            return (o if mha.batch_first else o.transpose(0, 1)), None
        return forward

    def __enter__(self) -> "_Capture":
        for layer in self.layers:
            if layer.kind == "attention":
                layer.module.forward = self._attention(layer)  # an instance attribute, removed on exit
            else:
                self.handles.append(layer.module.register_forward_hook(self._hook(layer)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        for layer in self.layers:
            if layer.kind == "attention" and "forward" in layer.module.__dict__:
                del layer.module.forward


def _random_rows(rows: torch.Tensor, m: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    return rows[torch.randperm(rows.shape[0], generator=generator)[:m]].clone()


@torch.no_grad()
def collect_rows(model: nn.Module, inputs: torch.Tensor, *, max_samples: int = MAX_SAMPLES, batch_size: int = 150,
                 output_side: bool = True, layers: Optional[list[Layer]] = None,
                 generator: Optional[torch.Generator] = None) -> Rows:
    """Step 3 on ``inputs [N, ...]`` (all of them: the trusted samples)."""
    layers = published_layers(model) if layers is None else layers
    n = inputs.shape[0]
    budget = rows_per_batch(n, batch_size, max_samples)
    acc: dict[tuple[str, str], torch.Tensor] = {}
    kept: dict[str, list[int]] = {}
    model.eval()
    with _Capture(layers, output_side) as cap:
        for a in range(0, n, batch_size):
            cap.batch = {}
            model(inputs[a:a + batch_size])
            for key, rows in cap.batch.items():
                if rows.shape[0] > budget:
                    rows = _random_rows(rows, budget, generator)
                kept.setdefault(f"{key[1]}:{key[0]}", []).append(rows.shape[0])
                acc[key] = rows if key not in acc else torch.cat([acc[key], rows])  # np.concatenate per batch
            cap.batch = {}
    pre, post = {}, {}
    for (key, side), rows in acc.items():
        rows = _random_rows(rows, max_samples, generator) if rows.shape[0] > max_samples else rows
        (pre if side == "pre" else post)[key] = rows
    return Rows(pre, post, budget, kept)


# ---------------------------------------------------------------------------------------------
# Steps 4-6


def svd_bases(rows: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Step 4: ``(U [K, min(K, rows)], S)`` of the float32 ``K x rows`` matrix, per key."""
    out = {}
    for key, r in rows.items():
        u, s, _ = torch.linalg.svd(r.T.contiguous().float(), full_matrices=False)
        out[key] = (u, s)
    return out


def scaled_projection(u: torch.Tensor, s: torch.Tensor, alpha: float) -> torch.Tensor:
    """Step 5 for one matrix: ``M = U diag(lambda) U^T`` as the published code forms it."""
    ratio = s**2 / (s**2).sum()
    lam = alpha * ratio / ((alpha - 1) * ratio + 1)
    scaled = u @ torch.diag(lam**0.5)
    return scaled @ scaled.T


def _write(w: torch.Tensor, p_in: torch.Tensor, p_out: Optional[torch.Tensor]) -> torch.Tensor:
    flat = w.reshape(w.shape[0], -1) @ p_in.T
    if p_out is not None:
        flat = p_out.T @ flat
    return flat.reshape(w.shape)


@torch.no_grad()
def project_weights(layers: list[Layer], pre: dict[str, torch.Tensor], post: Optional[dict[str, torch.Tensor]] = None,
                    project_classifier: bool = True) -> None:
    """Step 6, in place: ``W <- P_out^T W P_in^T`` and ``b <- b P_out`` (``post=None``: no output
    side at all, ``W <- W P_in^T``); the classifier's output side only with ``project_classifier``."""
    def p_out(key: str, layer: Layer) -> Optional[torch.Tensor]:
        if post is None or (layer.classifier and not project_classifier):
            return None
        return post[key]

    def bias(b: Optional[torch.Tensor], p: Optional[torch.Tensor]) -> None:
        if b is not None and p is not None:
            b.copy_(b @ p)

    for layer in layers:
        m = layer.module
        if layer.kind == "attention":
            e = m.embed_dim
            keys = [f"{layer.name}.{part}" for part in ("query", "key", "value")]
            for i, key in enumerate(keys):
                m.in_proj_weight[i * e:(i + 1) * e] = _write(m.in_proj_weight[i * e:(i + 1) * e],
                                                             pre[f"{layer.name}.qkv"], p_out(key, layer))
                if m.in_proj_bias is not None:
                    bias(m.in_proj_bias[i * e:(i + 1) * e], p_out(key, layer))
            key = f"{layer.name}.out_proj"
            m.out_proj.weight.copy_(_write(m.out_proj.weight, pre[key], p_out(key, layer)))
            bias(m.out_proj.bias, p_out(key, layer))
        else:
            m.weight.copy_(_write(m.weight, pre[layer.name], p_out(layer.name, layer)))
            bias(m.bias, p_out(layer.name, layer))


def projection_matrices(bases: dict[str, tuple[torch.Tensor, torch.Tensor]], alpha: float) -> dict[str, torch.Tensor]:
    return {k: scaled_projection(u, s, alpha) for k, (u, s) in bases.items()}


def projected_copy(model: nn.Module, bases: dict[str, tuple[torch.Tensor, torch.Tensor]], alpha: float) -> nn.Module:
    """A deep copy of ``model`` with the input-side projection at ``alpha`` (steps 5-6 with
    identity output side, i.e. the published default), for sweeping alpha."""
    out = copy.deepcopy(model)
    project_weights(published_layers(out), projection_matrices(bases, alpha))
    return out


# ---------------------------------------------------------------------------------------------
# The whole pipeline


def authors_project(model: nn.Module, inputs: torch.Tensor, labels: Optional[torch.Tensor], alpha: float, *,
                    n_trusted: Optional[int] = None, num_classes: Optional[int] = None, ranking: str = "curvature",
                    percentile: float = 0.0, max_samples: int = MAX_SAMPLES, batch_size: int = 150,
                    rank_batch_size: Optional[int] = None, output_side: bool = True, forget_samples: int = 0,
                    project_classifier: bool = True, seed: int = 0,
                    clock: Callable[[], float] = time.perf_counter) -> dict:
    """Run the published pipeline on ``inputs [N, ...]`` (the training samples to rank) and
    project ``model``'s weights in place at ``alpha``.

    Args:
        labels: ``[N]`` class labels (needed unless ``ranking="none"``).
        n_trusted: trusted samples (``--retain-samples``; the scripts pass 1000); default ``N``.
        num_classes: default ``labels.max() + 1``.
        ranking: ``"curvature"`` (the scripts), ``"loss"`` (per-sample cross-entropy) or
            ``"none"`` (every given sample is trusted; then a random ``n_trusted`` of them).
        percentile: ``--percentile-low-curve``.
        max_samples, batch_size: ``--max-samples``, ``--max-batch-size`` (step 3).
        rank_batch_size: the ranking's batch (the training ``--batch-size``); default ``batch_size``.
        output_side: also collect and decompose every layer's output rows and form their
            (discarded) projections, as the published code does; False: the input side only.
        forget_samples: also run steps 3-5 on this many highest-score samples, as the script does
            with ``--forget-samples 1350`` (0: skip that unused work).
        project_classifier: ``not --do-not-project-classifier``.
    Returns:
        ``{"phases": seconds per step, "rows": kept rows per input-side key, "n_trusted": ...,
        "per_batch": the row budget per batch}``.
    """
    gen = torch.Generator().manual_seed(seed)
    n = inputs.shape[0]
    n_trusted = n if n_trusted is None else n_trusted
    rb = batch_size if rank_batch_size is None else rank_batch_size
    phases: dict[str, float] = {}
    t = clock()
    scores = rank(model, inputs, labels, ranking, batch_size=rb, generator=gen)
    if scores is None:
        trusted = torch.randperm(n, generator=gen)[:n_trusted]
        forget = torch.randperm(n, generator=gen)[:forget_samples]
    else:
        c = int(labels.max()) + 1 if num_classes is None else num_classes
        trusted = select_by_class(scores, labels, n_trusted, c, percentile=percentile, generator=gen)
        forget = select_by_class(scores, labels, forget_samples, c, lowest=False, generator=gen)
    phases["ranking"] = clock() - t

    layers = published_layers(model)
    t = clock()
    rows = collect_rows(model, inputs[trusted], max_samples=max_samples, batch_size=batch_size,
                        output_side=output_side, layers=layers, generator=gen)
    phases["activations"] = clock() - t
    t = clock()
    bases_pre = svd_bases(rows.pre)
    bases_post = svd_bases(rows.post)
    counts = {k: r.shape[0] for k, r in rows.pre.items()}
    del rows
    phases["svd"] = clock() - t

    forget_bases: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if forget_samples:
        t = clock()
        frows = collect_rows(model, inputs[forget], max_samples=max_samples, batch_size=batch_size,
                             output_side=output_side, layers=layers, generator=gen)
        forget_bases = {**svd_bases(frows.pre), **{"post:" + k: v for k, v in svd_bases(frows.post).items()}}
        del frows
        phases["forget set"] = clock() - t

    t = clock()
    pre = projection_matrices(bases_pre, alpha)
    post = None
    if output_side:
        for k, (u, s) in bases_post.items():
            scaled_projection(u, s, alpha)  # formed, then replaced by I (--projection-location pre)
        post = {k: torch.eye(u.shape[0]) for k, (u, s) in bases_post.items()}
    for k, (u, s) in forget_bases.items():  # Mf, Mr Mf, Mf Mr: formed and discarded by "Mr"
        mf = scaled_projection(u, s, 1.0)
        if k in pre:
            _ = (pre[k] @ mf, mf @ pre[k])
    project_weights(layers, pre, post, project_classifier)
    phases["projection"] = clock() - t
    return {"phases": phases, "rows": counts, "n_trusted": int(trusted.numel()), "per_batch": rows_per_batch(
        int(trusted.numel()), batch_size, max_samples)}
