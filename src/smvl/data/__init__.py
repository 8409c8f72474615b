"""Data, by stage: `sources` (records in storage -> samples: the_cauldron, JSONL, captions, WebDataset, the
built-in sets; split, sharded, mixed), `samples` (the sample, its images and videos, skip counts), `batches`
(samples -> token ids, labels, tiles -> packed batches). `translate` turns a source into Chinese; `inspect` and
`commands` are `smvl data`. Floors run one way: samples <- sources, samples <- batches <- inspect."""
