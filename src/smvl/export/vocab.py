"""The tokenizer as llama.cpp reads it (a GPT-2 style BPE vocabulary), with the image markers renamed.

Our processor spells SmolVLM's markers with Qwen's reserved tokens (`<|vision_start|>` for
`<fake_token_around_image>`, ...). llama.cpp's IDEFICS3 template (tools/mtmd/mtmd.cpp) instead looks SmolVLM's
marker names up by their text, so in the exported vocabulary the ids our processor uses carry SmolVLM's names:
llama.cpp then feeds exactly the ids the model was trained with. Nothing else changes: same ids, same merges.
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf

# tokenizer attribute of the processor -> the name llama.cpp's IDEFICS3 template looks up.
MTMD_NAMES = {
    "fake_image_token": "<fake_token_around_image>",
    "global_image_token": "<global-img>",
    "image_token": "<image>",
}
# Texts that llama.cpp's IDEFICS3 template looks up as single tokens (rows end in "\n", the global image follows
# "\n\n"); a vocabulary without them would make llama.cpp feed an invalid id.
MTMD_TEXT_TOKENS = ("\n", "\n\n")
# llama.cpp reads Qwen2's pre-tokenizer regex under this name; any byte-level BPE with that regex matches it.
PRE_TOKENIZER = "qwen2"


class VocabError(ValueError):
    pass


@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    renamed: dict[int, str]  # id -> the marker name it carries in the export


def export_vocab(tokenizer, n_vocab: int) -> Vocab:
    """Tokens for every embedding row (rows past the tokenizer are `[PAD<id>]`, as llama.cpp's converter writes
    them), their types, the BPE merges, and the marker renames."""
    vocab = tokenizer.get_vocab()
    if len(vocab) > n_vocab:
        raise VocabError(f"the tokenizer has {len(vocab)} tokens but the model only {n_vocab} embedding rows")
    renamed = {}
    for attr, name in MTMD_NAMES.items():
        token = getattr(tokenizer, attr, None)
        if token is None or token not in vocab:
            raise VocabError(f"the processor's tokenizer has no {attr}; is this a SmolVLM-style checkpoint?")
        if name in vocab and vocab[name] != vocab[token]:
            raise VocabError(f"{name} is already token {vocab[name]}, but the processor uses {token} ({vocab[token]})")
        renamed[vocab[token]] = name
    for text in MTMD_TEXT_TOKENS:
        if len(tokenizer.encode(text, add_special_tokens=False)) != 1:
            raise VocabError(f"llama.cpp's SmolVLM image template needs {text!r} to be one token; this vocabulary "
                             "splits it")

    by_id = {i: t for t, i in vocab.items()}
    added = {t.content: t for t in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(n_vocab):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(renamed.get(i, token))
            types.append(gguf.TokenType.CONTROL if added[token].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return Vocab(tokens, [int(t) for t in types], bpe_merges(tokenizer), renamed)


def bpe_merges(tokenizer) -> list[str]:
    import json

    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    return [m if isinstance(m, str) else " ".join(m) for m in merges]
