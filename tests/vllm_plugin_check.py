"""Run in a venv that has vLLM (never the main env): our plugin against vLLM's real classes, on CPU.

    python tests/vllm_plugin_check.py <spliced model folder>   (PYTHONPATH=src)

A CUDA build of vLLM imports on a CPU machine and, with VLLM_TARGET_DEVICE=cpu, builds configs and models; its
CPU attention kernels are not in that wheel, so the text decoder is never run. Everything before the decoder is:
the OpenAI chat message with an image goes through vLLM's own parsing, chat template and multimodal processor, and
the vLLM model's merged input embeddings are compared with transformers' for the same checkpoint. The weights
vLLM loads are compared with the checkpoint's. Prints one JSON line of findings; exits non-zero on a failure.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

found: dict[str, object] = {}


def check(name: str, ok: bool, detail: object = None) -> None:
    found[name] = detail if detail is not None else ok
    if not ok:
        print(json.dumps(found, default=str))
        sys.exit(f"FAILED {name}: {detail}")


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def single_process_group() -> None:
    """vLLM's layers ask for a tensor-parallel group even at size 1; gloo gives one on CPU."""
    from vllm.distributed import init_distributed_environment, initialize_model_parallel

    init_distributed_environment(world_size=1, rank=0, local_rank=0, backend="gloo",
                                 distributed_init_method=f"file://{tempfile.mkdtemp()}/rendezvous")
    initialize_model_parallel(1, 1)


def build(vllm_config):
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader import DefaultModelLoader
    from vllm.model_executor.model_loader.utils import initialize_model, process_weights_after_loading

    with set_current_vllm_config(vllm_config), torch.device("cpu"):
        model = initialize_model(vllm_config=vllm_config)
        # The loader `vllm serve` uses; it raises when a parameter got no checkpoint tensor.
        DefaultModelLoader(vllm_config.load_config).load_weights(model, vllm_config.model_config)
        process_weights_after_loading(model, vllm_config.model_config, torch.device("cpu"))
    return model


def engine_config(folder: Path):
    from vllm.config import DeviceConfig, ModelConfig, VllmConfig

    model_config = ModelConfig(model=str(folder), dtype="float32", enforce_eager=True)
    return VllmConfig(model_config=model_config, device_config=DeviceConfig(device="cpu"))


def chat_prompt(model_config, image: Image.Image) -> tuple[str, object]:
    """What `vllm serve` does with an OpenAI chat request before the engine: parse, template, multimodal data."""
    from transformers import AutoProcessor
    from vllm.renderers.chat_utils.chat_message import parse_chat_messages
    from vllm.renderers.hf import _detect_content_format

    processor = AutoProcessor.from_pretrained(model_config.model)
    content_format = _detect_content_format(processor.chat_template, default="string")
    check("content_format_is_openai", content_format == "openai", content_format)
    messages = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(image)}},
        {"type": "text", "text": "What colour is it?"},
    ]}]
    conversation, mm_data, _ = parse_chat_messages(messages, model_config, content_format)
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return prompt, mm_data


def register_plugin() -> str:
    """The way `vllm serve` registers it where smvl is installed in the venv; else the same function, directly."""
    from importlib.metadata import entry_points

    if any(ep.value == "smvl.vllm_plugin:register" for ep in entry_points(group="vllm.general_plugins")):
        from vllm.plugins import load_general_plugins

        load_general_plugins()
        return "by vLLM, through the vllm.general_plugins entry point"
    from smvl.vllm_plugin import register

    check("registered", register())
    return "register() called directly (smvl is not installed in this venv, so vLLM cannot find the entry point)"


def main(folder: Path) -> None:
    check("registered", True, register_plugin())
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from vllm.model_executor.model_loader.utils import get_model_architecture
    from vllm.multimodal import MULTIMODAL_REGISTRY

    vllm_config = engine_config(folder)
    model_config = vllm_config.model_config
    cls, arch = get_model_architecture(model_config)
    check("resolved_class", cls.__module__ == "smvl.vllm_plugin.model", f"{arch} -> {cls.__module__}.{cls.__name__}")

    image = Image.new("RGB", (150, 100), (200, 30, 60))
    prompt, mm_data = chat_prompt(model_config, image)
    mm_processor = MULTIMODAL_REGISTRY.create_processor(model_config)
    processed = mm_processor(prompt, mm_processor.info.parse_mm_data(mm_data), hf_processor_mm_kwargs={})
    hf_processor = AutoProcessor.from_pretrained(folder)
    hf_inputs = hf_processor(text=prompt, images=[image], return_tensors="pt")
    ids = processed["prompt_token_ids"]
    check("prompt_ids_match_transformers", ids == hf_inputs["input_ids"][0].tolist(),
          f"{len(ids)} tokens, {ids.count(hf_processor.image_token_id)} image tokens")

    with __import__("vllm.config", fromlist=["x"]).set_current_vllm_config(vllm_config):
        single_process_group()
    model = build(vllm_config)
    check("text_backbone", type(model.language_model).__name__ == model_config.hf_config.text_config.architectures[0],
          type(model.language_model).__name__)
    # copy and pickle recreate an object through cls.__new__(cls), with no vllm_config to choose a class by.
    check("copyable", type(copy.copy(model)) is type(model))
    checkpoint = load_file(folder / "model.safetensors")
    params = dict(model.named_parameters())
    q_norm = "model.text_model.layers.0.self_attn.q_norm.weight"
    check("q_norm_loaded", torch.equal(params["language_model.model.layers.0.self_attn.q_norm.weight"],
                                       checkpoint[q_norm]))
    qkv = torch.cat([checkpoint[f"model.text_model.layers.0.self_attn.{p}_proj.weight"] for p in "qkv"])
    check("qkv_loaded", torch.equal(params["language_model.model.layers.0.self_attn.qkv_proj.weight"], qkv))
    connector = "model.connector.modality_projection.proj.weight"
    check("connector_loaded", torch.equal(params[connector], checkpoint[connector]))

    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    mm_kwargs = processed["mm_kwargs"].get_data()
    with torch.no_grad():
        vision = model.embed_multimodal(**mm_kwargs)
        input_ids = torch.tensor(ids)
        merged = model.embed_input_ids(input_ids, vision, is_multimodal=input_ids == hf.config.image_token_id)
        # transformers' merged embeddings, whatever its internal helpers are called: what its text model is fed.
        seen = {}
        hf.model.text_model.register_forward_pre_hook(
            lambda _, args, kwargs: seen.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True)
        hf(**hf_inputs)
        hf_merged = seen["embeds"][0]
        hidden = torch.randn(3, hf.config.text_config.hidden_size)
        logits, hf_logits = model.compute_logits(hidden), hf.lm_head(hidden)
    gap = (merged - hf_merged).abs().max().item()
    check("input_embeddings_match_transformers", gap < 1e-4, f"max |diff| {gap:.2e} over {tuple(merged.shape)}")
    gap = (logits[:, :hf_logits.shape[1]] - hf_logits).abs().max().item()
    check("logits_head_matches_transformers", gap < 1e-4, f"max |diff| {gap:.2e}")

    check_llama_text_gets_vllms_own_class(folder)
    print(json.dumps(found, default=str))


def check_llama_text_gets_vllms_own_class(folder: Path) -> None:
    """The same checkpoint with its text model swapped for a Llama of the same shape (stock SmolVLM's case)."""
    from transformers import AutoConfig, AutoModelForImageTextToText, LlamaConfig
    from vllm.model_executor.models.smolvlm import SmolVLMForConditionalGeneration

    config = AutoConfig.from_pretrained(folder)
    text = config.text_config.to_dict()
    keep = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings"}
    config.text_config = LlamaConfig(**{k: v for k, v in text.items() if k in keep})
    with tempfile.TemporaryDirectory() as tmp:
        for name in os.listdir(folder):
            if not name.endswith(".safetensors") and name != "config.json":
                (Path(tmp) / name).write_bytes((folder / name).read_bytes())
        AutoModelForImageTextToText.from_config(config).save_pretrained(tmp)
        model = build(engine_config(Path(tmp)))
    check("llama_text_gets_vllms_own_class", type(model) is SmolVLMForConditionalGeneration, type(model).__name__)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
