"""The LLM's own chat template, extended so message content may be a list of text/image/video parts.

The LLM's template is kept byte for byte; a prologue in front of it replaces `messages` with a copy in which
every parts-list content is flattened to one string: its text parts, and one image (video) token per image
(video) part, in order. The original template then only ever sees string contents, so it does not matter how it
reads them (`message.content`, `message['content']`, `messages[0]['content']`, `content` kept in a variable,
`| trim`, `is string` tests...), and text-only conversations render byte for byte as before. The processor later
expands each image token into the full tiled image block.
"""

from __future__ import annotations

# Names start with `smvl_` so they cannot clash with the template's own variables. The last tag is followed by a
# newline that transformers' `trim_blocks` removes: the original template then starts at the beginning of a line,
# so its leading whitespace and `lstrip_blocks` behave exactly as they would without the prologue.
PROLOGUE = """{%- set smvl_flat = namespace(messages=[]) -%}
{%- for smvl_message in messages -%}
{%- if smvl_message is mapping and smvl_message.content is defined and smvl_message.content is not string
      and smvl_message.content is not mapping and smvl_message.content is iterable -%}
{%- set smvl_text = namespace(value='') -%}
{%- for smvl_part in smvl_message.content -%}
{%- if smvl_part.type == 'text' -%}{%- set smvl_text.value = smvl_text.value ~ smvl_part.text -%}
{%- elif smvl_part.type == 'image' -%}{%- set smvl_text.value = smvl_text.value ~ IMAGE_TOKEN -%}
{%- elif smvl_part.type == 'video' -%}{%- set smvl_text.value = smvl_text.value ~ VIDEO_TOKEN -%}
{%- endif -%}
{%- endfor -%}
{%- set smvl_flat.messages = smvl_flat.messages + [dict(smvl_message, content=smvl_text.value)] -%}
{%- else -%}
{%- set smvl_flat.messages = smvl_flat.messages + [smvl_message] -%}
{%- endif -%}
{%- endfor -%}
{%- set messages = smvl_flat.messages %}
"""


class TemplateError(ValueError):
    pass


def extend_template(template: str, image_token: str, video_token: str) -> str:
    """Return `template` with multimodal content support; raise when it has nothing to extend."""
    if not template or "content" not in template:
        raise TemplateError("the LLM has no chat template that renders message content; cannot place images in it")
    prologue = PROLOGUE.replace("IMAGE_TOKEN", repr(image_token)).replace("VIDEO_TOKEN", repr(video_token))
    return prologue + template
