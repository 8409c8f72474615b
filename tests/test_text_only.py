"""Text-only mixing reads the whole text source across epochs, shuffled, and its held-out records are evaluated
(`eval_text_loss`), never trained on."""

from __future__ import annotations

import json

from smvl.data.samples.skips import SkipLog
from smvl.train.run import load_config


def text_file(path, n):
    path.write_text("".join(json.dumps({"id": f"t{i}", "messages": [{"role": "user", "content": f"你好{i}"},
                                        {"role": "assistant", "content": "你好！"}]}) + "\n" for i in range(n)))
    return path


def test_text_only_records_rotate_across_epochs_shuffled_and_the_held_out_ones_never_train(tmp_path):
    from smvl.train.data import SyntheticTrain, text_eval_samples

    cfg = load_config(None, ["--data.synthetic_train", "40", "--data.text_only", str(text_file(tmp_path / "t.jsonl", 200)),
                             "--data.text_only_ratio", "0.2", "--data.holdout", "20", "--data.shuffle_buffer", "50"])
    train = SyntheticTrain(cfg, SkipLog(1.0))
    epochs = [[s.id for s in train(epoch, (0, 1)) if s.id.startswith("t")] for epoch in range(12)]
    seen = [i for ids in epochs for i in ids]
    assert len(epochs[0]) < 30 and len(set(seen)) > 90  # about 10 a epoch: the epochs go on through the file
    assert epochs[1][0] not in epochs[0] and epochs[0] != sorted(epochs[0], key=lambda i: int(i[1:]))
    held = {s.id for s in text_eval_samples(cfg, SkipLog(1.0))}
    assert held == {f"t{i}" for i in range(20)} and not held & set(seen)
