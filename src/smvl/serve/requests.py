"""OpenAI chat-completion request bodies -> validated generation requests; every limit but prompt tokens here."""

from __future__ import annotations

from dataclasses import dataclass, field

from smvl.infer.grammar import Spec
from smvl.infer.pick import Sampling
from smvl.serve.errors import APIError
from smvl.serve.fields import check_fields
from smvl.serve.images import fetch_image
from smvl.serve.settings import Settings
from smvl.serve.tools import (grammar_spec, parse_response_format, parse_tool_choice, parse_tools,
                              template_tool_calls)
from smvl.serve.videos import fetch_video

ROLES = ("system", "developer", "user", "assistant", "tool")  # developer: OpenAI's newer name for system
MAX_STOPS = 4  # OpenAI's limit
MAX_TOP_LOGPROBS = 20
# Message fields besides content that chat templates render (tool calls, earlier thinking, tool names and ids).
EXTRA_FIELDS = ("tool_calls", "reasoning_content", "name", "tool_call_id")
MAX_DEPTH = 32  # of a message field: deeper trees cost the template's recursion, and no real tool call needs it


@dataclass
class ChatRequest:
    messages: list[dict]
    images: list = field(default_factory=list)
    videos: list = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    thinking: bool = False
    min_tokens: int = 0  # vLLM's: no end token before this many
    ignore_eos: bool = False  # vLLM's: generate max_tokens whatever the model says
    tools: list[dict] | None = None
    tool_choice: object = "none"  # "none" | "auto" | "required" | {"type": "function", "function": {"name"}}
    parallel_tool_calls: bool = True
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_logprobs: int | None = None  # None: no logprobs
    grammar: Spec | None = None  # constrained decoding: a forced tool call or a JSON answer

    def sampling(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}

    def row_sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_p, self.top_k, self.seed)

    @property
    def parse_calls(self) -> bool:
        """Whether tool-call blocks in the answer become `tool_calls` (not for tool_choice "none", as vLLM)."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def least_tokens(self) -> int:
        return self.max_tokens if self.ignore_eos else self.min_tokens


def _url_of(part: dict, kind: str) -> str:
    """An `image_url` / `video_url` part's URL: `{"url": ...}` as OpenAI sends it, or a bare string."""
    spec = part.get(kind)
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise APIError(400, f"{kind} parts need a url", "messages")
    return url


def _part(part, settings: Settings, images: list, videos: list, sampling=None) -> dict:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise APIError(400, "each content part must be an object with a type", "messages")
    if part["type"] == "text":
        if not isinstance(part.get("text"), str):
            raise APIError(400, "text parts need a string `text`", "messages")
        return {"type": "text", "text": part["text"]}
    if part["type"] == "image_url":
        url = _url_of(part, "image_url")
        if len(images) >= settings.max_images:
            raise APIError(400, f"at most {settings.max_images} images per request", "messages", "too_many_images")
        images.append(fetch_image(url, settings))
        return {"type": "image"}
    if part["type"] == "video_url":
        url = _url_of(part, "video_url")
        if len(videos) >= settings.max_videos:
            raise APIError(400, f"at most {settings.max_videos} videos per request", "messages", "too_many_videos")
        videos.append(fetch_video(url, settings, sampling))
        return {"type": "video"}
    raise APIError(400, f"unsupported content part type {part['type']!r}", "messages")


def rendered_size(value) -> int:
    """About the characters a template writes for `value` (its JSON length): counted like content, because it
    is tokenized like content. Iterative, so any nesting the JSON parser allowed is measured without recursion."""
    total, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise APIError(400, f"message fields may be nested at most {MAX_DEPTH} levels", "messages")
        if isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend((x, depth + 1) for pair in item.items() for x in pair)
        elif isinstance(item, list):
            total += 2 + 2 * len(item)
            stack.extend((x, depth + 1) for x in item)
        elif isinstance(item, str):
            total += len(item)
        else:
            total += 8
    return total


def _messages(raw, settings: Settings, sampling=None, chars: int = 0) -> tuple[list[dict], list, list]:
    if not isinstance(raw, list) or not raw:
        raise APIError(400, "`messages` must be a non-empty list", "messages")
    # Counted before any image is decoded, so an over-long request costs nothing.
    n_images = sum(1 for m in raw if isinstance(m, dict) and isinstance(m.get("content"), list)
                   for p in m["content"] if isinstance(p, dict) and p.get("type") == "image_url")
    if n_images > settings.max_images:
        raise APIError(400, f"{n_images} images; at most {settings.max_images} per request", "messages",
                       "too_many_images")
    images, videos, messages = [], [], []
    for m in raw:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise APIError(400, f"each message needs a role of {', '.join(ROLES)}", "messages")
        content = m.get("content")
        if isinstance(content, list):
            content = [_part(p, settings, images, videos, sampling) for p in content]
            chars += sum(len(p.get("text", "")) for p in content)
        elif content is None or isinstance(content, str):
            content = content or ""
            chars += len(content)
        else:
            raise APIError(400, "message content must be a string or a list of parts", "messages")
        kept = {k: v for k, v in m.items() if k in EXTRA_FIELDS}
        chars += rendered_size(kept)
        if chars > settings.max_prompt_chars:
            raise APIError(400, f"the prompt cannot fit {settings.max_prompt_tokens} tokens", "messages",
                           "context_length_exceeded")
        if "tool_calls" in kept:
            if m["role"] != "assistant":
                raise APIError(400, "only assistant messages carry `tool_calls`", "messages")
            kept["tool_calls"] = template_tool_calls(kept["tool_calls"])
        role = "system" if m["role"] == "developer" else m["role"]
        messages.append({"role": role, **kept, "content": content})
    return messages, images, videos


def _number(body: dict, name: str, default, low: float, high: float, integer: bool = False):
    value = body.get(name)
    if value is None:
        return default
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise APIError(400, f"`{name}` must be {kind} from {low} to {high}", name)
    return value


def _stop(raw) -> tuple[str, ...]:
    stops = [raw] if isinstance(raw, str) else raw if raw is not None else []
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise APIError(400, f"`stop` must be a non-empty string or a list of at most {MAX_STOPS}", "stop")
    return tuple(stops)


def _flag(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise APIError(400, f"`{name}` must be true or false", name)
    return value


def _top_logprobs(body: dict) -> int | None:
    """How many alternatives each token's entry lists; None when logprobs were not asked for."""
    top = _number(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS, integer=True)
    if not _flag(body, "logprobs", False):
        if body.get("top_logprobs") is not None:
            raise APIError(400, "`top_logprobs` needs `logprobs: true`", "top_logprobs")
        return None
    return top


def parse_chat_request(body, settings: Settings, model_name: str, sampling=None) -> ChatRequest:
    """A validated ChatRequest with its images and videos decoded (frames as `sampling`, the model's video
    processor, says); APIError (4xx) otherwise."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    check_fields(body)
    if body.get("model") not in (None, "", model_name):
        raise APIError(404, f"the model {body.get('model')!r} does not exist; this server serves {model_name!r}",
                       "model", "model_not_found")
    if body.get("n") not in (None, 1):
        raise APIError(400, "only n=1 is supported", "n")
    limit = settings.max_tokens
    default = min(settings.default_max_tokens, limit)
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number(body, key, default, 1, limit, integer=True)
    temperature = _number(body, "temperature", 0.0, 0, 2)
    top_p = _number(body, "top_p", 1.0, 0, 1)
    if top_p == 0:
        raise APIError(400, "`top_p` must be above 0", "top_p")
    top_k = _number(body, "top_k", 0, 0, 10**6, integer=True)
    min_tokens = _number(body, "min_tokens", 0, 0, max_tokens, integer=True)
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise APIError(400, "`ignore_eos` must be true or false", "ignore_eos")
    stream_options = body.get("stream_options") or {}
    kwargs = body.get("chat_template_kwargs") or {}
    if not isinstance(stream_options, dict) or not isinstance(kwargs, dict):
        raise APIError(400, "`stream_options` and `chat_template_kwargs` must be objects")
    if set(stream_options) - {"include_usage"} or set(kwargs) - {"enable_thinking"}:
        name = "stream_options" if set(stream_options) - {"include_usage"} else "chat_template_kwargs"
        raise APIError(400, "only `stream_options.include_usage` and `chat_template_kwargs.enable_thinking` are "
                            "supported", name, "unsupported_parameter")
    thinking = body.get("enable_thinking", kwargs.get("enable_thinking", False))
    tools = parse_tools(body.get("tools"))
    tool_choice = parse_tool_choice(body.get("tool_choice"), tools)
    parallel = _flag(body, "parallel_tool_calls", True)
    seed = _number(body, "seed", None, -2**63, 2**64 - 1, integer=True)
    grammar = grammar_spec(tools, tool_choice, parallel, parse_response_format(body.get("response_format")),
                           bool(thinking))
    stop, top_logprobs = _stop(body.get("stop")), _top_logprobs(body)
    chars = rendered_size(tools) if tools else 0  # the template writes them into the prompt
    messages, images, videos = _messages(body.get("messages"), settings, sampling, chars)
    return ChatRequest(messages, images, videos, stream=bool(body.get("stream", False)),
                       include_usage=bool(stream_options.get("include_usage", False)), max_tokens=max_tokens,
                       temperature=float(temperature), top_p=float(top_p), top_k=top_k, thinking=bool(thinking),
                       min_tokens=min_tokens, ignore_eos=ignore_eos, tools=tools, tool_choice=tool_choice,
                       parallel_tool_calls=parallel, stop=stop, seed=seed,
                       top_logprobs=top_logprobs, grammar=grammar)
