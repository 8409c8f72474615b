"""Fitting a sample into max_length: whole turns first, then the last answer, then the images' tiling.

A prompt (system message, user turn, assistant header) is never cut, nor is an image block. In order:

1. whole trailing turns (a user turn and its answer) are dropped while more than one turn is left;
2. the one answer left is shortened from its end, keeping at least `min_answer` of its tokens, or all of an answer
   shorter than that (a few tokens of a long answer teach little, and a short answer cut teaches a wrong one);
3. only when the first turn's prompt and images leave no room for that, the caller re-tiles the images with fewer
   tiles and starts again from every turn;
4. a sample whose first turn does not fit even with the fewest tiles is rejected with BadSample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from PIL import Image

from smvl.data.samples.sample import BadSample


@dataclass
class Layout:
    """The first turns of a sample as tokens, its images tiled for one resize target."""

    ids: list[int]
    kinds: list[str]  # per token: "prompt", "answer" or "image"
    images: list[Image.Image]
    grids: list[tuple[int, int]]  # (rows, cols) per image
    size: int  # longest edge the images are resized to before tiling
    truncated: bool = False  # turns dropped or the last answer shortened
    turns: int = 0  # how many of the sample's turns (up to a cut point) it holds


def fit(layout_of: Callable[[int], Layout], turns: int, max_length: int, min_answer: int) -> Layout:
    """The longest layout of at most max_length tokens that `layout_of(count)` (the first `count` turns) allows.

    Raises BadSample when even the first turn's prompt, images and shortest allowed answer do not fit.
    """
    for count in range(turns, 0, -1):
        layout = layout_of(count)
        if len(layout.ids) <= max_length:
            return replace(layout, truncated=count < turns)
    start, stop = last_answer(layout.kinds)
    needed = start + min(stop - start, min_answer)
    if needed > max_length:
        raise BadSample("too long for max_length", f"the first turn needs {needed} tokens with images at "
                        f"{layout.size}px (its prompt and images {start}); max_length is {max_length}")
    # Everything past `start` is the answer and the template text after it: the cut leaves the prompt whole.
    return replace(layout, ids=layout.ids[:max_length], kinds=layout.kinds[:max_length], truncated=True)


def last_answer(kinds: list[str]) -> tuple[int, int]:
    """[start, stop) of the last run of answer tokens (after any image block inside the answer)."""
    stop = len(kinds) - kinds[::-1].index("answer")
    start = stop
    while start and kinds[start - 1] == "answer":
        start -= 1
    return start, stop
