"""Which request fields the server acts on; anything else is a 400 naming it, never accepted and ignored.

A client that sends `frequency_penalty: 0.5` expects other text than it would get here, so it is told. Fields at
the value that changes nothing (a penalty of 0, an empty `logit_bias`, `store: false`) are accepted, and so is
metadata that only names the caller (`user`, `metadata`): OpenAI stores it, a local server has nothing to do with it.
"""

from __future__ import annotations

from smvl.serve.errors import APIError

ACTED_ON = frozenset({
    "messages", "model", "n", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_tokens",
    "ignore_eos", "stream", "stream_options", "chat_template_kwargs", "enable_thinking", "tools", "tool_choice",
    "parallel_tool_calls", "stop", "seed", "logprobs", "top_logprobs", "response_format",
})
METADATA = frozenset({"user", "metadata"})
# The value at which each field changes nothing; any other value is refused.
NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {}, "store": False, "repetition_penalty": 1}


def check_fields(body: dict) -> None:
    for name, value in body.items():
        if value is None or name in ACTED_ON or name in METADATA:
            continue
        if name in NEUTRAL:
            neutral = NEUTRAL[name]
            if value == neutral and isinstance(value, bool) == isinstance(neutral, bool):
                continue
            raise APIError(400, f"`{name}` is not supported by this server (only {NEUTRAL[name]!r} is accepted)",
                           name, "unsupported_parameter")
        raise APIError(400, f"`{name}` is not supported by this server", name, "unsupported_parameter")
