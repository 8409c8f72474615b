"""The real chat templates of popular small LLMs (tests/data/chat_templates, origins in SOURCES.md) survive the
extension: text-only conversations render byte for byte, image parts land where they are in the content list,
and a tiny LLM carrying each template splices into a model that `smvl check` passes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor, GenerationConfig, PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import render_jinja_template

from smvl.cli import main
from smvl.splice.model import splice
from smvl.splice.presets import CORPUS, QWEN_ADDED, QWEN_SPECIAL
from smvl.splice.sources import SourceError
from smvl.splice.template import extend_template

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
IMAGE, VIDEO = "<IMG>", "<VID>"


@dataclass(frozen=True)
class Family:
    """What a tiny stand-in of the LLM needs: its architecture and the special tokens its template emits."""

    model_type: str
    bos: str | None
    eos: str
    specials: tuple[str, ...]
    pad: str | None = None
    config: dict = field(default_factory=dict)

    @property
    def has_vision_tokens(self) -> bool:
        return "<|image_pad|>" in self.specials


QWEN = tuple(QWEN_SPECIAL + QWEN_ADDED)
FAMILIES = {
    "Qwen-Qwen2.5-7B-Instruct": Family("qwen2", None, "<|im_end|>", QWEN, pad="<|endoftext|>"),
    "Qwen-Qwen3-0.6B": Family("qwen3", None, "<|im_end|>", QWEN, pad="<|endoftext|>"),
    "HuggingFaceTB-SmolLM3-3B": Family("smollm3", None, "<|im_end|>", ("<|im_start|>", "<|im_end|>")),
    "meta-llama-Llama-3.2-3B-Instruct": Family(
        "llama", "<|begin_of_text|>", "<|eot_id|>",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>"),
    ),
    # SmolVLM's lm_head has no final-logit soft-capping, so a Gemma 2 splice cannot match its source's logits
    # (`smvl check` says so); the stand-in leaves capping off to test the template and the splice themselves.
    "google-gemma-2-2b-it": Family("gemma2", "<bos>", "<end_of_turn>", ("<start_of_turn>",), pad="<pad>",
                                   config={"final_logit_softcapping": None}),
    "microsoft-Phi-3.5-mini-instruct": Family(
        "phi3", "<s>", "<|end|>", ("<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>"),
    ),
    "mistralai-Mistral-Nemo-Instruct-2407": Family(
        "mistral", "<s>", "</s>",
        ("[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]",
         "[/TOOL_RESULTS]"),
    ),
}
NAMES = sorted(FAMILIES)

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CONVERSATIONS = {
    "single": [{"role": "user", "content": "Hello! What is 2+2?"}],
    "system+multi-turn": [
        {"role": "system", "content": "You are a helpful assistant.\n"},
        {"role": "user", "content": "  你好 "},
        {"role": "assistant", "content": "你好！有什么可以帮你？"},
        {"role": "user", "content": "Tell me a joke.\n\n"},
    ],
    "multi-turn": [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>\nsimple\n</think>\n\n2"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ],
    "tools": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call12345", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": '{"temp": 20}'},
        {"role": "assistant", "content": "It is 20 degrees."},
        {"role": "user", "content": "Thanks!"},
    ],
}
KWARGS = [
    {"add_generation_prompt": True},
    {"add_generation_prompt": False},
    {"add_generation_prompt": True, "enable_thinking": False},
]
PARTS = {
    "image, text": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}],
    "text, image, text + history": [
        {"role": "user", "content": [{"type": "text", "text": "Look: "}, {"type": "image"},
                                     {"type": "text", "text": " which animal?"}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And here?"}, {"type": "video"}]},
    ],
}


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text()


def render(chat_template: str, name: str, messages, **kwargs) -> str:
    """transformers' own rendering, with the special tokens a tokenizer of that family would pass."""
    family = FAMILIES[name]
    specials = {"bos_token": family.bos, "eos_token": family.eos} if family.bos else {"eos_token": family.eos}
    return render_jinja_template([messages], chat_template=chat_template, **specials, **kwargs)[0][0]


def outcome(chat_template: str, name: str, messages, **kwargs):
    try:
        return render(chat_template, name, messages, **kwargs)
    except jinja2.TemplateError as exc:  # raise_exception in the template: the conversation is refused
        return type(exc)


def flattened(messages):
    """The oracle: each parts list written out as the string the extension must produce."""
    tokens = {"image": IMAGE, "video": VIDEO}
    out = copy.deepcopy(messages)
    for message in out:
        if isinstance(message["content"], list):
            message["content"] = "".join(p["text"] if p["type"] == "text" else tokens[p["type"]]
                                         for p in message["content"])
    return out


def test_every_shipped_template_has_a_family_and_a_source():
    shipped = sorted(p.stem for p in TEMPLATES.glob("*.jinja"))
    assert shipped == NAMES
    sources = (TEMPLATES / "SOURCES.md").read_text()
    assert all(f"{name}.jinja" in sources for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
@pytest.mark.parametrize("kwargs", KWARGS, ids=["gen", "no-gen", "no-thinking"])
def test_text_only_renders_byte_for_byte(name, conversation, kwargs):
    original = template(name)
    messages = CONVERSATIONS[conversation]
    tools = TOOLS if conversation == "tools" else None
    expected = outcome(original, name, messages, tools=tools, **kwargs)
    assert outcome(extend_template(original, IMAGE, VIDEO), name, messages, tools=tools, **kwargs) == expected


@pytest.mark.parametrize("name", NAMES)
def test_the_common_conversations_render(name):
    """Guards the byte-for-byte test against comparing two refusals only."""
    for conversation in ("single", "multi-turn"):
        assert isinstance(outcome(template(name), name, CONVERSATIONS[conversation], add_generation_prompt=True), str)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("parts", list(PARTS))
def test_image_parts_render_in_place(name, parts):
    messages = PARTS[parts]
    ours = render(extend_template(template(name), IMAGE, VIDEO), name, messages, add_generation_prompt=True)
    assert ours == render(template(name), name, flattened(messages), add_generation_prompt=True)
    n_images = sum(p["type"] == "image" for m in messages if isinstance(m["content"], list) for p in m["content"])
    assert ours.count(IMAGE) == n_images
    for text in ("What is this?", "And here?"):
        if text in str(messages):
            assert text in ours
    if parts.startswith("text, image"):
        assert f"Look: {IMAGE} which animal?" in ours
        assert f"{IMAGE}And here?{VIDEO}" in ours


def tiny_llm(name: str, folder: Path) -> Path:
    """A 2-layer LLM of the template's architecture; its vocabulary is exactly the tokenizer's, like SmolLM2's,
    so `--add-tokens` has to grow it."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    family = FAMILIES[name]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator([CORPUS], trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    named = {k: v for k, v in [("bos_token", family.bos), ("eos_token", family.eos), ("pad_token", family.pad)] if v}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, **named)
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t in family.specials if t not in named.values()]})
    tokenizer.chat_template = template(name)
    ids = {f"{k.removesuffix('_token')}_token_id": tokenizer.convert_tokens_to_ids(v) for k, v in named.items()}
    ids.setdefault("pad_token_id", ids["eos_token_id"])
    ids.setdefault("bos_token_id", ids["eos_token_id"])
    config = AutoConfig.for_model(
        family.model_type, vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
        tie_word_embeddings=True, **ids, **family.config,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    GenerationConfig(eos_token_id=ids["eos_token_id"], bos_token_id=ids["bos_token_id"]).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name", NAMES)
def test_splice_places_images_and_check_passes(name, tiny_sources, tmp_path, capsys):
    text = tiny_llm(name, tmp_path / "llm")
    add_tokens = not FAMILIES[name].has_vision_tokens
    out = splice(str(tiny_sources / "vision"), str(text), tmp_path / "m", add_tokens=add_tokens)
    processor = AutoProcessor.from_pretrained(out)
    prompt = processor.apply_chat_template(PARTS["image, text"], add_generation_prompt=True)
    assert prompt.count(processor.image_token) == 1
    assert processor.image_token + "What is this?" in prompt
    inputs = processor(text=prompt, images=[Image.new("RGB", (100, 70), (10, 200, 30))], return_tensors="pt")
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 5 * processor.image_seq_len

    assert main(["check", str(out)]) == 0
    assert "[PASS] text-only == source LLM" in capsys.readouterr().out
    if add_tokens:  # the eval's retention measure compares over the source's vocabulary, like `smvl check`
        from transformers import AutoModelForImageTextToText

        from smvl.eval.retention import load_source_llm, retention

        llm, _ = load_source_llm(out)
        kept = retention(AutoModelForImageTextToText.from_pretrained(out), processor, llm, ["Hello!"], 4)
        assert kept["identical_greedy"] == 1 and kept["mean_kl"] < 1e-6, kept


def test_an_llm_without_vision_tokens_needs_add_tokens(tiny_sources, tmp_path):
    text = tiny_llm("meta-llama-Llama-3.2-3B-Instruct", tmp_path / "llm")
    with pytest.raises(SourceError, match="--add-tokens"):
        splice(str(tiny_sources / "vision"), str(text), tmp_path / "m")
