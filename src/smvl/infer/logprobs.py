"""OpenAI's logprobs entries: {token, logprob, bytes, top_logprobs: [{token, logprob, bytes}, ...]}.

`bytes` are the token's own UTF-8 bytes, which for a byte-level BPE (Qwen's) may be part of a character; `token`
is those bytes decoded with replacement characters, as OpenAI shows a cut character.
"""

from __future__ import annotations

import torch


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: each of the 256 bytes as the printable character a byte-level BPE stores."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars)}


class TokenText:
    """Token id -> (text, bytes), cached: a batch asks for the same ids again and again."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.decoder = _byte_decoder()
        self.cache: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token: int) -> tuple[str, list[int]]:
        if token not in self.cache:
            raw = self.tokenizer.convert_ids_to_tokens(token)
            if isinstance(raw, str) and raw and all(c in self.decoder for c in raw):
                data = bytes(self.decoder[c] for c in raw)
            else:  # not a byte-level piece (another tokenizer, or an id past the vocabulary)
                data = self.tokenizer.decode([token]).encode()
            self.cache[token] = (data.decode("utf-8", errors="replace"), list(data))
        return self.cache[token]


def entry(text: TokenText, logprobs: torch.Tensor, token: int, top: int) -> dict:
    """The chosen token's entry, with the `top` most likely tokens of that step."""
    def one(t: int, value: float) -> dict:
        said, data = text(t)
        return {"token": said, "logprob": max(float(value), -9999.0), "bytes": data}

    out = one(token, logprobs[token])
    best = torch.topk(logprobs, top) if top else None
    out["top_logprobs"] = [one(int(t), v) for v, t in zip(best.values.tolist(), best.indices.tolist())] if top else []
    return out
