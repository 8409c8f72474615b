"""vLLM plugin: `vllm serve <smvl model>` with any text backbone vLLM has, not only Llama.

vLLM loads this through the `vllm.general_plugins` entry point in every process it starts. vLLM's own
`SmolVLMForConditionalGeneration` hard-wires a `LlamaModel` text backbone, so a Qwen3 text model (q_norm/k_norm)
fails to load. The registry maps an architecture name to a class before any checkpoint is read, and our
checkpoints are saved by transformers under the stock name, so we register our class under that same name; it
hands a Llama-text checkpoint to vLLM's own class unchanged (see `model.py`).

Nothing here imports vLLM at smvl import time: `register()` imports it, and the model class is registered as a
`module:Class` string that vLLM imports only when it builds a model.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

ARCHITECTURE = "SmolVLMForConditionalGeneration"
MODEL_CLASS = "smvl.vllm_plugin.model:SmolVLMAnyTextForConditionalGeneration"


def register() -> bool:
    """Register our SmolVLM implementation with vLLM; without vLLM, log why nothing happened. True if registered.

    vLLM may call this several times per process and in every worker process; registering again is harmless."""
    try:
        from vllm import ModelRegistry
    except ImportError as exc:
        log.info("smvl vLLM plugin: vllm is not importable (%s); nothing registered", exc)
        return False
    ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)
    log.info("smvl vLLM plugin: %s -> %s (text backbone built from text_config)", ARCHITECTURE, MODEL_CLASS)
    return True
