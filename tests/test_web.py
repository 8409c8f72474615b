"""The web page, driven in headless Chromium: attach an image, ask in Chinese, see the answer stream in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from test_serve_helpers import running

from smvl.serve.app import create_app
from smvl.serve.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


def test_page_answers_a_question_about_an_uploaded_image(tiny_model, browser, tmp_path):
    image = tmp_path / "q.png"
    # The tiny model's weights are random: this image happens to get visible characters back, not just newlines.
    Image.new("RGB", (96, 96), (220, 30, 30)).save(image)
    with running(create_app(tiny_model, Settings(default_max_tokens=40))) as url:
        page = browser.new_page(viewport={"width": 900, "height": 800})
        sent = []
        page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.method == "POST" else None)
        page.goto(url + "/")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("#preview[src^='data:image']")
        page.fill("#question", "图中有几个物体？")
        page.check("#thinking")
        page.click("#send")
        page.wait_for_selector("#answer[data-done='1']", timeout=30_000)
        answer = page.text_content("#answer")
        status = page.inner_text("#status").strip()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True)
        page.close()
    assert answer and not status, status
    body = sent[0]
    assert body["stream"] is True and body["enable_thinking"] is True
    parts = body["messages"][0]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "图中有几个物体？"}


def test_page_shows_the_error_of_a_refused_request(tiny_model, browser):
    with running(create_app(tiny_model, Settings(api_key="sekret"))) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#question", "你好")
        page.click("#send")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('401')", timeout=30_000)
        assert page.is_visible("#key")  # the page asks for the key it needs
        page.fill("#key", "sekret")
        page.click("#send")
        page.wait_for_selector("#answer[data-done='1']", timeout=30_000)
        assert page.inner_text("#status") == ""
        page.close()
