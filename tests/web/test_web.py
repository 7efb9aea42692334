"""JSON API of the web app, through FastAPI's TestClient (no server, no browser)."""

from __future__ import annotations

import base64
import contextlib
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the web app needs the web extra: pip install 'voicegender[web]'")
pytest.importorskip("multipart", reason="the web app needs python-multipart (web extra)")
with warnings.catch_warnings():  # starlette's TestClient warns that it will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from conftest import write_voice  # noqa: E402

from voicegender.audio.synth import FEMALE_F0, MALE_F0, synth_voice  # noqa: E402
from voicegender.web.app import PREDICT_FIELDS, create_app, display_name  # noqa: E402

LIMIT_MB = 0.2  # small limit so the oversized tests send little data
LABELS = {"female", "male", "no_speech"}


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    """uvicorn serving ``app`` in a thread on a loopback port the OS picks; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound before the server starts: no race for the port
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def client() -> TestClient:
    """The app with the model `predict` uses by default (the shipped one), loaded once for the module."""
    with TestClient(create_app(max_upload_mb=LIMIT_MB)) as c:
        yield c


@pytest.fixture(scope="module")
def voice_wav(tmp_path_factory) -> Path:
    return write_voice(tmp_path_factory.mktemp("web") / "female.wav", "female", seconds=1.5)


def _post(client: TestClient, name: str, data: bytes, query: str = ""):
    return client.post(f"/api/predict{query}", files={"file": (name, data, "application/octet-stream")})


def test_health_names_the_model(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    from voicegender import __version__
    from voicegender.voice.default_model import CHILD_FLAG, DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION

    # the model's own version, not the package's (issue 22: the page said "v0.1.0" for model 2.2.0)
    assert (body["model"], body["version"], body["voicegender"]) == (DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION,
                                                                     __version__)
    assert body["labels"] == ["female", "male"]
    assert body["max_upload_mb"] == LIMIT_MB

    assert body["child_flag"] == CHILD_FLAG


def test_predict_returns_exactly_the_predict_json_fields(client, voice_wav):
    r = _post(client, "female.wav", voice_wav.read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert tuple(body) == PREDICT_FIELDS == ("path", "label", "p_female", "p_child", "duration_s", "speech_s",
                                             "female_s", "male_s")
    assert body["path"] == "female.wav"
    assert body["label"] in LABELS
    assert body["duration_s"] == pytest.approx(1.5, abs=0.01)
    assert 0 <= body["speech_s"] <= body["duration_s"] + 1e-6
    assert body["p_female"] is None or 0 <= body["p_female"] <= 1
    assert body["female_s"] + body["male_s"] == pytest.approx(body["speech_s"] if body["p_female"] is not None else 0,
                                                              abs=0.002)


def test_predict_agrees_with_predict_json(client, voice_wav, capsys):
    """Same answer, same fields, same rounding as `voicegender predict --format json` on the same file."""
    import json

    from voicegender.cli import main

    capsys.readouterr()
    assert main(["--quiet", "predict", str(voice_wav), "--format", "json"]) == 0
    expected = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    body = _post(client, "female.wav", voice_wav.read_bytes()).json()
    assert body == {**expected, "path": "female.wav"}


def test_explain_adds_a_png_picture(client, voice_wav):
    r = _post(client, "female.wav", voice_wav.read_bytes(), "?explain=1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(PREDICT_FIELDS) <= set(body)
    assert body["timeline"] is None and body["speakers"] is None and body["summary"] is None  # short: no timeline
    assert base64.b64decode(body["overlay_png"]).startswith(b"\x89PNG\r\n\x1a\n")
    # a map when the model can draw one, otherwise the plain spectrogram and why there is no map; a map of speech
    # shorter than the short-speech layer's limit says that it explains the main layer
    if body["cam"] and body["speech_s"] < 1.0:
        assert "short-speech layer" in body["explain_note"]
    else:
        assert body["cam"] is (body["explain_note"] is None)


def test_explain_draws_the_cam_of_a_spectrogram_model(tmp_path, voice_wav):
    import torch

    from voicegender.research import features, models

    torch.manual_seed(0)
    cfg = models.ModelConfig(arch="small_cnn", in_rows=64, width=4)
    path = models.save_checkpoint(tmp_path / "tiny.pt", models.build_model(cfg), cfg,
                                  features.feature_config_dict("log_mel", features.LogMelConfig()),
                                  ["female", "male"], extra={"name": "tiny-log-mel"})
    with TestClient(create_app(model=path)) as c:
        assert c.get("/api/health").json()["model"] == "tiny-log-mel"
        body = _post(c, "female.wav", voice_wav.read_bytes(), "?explain=1").json()
    assert body["cam"] is True and body["explain_note"] is None
    assert base64.b64decode(body["overlay_png"]).startswith(b"\x89PNG")


def test_long_file_gets_a_timeline(tmp_path):
    sr = 16_000
    wave = np.concatenate([synth_voice(FEMALE_F0, 5.0, sr, seed=1), np.zeros(3 * sr, np.float32),
                           synth_voice(MALE_F0, 5.0, sr, seed=2)])
    path = tmp_path / "long.flac"
    sf.write(path, wave, sr)
    with TestClient(create_app(max_upload_mb=5)) as c:
        r = _post(c, "long.flac", path.read_bytes(), "?explain=1")
    assert r.status_code == 200, r.text
    timeline = r.json()["timeline"]
    assert timeline and {s["label"] for s in timeline} <= LABELS
    assert r.json()["overlay_span_s"] == [0.0, 13.0]  # under MAP_MAX_S: the whole file
    assert timeline[0]["start_s"] == pytest.approx(0, abs=0.5)
    assert timeline[-1]["end_s"] == pytest.approx(13.0, abs=0.5)
    assert all(a["end_s"] <= b["start_s"] + 1e-6 for a, b in zip(timeline, timeline[1:], strict=False))


def _conversation(tmp_path) -> Path:
    """20 s of the bundled voices taking turns (two women, two men, espeak-ng in English and German), 1 s apart."""
    from voicegender.audio.decode import load_audio
    from voicegender.examples import EXAMPLES_DIR

    def voice(name: str) -> np.ndarray:
        return load_audio(EXAMPLES_DIR / f"{name}.ogg").samples

    pause = np.zeros(16_000, np.float32)
    wave = np.concatenate([voice("espeak_female_en"), pause, voice("espeak_male_en"), pause,
                           voice("espeak_female_de"), pause, voice("espeak_male_de")])
    path = tmp_path / "conversation.flac"
    sf.write(path, wave, 16_000)
    return path


def test_a_conversation_gets_its_speakers_and_a_summary(roomy_client, tmp_path, timeline_draws):
    """A 20 s conversation of the bundled voices (two women, two men, espeak-ng in English and German): the
    timeline names its speakers, each with a gender from all of its speech, and the summary counts them."""
    path = _conversation(tmp_path)
    r = _post(roomy_client, "conversation.flac", path.read_bytes(), "?explain=1")
    assert r.status_code == 200, r.text
    assert timeline_draws == {"finished": 1, "timeline_file": 0}  # the prediction's timeline, shown
    body = r.json()
    speakers, summary, timeline = body["speakers"], body["summary"], body["timeline"]
    assert len(speakers) >= 2 and {s["label"] for s in speakers} == {"female", "male"}
    ids = [s["speaker"] for s in speakers]
    assert ids == [f"S{i}" for i in range(1, len(ids) + 1)]
    assert {s["speaker"] for s in timeline if s["label"] != "no_speech"} == set(ids)
    assert all(s["speaker"] is None for s in timeline if s["label"] == "no_speech")
    for s in speakers:  # each speaker's segments carry its gender
        assert {seg["label"] for seg in timeline if seg["speaker"] == s["speaker"]} == {s["label"]}
        assert s["turns"] >= 1 and s["speech_s"] > 0 and 0 <= s["p_female"] <= 1
    assert summary["speakers"] == len(speakers) == summary["female_speakers"] + summary["male_speakers"]
    assert summary["female_speaker_share"] == pytest.approx(summary["female_speakers"] / len(speakers), abs=1e-4)
    assert summary["by_speaker"] == speakers
    female = sum(seg["end_s"] - seg["start_s"] for seg in timeline if seg["label"] == "female")
    assert summary["female_s"] == pytest.approx(female, abs=0.01)
    assert summary["female_share"] == pytest.approx(female / summary["speech_s"], abs=1e-3)


@pytest.fixture(scope="module")
def roomy_client(client) -> TestClient:
    """The same loaded model, taking uploads of a few MB (a 20 s conversation)."""
    with TestClient(create_app(model=client.app.state.served.loaded, max_upload_mb=5)) as c:
        yield c


@pytest.fixture
def timeline_draws(monkeypatch) -> dict[str, int]:
    """How many timelines this test's requests draw (in-process: the TestClient runs the app, the predictions run in
    its threads): ``finished`` counts every timeline (``TimelineBuilder.finish_timeline``, which predict's speaking
    time and ``timeline_file`` both end with), ``timeline_file`` the ones drawn apart from the prediction."""
    from voicegender.listen import segment

    draws = {"finished": 0, "timeline_file": 0}
    finish, timeline_file = segment.TimelineBuilder.finish_timeline, segment.timeline_file

    def counted_finish(self):
        draws["finished"] += 1
        return finish(self)

    def counted_timeline_file(*args, **kwargs):
        draws["timeline_file"] += 1
        return timeline_file(*args, **kwargs)

    monkeypatch.setattr(segment.TimelineBuilder, "finish_timeline", counted_finish)
    monkeypatch.setattr(segment, "timeline_file", counted_timeline_file)
    return draws


def _seconds(timeline: list[dict], label: str) -> float:
    return sum(s["end_s"] - s["start_s"] for s in timeline if s["label"] == label)


@pytest.mark.parametrize("given", [1, 3])
def test_the_number_of_speakers_given_is_how_many_the_timeline_tells_apart(roomy_client, tmp_path, timeline_draws,
                                                                           given):
    """The same four-voice conversation with ``&speakers=N``: exactly N speakers, every speech segment one of them;
    one timeline drawn (the prediction's), and the answer's speaking time is that timeline's (issue 19)."""
    path = _conversation(tmp_path)
    r = _post(roomy_client, "conversation.flac", path.read_bytes(), f"?explain=1&speakers={given}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["speaker"] for s in body["speakers"]] == [f"S{i}" for i in range(1, given + 1)]
    assert body["summary"]["speakers"] == given
    spoken = {s["speaker"] for s in body["timeline"] if s["label"] != "no_speech"}
    assert spoken == {s["speaker"] for s in body["speakers"]}
    assert timeline_draws == {"finished": 1, "timeline_file": 0}
    summary, timeline = body["summary"], body["timeline"]
    # the top-level speaking time, the summary and the segments: one timeline
    assert body["female_s"] == pytest.approx(summary["female_s"], abs=0.002)
    assert body["male_s"] == pytest.approx(summary["male_s"], abs=0.002)
    assert body["speech_s"] == pytest.approx(summary["speech_s"], abs=0.002)
    assert body["female_s"] + body["male_s"] == pytest.approx(summary["female_s"] + summary["male_s"], abs=0.003)
    assert body["female_s"] == pytest.approx(_seconds(timeline, "female"), abs=0.01)
    assert body["male_s"] == pytest.approx(_seconds(timeline, "male"), abs=0.01)
    assert summary["by_speaker"] == body["speakers"]


@pytest.mark.parametrize("given", [1, 3])
def test_the_number_of_speakers_given_without_explain_is_predicts(roomy_client, tmp_path, capsys, timeline_draws,
                                                                  given):
    """``?speakers=N`` alone: the answer of ``predict --num-speakers N --format json`` (N speakers listed for more
    than one, none for one voice, as predict), from one timeline drawn with that many speakers."""
    import json

    from voicegender.cli import main

    path = _conversation(tmp_path)
    body = _post(roomy_client, "conversation.flac", path.read_bytes(), f"?speakers={given}").json()
    assert timeline_draws == {"finished": 1, "timeline_file": 0}
    if given == 1:
        assert tuple(body) == PREDICT_FIELDS  # one voice: no speakers, as predict
    else:
        assert [s["speaker"] for s in body["speakers"]] == [f"S{i}" for i in range(1, given + 1)]
        assert sum(s["speech_s"] for s in body["speakers"]) == pytest.approx(body["speech_s"], abs=0.01)
    capsys.readouterr()
    assert main(["--quiet", "predict", str(path), "--num-speakers", str(given), "--format", "json"]) == 0
    expected = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert body == {**expected, "path": "conversation.flac"}


def test_a_long_file_with_little_speech_gets_a_timeline_drawn_once(roomy_client, tmp_path, timeline_draws):
    """12 s holding 6 s of speech: the prediction's speaking time is the label's (no timeline for 8 s of speech or
    less), so explain draws the timeline on its own: still one per request."""
    sr = 16_000
    wave = np.concatenate([synth_voice(MALE_F0, 3.0, sr, seed=4), np.zeros(6 * sr, np.float32),
                           synth_voice(MALE_F0, 3.0, sr, seed=4)])
    path = tmp_path / "pauses.flac"
    sf.write(path, wave, sr)
    body = _post(roomy_client, "pauses.flac", path.read_bytes(), "?explain=1&speakers=1").json()
    assert timeline_draws == {"finished": 1, "timeline_file": 1}
    assert body["timeline"] and body["summary"]["speakers"] == len(body["speakers"]) == 1
    assert body["timeline"][-1]["end_s"] == pytest.approx(12.0, abs=0.1)


def test_the_batcher_makes_one_call_per_number_of_speakers_given():
    """Requests that arrive together are predicted together when they give the same number of speakers (or none);
    a call keeps its timelines when one of its requests asks for them; each answer goes to its own request."""
    import asyncio

    from voicegender.web.backend import ModelGate, PredictBatcher

    calls: list[tuple[list[str], int | None, bool]] = []

    class Recorded(PredictBatcher):
        def _predict_files(self, paths, speakers=None, keep_timeline=False):
            calls.append((paths, speakers, keep_timeline))
            return [f"{p}:{speakers}" for p in paths]

    async def main() -> list[str]:
        batcher = Recorded(served=None, gate=ModelGate())
        asked = [("a", None, False), ("b", 3, True), ("c", None, True), ("d", 3, False), ("e", 2, False)]
        return await asyncio.gather(*(batcher.predict(p, n, timeline=t) for p, n, t in asked))

    assert asyncio.run(main()) == ["a:None", "b:3", "c:None", "d:3", "e:2"]
    assert calls == [(["a", "c"], None, True), (["b", "d"], 3, True), (["e"], 2, False)]


@pytest.mark.parametrize("given", ["0", "21", "two", "1.5"])
def test_a_number_of_speakers_that_cannot_be_is_422_before_any_work(client, voice_wav, given):
    r = _post(client, "voice.wav", voice_wav.read_bytes(), f"?explain=1&speakers={given}")
    assert r.status_code == 422
    assert "speakers" in r.text


def test_explain_reads_a_bounded_part_of_any_upload(tmp_path, monkeypatch):
    """A small compressed upload can hold hours (3 h of FLAC silence: 546 kB): with ?explain=1 the picture reads only
    the first PICTURE_READ_S seconds and the timeline is streamed, up to TIMELINE_MAX_S; then a note says why not."""
    from voicegender.web import backend

    sr = 16_000
    wave = np.concatenate([synth_voice(FEMALE_F0, 4.0, sr, seed=3), np.zeros(12 * sr, np.float32)])
    path = tmp_path / "long.flac"
    sf.write(path, wave, sr)
    from voicegender.audio import decode as audio

    assert len(audio.read_first_seconds(path, 5.0)) == 5 * sr  # no more is decoded than asked for
    assert len(audio.read_first_seconds(path, 60.0)) == len(wave)
    monkeypatch.setattr(audio, "PICTURE_READ_S", 6.0)
    monkeypatch.setattr(backend, "TIMELINE_MAX_S", 12.0)
    with TestClient(create_app(max_upload_mb=5)) as c:
        body = _post(c, "long.flac", path.read_bytes(), "?explain=1").json()
    assert body["label"] == "female" and body["duration_s"] == pytest.approx(16.0)
    assert body["timeline"] is None and "voicegender segment" in body["timeline_note"]
    assert body["overlay_span_s"][1] <= 6.0  # the picture came from the first 6 s only


def test_no_speech_gets_a_plain_picture_and_says_why(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(16_000 * 2, np.float32), 16_000)
    with TestClient(create_app(max_upload_mb=5)) as c:
        body = _post(c, "quiet.wav", path.read_bytes(), "?explain=1").json()
    assert body["label"] == "no_speech" and body["cam"] is False
    assert body["explain_note"].startswith("no speech was detected") and body["overlay_png"]


def test_the_map_covers_the_loudest_stretch_of_long_files():
    from voicegender.audio.decode import MAP_MAX_S, SAMPLE_RATE, loudest_span

    quiet = np.full(60 * SAMPLE_RATE, 0.001, np.float32)
    quiet[40 * SAMPLE_RATE:45 * SAMPLE_RATE] = 0.5  # a loud 5 s from 40 s on
    start, end = loudest_span(quiet)
    assert (end - start) == MAP_MAX_S * SAMPLE_RATE
    assert start <= 40 * SAMPLE_RATE and end >= 45 * SAMPLE_RATE
    assert loudest_span(quiet[:SAMPLE_RATE]) == (0, SAMPLE_RATE)


def test_model_gate_runs_maps_alone():
    """Shared users overlap; an exclusive user waits for them, runs alone, and blocks newcomers while waiting."""
    import asyncio

    from voicegender.web.backend import ModelGate

    log: list[str] = []

    async def shared(name: str, delay: float, gate: ModelGate) -> None:
        await asyncio.sleep(delay)
        async with gate.shared():
            log.append(f"+{name}")
            await asyncio.sleep(0.05)
            log.append(f"-{name}")

    async def exclusive(gate: ModelGate) -> None:
        await asyncio.sleep(0.01)
        async with gate.exclusive():
            log.append("+X")
            await asyncio.sleep(0.05)
            log.append("-X")

    async def main() -> None:
        gate = ModelGate()
        await asyncio.gather(shared("a", 0, gate), shared("b", 0, gate), exclusive(gate), shared("c", 0.02, gate))

    asyncio.run(main())
    assert log[:2] == ["+a", "+b"]  # a and b overlap
    x = log.index("+X")
    assert set(log[:x]) == {"+a", "+b", "-a", "-b"} and log[x + 1] == "-X"  # X alone, after a and b
    assert log[x + 2:] == ["+c", "-c"]  # c arrived while X waited: it goes after X


def test_non_audio_is_415_naming_the_file_not_the_temp_path(client):
    r = _post(client, "notes.txt", b"this is not audio\n" * 20)
    assert r.status_code == 415
    detail = r.json()["detail"]
    assert "notes.txt" in detail and "not a readable audio file" in detail
    assert tempfile.gettempdir() not in detail and "voicegender-" not in detail


def test_empty_file_is_400(client):
    r = _post(client, "empty.wav", b"")
    assert r.status_code == 400
    assert "empty" in r.json()["detail"]


def test_missing_file_field_is_400(client):
    r = client.post("/api/predict", files={"audio": ("a.wav", b"RIFF", "audio/wav")})
    assert r.status_code == 400
    assert "'file'" in r.json()["detail"]


def test_oversized_upload_is_413_from_content_length(client):
    r = _post(client, "big.wav", b"\0" * int(LIMIT_MB * 1e6 * 1.5))
    assert r.status_code == 413
    assert f"limit is {LIMIT_MB:g} MB" in r.json()["detail"]


def test_oversized_upload_is_413_while_streaming(client):
    """Chunked upload without Content-Length: the limit is enforced on the bytes as they arrive."""
    # (TestClient builds the whole body before the app runs, so this checks the counting, not the early stop.)
    head = (b'--XX\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n")

    def body():
        yield head
        for _ in range(20):  # 640 KB, 3x the limit
            yield b"\0" * 32_768
        yield b"\r\n--XX--\r\n"

    r = client.post("/api/predict", content=body(), headers={"content-type": "multipart/form-data; boundary=XX"})
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]
    assert "content-length" not in {k.lower() for k in r.request.headers}


def test_real_server_stops_a_chunked_upload_at_the_limit(client):
    """Over a socket, chunked, no Content-Length: the 413 arrives after about the limit, not after the whole body."""
    pytest.importorskip("uvicorn", reason="needs uvicorn (web extra)")
    with running_server(client.app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Type: multipart/form-data; boundary=XX\r\n\r\n")
            head = b'--XX\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
            s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            sent, reply, chunk = 0, b"", b"\0" * 16_384
            s.settimeout(0.02)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                while sent < 20 * LIMIT_MB * 1e6 and not reply:
                    s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                    with contextlib.suppress(TimeoutError):
                        reply = s.recv(4096)
            s.settimeout(10)
            reply += s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")
    assert sent < 3 * LIMIT_MB * 1e6


def test_uploaded_name_is_only_displayed_and_temp_files_are_removed(client, voice_wav, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = _post(client, "../../etc/<script>x.wav", voice_wav.read_bytes())
    assert r.status_code == 200
    assert r.json()["path"] == "_script_x.wav"
    assert list(tmp_path.glob("voicegender-*")) == []  # uploads  # the private temp copy is gone
    assert not (Path("/etc") / "_script_x.wav").exists()


def test_display_name():
    assert display_name("C:\\Users\\me\\rec 1.m4a") == "rec 1.m4a"
    assert display_name("../..") == "upload"
    assert display_name(None) == "upload"
    assert len(display_name("a" * 500 + ".wav")) <= 100


def test_page_and_static_files_are_served_with_a_strict_csp(client):
    r = client.get("/")
    assert r.status_code == 200 and "voicegender" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "http" not in r.text.split("<footer")[0].replace('href="api/', "")  # nothing fetched from outside
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_concurrent_requests_all_succeed(client, voice_wav):
    from concurrent.futures import ThreadPoolExecutor

    data = voice_wav.read_bytes()
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda i: _post(client, f"c{i}.wav", data).status_code, range(6)))
    assert codes == [200] * 6


def test_serve_command_is_registered():
    from voicegender.cli import main

    assert main(["serve", "--help"]) == 0


# --- who may use the server: the access token -----------------------------------------------------------------
TOKEN = "test-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def token_client(client) -> TestClient:
    """The same loaded model, served with an access token."""
    with TestClient(create_app(model=client.app.state.served.loaded, max_upload_mb=LIMIT_MB, token=TOKEN)) as c:
        yield c


def test_with_a_token_the_api_needs_it_but_the_page_and_health_do_not(token_client, voice_wav, monkeypatch):
    import hmac

    compared = []
    real_compare = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append(1) or real_compare(a, b))
    data = voice_wav.read_bytes()
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": TOKEN}):
        r = token_client.post("/api/predict", files={"file": ("a.wav", data)}, headers=headers)
        assert r.status_code == 401, headers
        assert "Authorization: Bearer" in r.json()["detail"]
        # a client that sent a header learns that its token (or the header's form) is wrong, not that it is missing
        assert ("not this server's" in r.json()["detail"]) is bool(headers)
        assert r.headers["www-authenticate"] == "Bearer"
        assert "default-src 'self'" in r.headers["content-security-policy"]
    assert compared  # the constant-time comparison
    r = token_client.post("/api/predict", files={"file": ("a.wav", data)}, headers=BEARER)
    assert r.status_code == 200, r.text
    assert r.json()["label"] in LABELS
    assert token_client.post("/api/predict", files={"file": ("a.wav", data)},
                             headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    for path in ("/api/openapi.json", "/api/nothing-here"):
        assert token_client.get(path).status_code == 401
        assert token_client.get(path, headers=BEARER).status_code in (200, 404)
    for path in ("/", "/static/app.js", "/api/health"):  # the page must load to ask for the token
        assert token_client.get(path).status_code == 200
    assert token_client.get("/api/health").json()["token_required"] is True


def test_without_a_token_nothing_asks_for_one(client):
    assert client.get("/api/health").json()["token_required"] is False
    assert client.get("/api/openapi.json").status_code == 200


@pytest.mark.parametrize("token", ["", "two words", "naïve-token", "tab\there"])
def test_a_token_must_fit_in_a_header(token):
    with pytest.raises(ValueError, match="printable ASCII"):
        create_app(token=token)  # raises before loading any model


@pytest.fixture
def serve_calls(monkeypatch, client) -> list:
    """`voicegender serve` with uvicorn.run recorded instead of run (and no check that this machine can bind the
    address: these tests name addresses of other machines), and the already loaded model."""
    import uvicorn

    from voicegender.cli import listen
    from voicegender.web import backend

    calls: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    monkeypatch.setattr(listen, "_check_can_listen", lambda host, port, shown: None)
    monkeypatch.setattr(backend, "load", lambda model=None: client.app.state.served)
    monkeypatch.delenv("VOICEGENDER_TOKEN", raising=False)
    return calls


def _stderr(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(("host", "warns"), [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                             ("127.0.0.2", False), ("0.0.0.0", True), ("192.168.1.20", True),
                                             ("::", True), ("myhost.example", True)])
def test_serve_warns_when_it_binds_beyond_loopback(serve_calls, capsys, host, warns):
    from voicegender.cli import main

    capsys.readouterr()
    assert main(["serve", "--host", host, "--port", "8123"]) == 0
    err = _stderr(capsys)
    assert ("warning:" in err) is warns
    if warns:
        assert f"serving on {host} without an access token" in err and "VOICEGENDER_TOKEN" in err
    app, kwargs = serve_calls[-1]
    assert kwargs["host"] == host and kwargs["port"] == 8123
    assert TestClient(app).get("/api/openapi.json").status_code == 200  # no token: open


def test_serve_takes_the_token_from_the_environment_or_the_option(serve_calls, capsys, monkeypatch):
    from voicegender.cli import main

    monkeypatch.setenv("VOICEGENDER_TOKEN", TOKEN)
    capsys.readouterr()
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    err = _stderr(capsys)
    assert "API requests need the access token" in err and "?token=" in err
    assert TOKEN not in err  # never printed
    with TestClient(serve_calls[-1][0]) as c:
        assert c.get("/api/openapi.json").status_code == 401
        assert c.get("/api/openapi.json", headers=BEARER).status_code == 200
        assert c.get("/api/health").json()["token_required"] is True

    assert main(["serve", "--token", "another-token-0123456789"]) == 0  # the option wins over the environment
    with TestClient(serve_calls[-1][0]) as c:
        assert c.get("/api/openapi.json", headers=BEARER).status_code == 401
        assert c.get("/api/openapi.json", headers={"Authorization": "Bearer another-token-0123456789"}).is_success


@pytest.mark.parametrize("args", [["--token", "two words"], ["--max-upload-mb", "0"]])
def test_serve_rejects_bad_options_in_one_line(serve_calls, capsys, args):
    from voicegender.cli import main

    capsys.readouterr()
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert serve_calls == []


# --- a flooded server: capacity, stalled and broken uploads, temp files -----------------------------------------
def _multipart(name: str, data: bytes, boundary: str = "XX", close: bool = True) -> bytes:
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + (f"\r\n--{boundary}--\r\n".encode() if close else b"")


def _request_head(length: int, boundary: str = "XX") -> bytes:
    return (f"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_full_server_answers_503_before_reading_and_a_lost_client_gives_its_slot_back(
        client, voice_wav, tmp_path, monkeypatch):
    import httpx

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    app = create_app(model=client.app.state.served.loaded, max_upload_mb=LIMIT_MB, max_pending=1)
    capacity = app.state.capacity
    data = voice_wav.read_bytes()
    body = _multipart("held.wav", data)
    with running_server(app) as url, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as held:
            held.sendall(_request_head(len(body)) + body[:1000])  # admitted; the rest of its body never comes
            _wait_for(lambda: capacity.used == 1)
            r = httpx.post(f"{url}/api/predict", files={"file": ("next.wav", data)}, timeout=60)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "5"
            assert "busy" in r.json()["detail"]
        _wait_for(lambda: capacity.used == 0)  # the client hung up mid-upload: its slot is free again
        r = httpx.post(f"{url}/api/predict", files={"file": ("next.wav", data)}, timeout=60)
        assert r.status_code == 200, r.text
    assert list(tmp_path.glob("voicegender-*")) == []  # uploads


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response: the head and the body may arrive in separate packets."""
    reply = b""
    while b"\r\n\r\n" not in reply and (chunk := sock.recv(4096)):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(next((line.split(b":", 1)[1] for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), b"0"))
    while len(body) < length and (chunk := sock.recv(4096)):
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_stalled_upload_gets_408_and_gives_its_slot_back(client, voice_wav, tmp_path, monkeypatch):
    from voicegender.web import app as app_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(app_module, "UPLOAD_IDLE_S", 0.3)
    app = create_app(model=client.app.state.served.loaded, max_upload_mb=LIMIT_MB)
    body = _multipart("slow.wav", voice_wav.read_bytes())
    with running_server(app) as url:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as s:
            s.sendall(_request_head(len(body)) + body[:1000])
            reply = _read_response(s)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert b"stalled" in reply
    assert app.state.capacity.used == 0
    assert list(tmp_path.glob("voicegender-*")) == []  # uploads


def test_a_truncated_multipart_body_is_400_and_leaves_nothing(client, voice_wav, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    body = _multipart("cut.wav", voice_wav.read_bytes()[:5000], close=False)  # no closing boundary
    r = client.post("/api/predict", content=body, headers={"content-type": "multipart/form-data; boundary=XX"})
    assert r.status_code == 400
    assert r.json()["detail"]
    assert client.app.state.capacity.used == 0
    assert list(tmp_path.glob("voicegender-*")) == []  # uploads


def test_head_requests_answer_like_get(client):
    for url in ("/", "/api/health"):
        r = client.head(url)
        assert r.status_code == 200 and r.content == b""


def test_a_file_just_over_the_limit_says_by_how_much(client):
    r = _post(client, "big.wav", b"\0" * (int(LIMIT_MB * 1e6) + 1))
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert f"({int(LIMIT_MB * 1e6) + 1:,} bytes)" in detail and f"({int(LIMIT_MB * 1e6):,} bytes)" in detail


def test_a_post_from_another_sites_page_is_refused(client, voice_wav):
    """Any page the user visits could otherwise send audio to a server on their machine (no preflight for a
    multipart POST); the page this server serves, and clients that send no Origin, are answered."""
    files = {"file": ("f.wav", voice_wav.read_bytes(), "audio/wav")}
    r = client.post("/api/predict", files=files, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "Cross-origin" in r.json()["detail"]
    assert client.post("/api/predict", files=files, headers={"Origin": "http://testserver"}).status_code == 200
    assert client.post("/api/predict", files=files).status_code == 200
    assert client.get("/api/health", headers={"Origin": "https://evil.example"}).status_code == 200  # reads: open


def test_the_multipart_content_type_is_matched_in_any_case(client, voice_wav):
    body = _multipart("f.wav", voice_wav.read_bytes())
    r = client.post("/api/predict", content=body, headers={"content-type": "Multipart/Form-Data; boundary=XX"})
    assert r.status_code == 200, r.text


def test_an_upload_trickling_in_gets_408_at_the_overall_deadline(client, voice_wav, tmp_path, monkeypatch):
    from voicegender.web import app as app_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(app_module, "UPLOAD_IDLE_S", 0.5)
    monkeypatch.setattr(app_module, "UPLOAD_TOTAL_S", 1.0)
    app = create_app(model=client.app.state.served.loaded, max_upload_mb=LIMIT_MB)
    body = _multipart("slow.wav", voice_wav.read_bytes())
    with running_server(app) as url:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as s:
            s.sendall(_request_head(len(body)) + body[:1000])
            for i in range(12):  # a byte every 0.2 s: never idle for 0.5 s
                time.sleep(0.2)
                try:
                    s.sendall(body[1000 + i:1001 + i])
                except OSError:  # the server answered and closed
                    break
            reply = _read_response(s)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert b"took longer than 1 s" in reply
    assert app.state.capacity.used == 0


def test_the_schema_describes_the_upload_and_its_errors(client):
    post = client.get("/api/openapi.json").json()["paths"]["/api/predict"]["post"]
    body = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    assert {"200", "400", "403", "408", "413", "415", "503"} <= set(post["responses"])
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert set(PREDICT_FIELDS) | {"timeline", "speakers", "summary", "overlaps", "overlay_png", "cam"} <= set(answer)
    assert set(answer["timeline"]["items"]["properties"]) == {"start_s", "end_s", "label", "p_female", "speaker"}
    assert set(answer["speakers"]["items"]["properties"]) == {"speaker", "label", "p_female", "p_child", "speech_s",
                                                              "turns"}
    assert {"female_share", "female_speakers", "male_speakers", "female_speaker_share", "by_speaker"} <= set(
        answer["summary"]["properties"])
