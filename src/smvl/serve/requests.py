"""OpenAI chat-completion requests -> our messages and images, every limit checked, errors in OpenAI's shape."""

from __future__ import annotations

import base64
import binascii
import urllib.request
from pathlib import Path

from smvl.data.images import load_image
from smvl.data.sample import BadSample
from smvl.serve.limits import Limits


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _image_bytes(url: str, limits: Limits) -> bytes:
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise APIError(400, "image data URIs must be base64-encoded", "messages", "invalid_image")
        if len(payload) * 3 // 4 > limits.max_image_bytes:
            raise APIError(413, f"image is over {limits.max_image_bytes} bytes", "messages", "image_too_large")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise APIError(400, "image data URI is not valid base64", "messages", "invalid_image") from None
    if url.startswith(("http://", "https://")):
        if not limits.allow_remote_images:
            raise APIError(400, "remote image URLs are disabled on this server; send a data: URI", "messages",
                           "remote_images_disabled")
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (enabled explicitly by the operator)
            data = response.read(limits.max_image_bytes + 1)
    else:
        if not limits.allow_local_files:
            raise APIError(400, "local image paths are disabled on this server; send a data: URI", "messages",
                           "local_files_disabled")
        path = Path(url.removeprefix("file://"))
        if not path.is_file():
            raise APIError(400, f"image file {path} does not exist", "messages", "invalid_image")
        data = path.read_bytes()
    if len(data) > limits.max_image_bytes:
        raise APIError(413, f"image is over {limits.max_image_bytes} bytes", "messages", "image_too_large")
    return data


def _part(part, limits: Limits, images: list) -> dict:
    if not isinstance(part, dict) or "type" not in part:
        raise APIError(400, "each content part must be an object with a type", "messages")
    if part["type"] == "text":
        if not isinstance(part.get("text"), str):
            raise APIError(400, "text parts need a string `text`", "messages")
        return {"type": "text", "text": part["text"]}
    if part["type"] == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str):
            raise APIError(400, "image_url parts need a url", "messages")
        if len(images) >= limits.max_images:
            raise APIError(400, f"at most {limits.max_images} images per request", "messages", "too_many_images")
        try:
            images.append(load_image(_image_bytes(url, limits), max_pixels=limits.max_pixels))
        except BadSample as exc:
            status = 413 if exc.reason == "image too large" else 400
            raise APIError(status, f"unusable image: {exc}", "messages", "invalid_image") from None
        return {"type": "image"}
    raise APIError(400, f"unsupported content part type {part['type']!r}", "messages")


def parse_chat_request(body, limits: Limits, model_name: str) -> dict:
    """Validated {messages, images, stream, max_tokens, temperature, top_p, thinking}; APIError otherwise."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    if body.get("model") not in (None, model_name):
        raise APIError(404, f"model {body.get('model')!r} does not exist; this server serves {model_name!r}",
                       "model", "model_not_found")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise APIError(400, "`messages` must be a non-empty list", "messages")
    images, messages = [], []
    for m in raw:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
            raise APIError(400, "each message needs a role of system, user, assistant or tool", "messages")
        content = m.get("content")
        if isinstance(content, list):
            content = [_part(p, limits, images) for p in content]
        elif content is not None and not isinstance(content, str):
            raise APIError(400, "message content must be a string or a list of parts", "messages")
        messages.append({**{k: v for k, v in m.items() if k in ("role", "tool_calls", "reasoning_content")},
                         "content": content or ""})
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", min(256, limits.max_tokens)))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= limits.max_tokens:
        raise APIError(400, f"max_tokens must be an integer from 1 to {limits.max_tokens}", "max_tokens")
    temperature = body.get("temperature", 0.0)
    top_p = body.get("top_p", 1.0)
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise APIError(400, "temperature must be between 0 and 2", "temperature")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise APIError(400, "top_p must be in (0, 1]", "top_p")
    thinking = body.get("enable_thinking", (body.get("chat_template_kwargs") or {}).get("enable_thinking", False))
    return {"messages": messages, "images": images, "stream": bool(body.get("stream", False)),
            "max_tokens": max_tokens, "temperature": float(temperature), "top_p": float(top_p),
            "thinking": bool(thinking)}
