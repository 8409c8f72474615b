"""Padding-free packing: a batch of encoded samples as one row of tokens, each sample its own attention segment.

The row carries no attention mask (a mask would make transformers build a dense one) but `position_ids` that
restart at 0 for every sample and the segment boundaries `cu_seq_lens_q/k` with `max_length_q/k`, which both our
packed attention (`smvl.train.attention`) and flash-attention-2 read. Samples are never split, so an image block
stays whole; `pixel_values` are concatenated in token order, which is the order the model fills image tokens in.
The first label of every sample is masked: in the row it would be predicted from the previous sample's last token.
"""

from __future__ import annotations

import torch

from smvl.data.collate import IGNORE, Encoded, image_tensors


def pack(batch: list[Encoded]) -> dict[str, torch.Tensor | int]:
    lengths = [len(e.input_ids) for e in batch]
    ids = torch.tensor([t for e in batch for t in e.input_ids], dtype=torch.long)[None]
    labels = torch.tensor([t for e in batch for t in e.labels], dtype=torch.long)[None]
    cu = torch.tensor([0, *lengths], dtype=torch.int32).cumsum(0, dtype=torch.int32)
    labels[0, cu[:-1].long()] = IGNORE
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    return {"input_ids": ids, "labels": labels, "position_ids": positions, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
            "max_length_q": max(lengths), "max_length_k": max(lengths), **image_tensors(batch)}


def budget_batches(items: list[Encoded], budget: int) -> list[list[Encoded]]:
    """Rows of at most `budget` tokens, first-fit decreasing (a sample longer than the budget gets a row alone)."""
    rows: list[list[Encoded]] = []
    room: list[int] = []
    for e in sorted(items, key=lambda e: -len(e.input_ids)):
        n = len(e.input_ids)
        for i, free in enumerate(room):
            if n <= free:
                rows[i].append(e)
                room[i] -= n
                break
        else:
            rows.append([e])
            room.append(budget - n)
    return rows
