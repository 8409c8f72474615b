"""The training configuration: one typed tree, YAML + `--key value` overrides.

The defaults are the offline demo (`smvl train` with no arguments): the tiny preset trained in full on the
synthetic Chinese set. `full`, because the tiny LLM is random: it has to learn the language and the image at once.
The reference recipe's values (connector only, lr 1e-4, batch 1 x 4) are in configs/cocoqa.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    preset: str | None = "tiny"  # named source pair, spliced on the fly into <output_dir>/spliced
    vision: str | None = None  # or explicit sources (override the preset)
    text: str | None = None
    path: str | None = None  # or an already spliced / trained model folder
    scale_factor: int | None = None
    # auto: flash-attention-2 where installed, else per-sample (varlen) attention for packed rows + SDPA for vision;
    # or "sdpa" | "eager" | "flash_attention_2" for both
    attn_implementation: str = "auto"


@dataclass
class DataConfig:
    # synthetic | file.jsonl | file.json | cauldron folder | cauldron:<subsets> | caption folder | shards/{0..9}.tar |
    # modelscope:<owner>/<name> | several joined by " + ", each with an optional "*weight"
    train: str = "synthetic"
    eval: str | None = None  # default: the held-out part of `train`
    subsets: str = "all"  # the_cauldron: "all" or a comma-separated list
    weights: str | None = None  # mixture weights, e.g. "cocoqa:1,ai2d:0.5"
    holdout: float = 64  # held-out eval samples: a count (>= 1) or a fraction (< 1)
    max_samples: int | None = None
    text_only: str | None = None  # a text-only source mixed in at text_only_ratio
    text_only_ratio: float = 0.0
    streaming: bool = True  # hub datasets: stream rather than download whole subsets
    shuffle_buffer: int = 1000  # samples held for shuffling streamed sources
    synthetic_train: int = 24000
    synthetic_test: int = 200
    # share of the synthetic training samples that ask for the whole scene (every object's corner, colour, shape):
    # dense supervision that teaches the random demo models what objects look like (a curriculum; eval has none)
    synthetic_scenes: float = 0.5
    max_length: int = 1024  # tokens per sample; turns then answer text are cut to fit, never an image block
    labels: str = "assistant"  # assistant | all
    padding: str = "longest"  # longest | max_length
    images: str = "first"  # first | all
    max_images: int = 4
    retile: bool = True
    # think-or-not training: a sample with a thinking trace trains without it (non-thinking mode) with this
    # probability, so one model learns both modes
    drop_thinking: float = 0.0
    image_splitting: bool | None = None  # None: the processor's own setting; false: the global image only
    # None: only without packing, where it saves padding. A packed row has none to save, and sorting by length makes
    # batches of one kind: on the synthetic sets length names the question type, and such batches kept the video
    # model at its per-type prior (README, "Batches")
    group_by_length: bool | None = None
    packing: bool = True  # a batch is one padding-free row, each sample attending only to itself
    pack_tokens: int | None = None  # with packing: a step is the samples that fit in this many tokens (batch_size
    # then only sizes the length-grouping buffer); None: batch_size samples per step
    num_workers: int = 0
    max_skip_fraction: float = 0.05


@dataclass
class LearningRates:
    """`lr` per component (`--lr.vision 5e-6`, or in YAML `lr: {connector: 1e-4, vision: 5e-6, text: 2e-5}`)."""

    all: float | None = None  # components not named below; None: the field's default (or the number it overrides)
    connector: float | None = None
    vision: float | None = None
    text: float | None = None  # the LLM, its lm_head included

    @property
    def base(self) -> float:
        named = [v for v in (self.connector, self.text, self.vision) if v is not None]
        return self.all if self.all is not None else named[0]


def demo_rates() -> LearningRates:
    """The demo's rates: the random tower needs a high one to learn shapes in time, the random LLM a low one to learn
    to pick the object a question names."""
    return LearningRates(connector=3e-3, vision=1e-2, text=1e-3)


@dataclass
class StageConfig:
    recipe: str = "connector"  # connector | vision+connector | full | lora
    lr: float | LearningRates = 1e-4  # one number, or one per component (lr.connector, lr.vision, lr.text)
    steps: int = 200
    # this stage's training data (any data.train spec; default data.train), e.g. captions for a connector-only
    # first stage; evaluation stays on data.eval or the held-out part of data.train
    train: str | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # One stage from these fields, or several from `stages` (each from the previous stage's weights).
    recipe: str = "full"  # connector | vision+connector | full | lora
    lr: float | LearningRates = field(default_factory=demo_rates)  # one number, or one per component (lr.connector,
    # lr.vision, lr.text); the default: the demo's (demo_rates)
    steps: int = 3200  # optimizer steps
    stages: list[StageConfig] = field(default_factory=list)  # YAML list of {recipe, lr, steps, lora_r, lora_alpha,
    # lora_dropout, train}; on the command line as YAML too: --stages '[{recipe: connector, steps: 100}, ...]'
    batch_size: int = 16  # per device
    grad_accum: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    # 0.95, not AdamW's 0.999: at the demo's rates a run at 0.999 stalled (its loss climbed back from 0.65 to 0.70
    # around step 500; 49.5% at the end), the same run at 0.95 gave 86.0%
    adam_beta2: float = 0.95
    bf16: str = "auto"  # auto: where the device supports it
    gradient_checkpointing: bool = False
    labelled_loss: bool = True  # logits only at labelled positions, in chunks (false: the model's own full-logit loss)
    loss_chunk: int = 256  # rows of logits at a time in labelled_loss (256 x 151,936 fp32 = 156 MB)
    eval_every: int | None = None  # default: 1/8 of the stage
    save_every: int | None = None  # default: 1/8 of the stage
    save_limit: int = 8
    log_every: int = 50
    seed: int = 42
    output_dir: str = "runs/demo"
    # a run folder to continue with more steps: its config.yaml is the base (the command line overrides it) and its
    # last stage goes on from its last complete checkpoint (weights, optimizer, step) to this config's `steps`
    resume_from: str | None = None
    report_to: str = "none"  # none | tensorboard | swanlab
    run_name: str | None = None
    zero_grad_patience: int = 20  # stop when the gradient norm is 0 this many optimizer steps in a row
    sample_questions: int = 4  # end-of-run answers logged (from the eval data)
    final_eval: bool = True  # eval_results.json: accuracy with / without images on the eval data
    final_eval_samples: int = 200

    def resolved_stages(self) -> list[StageConfig]:
        return self.stages or [StageConfig(recipe=self.recipe, lr=self.lr, steps=self.steps)]
