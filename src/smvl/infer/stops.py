"""OpenAI's `stop` strings on streamed text: generation ends at the first one, which is not returned.

Text that may be the start of a stop string is held until the next piece decides, as the thinking splitter holds
a partial `<think>`; the strings are matched on the generated text as decoded, thinking included (as vLLM).
"""

from __future__ import annotations


class StopScanner:
    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """(text to send now, whether a stop string was reached: nothing after it is sent)."""
        if not self.stops:
            return piece, False
        text = self.held + piece
        hits = [at for at in (text.find(s) for s in self.stops) if at >= 0]
        if hits:
            self.held = ""
            return text[:min(hits)], True
        keep = max((n for s in self.stops for n in range(min(len(s) - 1, len(text)), 0, -1)
                    if text.endswith(s[:n])), default=0)
        self.held = text[len(text) - keep:]
        return text[:len(text) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held
