"""The web page, driven in headless Chromium: attach an image, ask in Chinese, see the answer stream in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from serve_helpers import running
from smvl.infer.generate import load
from smvl.serve.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_page_answers_a_question_about_an_uploaded_image(demo_run, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from smvl.data.synthetic import synthetic_samples

    sample = synthetic_samples("test", 1, seed=11)[0]
    image = tmp_path / "q.png"
    sample.images[0].resize((192, 192)).save(image)
    with running(create_app(*load(demo_run / "final"), "smvl-demo")) as url, sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        except Exception as exc:  # a machine where Chromium cannot start is not a failure of the page
            pytest.skip(f"chromium did not start: {exc}")
        page = browser.new_page()
        page.goto(url + "/")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("#preview[src^='data:image']")
        page.fill("#question", "图中有几个物体？")
        page.click("#send")
        page.wait_for_selector("#answer[data-done='1']", timeout=60_000)
        answer = page.inner_text("#answer").strip()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True)
        browser.close()
    assert answer and page_error_free(answer)


def page_error_free(answer: str) -> bool:
    return "Error" not in answer and all("\u4e00" <= ch <= "\u9fff" for ch in answer)
