"""A video used end to end on the tiny model: generation through the stock processor, chat --video, the server's
video_url parts (data URLs; local and remote refused by default; limits as 4xx), eval's frozen-frame condition."""

from __future__ import annotations

import base64
import io
import subprocess
import sys

import pytest
from test_serve_helpers import loaded, post, running  # noqa: F401
from video_files import write_audio_only, write_video

from smvl.data.samples.video import VideoSampling, load_video
from smvl.serve.app import build_app
from smvl.serve.settings import Settings


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("use") / "clip.mp4", frames=20, fps=10)


def video_body(url: str, max_tokens: int = 4) -> dict:
    return {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                                      {"type": "text", "text": "视频里发生了什么？"}]}],
            "max_tokens": max_tokens}


def data_url(path) -> str:
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def test_the_server_answers_a_video_url_and_refuses_bad_ones_with_4xx(loaded, clip, tmp_path):
    settings = Settings(model_name="tiny", max_video_bytes=200_000, max_video_seconds=60, max_tokens=16)
    with running(build_app(*loaded, settings)) as url:
        ok = post(url, video_body(data_url(clip)))
        assert ok.status_code == 200, ok.text
        # 2 s at the model's 1 frame per second: two frames of 16 + 3 tokens each, and the stock prompt text
        assert ok.json()["usage"]["prompt_tokens"] > 2 * 19
        assert post(url, video_body(str(clip))).json()["error"]["code"] == "local_files_disabled"
        assert post(url, video_body("https://example.com/a.mp4")).json()["error"]["code"] == "remote_images_disabled"
        audio = post(url, video_body(data_url(write_audio_only(tmp_path / "a.m4a"))))
        assert audio.status_code == 400 and audio.json()["error"]["code"] == "invalid_video"
    short = Settings(model_name="tiny", max_video_bytes=200_000, max_video_seconds=1.0)
    with running(build_app(*loaded, short)) as url:
        long = post(url, video_body(data_url(clip)))
        assert long.status_code == 413 and long.json()["error"]["code"] == "video_too_large"
    small = Settings(model_name="tiny", max_video_bytes=1000)
    with running(build_app(*loaded, small)) as url:
        assert post(url, video_body(data_url(clip))).status_code == 413


def test_generation_with_a_video_uses_the_stock_frame_layout(loaded, clip):
    from smvl.infer.generate import generate_batch, inputs_for

    model, processor = loaded
    video = load_video(clip, sampling=VideoSampling(fps=2, max_frames=4))
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "视频里发生了什么？"}]}]
    inputs = inputs_for(model, processor, [messages], [[]], videos=[[video]])
    assert inputs["pixel_values"].shape[:2] == (1, 4)
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert "series of four frames" in text and "Frame from 00:01:" in text
    answers = generate_batch(model, processor, [messages, messages], [[], []], videos=[[video], [video.frozen()]],
                             max_new_tokens=3)
    assert len(answers) == 2


def test_chat_with_a_video_answers_and_a_bad_one_is_one_line(tiny_model, clip, tmp_path):
    run = [sys.executable, "-m", "smvl", "chat", str(tiny_model), "--max-new-tokens", "3", "--device", "cpu"]
    ok = subprocess.run(run + ["--video", str(clip), "视频里发生了什么？"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(run + ["--video", str(write_audio_only(tmp_path / "a.m4a")), "看"], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("cannot use video: no video stream: "
                                                               f"{tmp_path / 'a.m4a'}")
    assert "Traceback" not in bad.stderr


def test_eval_asks_with_real_black_frozen_and_shuffled_clips(tmp_path, monkeypatch):
    """A stand-in model says what it was shown: eval must hand it the real clip, black frames, every frame the
    first, and another clip of the same frame count."""
    from smvl.data.sources.synthetic_video import generate
    from smvl.eval import evaluate
    from smvl.eval.cache import PredictionCache

    def describe(model, processor, prompts, images, videos=None, **options):
        out = []
        for clip in videos:
            frames = clip[0].frames
            still = bool((frames == frames[:1]).all())
            out.append("black" if not frames.any() else f"{'still' if still else 'moving'}:{clip[0].source}")
        return out

    monkeypatch.setattr(evaluate, "generate_batch", describe)
    samples = [generate("test", 0, i) for i in range(6)]
    answers, partners = evaluate.predict(None, None, samples, PredictionCache(tmp_path / "p.jsonl"), ["m"], 4, 0)
    for i, s in enumerate(samples):
        moving = not bool((s.videos[0].frames == s.videos[0].frames[:1]).all())
        assert answers[i, "with_images"] == f"{'moving' if moving else 'still'}:{s.videos[0].source}"
        assert answers[i, "blank_images"] == "black"
        assert answers[i, "frozen_frames"] in ("black", f"still:{s.videos[0].source}")  # a first frame may be empty
        assert answers[i, "shuffled_images"].endswith(samples[partners[i]].videos[0].source)
        assert partners[i] != i


def test_batch_inference_answers_video_questions_and_counts_bad_videos(loaded, clip, tmp_path):
    import json

    from smvl.infer.batch import run_batch_inference

    rows = [{"id": "a", "video": str(clip), "question": "视频里发生了什么？"},
            {"id": "b", "videos": [str(clip)], "question": "<video>白线往哪边走？"},
            {"id": "bad", "video": str(write_audio_only(tmp_path / "a.m4a")), "question": "看"}]
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    report = run_batch_inference(*loaded, tmp_path / "q.jsonl", tmp_path / "a.jsonl", batch_size=2, max_new_tokens=3)
    answered = [json.loads(line)["id"] for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert answered == ["a", "b"] and report.skips.by_reason == {"no video stream": 1}
