"""The page in a real browser: start the server on a free loopback port, upload a WAV with headless Chromium.

Needs Debian's chromium (``apt-get install chromium``) and the playwright Python package; Playwright's own
browser download is not used (it needs the internet). Set VOICEGENDER_SCREENSHOT=path.png to save a screenshot
of the page after the prediction (that is how docs/img/web.png is made).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the web app needs the web extra: pip install 'voicegender[web]'")
pytest.importorskip("uvicorn", reason="the web app needs uvicorn (web extra)")
playwright_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (dev extra)")

from conftest import write_voice  # noqa: E402
from test_web import running_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs a chromium binary on PATH (Debian: apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """uvicorn serving the app (default model) in a thread, on a loopback port the OS picked."""
    from voicegender.web.app import create_app

    with running_server(create_app()) as url:
        yield url


@pytest.fixture(scope="module")
def browser_page() -> Iterator[object]:
    # Chromium's fake microphone (a beeping tone) with permission granted, for the recording test
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 900})
            context.grant_permissions(["microphone"])
            yield context.new_page()
        finally:
            browser.close()


def test_upload_in_the_browser_shows_the_api_label(server_url, browser_page, tmp_path: Path):
    wav = write_voice(tmp_path / "browser-test.wav", "female", seconds=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api = httpx.post(f"{server_url}/api/predict", files={"file": (wav.name, wav.read_bytes())}, timeout=60)
    assert api.status_code == 200, api.text

    page = browser_page
    page.goto(server_url)
    playwright_api.expect(page.locator("#model-info")).to_contain_text("Model:")  # /api/health answered
    page.set_input_files("#file-input", str(wav))
    label = page.locator("[data-testid=label]")
    label.wait_for(state="visible", timeout=60_000)
    assert label.get_attribute("data-label") in {"female", "male", "no_speech"}
    assert label.get_attribute("data-label") == api.json()["label"]
    assert page.text_content("#result-file") == "browser-test.wav"
    assert page.is_hidden("#error")


def test_long_recording_shows_the_timeline(server_url, browser_page, tmp_path: Path):
    """A 20 s "conversation" of the bundled example voices: the page draws the female/male/no_speech timeline."""
    import numpy as np
    import soundfile as sf

    from voicegender.audio.decode import load_audio
    from voicegender.examples import EXAMPLES_DIR

    def voice(name: str) -> np.ndarray:
        return load_audio(EXAMPLES_DIR / f"{name}.ogg").samples

    pause = np.zeros(16_000, np.float32)
    wave = np.concatenate([voice("espeak_female_en"), pause, pause, voice("espeak_male_en"),
                           0.3 * voice("noise"), voice("espeak_female_de"), pause[:8000], voice("espeak_male_de")])
    path = tmp_path / "conversation.ogg"
    sf.write(path, wave, 16_000)
    page = browser_page
    page.goto(server_url)
    page.set_input_files("#file-input", str(path))
    segments = page.locator("#timeline .seg")
    segments.first.wait_for(state="visible", timeout=90_000)
    labels = {segments.nth(i).get_attribute("class").split()[-1] for i in range(segments.count())}
    assert labels <= {"female", "male", "no_speech"} and "no_speech" in labels
    assert page.is_visible("#overlay")
    # the picture says what it shows: the stretch of the recording, and the map of the answer
    alt = page.get_attribute("#overlay", "alt")
    assert alt.startswith("Log-mel spectrogram of the recording from ") and " s to " in alt, alt
    if os.environ.get("VOICEGENDER_SCREENSHOT"):
        page.wait_for_timeout(500)  # let the bar's transition finish
        page.screenshot(path=os.environ["VOICEGENDER_SCREENSHOT"], full_page=True)


def test_non_audio_shows_a_clear_error_on_the_page(server_url, browser_page, tmp_path: Path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio\n" * 10)
    page = browser_page
    page.goto(server_url)
    page.set_input_files("#file-input", str(bad))
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=30_000)
    assert "notes.txt" in error.text_content() and "not a readable audio file" in error.text_content()
    assert page.is_hidden("#result")


def test_microphone_recording_counts_down_and_is_predicted(server_url, browser_page):
    """Record button: 3-2-1, "Speak now!", 3 s of Chromium's fake microphone (a tone), sent as WebM → an answer."""
    page = browser_page
    page.goto(server_url)
    page.select_option("#seconds", "3")
    page.click("#record")
    countdown = page.locator("#countdown-text")
    playwright_api.expect(countdown).to_have_text("3")
    playwright_api.expect(countdown).to_contain_text("Speak now!", timeout=5_000)
    label = page.locator("[data-testid=label]")
    label.wait_for(state="visible", timeout=30_000)
    assert page.text_content("#result-file") == "recording.webm"
    assert label.get_attribute("data-label") in {"female", "male", "no_speech"}  # a tone: usually no_speech


@pytest.mark.parametrize(("p_child", "warned"), [(0.93, True), (0.12, False)])
def test_a_likely_child_voice_is_flagged_on_the_page(server_url, browser_page, tmp_path: Path, p_child, warned):
    """The page warns next to the answer when p_child reaches the server's child_flag (the API answer is faked so
    the test does not depend on finding a child's voice the model agrees on)."""
    import json

    wav = write_voice(tmp_path / "child.wav", "female", seconds=1.0)
    answer = {"path": "child.wav", "label": "female", "p_female": 0.71, "p_child": p_child, "duration_s": 1.0,
              "speech_s": 0.9, "female_s": 0.9, "male_s": 0.0, "timeline": [], "overlay_png": None}
    page = browser_page
    page.route("**/api/predict*", lambda route: route.fulfill(status=200, content_type="application/json",
                                                                body=json.dumps(answer)))
    try:
        page.goto(server_url)
        playwright_api.expect(page.locator("#model-info")).to_contain_text("Model:")
        page.set_input_files("#file-input", str(wav))
        page.locator("[data-testid=label]").wait_for(state="visible", timeout=30_000)
        assert page.is_visible("[data-testid=child]") is warned
        assert page.text_content("#p-child") == f"{round(100 * p_child)} %"
        if warned:
            assert f"{round(100 * p_child)} %" in page.text_content("[data-testid=child]")
    finally:
        page.unroute("**/api/predict*")
