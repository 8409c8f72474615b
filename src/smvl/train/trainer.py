"""Wiring to transformers' Trainer: one stage = load weights, apply a recipe, train, save `final/` atomically.

The Trainer gives us cosine/warm-up schedules, grad accumulation, bf16, gradient checkpointing, eval/save every N
with a limit, best-model tracking, RNG-exact resume, DDP/FSDP/DeepSpeed through accelerate, tqdm, and the
TensorBoard/SwanLab integrations. We add: batches streamed from our own collator, complete-only resume, guards.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForImageTextToText, Trainer, TrainingArguments

from smvl import folders
from smvl.data.batches.pixels import normalise_on_model, require_normaliser
from smvl.data.batches.stream import merge_worker_skips
from smvl.splice.model import PROVENANCE
from smvl.splice.recipes import LORA_TARGETS, TEXT_TRAINING, apply_recipe, count_params, format_counts
from smvl.train import checkpoints, tied
from smvl.train.attention import training_attention
from smvl.train.config import StageConfig, TrainConfig
from smvl.train.guards import GuardCallback, first_image_batch, preflight
from smvl.train.loss import labelled_loss, unwrap
from smvl.train.param_groups import as_recorded, base_lr, component_lrs, group_lines, with_component_lrs


class StreamTrainer(Trainer):
    """A Trainer fed ready-made batches from our BatchStreams (each rank already holds its own shard), with the loss
    computed at labelled positions only (`loss_chunk` rows of logits at a time) unless `loss_chunk` is None."""

    def __init__(self, *args, train_stream, eval_stream, guard: GuardCallback, num_workers: int = 0,
                 loss_chunk: int | None = None, lrs: dict[str, float] | None = None, text_eval_stream=None,
                 **kwargs):
        super().__init__(*args, train_dataset=train_stream, eval_dataset=eval_stream, callbacks=[
            checkpoints.MarkCompleteCallback(), guard], **kwargs)
        self.train_stream, self.eval_stream, self.num_workers = train_stream, eval_stream, num_workers
        self.text_eval_stream = text_eval_stream
        self.loss_chunk, self.guard, self.lrs = loss_chunk, guard, lrs or {}
        self._seen = self.fresh_counts()
        inner = unwrap(self.model).model
        self._image_path_trains = any(p.requires_grad for m in (inner.connector, inner.vision_model)
                                      for p in m.parameters())

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            self.optimizer = with_component_lrs(super().create_optimizer(model), unwrap(self.model), self.lrs)
        return self.optimizer

    @staticmethod
    def fresh_counts() -> dict:
        return {"samples": 0, "tokens": 0, "batches": 0, "since": time.perf_counter()}

    def training_step(self, model, inputs, num_items_in_batch=None):
        merge_worker_skips(inputs, self.train_stream.skips)
        self._seen["samples"] += batch_samples(inputs)
        self._seen["tokens"] += batch_tokens(inputs)
        self._seen["batches"] += 1
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs, start_time=None):
        """Training logs also carry this process's samples/s and tokens/s since the last log: with packing a step
        holds a varying number of samples, so steps/s alone says little. Under a token budget, `pack_fill` too:
        the share of the budget the rows filled."""
        if "loss" in logs and self._seen["samples"]:
            seconds = time.perf_counter() - self._seen["since"]
            logs["samples_per_s"] = round(self._seen["samples"] / seconds, 3)
            logs["tokens_per_s"] = round(self._seen["tokens"] / seconds, 1)
            budget = self.train_stream.token_budget
            if budget:
                logs["pack_fill"] = round(self._seen["tokens"] / (self._seen["batches"] * budget), 3)
            self._seen = self.fresh_counts()
        super().log(logs, start_time)

    def _get_grad_norm(self, model, grad_norm=None):
        """The gradient norm the Trainer computes (and all-reduces) anyway feeds the zero-gradient guard: reading
        `p.grad` instead fails under DeepSpeed ZeRO, which leaves it None."""
        norm = super()._get_grad_norm(model, grad_norm)
        self.guard.observe_grad_norm(float(norm), self.state.global_step + 1)
        return norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        require_normaliser(model, inputs)  # training and evaluation batches both come through here
        if self.loss_chunk is None:
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        else:
            total, count = labelled_loss(model, inputs, self.loss_chunk)
            if num_items_in_batch is None:
                loss = total / count.clamp(min=1)
            else:
                # As transformers' own losses: normalised over the whole accumulated (and, by default, global) batch.
                loss = total / num_items_in_batch
                if self.args.average_tokens_across_devices:
                    loss = loss * self.accelerator.num_processes
            outputs = {"loss": loss}
        if "pixel_values" not in inputs and self._image_path_trains and model.training:
            loss = loss + 0.0 * blank_image_features(model).sum()
        return (loss, outputs) if return_outputs else loss

    def _issue_warnings_after_load(self, load_result) -> None:
        """Without the warning about a tied lm_head "missing" from the checkpoint (train/tied.py)."""
        missing = tied.truly_missing(self.model, load_result.missing_keys)
        if len(missing) < len(load_result.missing_keys):
            self.model.tie_weights()
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def get_train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_stream, batch_size=None, num_workers=self.num_workers)

    def get_resumed_dataloader(self, dataloader: DataLoader, num_batches: int) -> DataLoader:
        """The stream passes the batches trained before the checkpoint itself, from token counts alone
        (`BatchStream.skipping`): the Trainer's way, fetching and dropping them, decoded and tiled every image of
        the run so far again."""
        return DataLoader(self.train_stream.skipping(num_batches), batch_size=None, num_workers=self.num_workers)

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        return DataLoader(eval_dataset if eval_dataset is not None else self.eval_stream, batch_size=None)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """The held-out loss (`eval_loss`, what best-model tracking reads) and, with a text-only source, its
        held-out text loss (`eval_text_loss`): whether mixing text in keeps the LLM's language."""
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if eval_dataset is None and self.text_eval_stream is not None:
            metrics.update(super().evaluate(self.text_eval_stream, ignore_keys, f"{metric_key_prefix}_text"))
        return metrics


def blank_image_features(model) -> torch.Tensor:
    """Features of one black tile through the vision tower and connector. A batch without images (text-only
    samples) leaves those weights out of the graph: the backward of a loss with no gradient path raises, and DDP
    waits for gradients that never come. Adding 0 x these features puts them in the graph at no effect."""
    inner = unwrap(model).model
    size = inner.config.vision_config.image_size
    param = next(inner.connector.parameters())
    pixels = torch.zeros(1, 1, 3, size, size, device=param.device, dtype=param.dtype)  # [batch, images, C, H, W]
    return inner.get_image_features(pixel_values=pixels).pooler_output[0]


def batch_samples(inputs: dict) -> int:
    cu = inputs.get("cu_seq_lens_q")
    return len(cu) - 1 if cu is not None else inputs["input_ids"].shape[0]


def batch_tokens(inputs: dict) -> int:
    mask = inputs.get("attention_mask")
    return int(mask.sum()) if mask is not None else inputs["input_ids"].numel()


def use_bf16(setting: str) -> bool:
    if setting in ("true", "True", True):
        return True
    if setting in ("false", "False", False):
        return False
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def every(value: int | None, steps: int) -> int:
    return value or max(1, steps // 8)


def training_args(cfg: TrainConfig, stage: StageConfig, stage_dir: Path) -> TrainingArguments:
    eval_steps = every(cfg.eval_every, stage.steps)
    save_steps = every(cfg.save_every, stage.steps)
    if save_steps % eval_steps:
        save_steps = eval_steps * max(1, round(save_steps / eval_steps))  # best-model tracking needs this
    return TrainingArguments(
        output_dir=str(stage_dir),
        max_steps=stage.steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=base_lr(stage.lr),
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=cfg.lr_scheduler,
        max_grad_norm=cfg.max_grad_norm,
        adam_beta2=cfg.adam_beta2,
        bf16=use_bf16(cfg.bf16),
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=max(2, cfg.save_limit),
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        prediction_loss_only=True,  # evaluation needs the loss; gathering every logit would cost tokens x vocab
        greater_is_better=False,
        logging_steps=cfg.log_every,
        logging_first_step=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        run_name=cfg.run_name,
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
        # Without CUDA, accelerate only sets up multi-process CPU training (gloo) when told to use the CPU.
        use_cpu=not torch.cuda.is_available(),
        ddp_backend="gloo" if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        accelerator_config={"dispatch_batches": False, "split_batches": False},
        save_only_model=False,
        disable_tqdm=False,
    )


def wrap_lora(model, stage: StageConfig):
    from peft import LoraConfig, get_peft_model

    targets = rf".*text_model.*\.({'|'.join(LORA_TARGETS)})"
    config = LoraConfig(r=stage.lora_r, lora_alpha=stage.lora_alpha, lora_dropout=stage.lora_dropout,
                        target_modules=targets, modules_to_save=["connector"])
    return get_peft_model(model, config)


def set_use_cache(model, flag: bool) -> None:
    model.config.use_cache = flag  # what a SmolVLM forward reads when not told (tests/test_packing.py)
    model.config.text_config.use_cache = flag  # what the text model reads when used on its own


def load_stage_model(source: Path, stage: StageConfig, cfg: TrainConfig, processor):
    """The stage's model, ready for our batches: recipe applied, and uint8 pixels normalised inside it as
    `processor` would (`data/batches/pixels.py`)."""
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32, attn_implementation="sdpa")
    normalise_on_model(model, processor.image_processor)
    model.set_attn_implementation(training_attention(cfg.model.attn_implementation))
    set_use_cache(model, False)  # a cache is wasted memory in training, and with one packed samples see each other
    apply_recipe(model, stage.recipe)
    if stage.recipe == "lora":
        model = wrap_lora(model, stage)
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def save_final(model, processor, source: Path, stage: StageConfig, final: Path, data: str) -> None:
    """Write the stage's model as a stock checkpoint (LoRA merged, adapters kept beside) and mark it complete;
    smvl.json gains the stage: recipe, lr, steps and `data`, the source it trained on."""
    with folders.building(final) as tmp:
        if stage.recipe == "lora":
            model.save_pretrained(tmp / "adapter")
            model = model.merge_and_unload()
        set_use_cache(model, True)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        provenance = json.loads((source / PROVENANCE).read_text()) if (source / PROVENANCE).is_file() else {}
        provenance.setdefault("stages", []).append({"recipe": stage.recipe, "lr": as_recorded(stage.lr),
                                                   "steps": stage.steps, "train": data})
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2, ensure_ascii=False))
        checkpoints.mark_complete(tmp)


def run_stage(cfg: TrainConfig, stage: StageConfig, source: Path, stage_dir: Path, processor, streams, log) -> Path:
    final = stage_dir / "final"
    model = load_stage_model(source, stage, cfg, processor)
    lr = "lr per component" if component_lrs(stage.lr) else f"lr {base_lr(stage.lr):g}"
    log(f"stage {stage_dir.name}: recipe {stage.recipe}, {lr}, {stage.steps} steps")
    log("  " + format_counts(*count_params(model)))
    for line in group_lines(unwrap(model), stage.lr):
        log("  " + line)
    train_stream, eval_stream, text_eval_stream = streams
    train_stream.keep_text_only = stage.recipe in TEXT_TRAINING
    if cfg.data.text_only and not train_stream.keep_text_only:
        log(f"  text-only samples are left out of this stage: they cannot change a frozen LLM ({stage.recipe})")
    main = int(os.environ.get("RANK", "0")) == 0
    resume = checkpoints.resume_point(stage_dir, log, main) if stage_dir.exists() else None
    trainer = StreamTrainer(
        model=model,
        args=training_args(cfg, stage, stage_dir),
        train_stream=train_stream,
        eval_stream=eval_stream,
        text_eval_stream=text_eval_stream,
        num_workers=cfg.data.num_workers,
        guard=GuardCallback(cfg.zero_grad_patience),
        loss_chunk=cfg.loss_chunk if cfg.labelled_loss else None,
        lrs=component_lrs(stage.lr),
    )
    if resume is None:
        # After the Trainer has placed the model on its device, under the run's precision: on the CPU in fp32 the
        # real model's check would cost minutes per rank.
        with torch.autocast(trainer.args.device.type, dtype=torch.bfloat16, enabled=trainer.args.bf16):
            log("  " + preflight(trainer.model, first_image_batch(train_stream)))
    else:
        log(f"  resuming from {resume}")
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if trainer.is_world_process_zero():
        save_final(trainer.model, processor, source, stage, final, stage.train or cfg.data.train)
    trainer.accelerator.wait_for_everyone()
    return final
