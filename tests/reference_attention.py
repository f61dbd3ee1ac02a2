"""Float64 reference rows for ``nn.MultiheadAttention``, computed from the module's definition.

The attention output is recomputed by hand (in-projection, per-head scaled dot products,
masks, softmax, weighted sum) from the query/key/value a forward pre-hook sees, so it shares no
code with the package's capture (which reuses torch's own attention with an identity
``out_proj``). Supports packed and separate q/k/v weights, ``batch_first`` either way,
unbatched inputs, boolean or float ``key_padding_mask``/``attn_mask`` (2-D or 3-D); not
``bias_k``/``bias_v``/``add_zero_attn``/``is_causal`` (the tests do not use them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _additive(mask, dtype):
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def attention_rows(mha: nn.MultiheadAttention, q, k, v, key_padding_mask=None, attn_mask=None):
    """``(q_rows, k_rows, v_rows, out_rows)``, each ``[rows, width]`` float64."""
    e, h = mha.embed_dim, mha.num_heads
    q, k, v = (t.double() for t in (q, k, v))
    unbatched = q.dim() == 2
    if unbatched:
        q, k, v = (t.unsqueeze(1) for t in (q, k, v))
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif mha.batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # -> [L, N, E]
    rows = [t.reshape(-1, t.shape[-1]) for t in (q, k, v)]
    if mha._qkv_same_embed_dim:
        wq, wk, wv = mha.in_proj_weight.double().chunk(3)
    else:
        wq, wk, wv = (getattr(mha, f"{p}_proj_weight").double() for p in "qkv")
    b = mha.in_proj_bias.double().chunk(3) if mha.in_proj_bias is not None else (None, None, None)
    big_q, big_k, big_v = F.linear(q, wq, b[0]), F.linear(k, wk, b[1]), F.linear(v, wv, b[2])
    l_, n, _ = big_q.shape
    s = big_k.shape[0]
    d = e // h

    def split(t: torch.Tensor, length: int) -> torch.Tensor:
        return t.reshape(length, n, h, d).permute(1, 2, 0, 3)  # [N, H, L, d]

    qh, kh, vh = split(big_q, l_), split(big_k, s), split(big_v, s)
    scores = qh @ kh.transpose(-1, -2) / d**0.5  # [N, H, L, S]
    am = _additive(attn_mask, torch.float64)
    if am is not None:
        scores = scores + (am.reshape(n, h, l_, s) if am.dim() == 3 else am)
    kpm = _additive(key_padding_mask, torch.float64)
    if kpm is not None:
        scores = scores + kpm[:, None, None, :]
    out = torch.softmax(scores, dim=-1) @ vh  # [N, H, L, d]
    out = out.permute(2, 0, 1, 3).reshape(l_ * n, e)
    return (*rows, out)


def capture_attention(model: nn.Module, inputs, names: list[str], forward_dtype=torch.float32):
    """Per attention block name: lists of ``(q, k, v, out)`` float64 rows, one entry per call."""
    import copy

    m = copy.deepcopy(model).to(forward_dtype).eval()
    mods = dict(m.named_modules())
    got = {n: [] for n in names}
    keys = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask")

    def hook(mod, args, kwargs, n):
        a = dict(zip(keys, args))
        a.update(kwargs)
        got[n].append((attention_rows(mod, a["query"], a["key"], a["value"], a.get("key_padding_mask"),
                                      a.get("attn_mask")), a["query"] is a["key"] and a["key"] is a["value"]))

    hs = [mods[n].register_forward_pre_hook(lambda mod, args, kwargs, n=n: hook(mod, args, kwargs, n), with_kwargs=True)
          for n in names]
    try:
        with torch.no_grad():
            m(inputs.to(forward_dtype))
    finally:
        for h in hs:
            h.remove()
    return got
