"""Run an exported pair in llama.cpp through llama-cpp-python's bindings (its `mtmd` multimodal library):
what token ids llama.cpp feeds the model for a prompt with images, greedy generation, next-token predictions.

The prompt is our chat template's text with each image token replaced by mtmd's media marker; mtmd expands the
marker into the IDEFICS3 tile block itself (tools/mtmd/mtmd.cpp) and the image features replace whole chunks.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Chunk:
    """A text chunk's token ids, or an image chunk's number of positions (`ids` empty)."""
    ids: tuple[int, ...]
    image_tokens: int = 0


@contextmanager
def plain_cpu_buffers(bindings):
    """Models loaded inside keep their weights in plain CPU buffers: no "extra" buffer types (llama.cpp's
    `--no-repack`). On CPUs with AMX, llama.cpp otherwise repacks quantised weights into AMX buffers, and its AMX
    matmul segfaults on some of them (ggml-org/llama.cpp#20824; a Xeon with AMX here crashed on our q8_0 pair,
    taking the whole test run with it). llama-cpp-python's `Llama` has no argument for it, so its default model
    parameters are wrapped while it loads."""
    default = bindings.llama_model_default_params

    def without_extra_buffers():
        params = default()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        bindings.llama_model_default_params = default


class LlamaPair:
    """A text GGUF + an mmproj GGUF loaded in llama.cpp (CPU)."""

    def __init__(self, text_gguf: Path, mmproj_gguf: Path, n_ctx: int = 4096, threads: int = 2):
        import llama_cpp
        from llama_cpp import mtmd_cpp

        self.llama_cpp, self.mtmd = llama_cpp, mtmd_cpp
        with plain_cpu_buffers(llama_cpp.llama_cpp):  # the module `Llama` reads its defaults from
            self.llm = llama_cpp.Llama(model_path=str(text_gguf), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                                       n_threads=threads, n_threads_batch=threads, n_gpu_layers=0, verbose=False)
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = threads
        self.ctx = mtmd_cpp.mtmd_init_from_file(str(mmproj_gguf).encode(), self.llm.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not load {mmproj_gguf} with {text_gguf}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.marker = mtmd_cpp.mtmd_default_marker().decode()

    def close(self) -> None:
        if self.ctx:
            self.mtmd.mtmd_free(self.ctx)
            self.ctx = None
        self.llm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _tokenize(self, prompt: str, images: list[Image.Image]):
        mtmd = self.mtmd
        bitmaps = []
        for image in images:
            rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))  # (H, W, 3)
            data = (ctypes.c_uint8 * rgb.size).from_buffer_copy(rgb.tobytes())
            bitmaps.append(mtmd.mtmd_bitmap_init(image.width, image.height, data))
        text = prompt.encode()
        inp = mtmd.mtmd_input_text()
        inp.text, inp.text_len, inp.add_special, inp.parse_special = text, len(text), True, True
        chunks = mtmd.mtmd_input_chunks_init()
        array = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
        status = mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(inp), array, len(bitmaps))
        for bitmap in bitmaps:
            mtmd.mtmd_bitmap_free(bitmap)
        if status != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            raise RuntimeError(f"mtmd_tokenize failed ({status}): {len(images)} image(s) for the prompt's markers?")
        return chunks

    def chunks(self, prompt: str, images: list[Image.Image]) -> list[Chunk]:
        mtmd = self.mtmd
        chunks = self._tokenize(prompt, images)
        try:
            out = []
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t()
                    ptr = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    out.append(Chunk(tuple(ptr[j] for j in range(n.value))))
                else:
                    out.append(Chunk((), mtmd.mtmd_input_chunk_get_n_tokens(chunk)))
            return out
        finally:
            mtmd.mtmd_input_chunks_free(chunks)

    def fed_ids(self, prompt: str, images: list[Image.Image], image_token_id: int) -> list[int]:
        """The prompt as llama.cpp feeds it, image positions spelled as `image_token_id` (what our processor puts
        there before the features replace it)."""
        return [t for c in self.chunks(prompt, images) for t in (c.ids or (image_token_id,) * c.image_tokens)]

    def _prefill(self, prompt: str, images: list[Image.Image]) -> int:
        lc = self.llama_cpp
        lc.llama_memory_clear(lc.llama_get_memory(self.llm.ctx), True)
        chunks = self._tokenize(prompt, images)
        try:
            n_past = lc.llama_pos(0)
            status = self.mtmd.mtmd_helper_eval_chunks(self.ctx, self.llm.ctx, chunks, 0, 0, self.llm.n_batch,
                                                       True, ctypes.byref(n_past))
        finally:
            self.mtmd.mtmd_input_chunks_free(chunks)
        if status != 0:
            raise RuntimeError(f"llama.cpp failed to evaluate the prompt ({status})")
        return n_past.value

    def _last_logits(self) -> np.ndarray:
        n_vocab = self.llama_cpp.llama_vocab_n_tokens(self.vocab)
        ptr = self.llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()

    def _feed(self, token: int) -> None:
        lc = self.llama_cpp
        batch = lc.llama_batch_get_one((lc.llama_token * 1)(token), 1)
        if lc.llama_decode(self.llm.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def greedy(self, prompt: str, images: list[Image.Image], max_new_tokens: int, stop: bool = True,
               on_token=None) -> list[int]:
        """Greedy new token ids (ending at an end-of-generation token unless `stop` is off); `on_token(i)` is called
        as each comes out (timing)."""
        self._prefill(prompt, images)
        out = []
        for i in range(max_new_tokens):
            token = int(np.argmax(self._last_logits()))
            out.append(token)
            if on_token:
                on_token(i)
            if stop and self.llama_cpp.llama_vocab_is_eog(self.vocab, token):
                break
            self._feed(token)
        return out

    def forced_top1(self, prompt: str, images: list[Image.Image], continuation: list[int]) -> list[int]:
        """llama.cpp's top-1 prediction at each step of `continuation` fed as given (teacher forcing)."""
        self._prefill(prompt, images)
        top = []
        for token in continuation:
            top.append(int(np.argmax(self._last_logits())))
            self._feed(token)
        return top
