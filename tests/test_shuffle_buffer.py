"""Training's shuffle buffer holds undecoded records: images are decoded one sample at a time as they leave it."""

from __future__ import annotations

from PIL import Image

import smvl.data.lazy as lazy
from smvl.data.skips import SkipLog
from smvl.train.data import StreamedTrain
from smvl.train.run import load_config

from test_data_sources import row, write_subset


def test_images_are_decoded_after_the_shuffle_buffer(tmp_path, monkeypatch):
    root = tmp_path / "c"
    write_subset(root, "cocoqa", [row() for _ in range(59)] + [row(corrupt=True)])
    cfg = load_config(None, ["--data.train", str(root), "--data.holdout", "0", "--data.shuffle_buffer", "50",
                             "--output_dir", str(tmp_path / "run")])
    decodes = []
    real = lazy.load_image
    monkeypatch.setattr(lazy, "load_image", lambda *a, **k: decodes.append(1) or real(*a, **k))
    skips = SkipLog(max_fraction=1.0)
    samples = StreamedTrain(cfg, skips)(0, (0, 1))
    first = next(samples)
    assert isinstance(first.images[0], Image.Image)
    assert len(decodes) <= 2, f"{len(decodes)} images decoded to yield the first sample (the buffer holds 50)"
    rest = list(samples)
    assert len(rest) == 58 and len(decodes) == 60  # every record decoded once, the corrupt one too
    assert skips.by_reason == {"corrupt image": 1} and skips.seen == 60
