"""Generated token ids -> text pieces as soon as they are complete characters.

TextIteratorStreamer waits for a space or a CJK ideograph, which holds back Chinese punctuation and unspaced
text. Byte-level BPE (Qwen's) decodes a prefix stably except for a character cut mid-UTF-8.
"""

from __future__ import annotations


class TextDecoder:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: list[int] = []
        self.printed = 0

    def _decode(self) -> str:
        return self.tokenizer.decode(self.cache, skip_special_tokens=True)

    def feed(self, ids: list[int]) -> str:
        """The new text these ids complete ("" while a character is still cut)."""
        self.cache += ids
        text = self._decode()
        # A character cut mid-UTF-8 shows as up to three U+FFFD until its last byte comes; more are real garbage.
        text = text[:len(text) - min(3, len(text) - len(text.rstrip("\ufffd")))]
        piece = text[self.printed:]
        self.printed = max(self.printed, len(text))
        if text.endswith("\n"):  # a fresh start keeps each decode short
            self.cache, self.printed = [], 0
        return piece

    def flush(self) -> str:
        """Whatever is still held back, at the end of generation."""
        piece = self._decode()[self.printed:] if self.cache else ""
        self.cache, self.printed = [], 0
        return piece
