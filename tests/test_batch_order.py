"""Which samples share a training batch: packed batches mix question types; padded ones are grouped by length."""

from transformers import AutoProcessor

from smvl.data.batches.collate import Encoder
from smvl.data.samples.skips import SkipLog
from smvl.data.sources.synthetic_video import ANSWER_CLASSES
from smvl.train.data import collate_options, train_stream
from smvl.train.run import load_config

TYPE_OF_ANSWER = {answer: kind for kind, answers in ANSWER_CLASSES.items() for answer in answers}


def first_batches(tiny_model, *overrides):
    """The processor and the first 6 training batches of synthetic-video (8 samples a batch)."""
    cfg = load_config(None, ["--data.train", "synthetic-video", "--data.synthetic_train", "64", "--batch_size", "8",
                             *overrides])
    processor = AutoProcessor.from_pretrained(tiny_model)
    stream = train_stream(cfg, Encoder(processor, collate_options(cfg)), SkipLog(1.0))
    return processor, [batch for batch, _ in zip(stream, range(6))]


def batch_types(tiny_model) -> list[set[str]]:
    """The question types of each of the first 6 training batches."""
    processor, batches = first_batches(tiny_model)
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    types = []
    for batch in batches:
        labels = [t for t in batch["labels"].flatten().tolist() if t != -100]
        answers = processor.tokenizer.decode(labels).split(processor.tokenizer.decode([end]))
        types.append({TYPE_OF_ANSWER[a.strip()] for a in answers if a.strip()})
    return types


def test_packed_batches_mix_question_types_by_default(tiny_model):
    # Length names the question type on the synthetic sets: grouping packed rows by length (which saves nothing
    # there) gave one-type batches, and the video model stayed at each type's prior.
    types = batch_types(tiny_model)
    assert all(len(t) >= 2 for t in types), types


def test_padded_batches_are_grouped_by_length_by_default(tiny_model):
    _, batches = first_batches(tiny_model, "--data.packing", "false")
    spreads = []
    for batch in batches:
        lengths = batch["attention_mask"].sum(1)
        spreads.append(int(lengths.max() - lengths.min()))
    assert max(spreads) <= 6, spreads  # ungrouped batches of this set spread over 13-16 tokens
