"""`smvl train`: resolve the config, splice if needed, run each stage, publish `final/`, evaluate the demo."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import yaml
from transformers import AutoProcessor, set_seed

from smvl import config as configlib
from smvl import folders
from smvl.data.samples.skips import SkipLog
from smvl.errors import UserError
from smvl.splice.model import PROVENANCE
from smvl.splice.presets import PRESETS
from smvl.splice.recipes import RECIPES
from smvl.train import checkpoints, extend, tracking
from smvl.train.config import TrainConfig
from smvl.train.data import build_streams, collate_options, eval_samples, require_training_records, train_stream
from smvl.train.trainer import run_stage

# Keys that may change between a run and its resumption without making it another run.
VOLATILE = {"output_dir", "report_to", "run_name", "data.num_workers", "final_eval", "final_eval_samples",
            "sample_questions", "log_every", "resume_from"}


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_identity(out: Path, cfg: TrainConfig) -> None:
    """Refuse an output folder that holds another run's checkpoints (a different config)."""
    saved = out / "config.yaml"
    if not saved.is_file():
        if any(out.glob("stage-*/checkpoint-*")):
            raise UserError(f"output folder {out} holds checkpoints but no config.yaml; choose another --output-dir")
        return
    old, new = flat(yaml.safe_load(saved.read_text()) or {}), flat(configlib.to_dict(cfg))
    changed = sorted(k for k in set(old) | set(new) if k not in VOLATILE and old.get(k) != new.get(k))
    if changed and cfg.resume_from:
        changed = sorted(set(changed) - extend.extension_keys(old, new))
    if changed:
        raise UserError(
            f"output folder {out} holds another run (config differs in: {', '.join(changed)}); "
            "use another --output-dir or remove it"
        )


def validate(cfg: TrainConfig) -> None:
    for i, stage in enumerate(cfg.resolved_stages(), 1):
        if stage.recipe not in RECIPES:
            raise UserError(f"stage {i}: unknown recipe {stage.recipe!r}; choose one of {', '.join(RECIPES)}")
        if stage.steps < 1:
            raise UserError(f"stage {i}: steps must be positive (got {stage.steps})")
        lrs = {"lr": stage.lr} if isinstance(stage.lr, (int, float)) else {
            f"lr.{part}": v for part, v in vars(stage.lr).items() if v is not None}
        for key, value in lrs.items():
            if value <= 0:
                raise UserError(f"stage {i}: {key} must be positive (got {value})")
    if cfg.report_to not in ("none", "tensorboard", "swanlab"):
        raise UserError(f"report_to={cfg.report_to!r}; choose none, tensorboard or swanlab")
    tracking.require(cfg.report_to)
    if cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise UserError("batch_size and grad_accum must be >= 1")
    preset = cfg.model.preset
    if preset and not cfg.model.path and preset != "tiny" and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; known: tiny, {', '.join(PRESETS)}")
    validate_data(cfg)
    extend.check_target(cfg)


def validate_data(cfg: TrainConfig) -> None:
    """Every data setting that would otherwise fail after the splice, a download or the first steps."""
    from smvl.data.sources import check_source

    d = cfg.data
    collate_options(cfg)  # label, padding and image policies
    if not 0 <= d.synthetic_scenes <= 1:
        raise UserError(f"data.synthetic_scenes={d.synthetic_scenes} must be in [0, 1]")
    if not 0 <= d.text_only_ratio < 1:
        raise UserError(f"data.text_only_ratio={d.text_only_ratio} must be in [0, 1)")
    if d.text_only_ratio > 0 and not d.text_only:
        raise UserError("data.text_only_ratio is set but data.text_only names no source")
    for key in ("train", "eval", "text_only"):
        spec = getattr(d, key)
        if spec is not None:
            try:
                check_source(spec, d.subsets, d.weights if key != "text_only" else None)
            except (UserError, FileNotFoundError) as exc:
                raise UserError(f"data.{key}: {exc}") from None
    for i, stage in enumerate(cfg.resolved_stages(), 1):
        if stage.train:
            try:
                check_source(stage.train, d.subsets, d.weights)
            except (UserError, FileNotFoundError) as exc:
                raise UserError(f"stage {i} train: {exc}") from None
    require_training_records(cfg)


def model_source(cfg: TrainConfig, out: Path, log) -> Path:
    if cfg.model.path:
        from smvl.splice.sources import SourceError, model_folder

        try:
            return model_folder(cfg.model.path)
        except SourceError as exc:
            raise UserError(f"model.path: {exc}") from None
    spliced = out / "spliced"
    if (spliced / "config.json").is_file():
        return spliced
    from smvl.splice.model import splice
    from smvl.splice.presets import get_preset

    preset = get_preset(cfg.model.preset) if cfg.model.preset else None
    vision, text = cfg.model.vision or (preset and preset.vision), cfg.model.text or (preset and preset.text)
    if not vision or not text:
        raise UserError("set model.preset, model.vision + model.text, or model.path")
    if is_main():
        log(f"splicing {vision} + {text} -> {spliced}")
        scale, splitting = preset.layout(vision, text) if preset else (None, None)
        splice(vision, text, spliced, scale_factor=cfg.model.scale_factor or scale, image_splitting=splitting)
    else:
        wait_for(spliced / PROVENANCE)
    return spliced


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def wait_for(path: Path, timeout: float = 3600) -> None:
    """Other ranks wait for rank 0's splice (the process group does not exist yet; the folder appears atomically)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise UserError(f"timed out waiting for rank 0 to create {path}")
        time.sleep(0.5)


def publish(stage_final: Path, out: Path) -> Path:
    """Copy the last stage's model to `out/final`; the previous `final/` stays whole until the new one is in."""
    final = out / "final"
    with folders.building(final) as tmp:
        shutil.copytree(stage_final, tmp, dirs_exist_ok=True)
    return final


def all_ranks_skips(skips: SkipLog) -> SkipLog:
    """The skip counts of every rank together (each rank reads its own shard), for the end-of-run table."""
    import torch.distributed as dist

    total = SkipLog(max_fraction=1.0)
    if not (dist.is_available() and dist.is_initialized()):
        total.merge(skips.drain())
        return total
    deltas = [None] * dist.get_world_size()
    dist.all_gather_object(deltas, skips.drain())
    for delta in deltas:
        total.merge(delta)
    return total


def train(cfg: TrainConfig, log=print) -> Path:
    if not is_main():
        log = _quiet  # rank 0 speaks for the run: headers, parameter counts and tables once, not once per process
    validate(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_identity(out, cfg)
    if is_main():
        configlib.save(replace(cfg, resume_from=None), out / "config.yaml")  # the run's config, however started
    set_seed(cfg.seed)
    current = model_source(cfg, out, log)
    processor = AutoProcessor.from_pretrained(current)
    if cfg.data.image_splitting is not None:
        # Saved with every stage's model, so inference tiles images the way training did.
        processor.image_processor.do_image_splitting = cfg.data.image_splitting
    streams, skips = build_streams(cfg, processor)
    stages = cfg.resolved_stages()
    for i, stage in enumerate(stages, 1):
        stage_dir = out / f"stage-{i}-{stage.recipe.replace('+', '-')}"
        folders.restore_aside(stage_dir / "final")  # a run killed while replacing it
        extending = cfg.resume_from and i == len(stages)
        if checkpoints.is_complete(stage_dir / "final") and not (extending and extend.needs_more(stage_dir,
                                                                                                  stage.steps)):
            log(f"stage {stage_dir.name} already complete")
        else:
            set_seed(cfg.seed + i)
            if stage.train:
                log(f"stage {stage_dir.name} trains on {stage.train}")
            own = stage.train and stage.train != cfg.data.train
            stage_streams = streams._replace(train=train_stream(cfg, streams.train.encoder, skips, stage.train)) \
                if own else streams
            run_stage(cfg, stage, current, stage_dir, processor, stage_streams, log)
        current = stage_dir / "final"
    log(all_ranks_skips(skips).table())
    leave_process_group()
    if not is_main():
        return out / "final"
    final = publish(current, out)
    log(f"final model: {final}")
    if cfg.final_eval:
        from smvl.eval.demo import demo_report

        results = demo_report(final, eval_samples(cfg)[: cfg.final_eval_samples], collate_options(cfg),
                              cfg.data.eval or cfg.data.train, cfg.seed, cfg.sample_questions, log)
        (out / "eval_results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
        tracking.log_samples(cfg.report_to, results["predictions"][: cfg.sample_questions], out, cfg.run_name)
    return final


def leave_process_group() -> None:
    """Every rank tears the gloo/NCCL group down together once training is over. A rank that exits with the group
    alive while another still talks to it can abort in the group's C++ threads ("terminate called without an active
    exception"), failing the whole torchrun although the model was saved; rank 0 publishes and evaluates alone."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _quiet(*args, **kwargs) -> None:
    pass


def load_config(path: str | None, overrides: list[str]) -> TrainConfig:
    """Defaults < the run's own config.yaml under --resume_from < CONFIG.yaml < the command line."""
    return configlib.load(TrainConfig, path, overrides, base=extend.resumed_base(overrides))

