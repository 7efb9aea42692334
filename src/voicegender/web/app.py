"""FastAPI app: a plain HTML/JS page and a small JSON API over predict / explain / segment.

Routes
------
``GET /``                 the page (``static/index.html``; its JS and CSS under ``/static/``)
``GET /api/health``       ``{"model", "version", "voicegender", "labels", "max_upload_mb", "token_required",
                          "child_flag"}`` (``p_child`` at or above ``child_flag``: the page warns of a child's voice)
``POST /api/predict``     multipart field ``file`` → the fields of ``predict --format json``
                          (``path, label, p_female, p_child, duration_s, speech_s, female_s, male_s``, and
                          ``speakers`` for a recording with more than one voice);
                          with ``?explain=1`` also
                          ``overlay_png`` (base64 PNG of the loudest ``overlay_span_s`` = [start, end] seconds,
                          at most 20 s: log-mel spectrogram with the attribution map when ``cam`` is true, else
                          the plain spectrogram and the reason in ``explain_note``); for files longer than
                          10 s (and up to 60 min, else null and ``timeline_note``) ``timeline`` (female/male/no_speech
                          segments with p_female and speaker), ``speakers`` (one object per speaker: id, gender,
                          p_female, p_child, speech and turns) and ``summary`` (speaking time, speakers by gender,
                          female share of speaking time and of speakers, per-speaker time and turns); else null.
                          ``?speakers=N`` (1 to 20; with or without explain): the number of speakers, when the
                          user knows it (as ``predict --num-speakers``); the speaking time (``female_s``,
                          ``male_s``, ``speech_s``), the ``speakers`` and the timeline then come from a timeline
                          with that many speakers. A request draws at most one timeline: with explain, the one
                          shown is the one the speaking time and speakers came from (a recording with 8 s of speech
                          or less has its speaking time from the label, and a timeline of its own)

Safety: the model is loaded once; with an access token, every path except the page, its static files and
``/api/health`` needs ``Authorization: Bearer <token>`` (compared in constant time; 401 without it); uploads are
limited in size (Content-Length checked first, then counted while the body streams in) and in number (at most
``max_pending`` in progress, more get 503 before their body is read; a stalled upload gets 408); the upload is
decoded from a private temporary file with a fixed suffix, deleted afterwards; the user's file name is only ever
shown, never used as a path. Saving, decoding and model calls run in the threadpool, so the event loop never
waits on the CPU; concurrent uploads are batched (see create_app).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Message

from .. import __version__
from ..audio.decode import AUDIO_EXTENSIONS, SAMPLE_RATE, loudest_span
from ..errors import VoiceGenderError
from ..listen.prediction import FIELDS as PREDICT_FIELDS  # the fields of `predict --format json`
from ..voice.model import GENDERS
from . import backend

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MULTIPART_SLACK = 64 * 1024  # bytes of multipart headers/boundaries allowed on top of the file size limit
MAX_PENDING = 64  # uploads in progress (receiving, waiting for the model, predicted); more get 503 at once
RETRY_AFTER_S = 5  # the Retry-After of that 503, in seconds
UPLOAD_IDLE_S = 30.0  # an upload that sends no bytes for this many seconds gets 408 (and gives its slot back)
# and one that takes longer than this in all (a byte every few seconds restarts the idle clock: 64 such clients
# would hold every slot): 25 MB in 300 s needs 83 kB/s, far below a phone's upload
UPLOAD_TOTAL_S = 300.0
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_SEGMENT = {"type": "object", "description": "a stretch of the recording", "properties": {
    "start_s": {"type": "number"}, "end_s": {"type": "number"},
    "label": {"type": "string", "enum": ["female", "male", "no_speech"]},
    "p_female": {**_NUMBER_OR_NULL, "description": "null for no_speech"},
    "speaker": {"type": ["string", "null"], "description": "S1, S2, ...; null for no_speech or without speakers"}}}
_SPEAKER = {"type": "object", "description": "one voice, its gender decided from all of its speech", "properties": {
    "speaker": {"type": "string", "description": "S1, S2, ... in order of first appearance"},
    "label": {"type": "string", "enum": ["female", "male"]}, "p_female": {"type": "number"},
    "p_child": _NUMBER_OR_NULL, "speech_s": {"type": "number"}, "turns": {"type": "integer"}}}
_SUMMARY = {"type": ["object", "null"], "description": "the timeline's summary (voicegender.listen.segment."
            "Timeline.summary): speaking time per label and shares of speech, speakers by gender, the female share "
            "of speakers, the embedding that told them apart, and by_speaker (as in speakers)", "properties": {
    "duration_s": {"type": "number"}, "female_s": {"type": "number"}, "male_s": {"type": "number"},
    "no_speech_s": {"type": "number"}, "speech_s": {"type": "number"}, "female_share": _NUMBER_OR_NULL,
    "male_share": _NUMBER_OR_NULL, "speakers": {"type": "integer"}, "female_speakers": {"type": "integer"},
    "male_speakers": {"type": "integer"}, "female_speaker_share": _NUMBER_OR_NULL,
    "speaker_embedding": {"type": ["string", "null"], "enum": ["ecapa", "ge2e", None]},
    "overlap_s": {**_NUMBER_OR_NULL, "description": "seconds where two voices speak at once; null without speakers"},
    "by_speaker": {"type": "array", "items": _SPEAKER}}}
_OVERLAP = {"type": "object", "description": "a stretch where two voices speak at once", "properties": {
    "start_s": {"type": "number"}, "end_s": {"type": "number"},
    "speakers": {"type": "array", "items": {"type": "string"}, "description": "the two speakers heard (one when the "
                 "second voice was not told apart)"},
    "labels": {"type": "array", "items": {"type": "string", "enum": ["female", "male"]}}}}
_ANSWER = {"type": "object", "description": "the fields of `voicegender predict --format json`; with ?explain=1 "
           "also the picture and, for recordings longer than 10 s (up to 60 min), who speaks when", "properties": {
    "path": {"type": "string", "description": "the uploaded file's name, for display"},
    "label": {"type": "string", "enum": ["female", "male", "no_speech"]}, "p_female": _NUMBER_OR_NULL,
    "p_child": _NUMBER_OR_NULL, "duration_s": {"type": "number"}, "speech_s": {"type": "number"},
    "female_s": _NUMBER_OR_NULL, "male_s": _NUMBER_OR_NULL,
    "overlay_png": {"type": "string", "description": "?explain=1: base64 PNG"}, "cam": {"type": "boolean"},
    "explain_note": {"type": ["string", "null"]}, "overlay_span_s": {"type": "array", "items": {"type": "number"}},
    "timeline": {"type": ["array", "null"], "items": _SEGMENT},
    "timeline_note": {"type": "string", "description": "why there is no timeline (a recording over 60 min)"},
    "speakers": {"type": ["array", "null"], "items": _SPEAKER, "description": "with a timeline, its speakers "
                 "(empty when none were told apart); else, as `predict --format json`, the speakers of a recording "
                 "that holds more than one voice, and absent (null with ?explain=1) otherwise"},
    "summary": _SUMMARY,
    "overlaps": {"type": ["array", "null"], "items": _OVERLAP, "description": "with a timeline: where two voices "
                 "speak at once"}}}
# The body is read by hand (limits, back-pressure, stalls), so FastAPI cannot see it: the schema says what it is
PREDICT_OPENAPI = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": "the recording (any format "
                                "FFmpeg or libsndfile reads: WAV, FLAC, MP3, Ogg/Opus, M4A, WebM, ...)"}}}}}},
    "responses": {"200": {"description": "the answer", "content": {"application/json": {"schema": _ANSWER}}},
                  **{str(code): {"description": text} for code, text in (
        (400, "no multipart body, no field 'file', or an empty file"), (401, "the access token is missing or wrong"),
        (403, "a POST from another site's page"), (408, "the upload stalled or took too long"),
        (413, "the upload is larger than the limit"), (415, "the file cannot be decoded"),
        (503, "the server is busy: try again after Retry-After seconds"))}},
}
PUBLIC_PATHS = ("/", "/api/health")  # with a token, these and /static/* are open (the page carries no data)
COPY_BLOCK = 1 << 20  # bytes per read when copying the upload to the private temp file
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class _UploadTooLarge(Exception):
    """The request body grew past the limit while it was streaming in."""


class Capacity:
    """At most ``limit`` uploads in progress at once; one more gets 503 with Retry-After instead of a queue place.

    Only touched on the event loop thread, so a plain counter is enough. A slot is taken before the body is read
    and given back when the request ends, however it ends (answered, failed, client gone).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_pending must be at least 1, got {limit}")
        self.limit = limit
        self.used = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if self.used >= self.limit:
            raise HTTPException(503, "The server is busy; try again in a few seconds.",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        self.used += 1
        try:
            yield
        finally:
            self.used -= 1


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_token(token: str) -> str:
    """The token as given, or ValueError when it cannot travel in an HTTP header (printable ASCII, no spaces)."""
    if not re.fullmatch(r"[\x21-\x7e]+", token):
        raise ValueError("the access token must be printable ASCII without spaces (e.g. from "
                         "python -c 'import secrets; print(secrets.token_urlsafe())')")
    return token


def display_name(filename: str | None) -> str:
    """The uploaded file's name reduced to a harmless label for display (never used as a path)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = re.sub(r"[^\w.\- ()]+", "_", base).strip(" .")[:100]
    return base or "upload"


def create_app(model: Any = None, max_upload_mb: float = 25, token: str | None = None,
               max_pending: int = MAX_PENDING) -> FastAPI:
    """Build the web app with its model loaded once.

    Parameters
    ----------
    model : None (the shipped default model), a checkpoint path, or a ``models.LoadedModel``.
    max_upload_mb : largest accepted upload in MB (10^6 bytes); bigger requests get 413.
    token : access token; when set, every request except the page, ``/static/*`` and ``/api/health`` needs the
        header ``Authorization: Bearer <token>`` (401 without it). None: no token (the loopback default).
    max_pending : uploads in progress at once (being received, waiting for the model or predicted); one more
        gets 503 with ``Retry-After`` before its body is read.

    Concurrency: uploads are saved in the threadpool; predictions go through a
    :class:`~voicegender.web.backend.PredictBatcher` (uploads that arrive while the model is busy are predicted
    together in one call, in the threadpool); timelines run next to predictions; attribution maps run alone
    (see :class:`~voicegender.web.backend.ModelGate`) and cover at most ``audio.MAP_MAX_S`` seconds.
    """
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    token_digest = None if token is None else hashlib.sha256(check_token(token).encode()).digest()
    capacity = Capacity(max_pending)
    served = backend.load(model)
    max_bytes = int(max_upload_mb * 1_000_000)
    gate = backend.ModelGate()
    batcher = backend.PredictBatcher(served, gate)

    # No Swagger/ReDoc pages: they load their JS from a CDN, and this app must work offline.
    app = FastAPI(title="voicegender", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.served = served
    app.state.max_upload_bytes = max_bytes
    app.state.capacity = capacity

    def authorized(request: Request) -> bool:
        path = request.url.path
        if token_digest is None or path in PUBLIC_PATHS or path.startswith("/static/"):
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        # equal-length digests compared in constant time: the answer's timing tells nothing about the token
        given = hashlib.sha256(value.strip().encode("utf-8", "surrogateescape")).digest()
        return hmac.compare_digest(given, token_digest) and scheme.lower() == "bearer"

    def cross_origin(request: Request) -> bool:
        """A browser's POST from a page another site served (its Origin is not this server): any site the user
        visits could otherwise send audio to a server on their machine. Clients without an Origin pass."""
        origin = request.headers.get("origin")
        if request.method in ("GET", "HEAD", "OPTIONS") or origin is None:
            return False
        return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        if cross_origin(request):  # checked before anything of the body is read
            response = JSONResponse({"detail": "Cross-origin requests are refused: use the page this server "
                                               "serves, or a client that sends no Origin header."}, status_code=403)
        elif authorized(request):
            response = await call_next(request)
        else:
            sent = request.headers.get("authorization")
            detail = ("This server needs its access token: send the header 'Authorization: Bearer <token>' "
                      "(on the page: open it once as /?token=<token>)." if sent is None else
                      "The access token sent is not this server's (the header must read 'Authorization: Bearer "
                      "<token>').")
            response = JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)  # HEAD: monitors, curl -I
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.head("/api/health", include_in_schema=False)
    async def health_head() -> Response:  # monitors and curl -I: up, nothing more
        return Response(status_code=200)

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """The loaded model's name and version."""
        from ..voice.default_model import CHILD_FLAG

        return {"model": served.name, "version": served.version, "voicegender": __version__,
                "labels": list(GENDERS), "max_upload_mb": max_upload_mb,
                "token_required": token_digest is not None, "child_flag": CHILD_FLAG}

    def too_large(size: str = "") -> HTTPException:
        return HTTPException(413, f"File too large{size}: the limit is {max_upload_mb:g} MB "
                                  f"({int(max_upload_mb * 1e6):,} bytes). "
                                  "Trim or compress the recording and try again.")

    def check_headers(request: Request) -> None:
        """The checks that need no body: they answer before a capacity slot is taken or a byte is read."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes + MULTIPART_SLACK:
            raise too_large(f" ({int(length):,} bytes)")
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise HTTPException(400, "Send the audio as multipart/form-data in the field 'file'.")

    async def read_upload(request: Request) -> UploadFile:
        received = 0
        deadline = time.monotonic() + UPLOAD_TOTAL_S

        async def counting_receive() -> Message:  # enforce the limit on the stream itself (chunked uploads)
            nonlocal received
            # a client that stops sending, or sends a byte at a time, must not hold its slot forever
            left = deadline - time.monotonic()
            with anyio.fail_after(max(0.0, min(UPLOAD_IDLE_S, left))):
                message = await request.receive()
            received += len(message.get("body", b""))
            if received > max_bytes + MULTIPART_SLACK:
                raise _UploadTooLarge
            return message

        # On any failure starlette's parser closes the spooled parts it has; they are anonymous temp files.
        try:
            form = await Request(request.scope, counting_receive).form(max_files=1, max_fields=4)
        except _UploadTooLarge:
            raise too_large() from None
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise HTTPException(408, f"The upload took longer than {UPLOAD_TOTAL_S:g} s.") from None
            raise HTTPException(408, f"The upload stalled: no data for {UPLOAD_IDLE_S:g} s.") from None
        except ClientDisconnect:  # nobody will read this answer; it only ends the request without a traceback
            raise HTTPException(400, "The upload was interrupted before it was complete.") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            problem = HTTPException(400, "No file: send the audio in the multipart field 'file'.")
        elif upload.size is not None and upload.size > max_bytes:
            problem = too_large(f" ({upload.size:,} bytes)")
        elif not upload.size:
            problem = HTTPException(400, f"{display_name(upload.filename)}: empty file (0 bytes).")
        else:
            return upload
        await form.close()  # the spooled parts, now rather than whenever they are collected
        raise problem

    def save_private(upload: UploadFile) -> str:
        # A private temp file (mode 0600, random name, a suffix from our own list) because the decoders read
        # paths; the suffix helps their format probing, and nothing of the user's file name reaches the disk.
        ext = Path(upload.filename or "").suffix.lower()
        suffix = ext if ext in AUDIO_EXTENSIONS else ".upload"
        with tempfile.NamedTemporaryFile(prefix="voicegender-", suffix=suffix, delete=False) as tmp:
            try:
                upload.file.seek(0)
                while block := upload.file.read(COPY_BLOCK):
                    tmp.write(block)
            except BaseException:  # disk full, ...: the caller never learns the name, so remove it here
                tmp.close()
                Path(tmp.name).unlink(missing_ok=True)
                raise
        return tmp.name

    def picture(samples: np.ndarray, path: str, name: str, no_map: str | None = None) -> dict[str, Any]:
        """The picture of the loudest MAP_MAX_S seconds: the attribution map (caller holds the gate exclusively),
        or with ``no_map`` (why not) the plain spectrogram."""
        start, end = loudest_span(samples)
        if no_map is None:
            png, has_map, note = backend.picture_png(samples[start:end], served)
        else:
            png, has_map, note = backend.spectrogram_png(samples[start:end]), False, no_map
        return {"overlay_png": base64.b64encode(png).decode(), "cam": has_map,
                "explain_note": note and note.replace(path, name),
                "overlay_span_s": [round(start / SAMPLE_RATE, 2), round(end / SAMPLE_RATE, 2)]}

    @app.post("/api/predict", openapi_extra=PREDICT_OPENAPI)
    async def predict(request: Request, explain: bool = False,
                      speakers: int | None = Query(None, ge=1, le=backend.MAX_SPEAKERS_GIVEN, description=(
                          "how many speakers the recording holds, when known (as `predict --num-speakers`): the "
                          "speaking time and speakers of a recording with more than 8 s of speech come "
                          "from a timeline with that many speakers, and with explain the timeline shown is that "
                          "one"))) -> JSONResponse:
        """Predict from the uploaded audio (multipart field ``file``); ``?explain=1`` adds the map, the timeline, its
        speakers and summary; ``speakers=N`` gives the number of speakers."""
        check_headers(request)
        with capacity.slot():  # 503 when full, before the body is read
            upload = await read_upload(request)
            return await answer(upload, explain, speakers)

    async def answer(upload: UploadFile, explain: bool, speakers: int | None = None) -> JSONResponse:
        """The prediction (and picture) for a received upload; its private copy is gone when this returns."""
        name = display_name(upload.filename)
        path = None
        t0 = time.perf_counter()
        try:
            path = await anyio.to_thread.run_sync(save_private, upload)
            # one timeline per request: the prediction's speaking time and speakers come from a timeline drawn with
            # the number of speakers given, and explain shows that same timeline (kept on the prediction)
            pred = await batcher.predict(path, speakers, timeline=explain)
            if pred.label == "error":  # name the user's file, not our temp path
                raise HTTPException(415, f"Not usable audio: {(pred.error or '').replace(path, name)}")
            answered = pred.as_dict()  # rounded as predict --format json, which adds speakers for several voices
            result = {field: answered[field] for field in (*PREDICT_FIELDS, "speakers") if field in answered}
            result["path"] = name
            if explain:
                samples = await anyio.to_thread.run_sync(backend.first_seconds, path)
                result.update(timeline=None, summary=None, overlaps=None, speakers=result.get("speakers"))
                if backend.LONG_AUDIO_S < pred.duration_s <= backend.TIMELINE_MAX_S:  # timeline, speakers, summary
                    if pred.timeline is not None:  # the one the answer's speaking time and speakers came from
                        result.update(backend.timeline_answer(pred.timeline))
                    else:  # little speech: the prediction drew none
                        async with gate.shared():
                            result.update(await anyio.to_thread.run_sync(backend.timeline, path, served, speakers))
                elif pred.duration_s > backend.TIMELINE_MAX_S:
                    result["timeline_note"] = (f"no timeline for recordings over {backend.TIMELINE_MAX_S / 60:g} "
                                               "min here: run `voicegender segment` on the file")
                if pred.label == "no_speech":  # nothing was classified: nothing for a map to explain
                    why = "no speech was detected, so there is no answer to explain"
                    result.update(await anyio.to_thread.run_sync(picture, samples, path, name, why))
                else:
                    async with gate.exclusive():
                        result.update(await anyio.to_thread.run_sync(picture, samples, path, name))
                short_max_s = backend.unmapped_below_s(served) if result.get("cam") else 0.0
                if result.get("cam") and pred.speech_s is not None and pred.speech_s < short_max_s:
                    result["explain_note"] = (f"the map explains the model's main layer; speech this short "
                                              f"(under {short_max_s:g} s) is answered by its short-speech layer")
        except VoiceGenderError as e:
            raise HTTPException(422, str(e).replace(path or "\0", name)) from e
        finally:  # the private copy first: no await before it, so even a cancelled request removes it
            if path is not None:
                Path(path).unlink(missing_ok=True)
            await upload.close()
        log.info("%s: %s p_female=%s in %.2f s", name, pred.label, pred.p_female, time.perf_counter() - t0)
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
