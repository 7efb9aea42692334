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
    from voicegender.voice.default_model import DEFAULT_MODEL_VERSION

    # /api/health answered, with the model's own version
    playwright_api.expect(page.locator("#model-info")).to_contain_text(f"(v{DEFAULT_MODEL_VERSION})")
    page.set_input_files("#file-input", str(wav))
    label = page.locator("[data-testid=label]")
    label.wait_for(state="visible", timeout=60_000)
    assert label.get_attribute("data-label") in {"female", "male", "no_speech"}
    assert label.get_attribute("data-label") == api.json()["label"]
    assert page.text_content("#result-file") == "browser-test.wav"
    assert page.is_hidden("#error")


def _show_faked_answer(page, server_url: str, wav: Path, answer: dict, shown: str) -> None:
    """Upload ``wav`` on the page with the server's answer replaced by ``answer`` (the caller unroutes), and wait
    for ``shown`` to appear."""
    import json

    page.route("**/api/predict*", lambda route: route.fulfill(status=200, content_type="application/json",
                                                                body=json.dumps(answer)))
    page.goto(server_url)
    playwright_api.expect(page.locator("#model-info")).to_contain_text("Model:")
    page.set_input_files("#file-input", str(wav))
    page.locator(shown).wait_for(state="visible", timeout=30_000)


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
    # the speakers: named in their blocks of the timeline and in its text description, then counted in the summary
    names = page.locator("#timeline .seg-name").all_text_contents()
    assert names and set(names) <= {f"S{i}" for i in range(1, 9)} and "S1" in names
    assert "S1 (" in page.get_attribute("#timeline", "aria-label")
    summary = page.locator("[data-testid=speakers]")
    assert summary.is_visible()
    rows = page.locator("#speaker-rows tr")
    assert rows.count() == len(set(names))
    assert [rows.nth(i).locator("th").text_content() for i in range(rows.count())] == sorted(set(names))
    text = page.text_content("#speaker-summary")
    assert f"{rows.count()} speakers: " in text and "Women: " in text and "of the speaking time" in text
    assert page.is_visible("#overlay")
    # the picture says what it shows: the stretch of the recording, and the map of the answer
    alt = page.get_attribute("#overlay", "alt")
    assert alt.startswith("Log-mel spectrogram of the recording from ") and " s to " in alt, alt
    if os.environ.get("VOICEGENDER_SCREENSHOT"):
        page.wait_for_timeout(500)  # let the bar's transition finish
        page.screenshot(path=os.environ["VOICEGENDER_SCREENSHOT"], full_page=True)


def test_the_number_of_speakers_chosen_on_the_page_is_how_many_the_timeline_tells_apart(server_url, browser_page,
                                                                                      tmp_path: Path):
    """Four voices taking turns, with "Speakers: 2" chosen before the upload: the page shows two speakers, S1 and S2,
    in the timeline and in the summary (found by itself, the server tells the four voices apart as it can)."""
    from test_web import _conversation

    path = _conversation(tmp_path)
    page = browser_page
    page.goto(server_url)
    assert page.input_value("#num-speakers") == ""  # "find out" unless the user says
    page.select_option("#num-speakers", "2")
    with page.expect_request("**/api/predict*") as sent:
        page.set_input_files("#file-input", str(path))
    assert sent.value.url.endswith("?explain=1&speakers=2")
    page.locator("[data-testid=speakers]").wait_for(state="visible", timeout=90_000)
    assert set(page.locator("#timeline .seg-name").all_text_contents()) == {"S1", "S2"}
    rows = page.locator("#speaker-rows tr")
    assert [rows.nth(i).locator("th").text_content() for i in range(rows.count())] == ["S1", "S2"]
    assert page.text_content("#speaker-summary").startswith("2 speakers: ")


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

    wav = write_voice(tmp_path / "child.wav", "female", seconds=1.0)
    answer = {"path": "child.wav", "label": "female", "p_female": 0.71, "p_child": p_child, "duration_s": 1.0,
              "speech_s": 0.9, "female_s": 0.9, "male_s": 0.0, "timeline": [], "overlay_png": None}
    page = browser_page
    try:
        _show_faked_answer(page, server_url, wav, answer, "[data-testid=label]")
        assert page.is_visible("[data-testid=child]") is warned
        assert page.text_content("#p-child") == f"{round(100 * p_child)} %"
        if warned:
            assert f"{round(100 * p_child)} %" in page.text_content("[data-testid=child]")
    finally:
        page.unroute("**/api/predict*")


def test_the_page_names_each_speaker_and_sums_them_up(server_url, browser_page, tmp_path: Path):
    """Four speakers (two women, two men; one possibly a child) from a faked answer: the timeline labels each block
    with its speaker, in a shade of its gender's colour, and the summary says who spoke how much, in words."""

    wav = write_voice(tmp_path / "meeting.wav", "female", seconds=1.0)
    speakers = [{"speaker": "S1", "label": "female", "p_female": 0.93, "p_child": 0.05, "speech_s": 12.0, "turns": 3},
                {"speaker": "S2", "label": "male", "p_female": 0.04, "p_child": 0.01, "speech_s": 6.0, "turns": 2},
                {"speaker": "S3", "label": "female", "p_female": 0.81, "p_child": 0.9, "speech_s": 4.0, "turns": 1},
                {"speaker": "S4", "label": "male", "p_female": 0.12, "p_child": 0.02, "speech_s": 2.0, "turns": 1}]
    turns = [(0.0, 2.0, None), (2.0, 8.0, "S1"), (8.0, 14.0, "S2"), (14.0, 20.0, "S1"), (20.0, 24.0, "S3"),
             (24.0, 26.0, "S4"), (26.0, 27.0, None)]
    by_id = {s["speaker"]: s for s in speakers}
    timeline = [{"start_s": a, "end_s": b, "label": by_id[who]["label"] if who else "no_speech",
                 "p_female": by_id[who]["p_female"] if who else None, "speaker": who} for a, b, who in turns]
    summary = {"duration_s": 27.0, "female_s": 16.0, "male_s": 8.0, "no_speech_s": 3.0, "speech_s": 24.0,
               "female_share": 0.6667, "male_share": 0.3333, "speakers": 4, "female_speakers": 2, "male_speakers": 2,
               "female_speaker_share": 0.5, "speaker_embedding": "ecapa", "by_speaker": speakers}
    overlaps = [{"start_s": 7.7, "end_s": 8.3, "speakers": ["S1", "S2"], "labels": ["female", "male"]},
                {"start_s": 16.0, "end_s": 16.5, "speakers": ["S1"], "labels": ["female"]}]
    answer = {"path": "meeting.wav", "label": "female", "p_female": 0.8, "p_child": 0.1, "duration_s": 27.0,
              "speech_s": 24.0, "female_s": 16.0, "male_s": 8.0, "timeline": timeline, "speakers": speakers,
              "summary": summary, "overlaps": overlaps, "overlay_png": None}
    page = browser_page
    try:
        _show_faked_answer(page, server_url, wav, answer, "[data-testid=speakers]")
        blocks = page.locator("#timeline .seg")
        classes = [blocks.nth(i).get_attribute("class") for i in range(blocks.count())]
        assert [c.split()[-1] for c in classes] == [t["label"] for t in timeline]
        # shades within a gender, in order of appearance: S1 and S3 (women) differ, as do S2 and S4 (men)
        assert classes[1:6] == ["seg shade-0 female", "seg shade-0 male", "seg shade-0 female", "seg shade-1 female",
                                "seg shade-1 male"]
        assert page.locator("#timeline .seg-name").all_text_contents() == ["S1", "S2", "S1", "S3", "S4"]
        colours = {page.eval_on_selector(f"#timeline .seg:nth-child({i})", "e => getComputedStyle(e).backgroundColor")
                   for i in (2, 5)}
        assert len(colours) == 2  # S1 and S3: two shades of the women's colour
        assert "S1 (Female) from 2.0 to 8.0 s" in page.get_attribute("#timeline", "aria-label")
        assert page.text_content("#speaker-summary") == (
            "4 speakers: 2 women, 2 men. Women: 67 % of the speaking time and 50 % of the speakers.")
        rows = page.locator("#speaker-rows tr")
        cells = [[c.strip() for c in rows.nth(i).locator("th, td").all_text_contents()] for i in range(4)]
        assert cells == [["S1", "Female", "93.0 %", "12.00 s", "50 %", "3"],
                         ["S2", "Male", "4.0 %", "6.00 s", "25 %", "2"],
                         ["S3", "Female (possibly a child)", "81.0 %", "4.00 s", "17 %", "1"],
                         ["S4", "Male", "12.0 %", "2.00 s", "8 %", "1"]]
        # where two voices overlap: marks under the timeline, at their place, named in words
        marks = page.locator("#overlaps .overlap")
        assert marks.count() == 2 and page.is_visible("#overlaps") and page.is_visible("#overlap-legend")
        assert [m.get_attribute("title") for m in marks.all()] == ["S1 and S2 at once: 7.7–8.3 s",
                                                                   "S1 and another voice at once: 16.0–16.5 s"]
        strip = page.eval_on_selector("#overlaps", "e => e.getBoundingClientRect().width")
        left = page.eval_on_selector("#overlaps .overlap", "e => e.offsetLeft")
        assert left == pytest.approx(strip * 7.7 / 27.0, abs=2)
        assert "S1 and S2 from 7.7 to 8.3 s" in page.get_attribute("#overlaps", "aria-label")
        if os.environ.get("VOICEGENDER_SPEAKERS_SCREENSHOT"):
            page.locator("#timeline-block").screenshot(path=os.environ["VOICEGENDER_SPEAKERS_SCREENSHOT"])
    finally:
        page.unroute("**/api/predict*")
