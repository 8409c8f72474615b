"""SmolVLM for vLLM with the text backbone built from `text_config`: Qwen3, or any causal LM vLLM registers.

Imported by vLLM only (the plugin registers it as a `module:Class` string), so importing vLLM at the top is fine.
The vision tower, connector, image processing and encoder CUDA graphs are vLLM's own Idefics3/SmolVLM code; only
the text side differs: vLLM's class builds a `LlamaModel` plus its own `lm_head`, this one asks vLLM's registry
for the causal LM `text_config` names (`init_vllm_registered_model`), as LLaVA does.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from vllm.config import VllmConfig
from vllm.model_executor.models.idefics3 import Idefics3Connector, Idefics3Model, Idefics3VisionTransformer
from vllm.model_executor.models.module_mapping import MultiModelKeys
from vllm.model_executor.models.smolvlm import SmolVLMForConditionalGeneration
from vllm.model_executor.models.utils import (
    AutoWeightsLoader,
    WeightsMapper,
    init_vllm_registered_model,
    maybe_prefix,
)
from vllm.sequence import IntermediateTensors

# Checkpoint names (transformers' SmolVLM layout) -> this module's names; the vision side keeps its names.
CHECKPOINT_TO_VLLM = WeightsMapper(
    orig_to_new_prefix={
        "model.text_model.": "language_model.model.",
        "lm_head.": "language_model.lm_head.",
    }
)


def has_llama_text(hf_config) -> bool:
    """vLLM's own class is right for exactly this case: it hard-wires a Llama text backbone."""
    return hf_config.text_config.model_type == "llama"


class VisionAndConnector(Idefics3Model):
    """vLLM's Idefics3Model without its LlamaModel: the image path of the parent class calls this module's
    vision methods (`image_pixels_to_features`, `connector`, `image_seq_len`, `get_position_ids`)."""

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        nn.Module.__init__(self)
        config = vllm_config.model_config.hf_config
        self.config = config
        self.vocab_size = config.text_config.vocab_size
        self.vision_model = Idefics3VisionTransformer(
            config.vision_config, quant_config=vllm_config.quant_config, prefix=maybe_prefix(prefix, "vision_model")
        )
        self.connector = Idefics3Connector(
            config, vllm_config.quant_config, prefix=maybe_prefix(prefix, "connector")
        )
        patches = config.vision_config.image_size // config.vision_config.patch_size
        self.image_seq_len = int(patches**2 / config.scale_factor**2)
        self.image_token_id = config.image_token_id

    def embed_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("the text model lives in SmolVLMAnyTextForConditionalGeneration.language_model")

    def forward(self, *args, **kwargs):
        raise NotImplementedError("the text model lives in SmolVLMAnyTextForConditionalGeneration.language_model")


class SmolVLMAnyTextForConditionalGeneration(SmolVLMForConditionalGeneration):
    """Registered under `SmolVLMForConditionalGeneration`, the name in our checkpoints' config.json.

    A checkpoint whose text model is Llama (stock SmolVLM) gets vLLM's own class, built by vLLM's own code: the
    registry holds one class per name, so the choice is made here, per checkpoint, when vLLM builds the model.
    Subclassing vLLM's class keeps every interface the registry inspects (multimodal, LoRA, encoder CUDA graphs)
    and the multimodal processor registered on it identical for both cases.
    """

    def __new__(cls, *args, vllm_config: VllmConfig | None = None, prefix: str = "", **kwargs):
        # vllm_config is None when copy/pickle recreate an instance: nothing to choose then.
        if vllm_config is not None and has_llama_text(vllm_config.model_config.hf_config):
            # Not an instance of cls, so Python skips cls.__init__: this object is vLLM's class, fully built.
            return SmolVLMForConditionalGeneration(vllm_config=vllm_config, prefix=prefix)
        return super().__new__(cls)

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        nn.Module.__init__(self)
        config = vllm_config.model_config.hf_config
        self.config = config
        self.multimodal_config = vllm_config.model_config.multimodal_config
        # An instance attribute, not a class one: vLLM maps a quantization config's module names through a class
        # attribute before it builds the model, and for Llama text the model built is vLLM's own layout.
        self.hf_to_vllm_mapper = CHECKPOINT_TO_VLLM

        with self._mark_tower_model(vllm_config, "image"):
            self.model = VisionAndConnector(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "model"))
        with self._mark_language_model(vllm_config):
            # with_hf_config names the causal LM from text_config.model_type when architectures is unset, and
            # copies the top-level tie_word_embeddings into it.
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config, hf_config=config.text_config, prefix=maybe_prefix(prefix, "language_model")
            )
        self.image_token_id = config.image_token_id
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=self.hf_to_vllm_mapper)

    def get_mm_mapping(self) -> MultiModelKeys:
        return MultiModelKeys.from_string_field(
            language_model="language_model", connector="model.connector", tower_model="model.vision_model"
        )
