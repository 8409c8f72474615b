"""The LLM's own chat template, extended so message content may be a list of text/image/video parts.

The LLM's template is rewritten, not replaced: every `message.content` (and `messages[i].content`) read goes
through a macro that renders a plain string unchanged and renders a parts list as its text with one image
(video) token per image (video) part. Text-only conversations therefore render byte for byte as before; the
processor later expands each image token into the full tiled image block.
"""

from __future__ import annotations

import re

MACRO = """{%- macro smvl_content(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content is iterable and content is not mapping -%}
{%- for part in content -%}
{%- if part.type == 'text' -%}{{ part.text }}
{%- elif part.type == 'image' -%}IMAGE_TOKEN
{%- elif part.type == 'video' -%}VIDEO_TOKEN
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
"""

# `message.content`, `messages[0].content`, `m.content` ... but not `message.content_type` or `.contents`.
CONTENT_READ = re.compile(r"\b((?:messages\[[^\]]+\])|(?:[A-Za-z_][A-Za-z_0-9]*))\.content\b(?!\s+is\s+(?:defined|undefined|none|not\s+none))")


class TemplateError(ValueError):
    pass


def extend_template(template: str, image_token: str, video_token: str) -> str:
    """Return `template` with multimodal content support; raise when it has nothing to extend."""
    if not template or "content" not in template:
        raise TemplateError("the LLM has no chat template to extend")
    body = CONTENT_READ.sub(lambda m: f"smvl_content({m.group(1)}.content)", template)
    if body == template:
        raise TemplateError("the LLM's chat template never reads message.content; cannot place images in it")
    macro = MACRO.replace("IMAGE_TOKEN", image_token).replace("VIDEO_TOKEN", video_token)
    return macro + body
