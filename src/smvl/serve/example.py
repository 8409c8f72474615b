"""The web page's example: one image of the synthetic set and a question of each type about it, with its answer.

Served from a route (`/example.json`) rather than embedded in page.html: the image is drawn by the synthetic set's
own code at request time, so it cannot drift from it, and the page stays a small hand-written file. The sample is
from the test split, which training never sees, so a trained demo model is asked about an image that is new to it.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache

from smvl.data.sources.synthetic import KINDS, NAMES, PHRASINGS, answer, generate

SPLIT, SEED, INDEX = "test", 0, 0  # four objects, so each question type can be about a different one


@lru_cache(maxsize=1)
def example() -> dict:
    """{"image": a PNG data URL, "questions": [{"kind", "text", "answer"}, ...], "source": which sample}."""
    sample, objects = generate(SPLIT, SEED, INDEX)
    questions = []
    for i, kind in enumerate(KINDS):
        obj = objects[i % len(objects)]
        text = PHRASINGS[kind][0].format(name=NAMES[0].format(**obj), **obj)
        questions.append({"kind": kind, "text": text, "answer": answer(kind, obj, objects)})
    buf = io.BytesIO()
    sample.images[0].save(buf, format="PNG")
    return {"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
            "questions": questions, "source": f"synthetic {SPLIT} sample {INDEX} (seed {SEED})"}
