"""Video parts: decoding and sampling as SmolVLM2 does, the stock processor's layout, bad videos as skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor
from transformers.video_utils import VideoMetadata

from smvl.data.samples import video as video_mod
from smvl.data.batches.collate import CollateOptions, Encoder
from smvl.data.batches.frames import video_prompt
from smvl.data.sources.jsonl import read_chat_file
from smvl.data.samples.lazy import decode
from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.samples.video import Video, VideoSampling, load_video
from video_files import write_audio_only, write_video


@pytest.fixture(scope="module")
def processor(tiny_model):
    return AutoProcessor.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=20, fps=10)


def test_frames_are_sampled_as_smolvlm2_samples_them(clip):
    video = load_video(clip, sampling=VideoSampling(fps=4, max_frames=6))
    # 2 s at 4 fps asks 8 frames, capped at 6, spread over all 20 as sample_frames spreads them.
    assert video.frames.shape == (6, 3, 48, 64) and video.frames.dtype == torch.uint8
    assert video.timestamps == pytest.approx([0.0, 0.3, 0.7, 1.1, 1.5, 1.9])
    assert video.duration == pytest.approx(2.0)


def test_a_variable_frame_rate_gives_each_frame_its_own_time(tmp_path):
    path = write_video(tmp_path / "vfr.mp4", frames=5, times=[0.0, 0.1, 0.5, 2.0, 2.2])
    video = load_video(path, sampling=VideoSampling(fps=10, max_frames=8))
    assert video.timestamps == pytest.approx([0.0, 0.1, 0.5, 2.0, 2.2])


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "ts"])
def test_a_clip_that_starts_late_is_timed_from_its_first_frame(tmp_path, suffix):
    """A stream starting at 30 s (a cut clip; every MPEG-TS file starts late): the prompt says "Frame from 00:00",
    the duration is the clip's 2 s, and a 5 s limit does not refuse it."""
    path = write_video(tmp_path / f"late.{suffix}", frames=20, fps=10, start=30.0)
    video = load_video(path, sampling=VideoSampling(fps=4, max_frames=6), max_seconds=5)
    assert video.timestamps == pytest.approx([0.0, 0.3, 0.7, 1.1, 1.5, 1.9])
    assert video.duration == pytest.approx(2.0)
    prompt = video_prompt(video, "<frame>")
    assert "from a 0:00:02 [H:MM:SS] video" in prompt and "Frame from 00:00:<frame>" in prompt
    assert "00:30" not in prompt


def test_sampling_keeps_the_frames_smolvlm2_keeps():
    """Which frames, not how many: the first and last of a short clip, a second skipped at both ends of a long one."""
    assert video_mod.sample_indices(20, 10, 2.0, VideoSampling(fps=4, max_frames=6)) == [0, 3, 7, 11, 15, 19]
    assert video_mod.sample_indices(1000, 10, 100.0, VideoSampling(fps=1, max_frames=6)) == [10, 206, 402, 598,
                                                                                             794, 990]


def test_subsampling_keeps_the_first_frame_and_spreads_the_rest(clip):
    video = load_video(clip, sampling=VideoSampling(fps=10, max_frames=20))
    fewer = video.subsample(4)
    assert fewer.timestamps == pytest.approx([0.0, 0.6, 1.2, 1.9])  # frames 0, 6, 12, 19 of 20
    assert torch.equal(fewer.frames, video.frames[[0, 6, 12, 19]])
    assert video.subsample(1).timestamps == [0.0] and torch.equal(video.subsample(1).frames, video.frames[:1])


def test_large_frames_are_decoded_down_to_the_processor_size(tmp_path):
    path = write_video(tmp_path / "big.mp4", frames=3, width=320, height=240)
    assert load_video(path, sampling=VideoSampling(longest=64)).frames.shape[-2:] == (48, 64)


def test_a_folder_of_frames_is_a_video(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 24), (i * 60, 0, 0)).save(folder / f"{i:03d}.png")
    video = load_video({"path": str(folder), "fps": 2}, sampling=VideoSampling(fps=2, max_frames=8))
    assert len(video) == 4 and video.timestamps == [0.0, 0.5, 1.0, 1.5]
    assert video.frames[3, 0, 0, 0] == 180


def bad_videos(tmp_path: Path, clip: Path) -> dict[str, object]:
    data = clip.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.mp4").write_bytes(b"not a video " * 50)
    (tmp_path / "empty").mkdir()
    return {
        "corrupt video": [tmp_path / "truncated.mp4", tmp_path / "junk.mp4"],
        "no video stream": [write_audio_only(tmp_path / "audio.m4a")],
        "missing video file": [tmp_path / "absent.mp4"],
        "no frames": [tmp_path / "empty"],
        "bad base64": ["data:video/mp4;base64,@@@"],
    }


def test_bad_videos_are_bad_samples_with_their_reason(tmp_path, clip):
    for reason, values in bad_videos(tmp_path, clip).items():
        for value in values:
            with pytest.raises(BadSample) as info:
                load_video(value)
            assert info.value.reason == reason, value


def test_size_and_duration_limits_are_read_from_the_header_before_decoding(clip, monkeypatch):
    monkeypatch.setattr(video_mod, "sample_indices", lambda *a: pytest.fail("decoding started"))
    monkeypatch.setattr(video_mod, "MAX_FRAME_PIXELS", 64 * 47)
    with pytest.raises(BadSample, match="video too large"):
        load_video(clip)
    monkeypatch.setattr(video_mod, "MAX_FRAME_PIXELS", 64 * 48)
    monkeypatch.setattr(video_mod, "MAX_SECONDS", 1.5)
    with pytest.raises(BadSample, match="video too long"):
        load_video(clip)


def test_bad_videos_in_a_jsonl_are_skipped_and_counted(tmp_path, clip):
    rows = [{"id": "good", "videos": [str(clip)], "messages": [
        {"role": "user", "content": "<video>视频里发生了什么？"}, {"role": "assistant", "content": "一条白线向右移动。"}]}]
    for reason, values in bad_videos(tmp_path, clip).items():
        rows += [{"id": f"{reason}-{i}", "videos": [str(v)], "messages": rows[0]["messages"]}
                 for i, v in enumerate(values)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    skips = SkipLog()
    kept = list(read_chat_file(tmp_path / "d.jsonl", skips))
    assert [s.id for s in kept] == ["good"] and len(kept[0].videos[0]) > 1
    assert skips.by_reason == {"corrupt video": 2, "no video stream": 1, "missing video file": 1, "no frames": 1,
                               "bad base64": 1}


def test_llava_video_records_and_video_parts_are_read(tmp_path, clip):
    rows = [{"id": "llava", "video": clip.name, "conversations": [
                {"from": "human", "value": "<video>\n视频里发生了什么？"}, {"from": "gpt", "value": "白线移动。"}]},
            {"id": "parts", "videos": [clip.name], "images": [], "messages": [
                {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "几帧？"}]},
                {"role": "assistant", "content": "很多。"}]},
            {"id": "mismatch", "videos": [], "messages": [
                {"role": "user", "content": "<video>看"}, {"role": "assistant", "content": "好。"}]}]
    (clip.parent / "d.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    skips = SkipLog()
    kept = list(read_chat_file(clip.parent / "d.jsonl", skips, lazy=True))
    assert [s.id for s in kept] == ["llava", "parts"]
    assert kept[0].messages[0]["content"] == [{"type": "video"}, {"type": "text", "text": "视频里发生了什么？"}]
    assert skips.by_reason == {"video count mismatch": 1}
    assert len(decode(kept[1], sampling=VideoSampling(fps=2, max_frames=3)).videos[0]) == 3


def video_sample(video: Video, image: Image.Image | None = None) -> Sample:
    parts = ([{"type": "image"}] if image else []) + [{"type": "video"}, {"type": "text", "text": "视频里发生了什么？"}]
    return Sample([{"role": "user", "content": parts}, {"role": "assistant", "content": "一条白线向右移动。"}],
                  [image] if image else [], id="v", videos=[video])


def test_a_video_is_laid_out_as_the_stock_processor_lays_it_out(processor, clip):
    video = load_video(clip, sampling=VideoSampling(fps=4, max_frames=6, longest=64))
    sample = video_sample(video)
    enc = Encoder(processor)(sample)
    text = processor.tokenizer.apply_chat_template(sample.messages, chat_template=processor.chat_template,
                                                   tokenize=False)
    meta = VideoMetadata(total_num_frames=len(video), fps=10, duration=video.duration)
    meta.frames_indices = [round(t * 10) for t in video.timestamps]
    ref = processor(text=text, videos=[video.frames], video_metadata=[meta], do_sample_frames=False,
                    return_tensors="pt")
    assert ref["input_ids"][0].tolist() == enc.input_ids
    assert "Frame from 00:01:" in processor.tokenizer.decode(enc.input_ids)
    assert torch.allclose(ref["pixel_values"][0], enc.pixels(), atol=1e-6)
    assert enc.image_tokens == 6 * (processor.image_seq_len + 3)


def test_a_sample_may_mix_an_image_and_a_video(processor, clip):
    video = load_video(clip, sampling=VideoSampling(fps=4, max_frames=4))
    enc = Encoder(processor, CollateOptions(images="all"))(video_sample(video, Image.new("RGB", (96, 80), "red")))
    image_tiles = 5  # 96x80 at the tiny preset: 2x2 tiles + the global one
    assert enc.pixel_values.shape[0] == image_tiles + 4
    assert enc.tiles == [(2, 2)] + [(0, 0)] * 4


def test_a_long_video_keeps_fewer_frames_before_the_sample_is_dropped(processor, clip):
    video = load_video(clip, sampling=VideoSampling(fps=10, max_frames=16))
    full = Encoder(processor, CollateOptions(max_length=10**6))(video_sample(video))
    per_frame = (len(full.input_ids) - 60) // 16
    fewer = Encoder(processor, CollateOptions(max_length=len(full.input_ids) - per_frame))(video_sample(video))
    assert fewer.pixel_values.shape[0] == 8 and not fewer.truncated
    with pytest.raises(BadSample, match="too long"):
        Encoder(processor, CollateOptions(max_length=40))(video_sample(video))
