"""The web page, driven in headless Chromium: a chat with images, streamed answers, thinking, stop, clear, errors and
the example, against the tiny model's server (or, where the answer must be known, a fake streaming endpoint)."""

from __future__ import annotations

import base64
import io
import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_serve_helpers import loaded, running  # noqa: F401

from smvl.data.sources.synthetic import answer, generate
from smvl.serve.app import build_app
from smvl.serve.example import INDEX, SEED, SPLIT, example
from smvl.serve.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COMPLETIONS = "**/v1/chat/completions"
DONE = ".turn.assistant[data-state='done']"
MODEL_WAIT = 30_000  # ms, for the tiny model on a shared CPU


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (.ci/run does) to run the browser test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        except Exception as exc:  # a machine where Chromium cannot start is not a failure of the page
            pytest.skip(f"chromium did not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


@contextmanager
def serving(loaded, **settings):
    """(base URL, app) of the tiny model's server; answers are short unless the test asks otherwise."""
    app = build_app(*loaded, Settings(**{"default_max_tokens": 24, **settings}))
    with running(app) as url:
        yield url, app


class Page:
    """A page at `url` with what it sent to /v1/chat/completions (`bodies`, `headers`), every URL it asked for,
    the requests that were cut off (`aborted`), and the problems it logged (script errors, refused resources, Content-Security-Policy violations)."""

    def __init__(self, browser, url: str, width: int = 1280, height: int = 800):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.bodies, self.headers, self.urls, self.problems, self.aborted = [], [], [], [], []
        self.page.on("request", self._request)
        self.page.on("requestfailed", lambda r: self.aborted.append(r.url))
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("dialog", lambda d: self.problems.append(f"dialog: {d.message}"))
        self.page.goto(url + "/")

    def _request(self, request) -> None:
        self.urls.append(request.url)
        if request.method == "POST" and request.url.endswith("/v1/chat/completions"):
            self.bodies.append(json.loads(request.post_data))
            self.headers.append(request.headers)

    def ask(self, question: str) -> None:
        self.page.fill("#question", question)
        self.page.click("#send")

    def wait_done(self, n: int, timeout: int = MODEL_WAIT) -> None:
        self.page.locator(DONE).nth(n - 1).wait_for(timeout=timeout)

    def texts(self, selector: str) -> list[str]:
        return self.page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")

    def close(self) -> None:
        self.context.close()


def png(colour=(220, 30, 30), size=(96, 96)) -> bytes:
    buf = io.BytesIO()
    # The tiny model's weights are random: this image happens to get visible characters back, not just newlines.
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def sse(*deltas, error: str | None = None) -> str:
    """A streamed answer in OpenAI's chunk format, as the server sends it (optionally ending in an error event)."""
    events = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    if error:
        events.append({"error": {"message": error, "type": "server_error", "param": None, "code": None}})
    else:
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events) + "data: [DONE]\n\n"


def fake_stream(page, *deltas, error: str | None = None) -> None:
    """Answers the page's chat requests with `deltas` instead of the model (whose random answers cannot be known)."""
    page.route(COMPLETIONS, lambda route: route.fulfill(status=200, body=sse(*deltas, error=error),
                                                        headers={"Content-Type": "text/event-stream"}))


def user_text(message: dict) -> str:
    return next(p["text"] for p in message["content"] if p["type"] == "text")


def test_two_turns_send_the_whole_history_with_the_image_in_the_turn_that_attached_it(loaded, browser):
    with serving(loaded) as (url, _):
        p = Page(browser, url)
        image = png()
        p.page.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": image}])
        p.page.wait_for_selector("#pending img.thumb[src^='data:image/png']")
        p.page.click("#pending button")  # removable before sending
        assert p.page.is_hidden("#pending") and p.texts("#pending img") == []
        p.page.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": image}])
        p.page.wait_for_selector("#pending img.thumb")
        p.page.fill("#question", "图中有几个物体？")
        p.page.press("#question", "Enter")
        p.wait_done(1)
        assert p.page.is_hidden("#pending") and p.page.input_value("#question") == ""
        thumbs = p.page.eval_on_selector_all(".turn.user img.thumb", "imgs => imgs.map(i => i.src)")
        first_answer = p.texts(".answer")[0]
        p.ask("那它是什么颜色？")
        p.wait_done(2)
        ARTIFACTS.mkdir(exist_ok=True)
        p.page.screenshot(path=str(ARTIFACTS / "web-tiny-model.png"))
        p.close()
    assert thumbs == ["data:image/png;base64," + base64.b64encode(image).decode()]
    assert first_answer.strip(), "the tiny model's answer to this image has visible characters"
    first, second = p.bodies
    assert first["stream"] is True and first["chat_template_kwargs"] == {"enable_thinking": False}
    assert second["messages"] == [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": thumbs[0]}},
                                     {"type": "text", "text": "图中有几个物体？"}]},
        {"role": "assistant", "content": first_answer.strip()},
        {"role": "user", "content": [{"type": "text", "text": "那它是什么颜色？"}]},
    ]
    assert not p.problems, p.problems


def test_an_image_can_be_pasted_or_dropped_onto_the_page(loaded, browser):
    with serving(loaded) as (url, _):
        p = Page(browser, url)
        p.page.evaluate("""async (b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const file = () => new File([bytes], "a.png", {type: "image/png"});
            const pasted = new DataTransfer(), dropped = new DataTransfer();
            pasted.items.add(file());
            dropped.items.add(file());
            document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: pasted, bubbles: true}));
            document.querySelector("main").dispatchEvent(new DragEvent("drop", {dataTransfer: dropped, bubbles: true}));
        }""", base64.b64encode(png()).decode())
        p.page.locator("#pending img.thumb").nth(1).wait_for()
        previews = p.page.eval_on_selector_all("#pending img.thumb", "imgs => imgs.map(i => i.src)")
        p.close()
    assert previews == ["data:image/png;base64," + base64.b64encode(png()).decode()] * 2


def test_the_answer_grows_as_the_stream_arrives(loaded, browser):
    with serving(loaded, default_max_tokens=60) as (url, _):
        p = Page(browser, url)
        # Every text the answer shows, as the browser renders it (the observer sees each chunk read).
        p.page.evaluate("""() => { window.seen = []; new MutationObserver(() => {
            const a = document.querySelector('.answer'); if (a) window.seen.push(a.textContent);
        }).observe(document.getElementById('turns'), {subtree: true, childList: true, characterData: true}); }""")
        p.page.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": png()}])
        p.page.wait_for_selector("#pending img.thumb")
        p.ask("图中有几个物体？")
        p.wait_done(1)
        seen = p.page.evaluate("window.seen")
        final = p.texts(".answer")[0]
        p.close()
    lengths = sorted({len(s) for s in seen if s})
    assert len(lengths) >= 3, f"the answer appeared in {len(lengths)} step(s): {lengths}"
    assert all(final.startswith(s) for s in seen)  # each shown text is a beginning of the answer


def test_stop_aborts_the_stream_keeps_the_partial_answer_and_the_server_stops_generating(loaded, browser):
    with serving(loaded, default_max_tokens=1000, max_tokens=1000) as (url, app):
        generations = []
        start_stream = app.state.worker.start_stream

        async def spy(req):
            generation, pieces = await start_stream(req)
            generations.append(generation)
            return generation, pieces

        app.state.worker.start_stream = spy
        p = Page(browser, url)
        p.page.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": png()}])
        p.page.wait_for_selector("#pending img.thumb")
        p.ask("图中有几个物体？")
        p.page.wait_for_function("() => document.querySelector('.answer')?.textContent.length > 0",
                                 timeout=MODEL_WAIT)
        assert p.page.is_visible("#stop") and p.page.is_hidden("#send")
        p.page.click("#stop")
        p.page.wait_for_selector(".turn.assistant[data-state='stopped']")
        partial = p.texts(".answer")[0]
        note = p.texts(".note")[0]
        assert p.page.is_visible("#send") and p.page.is_hidden("#stop")
        deadline = time.time() + 20
        while app.state.worker.busy and time.time() < deadline:
            time.sleep(0.05)
        busy = app.state.worker.busy
        fake_stream(p.page, {"content": "好的"})
        p.ask("继续")
        p.wait_done(1)
        p.close()
    assert partial and "已停止" in note
    assert busy == 0 and generations[0].finish_reason == "cancelled" and generations[0].completion_tokens < 1000
    assert p.bodies[1]["messages"][1] == {"role": "assistant", "content": partial.strip()}  # the partial answer stays


def test_clear_empties_the_conversation(loaded, browser):
    with serving(loaded) as (url, _):
        p = Page(browser, url)
        fake_stream(p.page, {"content": "一个"})
        p.ask("图中有几个物体？")
        p.wait_done(1)
        assert p.page.is_hidden("#welcome")
        p.page.unroute(COMPLETIONS)
        p.page.route(COMPLETIONS, lambda route: None)  # never answered: cleared while it streams
        p.ask("再问一个")
        p.page.locator(".turn.assistant[data-state='streaming']").wait_for()
        p.page.click("#clear")
        assert p.page.eval_on_selector_all(".turn", "n => n.length") == 0 and p.page.is_visible("#welcome")
        assert p.page.is_visible("#send")
        p.page.unroute(COMPLETIONS)
        fake_stream(p.page, {"content": "你好"})
        p.ask("你好")
        p.wait_done(1)
        p.close()
    assert [len(b["messages"]) for b in p.bodies] == [1, 3, 1] and p.aborted == [url + "/v1/chat/completions"]
    assert user_text(p.bodies[2]["messages"][0]) == "你好"
    assert not p.problems, p.problems


def test_thinking_shows_collapsed_above_the_answer_and_model_text_is_never_markup(loaded, browser):
    reasoning, reply = "先找到正方形，\n它是蓝色的。", "<b>蓝色</b><img src=x onerror=alert(1)>"
    with serving(loaded) as (url, _):
        p = Page(browser, url)
        fake_stream(p.page, {"role": "assistant", "content": ""}, {"reasoning_content": reasoning[:4]},
                    {"reasoning_content": reasoning[4:]}, {"content": reply})
        p.page.check("#thinking")
        p.ask("图中的正方形是什么颜色？")
        p.wait_done(1)
        turn = p.page.locator(".turn.assistant").first
        details_open = turn.locator("details.thinking").evaluate("d => d.open")
        order = turn.evaluate("t => [...t.children].filter(c => c.checkVisibility()).map(c => c.className)")
        thought, shown = p.texts(".thought")[0], p.texts(".answer")[0]
        markup = p.page.eval_on_selector_all(".answer *", "n => n.length")
        turn.locator("summary").click()
        visible_after_click = turn.locator(".thought").is_visible()
        p.page.uncheck("#thinking")
        fake_stream(p.page, {"content": "蓝色"})
        p.ask("再说一遍")
        p.wait_done(2)
        second_has_thinking = p.page.locator(".turn.assistant").nth(1).locator("details.thinking").is_visible()
        p.close()
    assert [b["chat_template_kwargs"]["enable_thinking"] for b in p.bodies] == [True, False]
    assert details_open is False and visible_after_click
    assert order == ["thinking", "answer"] and thought == reasoning
    assert shown == reply and markup == 0
    assert not second_has_thinking
    assert not p.problems, p.problems


def test_an_error_mid_stream_is_shown_in_the_conversation_with_the_partial_answer(loaded, browser):
    with serving(loaded) as (url, _):
        p = Page(browser, url)
        fake_stream(p.page, {"content": "一半"}, error="generation failed: RuntimeError")
        p.ask("图中有几个物体？")
        p.page.wait_for_selector(".turn.assistant[data-state='error']")
        shown, error = p.texts(".answer")[0], p.texts(".note .error")[0]
        p.close()
    assert shown == "一半" and error == "generation failed: RuntimeError"
    assert not p.problems, p.problems  # shown in the page, not in an alert()


def test_a_refused_request_shows_its_error_and_the_page_asks_for_the_key(loaded, browser):
    with serving(loaded, api_key="sekret") as (url, _):
        p = Page(browser, url)
        assert p.page.is_hidden("#key")
        p.ask("你好")
        p.page.wait_for_selector(".turn.assistant[data-state='error']")
        error = p.texts(".note .error")[0]
        assert p.page.is_visible("#key")
        p.page.fill("#key", "sekret")
        p.page.click(".note .retry")
        p.wait_done(1)
        stored = p.page.evaluate("sessionStorage.getItem('smvl-api-key')")
        turns = p.page.eval_on_selector_all(".turn", "n => n.length")
        p.close()
    assert error.startswith("401: missing or wrong API key")
    assert stored == "sekret" and turns == 2  # retried in place, not asked twice
    assert "authorization" not in p.headers[0] and p.headers[1]["authorization"] == "Bearer sekret"
    assert [len(b["messages"]) for b in p.bodies] == [1, 1]
    assert not [m for m in p.problems if "401" not in m], p.problems  # the browser logs the 401 itself


def test_the_example_is_a_synthetic_test_image_with_a_question_of_each_type():
    sample, objects = generate(SPLIT, SEED, INDEX)
    shown = example()
    data = base64.b64decode(shown["image"].removeprefix("data:image/png;base64,"))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), np.asarray(sample.images[0]))
    assert 3 <= len(shown["questions"]) <= 5
    assert len({q["kind"] for q in shown["questions"]}) == len(shown["questions"])
    for q in shown["questions"]:  # the synthetic set's own answer, for the one object the question names
        named = [o for o in objects if o["shape"] in q["text"] or o["colour"] in q["text"]]
        assert len(named) == (0 if q["kind"] == "count" else 1), q
        assert q["answer"] == answer(q["kind"], (named or objects)[0], objects), q


def test_an_example_question_asks_about_the_example_image(loaded, browser):
    with serving(loaded) as (url, _):
        p = Page(browser, url)
        p.page.wait_for_selector("#example:not([hidden])")
        shown_image = p.page.get_attribute("#example-image", "src")
        questions = p.texts("#questions button")
        p.page.click("#questions button >> nth=0")
        p.wait_done(1)
        thumbs = p.page.eval_on_selector_all(".turn.user img.thumb", "imgs => imgs.map(i => i.src)")
        p.close()
    expected = example()
    assert shown_image == expected["image"] and questions == [q["text"] for q in expected["questions"]]
    assert p.bodies[0]["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": expected["image"]}}, {"type": "text", "text": questions[0]}]}]
    assert thumbs == [expected["image"]]
    assert not p.problems, p.problems


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_the_page_fits_the_window_works_offline_and_is_screenshot(loaded, browser, width, height):
    with serving(loaded) as (url, _):
        p = Page(browser, url, width, height)
        response = p.page.request.get(url + "/")
        p.page.wait_for_selector("#example:not([hidden])")
        ARTIFACTS.mkdir(exist_ok=True)
        p.page.screenshot(path=str(ARTIFACTS / f"web-{width}x{height}-start.png"))
        p.page.check("#thinking")
        fake_stream(p.page, {"reasoning_content": "图中有四个物体，左上角是一个正方形，它是蓝色的。"},
                    {"content": "蓝色"})
        p.page.click("#questions button >> nth=0")
        p.wait_done(1)
        fake_stream(p.page, {"reasoning_content": "正方形在左上角。"}, {"content": "上边"})
        p.ask("那它在上边还是下边？")
        p.wait_done(2)
        p.page.click("summary >> nth=0")  # one thinking open, one collapsed
        p.page.set_input_files("#file", files=[{"name": "b.png", "mimeType": "image/png",
                                                "buffer": png((30, 70, 225))}])
        p.page.wait_for_selector("#pending img.thumb")
        p.page.fill("#question", "这张图里有什么？")
        overflow = p.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        send_box = p.page.locator("#send").bounding_box()
        p.page.screenshot(path=str(ARTIFACTS / f"web-{width}x{height}.png"))
        p.close()
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert overflow <= 0, f"{overflow}px wider than a {width}px window"
    assert send_box["x"] + send_box["width"] <= width and send_box["y"] + send_box["height"] <= height
    assert all(u.startswith((url, "data:")) for u in p.urls), p.urls  # nothing from another site
    assert not p.problems, p.problems  # a Content-Security-Policy violation is logged as an error
