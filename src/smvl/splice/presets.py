"""Named source pairs: the real models by hub id, and `tiny`, random models built in code for offline use.

`tiny` mirrors the real pair at toy size: a SmolVLM checkpoint (SigLIP-style tower, 64px tiles, patch 8,
pixel shuffle 2 -> 16 tokens per tile, images split into up to 2x2 tiles + a global one) and a Qwen3 causal LM
with a byte-level BPE tokenizer carrying Qwen's special tokens and Qwen3's chat template. Built once per
machine into the cache (a few seconds), deterministically, so every command works without a download.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

TINY_VERSION = "tiny-v6"

# Qwen2/3's special tokens in their original order; the first 14 are special, the rest plain added tokens.
QWEN_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]
QWEN_ADDED = [
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
]

# What the tiny tokenizer's merges are learnt from. Chinese as whole words, cut where Qwen3's own tokenizer cuts them
# (红色 的 圆形 在 左边 还是 右边 ？): each word is learnt on its own, so no merge joins two words and a colour, shape or
# position is one token, as in the real pair. Merges learnt from running Chinese text instead cut words into
# fragments shared by several of them (红色 = ç º ¢ èī², 绿色 = ç »¿ ...), which the random LLM has to learn to
# combine before it can even tell what a question asks.
WORDS_ZH = """图 中的 里的 里 圆形 正 方形 三角 形 星 菱 是什么 颜色 红色 绿色 蓝色 黄色 紫色 橙 黑色 白色 青 色 这个 物体
形状 图形 的东西 的 几个 一个 两个 三个 四个 五个 共有 中有 数 最 左边 右边 边上 边 中间 在 还是 位于 左
右 上 下 那 它 描述 有哪些 说出 位置 和 请 请问 看 回答 问题 你好 我 是 是一个 视觉 语言 模型 这张 图片 有什么 没有 不是
对 不对 可以 按 一 中 ， 。 ？ ！ 、"""
ENGLISH = """system user assistant tool Hello! What is 2+2? The answer is 4. image picture shape colour color count left right
You may call one or more functions to assist with the user query. function name arguments json object tools
"""
# the chat template's role names, whole after <|im_start|> as in Qwen's vocabulary
ROLES = ["system", "user", "assistant", "tool"]
CORPUS = WORDS_ZH + "\n" + ENGLISH


@dataclass(frozen=True)
class Preset:
    vision: str
    text: str
    scale_factor: int | None = None  # None: the vision source's own
    image_splitting: bool | None = None  # None: the vision source's processor's own

    def layout(self, vision: str, text: str) -> tuple[int | None, bool | None]:
        """(scale_factor, image_splitting) for a splice of `vision` + `text`: this preset's own where those are its
        sources, else the sources' (None, None)."""
        return (self.scale_factor, self.image_splitting) if (vision, text) == (self.vision, self.text) else (None, None)


PRESETS = {
    "smolvlm2-256m+qwen3-0.6b": Preset("HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "Qwen/Qwen3-0.6B"),
    "smolvlm2-500m+qwen3-0.6b": Preset("HuggingFaceTB/SmolVLM2-500M-Video-Instruct", "Qwen/Qwen3-0.6B"),
    "smolvlm2-256m+qwen3-1.7b": Preset("HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "Qwen/Qwen3-1.7B"),
}

# The pair the shipped configs train: what `smvl data inspect` measures a real data set against by default.
REAL_DEFAULT = "smolvlm2-256m+qwen3-0.6b"


def cache_dir() -> Path:
    return Path(os.environ.get("SMVL_CACHE", Path.home() / ".cache" / "smvl"))


def get_preset(name: str) -> Preset:
    if name == "tiny":
        root = tiny_sources()
        # The demo's layout: a 96 px scene shrunk to one 64 px tile and shuffled to 2x2 tokens, one per quadrant (one
        # object each), as the real pair's 4x shuffle; a fifth of the CPU per step of 2x2 tiles + global at shuffle 2.
        # The checkpoint itself keeps shuffle 2 and splitting, for the tests of tiling.
        return Preset(str(root / "vision"), str(root / "text"), scale_factor=4, image_splitting=False)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: tiny, {', '.join(PRESETS)}")
    return PRESETS[name]


def tiny_sources(root: Path | None = None) -> Path:
    """Build (once) the tiny fake source checkpoints; returns the folder holding `vision/` and `text/`."""
    root = root or cache_dir() / TINY_VERSION
    if (root / "vision" / "config.json").is_file() and (root / "text" / "config.json").is_file():
        return root
    from transformers.utils import logging

    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    logging.disable_progress_bar()
    try:
        build_tiny_text(tmp / "text")
        build_tiny_vision(tmp / "vision")
    finally:
        logging.enable_progress_bar()
    try:
        tmp.rename(root)
    except OSError:  # another process finished the same build first; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / "text" / "config.json").is_file():
            raise
    return root


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    from tokenizers import Regex

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=900, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    words = WORDS_ZH.split()
    characters = sorted({c for w in words for c in w})
    # characters most often, so each is whole before any word merges; every text its own item, so no merge
    # crosses from one word into the next
    bpe.train_from_iterator(characters * 50 + words * 10 + ROLES * 10 + [ENGLISH] * 4, trainer)
    model = bpe.model
    vocab = bpe.get_vocab()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        merges = [tuple(l.split()) for l in Path(tmp, "merges.txt").read_text().splitlines()[1:] if l.strip()]
    # "\n\n" is one token in Qwen's vocabulary, and llama.cpp's SmolVLM image template looks it up as one.
    vocab["ĊĊ"] = len(vocab)
    merges.append(("Ċ", "Ċ"))
    template = (Path(__file__).parent / "qwen3_chat_template.jinja").read_text()
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL})
    tokenizer.add_tokens(QWEN_ADDED)
    tokenizer.chat_template = template
    return tokenizer


def build_tiny_text(folder: Path) -> None:
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=-(-len(tokenizer) // 64) * 64, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
        tie_word_embeddings=True, bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config)
    # A random model babbles whatever its largest logit is; the tests of generation compare the text it writes, one
    # piece per token, so its (tied) embedding rows of tokens that write no whole visible character start small:
    # special tokens, whitespace and pieces of a character's bytes a tenth, the rows past the tokenizer (padding the
    # vocabulary to a multiple of 64, as Qwen's) zero.
    texts = [tokenizer.decode([i], skip_special_tokens=True) for i in range(len(tokenizer))]
    blank = [i for i, text in enumerate(texts) if not text.strip() or "\ufffd" in text]
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[blank] *= 0.1
        weight[len(tokenizer):] = 0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, config.bos_token_id], pad_token_id=tokenizer.pad_token_id,
        do_sample=True, temperature=0.6, top_p=0.95, top_k=20,
    ).save_pretrained(folder)


def build_tiny_vision(folder: Path) -> None:
    from transformers import LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor

    torch.manual_seed(1)
    vision = dict(hidden_size=96, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4,
                  image_size=64, patch_size=8)
    text = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1)
    config = SmolVLMConfig(vision_config=vision, text_config=text.to_dict(), scale_factor=2, image_token_id=100)
    model = SmolVLMForConditionalGeneration(config)
    # Position embeddings start at std 0.2, not transformers' 0.02 (SigLIP's own init is 1/sqrt(width), 0.1): at 0.02
    # they are a tenth of a patch's content, and training the random tower washed them out, so the trained features no
    # longer told which quadrant a token is (a linear probe: 45%, from 100% at init) and the LLM read position off
    # the token order, right for up/down and at chance for left/right. At 0.2 the features keep it (98%).
    with torch.no_grad():
        model.model.vision_model.embeddings.position_embedding.weight.mul_(10)
    model.save_pretrained(folder)
    SmolVLMImageProcessor(
        size={"longest_edge": 128}, max_image_size={"longest_edge": 64}, do_image_splitting=True,
        image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=1,
    ).save_pretrained(folder)
