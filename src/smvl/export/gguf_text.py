"""The text model as a standard GGUF of its own architecture (Qwen3 -> `qwen3`), loadable by any llama.cpp.

Tensor names come from gguf-py's own map for the architecture (the one llama.cpp's converter uses), the
hyperparameters are the keys the converter's TextModel/Qwen2Model write, and the vocabulary is `vocab.py`'s.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from smvl.export.gguf_file import add_tensor, finish_gguf, open_gguf
from smvl.export.quant import QUANTS, tensor_type
from smvl.export.vocab import PRE_TOKENIZER, export_vocab

TEXT_PREFIX = "model.text_model."
# text_config.model_type -> GGUF architecture; only what llama.cpp and gguf-py map the same way as HF.
# (Llama is left out: llama.cpp's converter permutes its q/k rows for its rope layout.)
ARCHES = {"qwen3": gguf.MODEL_ARCH.QWEN3, "qwen2": gguf.MODEL_ARCH.QWEN2}


def write_text_gguf(path: Path, config, tensors, tokenizer, chat_template: str | None, quant: str, name: str) -> None:
    """`tensors`: an iterable of (HF name, float32 numpy array) holding at least the text model and `lm_head`."""
    text = config.text_config
    if text.model_type not in ARCHES:
        raise ValueError(f"export gguf supports text models of type {', '.join(ARCHES)}, not {text.model_type}")
    arch = ARCHES[text.model_type]
    qtype, ftype = QUANTS[quant]
    writer = open_gguf(path, arch, gguf.GGUFType.MODEL, name, ftype)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    writer.add_context_length(text.max_position_embeddings)
    writer.add_embedding_length(text.hidden_size)
    writer.add_block_count(text.num_hidden_layers)
    writer.add_feed_forward_length(text.intermediate_size)
    writer.add_head_count(text.num_attention_heads)
    writer.add_head_count_kv(text.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(rope_theta(text))
    writer.add_layer_norm_rms_eps(text.rms_norm_eps)

    vocab = export_vocab(tokenizer, text.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    if text.bos_token_id is not None:
        writer.add_bos_token_id(text.bos_token_id)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)  # Qwen's tokenizer adds no BOS; the chat template starts with <|im_start|>
    if chat_template:
        writer.add_chat_template(chat_template)

    block_map = gguf.get_tensor_name_map(arch, text.num_hidden_layers)
    tied = getattr(text, "tie_word_embeddings", False)
    for hf_name, data in tensors:
        if hf_name == "lm_head.weight":
            if tied:
                continue  # llama.cpp reuses token_embd when output.weight is absent
            gguf_name = "output.weight"
        elif hf_name.startswith(TEXT_PREFIX):
            gguf_name = block_map.get_name("model." + hf_name[len(TEXT_PREFIX):], try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise ValueError(f"no GGUF name for {hf_name}")
        else:
            continue
        kind = tensor_type(gguf_name, data.shape, qtype)
        add_tensor(writer, gguf_name, data, kind)
    finish_gguf(writer)


def rope_theta(text) -> float:
    params = getattr(text, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(text, "rope_theta", 10000.0)))
