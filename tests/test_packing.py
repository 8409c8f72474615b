"""Packing and labelled-only loss: a packed batch is the same maths as its samples one by one, and packed samples
never see each other whatever the attention implementation."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from smvl.data.batches.collate import IGNORE, CollateOptions, Encoder, collate
from smvl.data.batches.pixels import normalise_on_model
from smvl.data.batches.pack import pack
from smvl.data.sources.synthetic import synthetic_samples
from smvl.train.attention import NAME, segments_from_positions, training_attention
from smvl.train.loss import chunked_cross_entropy, labelled_loss, shifted_targets
from smvl.splice.recipes import apply_recipe
from smvl.train.trainer import set_use_cache


@pytest.fixture(scope="module")
def setup(tiny_model):
    processor = AutoProcessor.from_pretrained(tiny_model)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32)
    model.set_attn_implementation(training_attention("auto"))
    return normalise_on_model(model, processor.image_processor), processor


def encoded(processor, labels="all", n=4, seed=3):
    encoder = Encoder(processor, CollateOptions(labels=labels, max_length=2048))
    samples = synthetic_samples("train", n, seed, multi_turn_fraction=0.5)
    return [encoder(s) for s in samples]


def singles(model, processor, batch, labels):
    """Token-weighted mean loss of the samples run one at a time, unpadded, with the model's own loss."""
    total, count = 0.0, 0
    for e in batch:
        inputs = collate([e], processor.tokenizer.pad_token_id, CollateOptions(labels=labels, pad_to_multiple_of=0))
        k = (inputs["labels"][:, 1:] != IGNORE).sum()
        total = total + model(**inputs, use_cache=False).loss * k
        count += k
    return total / count


def test_pack_layout(setup):
    _, processor = setup
    batch = encoded(processor)
    out = pack(batch)
    lengths = [len(e.input_ids) for e in batch]
    assert out["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in out
    assert out["cu_seq_lens_q"].tolist() == [0, *torch.tensor(lengths).cumsum(0).tolist()]
    assert out["max_length_q"] == max(lengths)
    starts = out["cu_seq_lens_q"][:-1].long()
    assert (out["position_ids"][0, starts] == 0).all() and (out["labels"][0, starts] == IGNORE).all()
    assert segments_from_positions(out["position_ids"]).tolist() == out["cu_seq_lens_q"].tolist()
    # Tiles in token order, as the padded collator gives them: the model fills image tokens in that order.
    padded = collate(batch, processor.tokenizer.pad_token_id, CollateOptions())
    assert torch.equal(out["pixel_values"], padded["pixel_values"])
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    assert (out["input_ids"] == image_id).sum() == (padded["input_ids"] == image_id).sum()


@pytest.mark.parametrize("labels", ["all", "assistant"])
def test_packed_loss_and_connector_gradient_equal_the_samples_one_by_one(setup, labels):
    model, processor = setup
    apply_recipe(model, "connector")
    batch = encoded(processor, labels)
    assert len({len(e.input_ids) for e in batch}) > 1 and all(e.pixel_values is not None for e in batch)

    model.zero_grad(set_to_none=True)
    total, count = labelled_loss(model, pack(batch), chunk=7)  # chunks smaller than the row: boundaries exercised
    packed = total / count
    packed.backward()
    packed_grad = [p.grad.clone() for p in model.model.connector.parameters()]

    model.zero_grad(set_to_none=True)
    reference = singles(model, processor, batch, labels)
    reference.backward()
    single_grad = [p.grad.clone() for p in model.model.connector.parameters()]

    assert packed.item() == pytest.approx(reference.item(), rel=1e-5)
    for got, want in zip(packed_grad, single_grad):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_packed_video_and_image_samples_equal_the_samples_one_by_one(setup):
    """Frame tiles travel with image tiles in token order through packing: a row of clips and pictures has the
    loss and connector gradient of its samples run one by one."""
    from smvl.data.sources.synthetic_video import synthetic_video_samples

    model, processor = setup
    apply_recipe(model, "connector")
    encoder = Encoder(processor, CollateOptions(labels="assistant", max_length=2048))
    samples = synthetic_video_samples("train", 2, seed=1)
    samples = [samples[0], *synthetic_samples("train", 2, 5), samples[1]]
    batch = [encoder(s) for s in samples]
    assert [e.pixel_values.shape[0] for e in batch][::3] == [4, 4]  # one tile per frame

    model.zero_grad(set_to_none=True)
    total, count = labelled_loss(model, pack(batch), chunk=7)
    (total / count).backward()
    packed_grad = [p.grad.clone() for p in model.model.connector.parameters()]
    model.zero_grad(set_to_none=True)
    reference = singles(model, processor, batch, "assistant")
    reference.backward()
    assert (total / count).item() == pytest.approx(reference.item(), rel=1e-5)
    for got, p in zip(packed_grad, model.model.connector.parameters()):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-6)


def loss_of_second(model, first, second, attention: str, own_loss: bool) -> float:
    """Loss on the second sample's labels only, with `first` packed before it in the same row."""
    first = type(first)(**{**first.__dict__, "labels": [IGNORE] * len(first.labels)})
    inputs = pack([first, second])
    model.set_attn_implementation(training_attention(attention))
    try:
        with torch.no_grad():
            if own_loss:  # the model's full-logit loss, no use_cache argument: the trap the issue names
                kept = {k: v for k, v in inputs.items() if not k.startswith(("cu_seq", "max_length"))}
                return model(**kept).loss.item()
            total, count = labelled_loss(model, inputs)
            return (total / count).item()
    finally:
        model.set_attn_implementation(training_attention("auto"))


@pytest.mark.parametrize("attention,own_loss", [("auto", False), ("sdpa", False), ("eager", False), ("sdpa", True)])
def test_packed_samples_cannot_see_each_other(setup, attention, own_loss):
    model, processor = setup
    model.train()
    # labelled_loss asks for no cache itself, so it is safe even with the config's default use_cache=True; the
    # model's own loss relies on load_stage_model turning the cache off in the config.
    set_use_cache(model, not own_loss)
    try:
        a, b, c = encoded(processor, n=3, seed=11)
        with_a = loss_of_second(model, a, c, attention, own_loss)
        with_b = loss_of_second(model, b, c, attention, own_loss)
    finally:
        set_use_cache(model, True)
    assert with_a == pytest.approx(with_b, rel=1e-6, abs=1e-6)


def test_the_cross_talk_check_is_sensitive(setup):
    """The check above fails where packed samples do see each other: with the cache on (the trap: transformers
    then applies one causal mask to the whole row), and with an explicit all-ones attention mask."""
    model, processor = setup
    a, b, c = encoded(processor, n=3, seed=11)
    assert loss_of_second(model, a, c, "sdpa", True) != pytest.approx(loss_of_second(model, b, c, "sdpa", True), rel=1e-4)

    def joined(first):
        first = type(first)(**{**first.__dict__, "labels": [IGNORE] * len(first.labels)})
        inputs = pack([first, c])
        inputs = {k: v for k, v in inputs.items() if not k.startswith(("cu_seq", "max_length", "position"))}
        with torch.no_grad():
            total, count = labelled_loss(model, {**inputs, "attention_mask": torch.ones_like(inputs["input_ids"])})
        return (total / count).item()

    assert joined(a) != pytest.approx(joined(b), rel=1e-4)


def test_chunked_cross_entropy_matches_the_full_one():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(37, 16, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    chunked = chunked_cross_entropy(hidden, head, targets, chunk=8)
    (g_chunked,) = torch.autograd.grad(chunked, hidden)
    full = torch.nn.functional.cross_entropy(head(hidden), targets, reduction="sum")
    (g_full,) = torch.autograd.grad(full, hidden)
    assert chunked.item() == pytest.approx(full.item(), rel=1e-6)
    torch.testing.assert_close(g_chunked, g_full)


def test_shifted_targets():
    labels = torch.tensor([[IGNORE, 5, 6, IGNORE, 7]])
    assert shifted_targets(labels).tolist() == [[5, 6, IGNORE, 7, IGNORE]]


def test_saved_checkpoints_name_no_custom_attention(setup, tmp_path):
    model, _ = setup
    assert model.config.text_config._attn_implementation == NAME
    model.save_pretrained(tmp_path)
    assert NAME not in (tmp_path / "config.json").read_text()


def test_budget_batches_fill_rows_and_never_split_a_sample():
    from smvl.data.batches.collate import Encoded
    from smvl.data.batches.pack import budget_batches

    lengths = [900, 700, 600, 500, 300, 2500, 100, 1200]
    items = [Encoded([0] * n, [IGNORE] * n, ["prompt"] * n, id=str(n)) for n in lengths]
    rows = budget_batches(items, 2048)
    assert sorted(len(e.input_ids) for row in rows for e in row) == sorted(lengths)
    # First-fit decreasing; the sample longer than the budget gets a row of its own.
    assert [[len(e.input_ids) for e in row] for row in rows] == [[2500], [1200, 700, 100], [900, 600, 500], [300]]


def test_the_row_packer_fills_rows_and_never_splits_a_sample():
    from smvl.data.batches.collate import Encoded
    from smvl.data.batches.pack import RowPacker

    lengths = [900, 700, 600, 500, 300, 2500, 100, 1200, 2048]
    packer = RowPacker(2048, open_rows=2)
    rows = [row for n in lengths for row in packer.add(Encoded([0] * n, [IGNORE] * n, ["prompt"] * n, id=str(n)))]
    rows += packer.flush()
    got = [[len(e.input_ids) for e in row] for row in rows]
    assert sorted(n for row in got for n in row) == sorted(lengths)
    # First fit over two open rows, in the order given: the 1,200 finds no room, so the fuller row makes way; a
    # sample of the whole budget or more gets a row alone.
    assert got == [[2500], [900, 700, 300, 100], [2048], [600, 500], [1200]]


class Lengths:
    """An encoder whose sample's text is its token count."""

    tok = type("Tok", (), {"pad_token_id": 0})()

    def __call__(self, sample, pixels=True):
        from smvl.data.batches.collate import Encoded

        n = int(sample.messages[0]["content"])
        return Encoded([1] * n, [1] * n, ["answer"] * n, id=sample.id)


def fill_stream(**kwargs):
    import random

    from smvl.data.samples.sample import Sample
    from smvl.data.batches.stream import BatchStream

    rng = random.Random(0)
    samples = [Sample([{"role": "user", "content": str(rng.randint(200, 400))}], id=str(i)) for i in range(640)]
    return BatchStream(lambda epoch, shard: samples, Lengths(), 16, CollateOptions(), pack=pack, token_budget=4096,
                       epochs=1, **kwargs)


@pytest.mark.parametrize("group_by_length", [False, True])
def test_a_token_budget_fills_rows_from_more_than_one_batch_of_samples(group_by_length):
    # Packed 16 samples at a time, each round left a near-empty row: 58% mean fill.
    rows = list(fill_stream(group_by_length=group_by_length))
    assert sum(len(r["cu_seq_lens_q"]) - 1 for r in rows) == 640
    assert all(r["input_ids"].shape[1] <= 4096 for r in rows)
    fill = sum(r["input_ids"].shape[1] for r in rows) / (4096 * len(rows))
    assert fill >= 0.9, f"mean fill {fill:.1%}"


def test_rows_keep_the_stream_order_so_lengths_mix():
    """Not grouped by length, rows take samples as they come: a row holds short and long ones alike."""
    rows = list(fill_stream(group_by_length=False))
    spreads = [int(r["cu_seq_lens_q"].diff().max() - r["cu_seq_lens_q"].diff().min()) for r in rows[:-4]]
    assert min(spreads) >= 100, spreads


def test_the_training_log_reports_the_pack_fill(monkeypatch):
    from transformers import Trainer

    from smvl.train.trainer import StreamTrainer

    logged = {}
    monkeypatch.setattr(Trainer, "training_step", lambda self, model, inputs, n=None: 0.0)
    monkeypatch.setattr(Trainer, "log", lambda self, logs, start_time=None: logged.update(logs))
    stream = fill_stream()
    trainer = StreamTrainer.__new__(StreamTrainer)  # the logging alone: no model, no arguments
    trainer.train_stream = stream
    trainer._seen = StreamTrainer.fresh_counts()
    rows = [r for _, r in zip(range(5), stream)]
    for row in rows:
        trainer.training_step(None, row)
    trainer.log({"loss": 1.0})
    want = sum(r["input_ids"].shape[1] for r in rows) / (5 * 4096)
    assert logged["pack_fill"] == pytest.approx(want, abs=1e-3) and logged["pack_fill"] >= 0.9


def test_a_token_budget_stream_yields_every_sample_once_in_rows_under_budget(setup):
    from smvl.data.batches.stream import BatchStream

    _, processor = setup
    encoder = Encoder(processor, CollateOptions())
    samples = synthetic_samples("train", 12, 0)
    stream = BatchStream(lambda epoch, shard: samples, encoder, 4, encoder.options, pack=pack, token_budget=600,
                         epochs=1)
    batches = list(stream)
    assert sum(len(b["cu_seq_lens_q"]) - 1 for b in batches) == 12 and len(batches) < 12
    assert all(b["input_ids"].shape[1] <= 600 or len(b["cu_seq_lens_q"]) == 2 for b in batches)


def test_packed_attention_rows_from_position_ids_match_one_row_at_a_time():
    """Rows of a batch without cu_seq_lens: each row's segments come from its own position ids."""
    from smvl.train.attention import packed_attention

    torch.manual_seed(0)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 2, True
    q, k, v = torch.randn(2, 4, 10, 8), torch.randn(2, 2, 10, 8), torch.randn(2, 2, 10, 8)
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]])
    both, _ = packed_attention(module, q, k, v, None, scaling=0.35, position_ids=positions)
    for b in range(2):
        cu = segments_from_positions(positions[b : b + 1])
        alone, _ = packed_attention(module, q[b : b + 1], k[b : b + 1], v[b : b + 1], None, scaling=0.35,
                                    cu_seq_lens_q=cu)
        torch.testing.assert_close(both[b : b + 1], alone)
        # and each segment equals attention over that segment alone
        a, z = cu[1].item(), cu[2].item()
        seg, _ = packed_attention(module, q[b : b + 1, :, a:z], k[b : b + 1, :, a:z], v[b : b + 1, :, a:z], None,
                                  scaling=0.35)
        torch.testing.assert_close(alone[:, a:z], seg)


def _segment_attention(q, k, v, cu, causal):
    """A reference kernel over [T, heads, dim] with equal head counts, as flash's varlen needs them."""
    assert causal and q.shape[1] == k.shape[1]
    bounds, outs = cu.tolist(), []
    for a, b in zip(bounds[:-1], bounds[1:]):
        x = [t[a:b].transpose(0, 1) for t in (q, k, v)]
        outs.append(torch.nn.functional.scaled_dot_product_attention(*x, is_causal=True).transpose(0, 1))
    return torch.cat(outs)


def new_varlen(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None, window_size=(-1, -1), enable_gqa=False):
    if enable_gqa:
        k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
    return _segment_attention(q, k, v, cu_q, window_size == (-1, 0))


def old_varlen(q, k, v, cu_q, cu_k, max_q, max_k, is_causal=False, return_aux=None, scale=None):
    return _segment_attention(q, k, v, cu_q, is_causal)


@pytest.mark.parametrize("kernel", [new_varlen, old_varlen], ids=["window_size+enable_gqa", "is_causal,no-gqa"])
def test_varlen_call_fits_both_torch_apis_and_equals_per_sample_attention(monkeypatch, kernel):
    """torch 2.11's varlen_attn takes `is_causal` and no `enable_gqa` (a GPU machine's run fell back to the slow
    per-sample loop: "unexpected keyword argument 'enable_gqa'"); newer ones take a window and `enable_gqa`."""
    import torch.nn.attention.varlen as varlen
    from types import SimpleNamespace

    from smvl.train.attention import _per_segment, _varlen

    monkeypatch.setattr(varlen, "varlen_attn", kernel)
    torch.manual_seed(0)
    q, kv = torch.randn(1, 4, 10, 8), torch.randn(1, 2, 10, 8)  # [1, heads, T, dim], 2 query heads per kv head
    cu = torch.tensor([0, 3, 10], dtype=torch.int32)
    module = SimpleNamespace(num_key_value_groups=2, is_causal=True, training=False)
    want = _per_segment(module, q, kv, kv * 0.5, cu, 0.0, None)
    assert torch.allclose(_varlen(module, q, kv, kv * 0.5, cu, None, 7), want, atol=1e-5)
