"""The web app's only contact with the library: load the model, predict, picture and map, segment (with speakers).

Kept apart from the HTTP code so that the routes stay about HTTP and every library call the page depends on is
in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz: uploads are decoded at this rate for the picture and the timeline
MAX_SPEAKERS_GIVEN = 20  # the most speakers a user may say a recording holds
LONG_AUDIO_S = 10.0  # files longer than this (seconds) also get a timeline: who speaks when, speakers, summary
# With ?explain=1 the picture reads at most the first PICTURE_READ_S seconds (audio.py says why) and the timeline is
# streamed from the file, up to TIMELINE_MAX_S (longer recordings: `voicegender segment`): memory stays bounded
# whatever an upload holds.
TIMELINE_MAX_S = 3600.0


@dataclass(frozen=True)
class ServedModel:
    """The model (a :class:`voicegender.voice.model.Model`) and how the page names it."""

    loaded: Any  # voicegender.voice.model.Model
    name: str  # shown by /api/health and on the page
    version: str  # the model's own version, else the voicegender version


def load(model: Any = None) -> ServedModel:
    """Load the model once: None → the shipped default model, a path → that model file, a Model → as is."""
    from .. import __version__
    from ..voice.loading import load_model

    loaded = load_model(model)  # the same resolution as `voicegender predict --model`
    return ServedModel(loaded, loaded.name, loaded.version or __version__)


class ModelGate:
    """Who may run the shared model: any number of *shared* users, or one *exclusive* user alone.

    Predictions and timelines only run forward passes, so they may overlap. Attribution maps hook the network's
    layers (captum), and the hooks would also fire for someone else's forward pass at the same time, so a map runs
    alone. A waiting map stops new shared users from entering, so a stream of predictions cannot starve it.
    """

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._shared = 0
        self._exclusive = False
        self._exclusive_waiting = 0

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._exclusive and not self._exclusive_waiting)
            self._shared += 1
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):  # always give the slot back, even when the client hung up
                async with self._cond:
                    self._shared -= 1
                    self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._cond:
            self._exclusive_waiting += 1
            try:
                await self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            finally:
                self._exclusive_waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._cond:
                    self._exclusive = False
                    self._cond.notify_all()


class PredictBatcher:
    """Continuous batching: uploads that arrive while the model is busy are predicted together.

    One ``predict.predict_files`` call per batch decodes and detects speech in its thread pool and scores all
    the speech in one model call: on 2 CPU cores that costs about half the CPU per clip of one call each. There
    is no waiting window: a request that finds the model idle starts at once; the ones that arrive meanwhile form
    the next batch. Requests that give a number of speakers are predicted with it (their speaking time and
    speakers come from a timeline with that many): a batch makes one call per number given, in order of arrival
    (most requests give none: one call). A call keeps its timelines (``PredictOptions.keep_timeline``) when one of
    its requests asks for them, so that explain shows the very timeline the answer came from. Each call holds
    ``gate`` shared (see :class:`ModelGate`).
    """

    def __init__(self, served: ServedModel, gate: ModelGate, max_batch: int = 16) -> None:
        self.served = served
        self.max_batch = max_batch
        self.gate = gate
        self._queue: list[tuple[str, int | None, bool, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def predict(self, path: str, speakers: int | None = None, timeline: bool = False) -> Any:
        """``predict.Prediction`` for one audio file (its path is our private temp file). ``speakers``: how many
        there are, when the user knows (else found); ``timeline``: keep the timeline the prediction draws for
        its speaking time (``Prediction.timeline``; none for little speech)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((path, speakers, timeline, future))
        drainer = self._drainer
        if drainer is None or drainer.done() or drainer.get_loop() is not loop:
            # a task of its own, so that a client hanging up cancels only its own request, not the batch
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            batch = [entry for entry in batch if not entry[-1].done()]  # skip hung-up clients
            groups: dict[int | None, list[tuple[str, int | None, bool, asyncio.Future]]] = {}
            for entry in batch:  # one predict_files call per number of speakers given
                groups.setdefault(entry[1], []).append(entry)
            for speakers, group in groups.items():
                keep = any(wants for _, _, wants, _ in group)
                try:
                    async with self.gate.shared():
                        preds = await anyio.to_thread.run_sync(self._predict_files, [p for p, *_ in group],
                                                               speakers, keep)
                except Exception as e:  # hand the failure to every waiting request (each answers 500)
                    for *_, future in group:
                        if not future.done():
                            future.set_exception(e)
                else:
                    for (*_, future), pred in zip(group, preds, strict=True):
                        if not future.done():
                            future.set_result(pred)

    def _predict_files(self, paths: list[str], speakers: int | None = None, keep_timeline: bool = False
                       ) -> list[Any]:
        from ..listen.predict import predict_files

        return predict_files(paths, self.served.loaded, predict_options(speakers, keep_timeline),
                             show_progress=False)


def _speaker_options(speakers: int | None) -> Any:
    """``SpeakerOptions`` for a number of speakers the user gave (None: found from the audio)."""
    from ..listen.speakers import SpeakerOptions

    return SpeakerOptions() if speakers is None else SpeakerOptions(min_speakers=speakers, max_speakers=speakers)


def predict_options(speakers: int | None = None, keep_timeline: bool = False) -> Any:
    """The ``PredictOptions`` of a request: ``predict``'s defaults, with the number of speakers when given
    (as ``predict --num-speakers``) and, for explain, the timeline kept."""
    from ..listen.prediction import PredictOptions

    return PredictOptions(speaker_options=_speaker_options(speakers), keep_timeline=keep_timeline)


def picture_png(samples16k: np.ndarray, served: ServedModel) -> tuple[bytes, bool, str | None]:
    """The recording's picture: (PNG, has_map, note).

    The shipped kind of model (a voice head over the GE2E encoder): per-band occlusion over the ONNX encoder
    (:mod:`voicegender.voice.occlusion`: no torch, in every install). A network from ``voicegender train``: its
    class-activation map (``explain.explain_clip_png``, the research extras). When no map can be made, the plain
    log-mel spectrogram and the reason: the prediction stands either way.
    """
    from ..errors import VoiceGenderError
    from ..voice.default_model import VoiceModel

    try:
        if isinstance(served.loaded, VoiceModel):
            from ..voice.occlusion import occlusion_map
            from .picture import picture_png as draw

            found = occlusion_map(served.loaded, samples16k)
            return draw(found.log_mel, found.frame_s, found.band_hz, found.relevance), True, None
        return _research_map(samples16k, served), True, None
    except (VoiceGenderError, ValueError) as e:  # a model without maps, a clip too short for one, no research extras
        reason = str(e)
    except Exception as e:  # a failure inside the attribution code must not cost the user the prediction
        log.exception("activation map failed")
        reason = f"the map could not be computed ({type(e).__name__}: {e})"
    return spectrogram_png(samples16k), False, reason


def _research_map(samples16k: np.ndarray, served: ServedModel) -> bytes:
    from ..extras import require

    require("research", "a map of this model")
    from ..research.explain import explain_clip_png
    from ..threads import torch_threads

    # one torch thread, like predict and segment: the other core decodes the next uploads, and fine-grained
    # two-thread work (an LSTM step by step) stalls badly when the machine is busy
    with torch_threads(1):
        return explain_clip_png(samples16k, SAMPLE_RATE, served.loaded, title="")


def unmapped_below_s(served: ServedModel) -> float:
    """Speech shorter than this (seconds) is answered by a layer the picture's map does not show (0: none)."""
    from ..voice.occlusion import unmapped_below_s as below

    return below(served.loaded)


def spectrogram_png(samples16k: np.ndarray) -> bytes:
    """Plain log-mel spectrogram (the GE2E encoder's 40 mel bands, 10 ms frames; time in s across, Hz up) as PNG."""
    from ..voice.embeddings import MEL_HOP, mel_band_centres_hz, mel_frames
    from ..voice.occlusion import LOG_FLOOR
    from .picture import picture_png as draw

    mel = mel_frames(np.asarray(samples16k, np.float32).reshape(-1))
    return draw(np.log(mel + LOG_FLOOR).T, MEL_HOP / SAMPLE_RATE, mel_band_centres_hz())


def timeline_answer(t: Any) -> dict[str, Any]:
    """A :class:`voicegender.listen.segment.Timeline` as the answer's fields: ``{"timeline": [{"start_s", "end_s",
    "label", "p_female", "speaker"}], "speakers": [{"speaker", "label", "p_female", "p_child", "speech_s",
    "turns"}], "summary": Timeline.summary(), "overlaps": [{"start_s", "end_s", "speakers", "labels"}]}``;
    ``speakers`` and ``overlaps`` are empty when no speakers were told apart."""
    return {"timeline": [s.as_dict() for s in t.segments], "speakers": [s.as_dict() for s in t.speakers],
            "summary": t.summary(), "overlaps": [o.as_dict() for o in t.overlaps]}


def timeline(path: str, served: ServedModel, speakers: int | None = None) -> dict[str, Any]:
    """Who speaks when in an audio file, streamed from it in bounded memory (:func:`voicegender.listen.segment.
    timeline_file`), as :func:`timeline_answer`. ``speakers``: how many there are, when the user knows (else
    found). For a recording whose prediction drew no timeline (little speech): else its own is shown."""
    from ..listen.segment import SegmentOptions, timeline_file

    options = SegmentOptions(speaker_options=_speaker_options(speakers))
    return timeline_answer(timeline_file(path, served.loaded, options, show_progress=False))


def first_seconds(path: str) -> np.ndarray:
    """What the picture of an upload is made from: its first :data:`voicegender.audio.decode.PICTURE_READ_S` seconds."""
    from ..audio import decode as audio

    return audio.read_first_seconds(path, audio.PICTURE_READ_S, SAMPLE_RATE)
