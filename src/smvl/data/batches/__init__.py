"""Samples -> token ids, labels and uint8 tiles (`collate`, with `tiles`, `frames`, `turns`, `truncate`) -> batches
(`pack`, `stream`): what the trainer, the evaluator and `data inspect` consume. Reads `samples` only, never
`sources`."""
