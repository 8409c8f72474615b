"""`smvl chat`: one question, or an interactive session with history, images, videos, thinking on/off and tools.

With tools, the model's `<tool_call>` blocks are parsed after each answer and printed as calls; `/tool RESULT`
answers the oldest unanswered call, and once every call of a turn is answered the model goes on from the results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from smvl.data.samples.images import load_image
from smvl.data.samples.sample import BadSample
from smvl.data.samples.video import VideoSampling, load_video
from smvl.infer.generate import generate_stream, split_thinking
from smvl.infer.tool_calls import parse_tool_calls

DIM, RESET = "\033[2m", "\033[0m"
HELP = ("/image PATH  attach an image to the next question | /video PATH  a video (file or folder of frames) | "
        "/think on|off | /tool RESULT  answer the oldest unanswered tool call | /reset | /exit")


class ThinkStyler:
    """Dims (or hides) the text between <think> and </think> while it streams, tags split across pieces too."""

    def __init__(self, hide: bool, colour: bool):
        self.hide, self.colour, self.inside, self.pending = hide, colour, False, ""

    def __call__(self, piece: str) -> str:
        text, out = self.pending + piece, []
        self.pending = ""
        while text:
            tag = "</think>" if self.inside else "<think>"
            at = text.find(tag)
            if at < 0:
                keep = next((k for k in range(len(tag) - 1, 0, -1) if text.endswith(tag[:k])), 0)
                body, self.pending = (text[:-keep], text[-keep:]) if keep else (text, "")
                out.append(self._style(body))
                break
            out.append(self._style(text[:at]))
            text = text[at + len(tag):]
            self.inside = not self.inside
            if self.colour and not self.hide:
                out.append(DIM if self.inside else RESET)
        return "".join(out)

    def _style(self, body: str) -> str:
        return "" if (self.inside and self.hide) else body


class Chat:
    """A conversation with history; images attached with /image go with the next question."""

    def __init__(self, model, processor, system: str | None, thinking: bool, hide_thinking: bool, options: dict,
                 out=None, tools: list[dict] | None = None):
        self.model, self.processor, self.options = model, processor, options
        self.out = out or sys.stdout
        self.system, self.thinking, self.hide = system, thinking, hide_thinking
        self.tools = tools or None
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []
        self.images, self.pending_images = [], []
        self.videos, self.pending_videos = [], []
        self.unanswered: list[str] = []  # ids of the last turn's tool calls still waiting for a /tool result

    def attach(self, path: str) -> None:
        self.pending_images.append(load_image(Path(path).expanduser()))

    def attach_video(self, path: str) -> None:
        """Frames sampled as the model's video processor says (its fps and frame limit)."""
        sampling = VideoSampling.of(self.processor.video_processor)
        self.pending_videos.append(load_video(Path(path).expanduser(), sampling=sampling))

    def ask(self, question: str) -> str:
        """Stream one answer; Ctrl-C stops it early and keeps what was said so far in the history."""
        parts = ([{"type": "image"} for _ in self.pending_images] + [{"type": "video"} for _ in self.pending_videos]
                 + [{"type": "text", "text": question}])
        self.messages.append({"role": "user", "content": parts})
        self.images += self.pending_images
        self.videos += self.pending_videos
        self.pending_images, self.pending_videos = [], []
        self.unanswered = []
        return self.reply()

    def reply(self) -> str:
        """Streams the model's next turn and adds it to the history, its tool calls parsed (and printed)."""
        colour = self.out.isatty()
        style = ThinkStyler(self.hide, colour)
        generation = generate_stream(self.model, self.processor, self.messages, self.images, self.thinking,
                                     videos=self.videos, tools=self.tools, **self.options)
        pieces = []
        try:
            for piece in generation:
                pieces.append(piece)
                self.out.write(style(piece))
                self.out.flush()
        except KeyboardInterrupt:
            generation.cancel()
            self.out.write((RESET if colour else "") + " (stopped)")
        self.out.write((RESET if colour else "") + "\n")
        answer = "".join(pieces).strip()
        self.messages.append(self.assistant(answer))
        return answer

    def assistant(self, answer: str) -> dict:
        """The history's message for `answer`; its tool calls (when tools are on) parsed, printed and awaited."""
        if not self.tools:
            return {"role": "assistant", "content": answer}
        reasoning, rest = split_thinking(answer)
        parsed = parse_tool_calls(rest)
        if not parsed.calls:
            return {"role": "assistant", "content": answer}
        calls = [call.openai() for call in parsed.calls]
        for call in calls:
            print(f"[tool call {call['id']}] {call['function']['name']}({call['function']['arguments']})",
                  file=self.out)
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])  # the template writes objects
        self.unanswered = [call["id"] for call in calls]
        print(f"(answer with /tool RESULT, {len(calls)} call{'s' if len(calls) > 1 else ''})", file=self.out)
        return {"role": "assistant", "content": parsed.content or "", "reasoning_content": reasoning,
                "tool_calls": calls}

    def tool_result(self, result: str) -> None:
        """Answers the oldest unanswered call; the model goes on once the turn's calls are all answered."""
        if not self.unanswered:
            print("(no tool call is waiting for a result)", file=self.out)
            return
        self.messages.append({"role": "tool", "tool_call_id": self.unanswered.pop(0), "content": result})
        if not self.unanswered:
            self.reply()

    def command(self, line: str) -> bool:
        """Handle a /command; False to stop the session."""
        name, _, arg = line.partition(" ")
        if name == "/exit":
            return False
        if name == "/reset":
            self.reset()
            print("(history cleared)", file=self.out)
        elif name == "/tool" and arg.strip():
            self.tool_result(arg.strip())
        elif name == "/think" and arg.strip() in ("on", "off"):
            self.thinking = arg.strip() == "on"
            print(f"(thinking {arg.strip()})", file=self.out)
        elif name == "/image" and arg.strip():
            try:
                self.attach(arg.strip())
                print(f"(image attached: {arg.strip()})", file=self.out)
            except BadSample as exc:
                print(f"(cannot use {arg.strip()}: {exc})", file=self.out)
        elif name == "/video" and arg.strip():
            try:
                self.attach_video(arg.strip())
                print(f"(video attached: {arg.strip()}, {len(self.pending_videos[-1])} frames)", file=self.out)
            except BadSample as exc:
                print(f"(cannot use {arg.strip()}: {exc})", file=self.out)
        else:
            print(HELP, file=self.out)
        return True

    def repl(self, read=input) -> None:
        print(HELP, file=self.out)
        while True:
            try:
                line = read("> ").strip()
            except (EOFError, KeyboardInterrupt):
                return
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return
                continue
            self.ask(line)
