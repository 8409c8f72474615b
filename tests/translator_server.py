"""A fake OpenAI-compatible translator for the translate tests (no tests here): it "translates" word by word from a
small dictionary, counts every request per text, and misbehaves on purpose when a text's script says so.

`script` maps a substring of the text to the behaviour of successive requests for that text ("429", "500",
"timeout", "empty", "english", "lose letters", "cut" (the first two thirds of the translation, finish_reason
"length", as a reply stopped by max_tokens), "ok"); past the end of the list the text is translated. The
server runs on a thread in the test process (`running` from test_serve_helpers), so the counts survive a
translate process killed with `kill -9`.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

WORDS = {
    "question": "问题", "which": "哪个", "label": "标签", "marks": "标出", "the": "", "sun": "太阳",
    "choices": "选项", "answer": "答案", "with": "用", "letter": "字母", "what": "什么", "is": "是", "value": "值",
    "of": "的", "highest": "最高", "bar": "柱", "title": "标题", "document": "文件", "left": "左边",
    "image": "图片", "contains": "包含", "exactly": "正好", "two": "两只", "animals": "动物", "true": "对",
    "or": "还是", "false": "错", "differs": "不同", "between": "之间", "these": "这些", "pictures": "图片",
    "colour": "颜色", "circles": "圆", "picture": "图片", "brightest": "最亮", "how": "怎么", "many": "多少",
    "objects": "物体", "are": "是", "there": "那里", "largest": "最大", "circle": "圆", "red": "红色",
    "blue": "蓝色", "green": "绿色",
}
TOKEN = re.compile(r"[A-Za-z]+|[^A-Za-z]+")


def dictionary_translation(text: str) -> str:
    """Word by word; single capital letters (option letters) and everything that is not a word stay."""
    out = []
    for token in TOKEN.findall(text):
        if not token[0].isalpha():
            out.append(token.replace("?", "？"))
        elif len(token) == 1 and token.isupper():
            out.append(token)
        else:
            out.append(WORDS.get(token.lower(), "词"))
    return "".join(out)


def translator_app(script: dict[str, list[str]] | None = None, delay: float = 0.0, hang: float = 5.0):
    script = script or {}
    counts: Counter[str] = Counter()

    async def chat(request: Request):
        body = await request.json()
        text = body["messages"][-1]["content"]
        counts[text] += 1
        behaviour = "ok"
        for needle, steps in script.items():
            if needle in text:
                behaviour = steps[counts[text] - 1] if counts[text] <= len(steps) else "ok"
        if delay:
            await asyncio.sleep(delay)
        if behaviour == "429":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429, headers={"retry-after": "0"})
        if behaviour == "500":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if behaviour == "timeout":
            await asyncio.sleep(hang)
        full = dictionary_translation(text)
        answer = {"empty": "", "english": text, "lose letters": re.sub(r"\b[A-H]\b", "", full),
                  "cut": full[: 2 * len(full) // 3]}.get(behaviour, full)
        finish = "length" if behaviour == "cut" else "stop"
        return JSONResponse({
            "id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 10 + len(text), "completion_tokens": len(answer),
                      "total_tokens": 10 + len(text) + len(answer)}})

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])
    app.state.counts = counts
    return app
