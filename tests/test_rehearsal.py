"""The real run, rehearsed: the shipped configs at real widths (2 layers), on a generated the_cauldron folder with
the real schema and variety, with text-only mixing, DataLoader workers and two processes, then `smvl eval` over
every subset. The closest a CPU gets to what users run; it catches what the tiny preset hides.

The shipped YAML files are loaded and only paths, step counts and sizes are changed (CHANGED lists them; a test
fails if anything else differs), plus `report_to: none` (the trackers are optional extras).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from caption_data import write_caption_folder
from cauldron_folder import CORRUPT, SIZES, TRUNCATED, write_cauldron, write_eval_file, write_text_only, write_vqa_zh
from conftest import TORCHRUN, build_real_fake

REPO = Path(__file__).resolve().parents[1]
CHANGED = {"model.vision", "model.text", "data.train", "data.eval", "data.text_only", "data.text_only_ratio",
           "data.num_workers", "data.holdout", "data.shuffle_buffer", "steps", "stages.steps", "stages.train",
           "grad_accum", "eval_every", "save_every", "final_eval_samples", "output_dir", "report_to"}

@pytest.fixture(scope="module")
def rehearsal(assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("rehearsal")
    return SimpleNamespace(root=root, sources=build_real_fake(assets, root / "sources", layers=2),
                           data=write_cauldron(root / "the_cauldron"), text=write_text_only(root / "text.jsonl"),
                           eval=write_eval_file(root / "eval-data"), vqa=write_vqa_zh(root / "vqa-zh"),
                           captions=write_caption_folder(root / "captions", n=12))


def rehearsed_config(name: str, r, out: Path, eval_file: bool = True) -> Path:
    """configs/<name>.yaml with paths, steps and sizes changed for a CPU. Evaluation during training reads a
    two-sample file (`eval_file`), since the held-out split of seven subsets costs minutes at every stage's end."""
    cfg = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    cfg["model"].update(vision=str(r.sources / "vision"), text=str(r.sources / "text"))
    cfg["data"].update(train=str(r.data), text_only=str(r.text), text_only_ratio=0.14, num_workers=2, holdout=1,
                       shuffle_buffer=16)
    if eval_file:
        cfg["data"]["eval"] = str(r.eval)
    if name == "zh":  # the translated VQA mixed with the_cauldron, captions for stage 1
        cfg["data"]["train"] = f"{r.vqa}*1 + {r.data}*1"
        cfg["stages"][0]["train"] = str(r.captions)
    if "stages" in cfg:
        for stage in cfg["stages"]:
            stage["steps"] = 1
    else:
        cfg["steps"] = 2
    # Every image costs the real processor 13-17 tiles (it scales images to a 2,048 px longest edge), tens of
    # seconds of CPU per pass at real width: few steps, few evaluation samples.
    cfg.update(grad_accum=1, eval_every=2, save_every=2, final_eval_samples=2, output_dir=str(out), report_to="none")
    path = out.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def changed_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys |= changed_keys(va, vb, f"{prefix}{k}.")
        elif isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb):
            for x, y in zip(va, vb):
                keys |= changed_keys(x, y, f"{prefix}{k}.")
        elif va != vb:
            keys.add(f"{prefix}{k}")
    return keys


@pytest.mark.parametrize("name", ["full", "staged", "zh"])
def test_rehearsal_changes_only_paths_steps_and_sizes(name, tmp_path):
    r = SimpleNamespace(sources=tmp_path, data=tmp_path, text=tmp_path, eval=tmp_path, vqa=tmp_path, captions=tmp_path)
    shipped = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    rehearsed = yaml.safe_load(rehearsed_config(name, r, tmp_path / "run").read_text())
    assert changed_keys(shipped, rehearsed) <= CHANGED


def load(name: str, r, out: Path):
    """The rehearsed config with the held-out split of the_cauldron as its eval data, as shipped."""
    from smvl.train.run import load_config

    return load_config(str(rehearsed_config(name, r, out, eval_file=False)), [])


def test_first_hundred_training_samples_cover_every_subset_in_proportion(rehearsal, tmp_path):
    """full.yaml reads `subsets: all` with no weights. The first 100 samples (after the 16-sample shuffle buffer,
    as small against this folder as 1,000 is against the_cauldron) hold each subset in proportion to its size."""
    from smvl.data.samples.skips import SkipLog
    from smvl.train.data import train_samples

    cfg = load("full", rehearsal, tmp_path / "run")
    first = [s for _, s in zip(range(100), train_samples(cfg, SkipLog(1.0))(0, (0, 1)))]
    images = [s for s in first if s.images]
    assert 5 <= len(first) - len(images) <= 26  # text-only at 0.14: mean 14, sd ~3.5
    counts, total = Counter(s.source for s in images), sum(SIZES.values())
    for subset, size in SIZES.items():
        expected = len(images) * size / total
        # Drawn without replacement through a small buffer: sd <= sqrt(n p (1 - p)) <= 4.3 here; 3 sd + 1 leaves
        # room for the buffer's local reordering.
        assert counts[subset] >= 1 and abs(counts[subset] - expected) <= 3 * (expected * (1 - size / total)) ** 0.5 + 1, (
            subset, counts[subset], expected)


def test_skip_totals_are_the_same_with_zero_and_two_workers(rehearsal, tmp_path):
    from torch.utils.data import DataLoader

    from smvl.data.batches.stream import merge_worker_skips
    from smvl.splice.processor import pair_processor
    from smvl.train.data import build_streams

    processor, _ = pair_processor(str(rehearsal.sources / "vision"), str(rehearsal.sources / "text"))
    subsets = [s for s in SIZES if s != "docvqa"]  # the scans cost time and hold no corrupt row
    totals = []
    for workers in (0, 2):
        cfg = load("full", rehearsal, tmp_path / f"run{workers}")
        cfg.data.subsets = ",".join(subsets)
        cfg.data.text_only_ratio, cfg.data.max_length = 0.0, 4096  # every row once, none too long
        streams, skips = build_streams(cfg, processor)
        stream = streams.train
        stream.epochs = 1
        for batch in DataLoader(stream, batch_size=None, num_workers=workers):
            merge_worker_skips(batch, skips)
        totals.append((skips.seen, dict(skips.by_reason)))
    # Every row is read once: the held-out rows for evaluation, the others for training; the truncated file's rows
    # are counted once between the readers.
    lost = sum(TRUNCATED.values())
    expected = (sum(SIZES[s] for s in subsets) + lost, {"corrupt image": sum(CORRUPT.values()),
                                                        "unreadable parquet file": lost})
    assert totals[0] == totals[1] == expected, totals


def test_weighted_sources_of_very_different_sizes_keep_their_shares(rehearsal, tmp_path):
    """zh.yaml mixes the translated VQA (8 records) with the_cauldron (214 rows) at equal weights: half of what
    training draws is the VQA's, repeated, not 8 samples and then the_cauldron alone."""
    from smvl.data.samples.skips import SkipLog
    from smvl.train.data import train_samples

    cfg = load("zh", rehearsal, tmp_path / "run")
    cfg.data.text_only_ratio = 0.0
    first = [s for _, s in zip(range(100), train_samples(cfg, SkipLog(1.0))(0, (0, 1)))]
    vqa = sum(s.id.startswith("zh") for s in first)
    assert 30 <= vqa <= 70, vqa


def torchrun(config: Path, log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    run = subprocess.run([*TORCHRUN, "--nproc_per_node", "2", "--master_port", "29531", "-m", "smvl", "train",
                          str(config)], env=env, capture_output=True, text=True, timeout=1500)
    log.write_text(run.stdout + "\n--- stderr ---\n" + run.stderr)
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def test_full_and_staged_configs_train_then_eval_every_subset(rehearsal, tmp_path):
    # Runs go under the test's own folder (a passed test's is removed at once: real-width checkpoints are GBs), and
    # each once checked, so that no more than one run's checkpoints are on disk at a time.
    out = tmp_path / "full-run"
    run = torchrun(rehearsed_config("full", rehearsal, out), rehearsal.root / "full.log")
    assert (out / "final" / "model.safetensors").is_file() and (out / "eval_results.json").is_file()
    # Rank 0 speaks for the run; the frozen LLM's stage leaves text-only samples out and says so once.
    assert run.stdout.count("stage stage-1-connector: recipe connector") == 1
    assert run.stdout.count("text-only samples are left out of this stage") == 1
    assert "preflight: the image moves" in run.stdout
    # Evaluation survived held-out samples the encoder rejects, split unevenly between the ranks, and the run's
    # table has them (two steps read too little for the truncated file: the skip-totals test reads it all); the
    # text held-out was evaluated.
    assert "too long for max_length" in run.stdout
    state = json.loads(max((out / "stage-1-connector").glob("checkpoint-*/trainer_state.json")).read_text())
    assert any("eval_text_loss" in h for h in state["log_history"]) and any("eval_loss" in h for h in state["log_history"])
    shutil.rmtree(out)

    staged = tmp_path / "staged-run"
    run = torchrun(rehearsed_config("staged", rehearsal, staged), rehearsal.root / "staged.log")
    provenance = json.loads((staged / "final" / "smvl.json").read_text())
    assert [s["recipe"] for s in provenance["stages"]] == ["connector", "vision+connector", "full"]
    assert run.stdout.count("text-only samples are left out of this stage") == 2  # the two frozen-LLM stages

    evaluation = subprocess.run([sys.executable, "-m", "smvl", "eval", str(staged / "final"), "--data",
                                 str(rehearsal.data), "--split", "test", "--holdout", "1", "--images", "all",
                                 "--no-retention", "--batch-size", "4", "--out", str(tmp_path / "eval")],
                                capture_output=True, text=True, timeout=900)
    assert evaluation.returncode == 0, evaluation.stderr[-4000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    (model,) = results["models"]
    assert set(model["per_subset"]) == set(SIZES), model["per_subset"].keys()
    assert model["n"] == len(SIZES) and model["scored"]["with_images"] == len(SIZES)


def test_zh_config_trains_the_connector_on_captions_then_everything_on_vqa_and_the_cauldron(rehearsal, tmp_path):
    """zh.yaml at real widths, one step a stage, in one process (the two-process path is the runs above): stage 1
    reads the caption folder, stage 2 the translated VQA mixed with the_cauldron."""
    out = tmp_path / "zh-run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    run = subprocess.run([sys.executable, "-m", "smvl", "train", str(rehearsed_config("zh", rehearsal, out))],
                         env=env, capture_output=True, text=True, timeout=1500)
    (rehearsal.root / "zh.log").write_text(run.stdout + "\n--- stderr ---\n" + run.stderr)
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"trains on {rehearsal.captions}" in run.stdout
    provenance = json.loads((out / "final" / "smvl.json").read_text())
    assert [s["recipe"] for s in provenance["stages"]] == ["connector", "full"]
