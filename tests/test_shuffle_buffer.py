"""Training's shuffle buffer holds undecoded records: images are decoded one sample at a time, as the batch stream
encodes them."""

from __future__ import annotations

from transformers import AutoProcessor

import smvl.data.samples.lazy as lazy
from smvl.data.batches.collate import Encoder
from smvl.data.samples.lazy import ImageRef
from smvl.data.samples.skips import SkipLog
from smvl.train.data import StreamedTrain, collate_options, train_stream
from smvl.train.run import load_config

from test_data_sources import row, write_subset


def test_images_are_decoded_after_the_shuffle_buffer(tiny_model, tmp_path, monkeypatch):
    root = tmp_path / "c"
    write_subset(root, "cocoqa", [row() for _ in range(59)] + [row(corrupt=True)])
    cfg = load_config(None, ["--data.train", str(root), "--data.holdout", "0", "--data.shuffle_buffer", "50",
                             "--batch_size", "2", "--data.packing", "false", "--output_dir", str(tmp_path / "run")])
    decodes = []
    real = lazy.load_image
    monkeypatch.setattr(lazy, "load_image", lambda *a, **k: decodes.append(1) or real(*a, **k))
    assert all(isinstance(s.images[0], ImageRef) for s in StreamedTrain(cfg, SkipLog(1.0))(0, (0, 1)))
    assert not decodes  # the buffer and the sources hold compressed bytes only
    skips = SkipLog(max_fraction=1.0)
    stream = train_stream(cfg, Encoder(AutoProcessor.from_pretrained(tiny_model), collate_options(cfg)), skips)
    stream.epochs, stream.group_by_length = 1, False
    batches = iter(stream)
    next(batches)
    assert len(decodes) <= 3, f"{len(decodes)} images decoded to yield the first batch (the buffer holds 50)"
    rest = list(batches)
    assert len(rest) == 29 and len(decodes) == 60  # 59 samples in 30 batches; every record decoded once
    assert skips.by_reason == {"corrupt image": 1} and skips.seen == 60
