"""A run killed with SIGKILL and started again ends where an uninterrupted run of the same seed ends; a resumed
stream passes the batches trained before without decoding their images."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image, ImageFile
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from transformers import AutoProcessor

from smvl.data.batches.collate import CollateOptions, Encoder
from smvl.data.samples.lazy import ImageRef
from smvl.data.batches.pack import pack
from smvl.data.samples.sample import Sample
from smvl.data.batches.stream import BatchStream
from smvl.train import checkpoints

ARGS = ["--recipe", "full", "--lr", "2e-3", "--steps", "24", "--save_every", "4", "--eval_every", "4",
        "--data.synthetic_train", "160", "--data.synthetic_test", "16", "--batch_size", "8", "--grad_accum", "1",
        "--final_eval", "false"]


def command(out):
    return [sys.executable, "-m", "smvl", "train", *ARGS, "--output_dir", str(out)]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def weights(run):
    return load_file(run / "final" / "model.safetensors")


def test_killed_run_resumes_from_last_complete_checkpoint(tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(command(straight), check=True, env=env(), capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stage = killed / "stage-1-full"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        done = [p for _, p in checkpoints.checkpoints(stage) if checkpoints.is_complete(p)] if stage.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final").exists()

    resumed = subprocess.run(command(killed), env=env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_an_unreadable_last_checkpoint_resumes_from_the_one_before(tmp_path):
    from smvl.train.run import load_config, train

    args = [*ARGS, "--steps", "8", "--output_dir", str(tmp_path / "run")]
    train(load_config(None, args), log=lambda *a: None)
    stage = tmp_path / "run" / "stage-1-full"
    shutil.rmtree(stage / "final")  # as if killed after the last checkpoint, before the stage's final model
    shutil.rmtree(tmp_path / "run" / "final")
    weights_file = stage / "checkpoint-8" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    lines = []
    train(load_config(None, args), log=lines.append)
    warning = [line for line in lines if "cannot be loaded" in line]
    assert len(warning) == 1 and "checkpoint-8" in warning[0]
    assert any("resuming from" in line and line.endswith("checkpoint-4") for line in lines), lines
    assert checkpoints.is_complete(stage / "checkpoint-8") and (tmp_path / "run" / "final").is_dir()


SIZES = [(40, 30), (128, 64), (100, 100), (300, 200), (64, 200), (520, 390)]  # 1 to 5 tiles; two JPEG drafts


def jpeg(name: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (len(name) * 40 % 256, 90, 160)).save(out, "JPEG", comment=name.encode())
    return out.getvalue()


def lazy_samples(n: int = 60) -> list[Sample]:
    """Samples of varied token counts whose images are undecoded JPEGs naming their sample (`comment`)."""
    rng = random.Random(0)

    def sample(i: int) -> Sample:
        question = [{"type": "image"}, {"type": "text", "text": "why " * rng.randint(1, 40)}]
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": "so " * rng.randint(1, 30)}]
        return Sample(messages, [ImageRef(jpeg(f"s{i}", SIZES[rng.randrange(len(SIZES))]))], id=f"s{i}")

    return [sample(i) for i in range(n)]


class Shards:
    def __init__(self, samples: list[Sample]):
        self.samples = samples

    def __call__(self, epoch: int, shard: tuple[int, int]) -> list[Sample]:
        return self.samples[shard[0] :: shard[1]]


def with_ids(batch):
    return {**pack(batch), "ids": [e.id for e in batch]}


def stream(tiny_model, **kwargs) -> BatchStream:
    encoder = Encoder(AutoProcessor.from_pretrained(tiny_model), CollateOptions())
    samples = lazy_samples()
    return BatchStream(Shards(samples), encoder, 4, encoder.options, seed=1, **kwargs)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k]
                                        for k in a)


@pytest.mark.parametrize("kwargs", [
    {"pack": with_ids, "token_budget": 600, "group_by_length": False},
    {"pack": with_ids, "token_budget": 600, "group_by_length": True, "buffer_batches": 3},
    {"pack": with_ids, "group_by_length": False},
    {"pack": with_ids, "group_by_length": True, "buffer_batches": 3},
], ids=["budget", "budget-grouped", "batch_size", "grouped"])
def test_a_resumed_stream_decodes_no_image_of_the_batches_it_passes(tiny_model, monkeypatch, kwargs):
    decoded = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: decoded.append(im.info["comment"].decode()) or real(im))
    whole = stream(tiny_model, **kwargs)
    straight = [b for _, b in zip(range(9), whole)]
    decoded.clear()
    resumed = [b for _, b in zip(range(4), whole.skipping(5))]
    assert all(same(a, b) for a, b in zip(straight[5:], resumed)) and len(resumed) == 4
    passed = {i for b in straight[:5] for i in b["ids"]}
    assert decoded and not passed & set(decoded), f"decoded images of passed batches: {passed & set(decoded)}"


def test_workers_share_the_batches_to_pass_as_the_loader_takes_their_batches(tiny_model):
    """The loader takes batch k from worker k mod 2, and a resumed loader starts again at worker 0."""
    whole = stream(tiny_model, pack=with_ids, token_budget=600)
    straight = [b for _, b in zip(range(8), DataLoader(whole, batch_size=None, num_workers=2))]
    resumed = [b for _, b in zip(range(3), DataLoader(whole.skipping(5), batch_size=None, num_workers=2))]
    assert all(same(a, b) for a, b in zip(straight[5:], resumed)) and len(resumed) == 3


def test_the_trainer_resumes_through_the_stream():
    """The Trainer hands the count of trained batches to the stream instead of fetching and dropping them."""
    from types import SimpleNamespace

    from smvl.train.trainer import StreamTrainer

    train = BatchStream(lambda epoch, shard: [], SimpleNamespace(tok=SimpleNamespace(pad_token_id=0)), 4,
                        CollateOptions())
    trainer = SimpleNamespace(train_stream=train, num_workers=2)
    loader = StreamTrainer.get_resumed_dataloader(trainer, DataLoader(train, batch_size=None), 12)
    assert loader.dataset.skip_batches == 12 and loader.num_workers == 2 and train.skip_batches == 0


def exif_jpeg(size: tuple[int, int], orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, "JPEG", exif=exif.tobytes(), comment=b"x")
    return out.getvalue()


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("data", [exif_jpeg((520, 390), 1), exif_jpeg((520, 390), 6), png((300, 200))],
                         ids=["jpeg", "jpeg-turned", "png"])
def test_an_images_size_from_its_header_is_the_decoded_size(monkeypatch, data):
    from smvl.data.samples.images import image_size, load_image

    def draft(width, height):
        return width // 4, height // 4

    decodes = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: decodes.append(1) or real(im))
    size = image_size(data, draft=draft)
    assert not decodes
    assert tuple(size) == load_image(data, draft=draft).size
