"""DataLoader workers: skips counted inside workers reach the run's table and its stop, and the stream pickles."""

from __future__ import annotations

import pickle

import pytest
from torch.utils.data import DataLoader
from transformers import AutoProcessor

from smvl.data.samples.skips import TooManySkipped
from smvl.data.batches.stream import merge_worker_skips
from smvl.train.data import build_streams
from smvl.train.run import load_config

from test_data_sources import row, write_subset


def consume(stream, workers: int) -> int:
    batches = 0
    for batch in DataLoader(stream, batch_size=None, num_workers=workers):
        merge_worker_skips(batch, stream.skips)
        assert "smvl_skips" not in batch
        batches += 1
    return batches


def train_stream(root, processor, tmp_path, bad_fraction_cap="0.5"):
    clean = tmp_path / "eval"
    write_subset(clean, "good", [row() for _ in range(4)])
    cfg = load_config(None, ["--data.train", str(root), "--data.holdout", "0", "--data.eval", str(clean),
                             "--data.max_skip_fraction", bad_fraction_cap, "--batch_size", "4",
                             "--output_dir", str(tmp_path / "run")])
    train = build_streams(cfg, processor)[0].train
    train.epochs = 1
    return train


def two_subsets(root, good_in_mixed: int, corrupt: int):
    write_subset(root, "good", [row() for _ in range(30)])
    write_subset(root, "mixed", [row() for _ in range(good_in_mixed)] + [row(corrupt=True) for _ in range(corrupt)])
    return root


@pytest.fixture()
def bad_folder(tmp_path):
    return two_subsets(tmp_path / "bad", 10, 12)


@pytest.fixture()
def folder(tmp_path):
    return two_subsets(tmp_path / "c", 12, 3)


def test_skip_totals_are_the_same_with_and_without_workers(folder, tiny_model, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_model)
    tables = {}
    for workers in (0, 2):
        stream = train_stream(folder, processor, tmp_path / str(workers))
        consume(stream, workers)
        tables[workers] = (stream.skips.seen, dict(stream.skips.by_reason))
    # 4 evaluation samples, then 45 training rows of which 3 are corrupt.
    assert tables[0] == tables[2] == (49, {"corrupt image": 3}), tables


def test_too_many_skips_across_workers_stop_the_run_in_the_main_process(bad_folder, tiny_model, tmp_path):
    """Over a 5% cap the run stops in the main process, on the counts of all workers together (a worker re-raised
    by the DataLoader would carry only its own share)."""
    stream = train_stream(bad_folder, AutoProcessor.from_pretrained(tiny_model), tmp_path, bad_fraction_cap="0.05")
    with pytest.raises(TooManySkipped, match=r"samples skipped \(over 5%\)") as caught:
        consume(stream, 2)
    assert caught.traceback[-2].name == "merge", [entry.name for entry in caught.traceback]


def test_train_stream_pickles_for_spawned_workers(folder, tiny_model, tmp_path):
    stream = train_stream(folder, AutoProcessor.from_pretrained(tiny_model), tmp_path)
    copy = pickle.loads(pickle.dumps(stream))
    assert consume(copy, 0) == consume(stream, 0) > 0


def test_the_preflight_look_ahead_does_not_count_skips_twice(folder, tiny_model, tmp_path):
    from smvl.train.guards import first_image_batch

    stream = train_stream(folder, AutoProcessor.from_pretrained(tiny_model), tmp_path)
    before = (stream.skips.seen, dict(stream.skips.by_reason))
    first_image_batch(stream)
    assert (stream.skips.seen, dict(stream.skips.by_reason)) == before
    consume(stream, 0)
    assert stream.skips.seen == 49 and stream.skips.by_reason == {"corrupt image": 3}


def test_a_workers_batch_arrives_as_the_in_process_one_pixels_and_layout_included(folder, tiny_model, tmp_path):
    """Batches are built in shared memory inside a worker, uint8 tiles channels-last: they must arrive as built."""
    import torch

    processor = AutoProcessor.from_pretrained(tiny_model)
    batches = {}
    for workers in (0, 1):
        stream = train_stream(folder, processor, tmp_path / str(workers))
        batches[workers] = next(iter(DataLoader(stream, batch_size=None, num_workers=workers)))
    here, there = batches[0]["pixel_values"], batches[1]["pixel_values"]
    assert there.dtype == torch.uint8 and torch.equal(here, there) and here.stride() == there.stride()
    assert there.permute(0, 1, 3, 4, 2).is_contiguous()
    assert "pixel_attention_mask" not in batches[1]
