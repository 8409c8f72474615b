"""`smvl export gguf`, checked in a real llama.cpp (llama-cpp-python's bindings, built from its sdist): the ids it
feeds, greedy answers, q8_0 agreement and synthetic-set accuracy against transformers.

Image sizes: llama.cpp resizes images itself (its own filter), so the exactness checks use images already at the
tiny preset's longest edge (128 px): tiles are then cut without resizing and only the 64 px global image differs
by the resize filter.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from PIL import Image

from smvl.cli import main

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (pip install -e '.[test]' brings it)")
gguf = pytest.importorskip("gguf", reason="gguf is not installed (pip install -e '.[test]' brings it)")


def export(model_dir, out, quant):
    from smvl.export.gguf_export import export_gguf

    return export_gguf(model_dir, out, quant=quant)


def test_export_gives_the_marker_ids_smolvlm_names_and_keeps_every_other_token(tiny_model, tmp_path):
    from transformers import AutoProcessor

    files = export(tiny_model, tmp_path, "f32")
    tokenizer = AutoProcessor.from_pretrained(tiny_model).tokenizer
    text = gguf.GGUFReader(files.text)
    tokens = text.fields["tokenizer.ggml.tokens"].contents()
    vocab = tokenizer.get_vocab()
    renamed = {vocab[tokenizer.fake_image_token]: "<fake_token_around_image>",
               vocab[tokenizer.global_image_token]: "<global-img>", vocab[tokenizer.image_token]: "<image>"}
    for token, i in vocab.items():
        assert tokens[i] == renamed.get(i, token)
    assert text.fields["general.architecture"].contents() == "qwen3"
    assert text.fields["tokenizer.ggml.pre"].contents() == "qwen2"
    mmproj = gguf.GGUFReader(files.mmproj)
    assert mmproj.fields["clip.projector_type"].contents() == "idefics3"
    assert {t.name for t in mmproj.tensors} >= {"v.patch_embd.weight", "v.post_ln.weight", "mm.model.fc.weight"}
    assert not any(t.name.startswith(("blk.", "token_embd")) for t in mmproj.tensors)


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_planned_sizes_from_the_config_equal_the_exported_tensor_bytes(tiny_model, tmp_path, quant):
    from transformers import AutoConfig

    from smvl.export.sizes import planned_bytes

    files = export(tiny_model, tmp_path, quant)
    written = [sum(int(t.n_bytes) for t in gguf.GGUFReader(f).tensors) for f in (files.text, files.mmproj)]
    assert list(planned_bytes(AutoConfig.from_pretrained(tiny_model), quant)) == written


def test_export_of_a_folder_that_is_not_smolvlm_fails_in_one_line(tiny_sources, tmp_path, capsys):
    assert main(["export", "gguf", str(tiny_sources / "text"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SmolVLM" in err, err


# --- in llama.cpp: ids, greedy and q8_0 on the spliced tiny model, accuracy on the trained demo model ----------


@pytest.fixture(scope="module")
def tiny_ggufs(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    return {quant: export(tiny_model, out, quant) for quant in ("f32", "f16", "q8_0")}


@pytest.fixture(scope="module")
def reference(tiny_model):
    from smvl.infer.generate import load

    return load(tiny_model, dtype="fp32", device="cpu")


def scene(size: tuple[int, int], index: int = 0) -> Image.Image:
    """A synthetic-set picture at `size` (no resize needed for tiles of the tiny preset)."""
    from smvl.data.sources.synthetic import synthetic_samples

    return synthetic_samples("test", index + 1, seed=3, image_size=max(size))[index].images[0].resize(size)


def conversation(question: str, image: bool) -> list[dict]:
    parts = ([{"type": "image"}] if image else []) + [{"type": "text", "text": question}]
    return [{"role": "user", "content": parts}]


def prompts(processor, messages, pair):
    from smvl.infer.generate import prompt_text

    text = prompt_text(processor, messages, thinking=False)
    return text, text.replace(processor.tokenizer.image_token, pair.marker)


def our_inputs(processor, text, images):
    return processor(text=[text], images=[images] if images else None, return_tensors="pt")


@torch.no_grad()
def transformers_greedy(model, inputs, n: int, stop: bool = False) -> list[int]:
    """Up to n greedy tokens; without `stop`, exactly n, through the end token (llama.cpp is run the same way)."""
    ends = {} if stop else {"eos_token_id": None}
    out = model.generate(**inputs, do_sample=False, temperature=None, top_p=None, top_k=None, max_new_tokens=n,
                         pad_token_id=0, **ends)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


CASES = [("你好！", None), ("图中的圆形是什么颜色？", (128, 128)), ("这个物体是什么形状？", (128, 64)),
         ("图里有几个物体？", (64, 128))]


@needs_llama
def test_llama_cpp_feeds_the_ids_our_processor_makes(tiny_ggufs, reference):
    from smvl.export.llama_run import LlamaPair

    model, processor = reference
    files = tiny_ggufs["f32"]
    with LlamaPair(files.text, files.mmproj) as pair:
        for question, size in CASES:
            images = [scene(size)] if size else []
            ours, theirs = prompts(processor, conversation(question, bool(size)), pair)
            expected = our_inputs(processor, ours, images)["input_ids"][0].tolist()
            assert pair.fed_ids(theirs, images, model.config.image_token_id) == expected, (question, size)


@needs_llama
@pytest.mark.parametrize("quant", ["f32", "f16"])
def test_llama_cpp_greedy_equals_transformers_for_16_tokens(tiny_ggufs, reference, quant):
    from smvl.export.llama_run import LlamaPair

    model, processor = reference
    files = tiny_ggufs[quant]
    with LlamaPair(files.text, files.mmproj) as pair:
        for question, size in CASES:
            images = [scene(size)] if size else []
            ours, theirs = prompts(processor, conversation(question, bool(size)), pair)
            expected = transformers_greedy(model, our_inputs(processor, ours, images), 16)
            assert pair.greedy(theirs, images, 16, stop=False) == expected, (question, size)


def synthetic_prompts(n: int):
    from smvl.data.sources.synthetic import synthetic_samples
    from smvl.eval.image_use import first_question

    return [(first_question(s), s.images) for s in synthetic_samples("test", n, seed=0)]


@needs_llama
def test_q8_0_predicts_transformers_next_token_95_percent_of_the_time(tiny_ggufs, reference):
    from smvl.export.llama_run import LlamaPair

    model, processor = reference
    files = tiny_ggufs["q8_0"]
    agree = total = 0
    with LlamaPair(files.text, files.mmproj) as pair:
        for (messages, _, used), images in synthetic_prompts(12):
            ours, theirs = prompts(processor, messages, pair)
            expected = transformers_greedy(model, our_inputs(processor, ours, images[:used]), 16, stop=True)
            predicted = pair.forced_top1(theirs, images[:used], expected)
            agree += sum(a == b for a, b in zip(predicted, expected))
            total += len(expected)
    assert agree / total >= 0.95, f"{agree}/{total}"


@pytest.fixture(scope="module")
def split_run(tmp_path_factory) -> Path:
    """A short run of the demo recipe with its images cut into tiles plus an overview, the layout llama.cpp's SmolVLM
    path always feeds (the demo's own, overview only, it cannot: see the test below)."""
    from smvl.train.run import load_config, train

    out = tmp_path_factory.mktemp("split") / "run"
    train(load_config(None, ["--steps", "300", "--lr", "3e-3", "--data.image_splitting", "true",
                             "--data.synthetic_train", "2400", "--data.synthetic_test", "24", "--final_eval", "false",
                             "--output_dir", str(out)]))
    return out / "final"


@needs_llama
def test_f16_answers_the_synthetic_questions_as_well_as_transformers(split_run, tmp_path):
    from smvl.eval.metrics import metric_for
    from smvl.export.llama_run import LlamaPair
    from smvl.infer.generate import generate_batch, load

    model, processor = load(split_run, dtype="fp32", device="cpu")
    assert processor.image_processor.do_image_splitting
    metric = metric_for("synthetic")
    items = synthetic_prompts(100)
    ours = generate_batch(model, processor, [m for (m, _, _), _ in items], [im[:u] for (_, _, u), im in items],
                          max_new_tokens=16)
    files = export(split_run, tmp_path, "f16")
    assert not files.warnings
    with LlamaPair(files.text, files.mmproj) as pair:
        theirs = [processor.tokenizer.decode(pair.greedy(prompts(processor, m, pair)[1], im[:u], 16),
                                             skip_special_tokens=True).strip() for (m, _, u), im in items]
    refs = [ref for (_, ref, _), _ in items]
    ours_acc = 100 * sum(metric(p, r) for p, r in zip(ours, refs)) / len(refs)
    theirs_acc = 100 * sum(metric(p, r) for p, r in zip(theirs, refs)) / len(refs)
    same = sum(a == b for a, b in zip(ours, theirs))
    print(f"synthetic accuracy over {len(refs)}: transformers {ours_acc:.1f}, llama.cpp f16 {theirs_acc:.1f}; "
          f"{same} answers the same")
    assert abs(theirs_acc - ours_acc) <= 2, (ours_acc, theirs_acc)
    assert same >= 90, same


@needs_llama
def test_llama_cpp_feeds_a_model_that_does_not_split_a_tile_and_the_overview_and_export_warns(tmp_path, capsys):
    """A known difference, kept visible: llama.cpp's SmolVLM path always cuts tiles plus an overview, so the demo's
    layout (the overview alone, 4 image tokens) gets 8 there; `smvl export gguf` says so."""
    from transformers import AutoProcessor

    from smvl.export.llama_run import LlamaPair
    from smvl.infer.generate import prompt_text

    assert main(["splice", "--preset", "tiny", "--out", str(tmp_path / "demo")]) == 0
    assert main(["export", "gguf", str(tmp_path / "demo"), "--out", str(tmp_path / "gguf"), "--quant", "f32"]) == 0
    assert "llama.cpp's SmolVLM path always feeds a tile grid plus an overview" in capsys.readouterr().err
    processor = AutoProcessor.from_pretrained(tmp_path / "demo")
    files = export(tmp_path / "demo", tmp_path / "gguf", "f32")
    text = prompt_text(processor, conversation("图中的圆形是什么颜色？", True), thinking=False)
    images = [scene((96, 96))]
    ours = our_inputs(processor, text, images)["input_ids"][0].tolist()
    with LlamaPair(files.text, files.mmproj) as pair:
        fed = pair.fed_ids(text.replace(processor.tokenizer.image_token, pair.marker), images,
                           processor.image_token_id)
    assert ours.count(processor.image_token_id) == 4 and fed.count(processor.image_token_id) == 8


@needs_llama
def test_bench_generate_compares_llama_cpp_with_transformers(tiny_model, capsys):
    assert main(["bench", "generate", str(tiny_model), "--engine", "llama.cpp", "--new-tokens", "4",
                 "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "llama.cpp / transformers: time to first token x" in out and "tokens/s x" in out, out


@needs_llama
def test_real_width_export_feeds_our_ids_and_answers_as_transformers(real_fake_sources, tmp_path):
    """The real pair's configs, tokenizer and processor (512 px tiles, 2048 px longest edge), depth cut to 1 layer:
    the toy model's 64 px tiles and 900-token vocabulary cannot show what the real tokenizer and tiling do."""
    from smvl.export.llama_run import LlamaPair
    from smvl.infer.generate import load
    from smvl.splice.model import splice

    model_dir = splice(str(real_fake_sources / "vision"), str(real_fake_sources / "text"), tmp_path / "m",
                       dtype="fp32")
    files = export(model_dir, tmp_path / "gguf", "f32")
    model, processor = load(model_dir, dtype="fp32", device="cpu")
    with LlamaPair(files.text, files.mmproj, n_ctx=8192) as pair:
        for question, size in [("你好！", None), ("图中有什么？", (2048, 2048)), ("这是什么？", (1200, 700))]:
            images = [Image.linear_gradient("L").resize(size).convert("RGB")] if size else []
            ours, theirs = prompts(processor, conversation(question, bool(size)), pair)
            inputs = our_inputs(processor, ours, images)
            assert pair.fed_ids(theirs, images, model.config.image_token_id) == inputs["input_ids"][0].tolist(), size
        assert pair.greedy(theirs, images, 8, stop=False) == transformers_greedy(model, inputs, 8)


def test_a_model_that_does_not_split_images_tells_llama_cpp_to_scale_them_to_one_tile(tmp_path):
    assert main(["splice", "--preset", "tiny", "--out", str(tmp_path / "demo")]) == 0
    files = export(tmp_path / "demo", tmp_path / "gguf", "f32")
    fields = gguf.GGUFReader(files.mmproj).fields
    assert fields["clip.vision.image_size"].contents() == fields["clip.vision.preproc_image_size"].contents() == 64


@needs_llama
def test_llama_cpp_loads_the_text_model_without_amx_repacking(monkeypatch):
    """llama.cpp's AMX repacking of quantised weights segfaulted our q8_0 pair on a Xeon with AMX (the whole test
    run died); LlamaPair loads with `use_extra_bufts` off and leaves llama-cpp-python's defaults as they were."""
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    from smvl.export.llama_run import LlamaPair

    seen = []

    class Loaded(Exception):
        pass

    def fake_llama(**kwargs):
        seen.append(bindings.llama_model_default_params().use_extra_bufts)
        raise Loaded

    monkeypatch.setattr(llama_cpp, "Llama", fake_llama)
    with pytest.raises(Loaded):
        LlamaPair(Path("text.gguf"), Path("mmproj.gguf"))
    assert seen == [False]
    assert bindings.llama_model_default_params().use_extra_bufts  # the library's own default again
