"""The shipped video demo config (configs/video.yaml), cut to a few steps, trains on synthetic-video and its model
answers video questions in `smvl eval` with the frozen-frame condition: the README's video path, run as shipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from smvl.train.run import load_config, train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "video.yaml"


def test_the_shipped_video_config_trains_one_token_per_frame_and_its_model_is_evaluated_on_clips(tmp_path):
    cfg = load_config(str(CONFIG), ["--steps", "4", "--data.synthetic_train", "48", "--data.synthetic_test", "8",
                                    "--output_dir", str(tmp_path / "run")])
    assert (cfg.model.scale_factor, cfg.data.train) == (8, "synthetic-video")
    final = train(cfg)
    processor = json.loads((final / "processor_config.json").read_text())
    assert processor["image_seq_len"] == 1  # one token a frame: the layout the config's comment says learns motion
    start = load_file(tmp_path / "run" / "spliced" / "model.safetensors")
    trained = load_file(final / "model.safetensors")
    assert not torch.equal(start["model.connector.modality_projection.proj.weight"],
                           trained["model.connector.modality_projection.proj.weight"])
    out = tmp_path / "eval"
    run = subprocess.run([sys.executable, "-m", "smvl", "eval", str(final), "--data", "synthetic-video", "--limit",
                          "4", "--out", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((out / "results.json").read_text())["models"][0]
    assert result["scored"] == {"with_images": 4, "blank_images": 4, "shuffled_images": 4, "frozen_frames": 4}
    assert "accuracy_frozen_frames" in result
