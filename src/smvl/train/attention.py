"""Variable-length attention for packed rows: each sample attends only to itself, at no cost for the others.

transformers' SDPA path turns packed `position_ids` into a dense [T, T] block-diagonal mask: correct, but the
memory and the attention FLOPs grow with the square of the whole row, not of each sample. `packed` (registered as an
attention implementation under NAME) runs attention per sample instead: torch's flash-attention varlen kernel on
CUDA (checked once against the per-sample path, else not used), otherwise one causal SDPA call per sample. Segments
come from `cu_seq_lens_q` (set by the packing collator for its one row; flash_attention_2 reads the same key) or,
row by row, from restarting `position_ids`. A call with an attention mask (padding, generation) goes to plain SDPA unchanged.

The implementation is set on the text model for training only; transformers does not write the attention
implementation into config.json (tested), so nothing we save needs this module to load.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "smvl_packed"
log = logging.getLogger(__name__)
_varlen_ok: dict[str, bool] = {}


def segments_from_positions(position_ids: torch.Tensor) -> torch.Tensor:
    """cu_seqlens [n + 1] of the one row whose positions restart at 0 for every sample."""
    starts = torch.nonzero(position_ids[0] == 0).flatten()
    if starts.numel() == 0 or starts[0] != 0:
        starts = torch.cat([starts.new_zeros(1), starts])
    return torch.cat([starts, starts.new_tensor([position_ids.shape[1]])]).to(torch.int32)


def _per_segment(module, query, key, value, cu, dropout, scaling, **kwargs) -> torch.Tensor:
    bounds = cu.tolist()
    outs = [
        sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None,
                               dropout=dropout, scaling=scaling, **kwargs)[0]
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    return torch.cat(outs, dim=1)  # [1, T, heads, dim]


@functools.cache
def _parameters(function) -> frozenset[str]:
    """Read once, not in every layer of every step."""
    return frozenset(inspect.signature(function).parameters)


def _varlen(module, query, key, value, cu, scaling, longest: int) -> torch.Tensor:
    from torch.nn.attention.varlen import varlen_attn

    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # [T, heads, dim]
    params = _parameters(varlen_attn)
    options = {"scale": scaling}
    # The API moved between torch releases: causal masking as `is_causal` (2.10-2.11) or as a window; GQA
    # as `enable_gqa`, else key/value heads repeated up to the query heads (each serves a run of query heads).
    if "window_size" in params:
        options["window_size"] = (-1, 0)
    else:
        options["is_causal"] = True
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            options["enable_gqa"] = True
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return varlen_attn(q, k, v, cu, cu, longest, longest, **options)[None]


def _varlen_usable(module, query, key, value, scaling) -> bool:
    """Once per device and dtype: does torch's varlen kernel run and agree with the per-segment path?"""
    tag = f"{query.device}:{query.dtype}"
    if tag not in _varlen_ok:
        ok = False
        if query.is_cuda and importlib.util.find_spec("torch.nn.attention.varlen") is not None:
            try:
                n = min(64, query.shape[2])
                q, k, v = (t[:, :, :n].detach() for t in (query, key, value))
                cu = torch.tensor([0, n // 3, n], dtype=torch.int32, device=query.device)
                with torch.no_grad():
                    want = _per_segment(module, q, k, v, cu, 0.0, scaling)
                    got = _varlen(module, q, k, v, cu, scaling, n - n // 3)
                ok = torch.allclose(got.float(), want.float(), atol=2e-2, rtol=2e-2)
            except Exception as exc:  # an unsupported GPU, head size or build: the per-segment path still works
                log.warning("torch varlen attention unusable (%s); using per-sample SDPA", exc)
        _varlen_ok[tag] = ok
    return _varlen_ok[tag]


def _attend(module, query, key, value, cu, longest, dropout, scaling, **kwargs) -> torch.Tensor:
    """One row [1, heads, T, dim] whose samples are delimited by cu -> [1, T, heads, dim]."""
    cu = cu.to(device=query.device, dtype=torch.int32)
    if dropout == 0.0 and _varlen_usable(module, query, key, value, scaling):
        # The collator's max_length_q where given: computing it from cu on the GPU would sync every layer.
        return _varlen(module, query, key, value, cu, scaling, longest or int((cu[1:] - cu[:-1]).max()))
    return _per_segment(module, query, key, value, cu, dropout, scaling, **kwargs)


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    cu, longest = kwargs.pop("cu_seq_lens_q", None), kwargs.pop("max_length_q", None)
    for unused in ("cu_seq_lens_k", "max_length_k"):
        kwargs.pop(unused, None)
    if attention_mask is not None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if kwargs.get("sliding_window") is not None:
        raise NotImplementedError("packed attention does not implement sliding windows; use attn_implementation=sdpa")
    position_ids = kwargs.get("position_ids")
    rows = []
    for b in range(query.shape[0]):
        row_longest = None
        if cu is not None and query.shape[0] == 1:
            bounds, row_longest = cu, longest
        elif position_ids is not None:
            bounds = segments_from_positions(position_ids[b if position_ids.shape[0] > 1 else 0][None])
        else:
            bounds = torch.tensor([0, query.shape[2]])
        q, k, v = (t[b : b + 1] for t in (query, key, value))
        rows.append(_attend(module, q, k, v, bounds, row_longest, dropout, scaling, **kwargs))
    return torch.cat(rows), None


def packed_mask(*args, attention_mask=None, **kwargs):
    """No dense mask when there is no padding mask: the segments are the mask."""
    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


AttentionInterface.register(NAME, packed_attention)
AttentionMaskInterface.register(NAME, packed_mask)


def flash_attention_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def training_attention(setting: str) -> dict[str, str]:
    """Per-sub-model attention for training: "auto" is flash-attention-2 where installed, else packed varlen
    attention for the text model and SDPA for the vision tower; any other value is used for both."""
    if setting != "auto":
        return {"text_config": setting, "vision_config": setting}
    if flash_attention_available():
        return {"text_config": "flash_attention_2", "vision_config": "flash_attention_2"}
    return {"text_config": NAME, "vision_config": "sdpa"}

