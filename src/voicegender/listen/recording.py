"""One recording: decode, detect speech, measure speaking time, and score what is not left to the batch.

Memory does not grow with a file's length: files longer than :data:`STREAM_ABOVE_S` (or larger decoded than
:data:`MAX_DECODE_BYTES`) are decoded block by block, their speech handed to the model in chunks as the stream goes
(:class:`voicegender.speech.vad.SpeechStream`), and only duration-weighted sums of chunk logits are kept. Speech longer
than one chunk is scored by the worker thread that decoded it, so a batch holds at most ``batch_size`` short clips.

Speaking time: for recordings with more than ``speaking_time_above_s`` of speech, ``speech_s``, ``female_s`` and
``male_s`` are those of the timeline ``segment`` would draw (its windows, speakers and own speech detector;
:class:`voicegender.listen.segment.TimelineBuilder`), so both commands give the same seconds. Shorter speech is all
given to the predicted label: one or two words hold no turns, and the windows would cost about three times the
scoring of the clip itself.

Each step reports progress to the file's :class:`voicegender.listen.workers.Watch` (the decode watchdog).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio.decode import AudioTooLong, load_audio, soundfile_name, spans_of, stream_audio
from ..errors import ModelError, VoiceGenderError
from ..speech.classified import classified_speech
from ..speech.vad import TONAL_MAX_S, VAD_SAMPLE_RATE, SpeechStream, holds_a_syllable, looks_tonal, speech_seconds
from ..speech.vad_model import backend_name
from ..voice.model import MAX_CHUNK_S, Model, logit, score_speech, sigmoid
from .prediction import PredictOptions, Prepared
from .workers import Watch

log = logging.getLogger(__name__)

CHUNKS_PER_CALL = 4  # chunks of a streamed file scored per model call (4 x 15 s x 64 kB/s: ~4 MB of speech)
STREAM_ABOVE_S = 300.0  # longer files (by their header) are streamed: memory holds blocks, not the file
MAX_DECODE_BYTES = 16_000_000  # files decoding to more float32 (all channels) are streamed (48 kHz stereo: 41 s)
STREAM_ABOVE_BYTES = 20_000_000  # files whose header soundfile cannot read (m4a, webm, ...) and are larger: streamed
STREAM_BLOCK_S = 10.0  # seconds decoded at a time when streaming (48 kHz stereo: ~14 MB peak)
RECHECK_MAX_S = 120.0  # streamed files up to this long with too little speech get find_speech's lenient passes


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _should_stream(path: Path) -> bool:
    """Long (by the header) or large once decoded: decode block by block instead of all at once."""
    try:
        info = sf.info(soundfile_name(path))
        if info.frames > 0:
            return (info.frames / info.samplerate > STREAM_ABOVE_S
                    or info.frames * max(1, info.channels) * 4 > MAX_DECODE_BYTES)
    except (sf.LibsndfileError, RuntimeError, ZeroDivisionError):
        pass
    return path.stat().st_size > STREAM_ABOVE_BYTES


def _segment_options(options: PredictOptions):
    from .segment import SegmentOptions

    # overlaps only for a timeline that is shown (the web page's explain): predict's answers do not carry them
    return SegmentOptions(threshold=options.threshold, speaker_options=options.speaker_options,
                          overlaps=options.keep_timeline, score_threads=options.score_threads or 1)


def _timeline(model: Model, options: PredictOptions, read_spans=None):
    """segment's timeline builder; with ``read_spans`` (a second read of the audio) its speakers are told apart by
    the speaker encoder when it is available."""
    from .segment import TimelineBuilder, speaker_encoder

    encoder = speaker_encoder() if read_spans is not None else None
    return TimelineBuilder(model, _segment_options(options), read_spans if encoder is not None else None, encoder)


def _timeline_answer(timeline, prepared: Prepared, options: PredictOptions) -> None:
    """The finished timeline's speech time and female share of it and, when it heard more than one voice, its
    speakers. Its speech time replaces the clip detector's, so ``predict`` and ``segment`` report the same seconds
    of speech for a recording (the timeline's detector keeps shorter pauses inside a turn). With
    ``options.keep_timeline`` the timeline itself too (for a caller that shows it: no second drawing)."""
    answer = timeline.finish_timeline()
    if options.keep_timeline:
        prepared.timeline = answer
    spoken = answer.speaking_time()
    prepared.female_share = spoken.female_share
    if spoken.speech_s > 0:
        prepared.speech_s = spoken.speech_s
    if len(answer.speakers) > 1:
        prepared.speakers = [s.as_dict() for s in answer.speakers]


def _file_spans(path: Path, watch: Watch):
    """A second read of a file, for the speaker encoder (see voicegender.listen.speakers.diarize). It reports its
    progress to the file's watch: on 10 h the turns' embeddings take minutes after the first read has ended."""
    from .segment import SegmentOptions

    def read_spans(spans):
        return spans_of(stream_audio(path, VAD_SAMPLE_RATE, SegmentOptions.block_s, on_progress=watch.progress), spans)

    return read_spans


def _memory_spans(samples16k: np.ndarray):
    def read_spans(spans):
        return ((i, samples16k[a:b]) for i, (a, b) in enumerate(spans))

    return read_spans


class _ChunkScorer:
    """Scores speech handed in piece by piece, in chunks of at most :data:`MAX_CHUNK_S`, and keeps only sums.

    The chunks' logits are averaged weighted by duration, as :func:`~voicegender.voice.model.score_speech` does.
    One chunk's worth is kept back until the end, so that no chunk is short: the last 15-30 s are split into two
    equal halves (up to 30 s of speech the chunks are exactly those of score_speech). The first
    :data:`voicegender.speech.vad.TONAL_MAX_S` of speech are kept for :func:`voicegender.speech.vad.looks_tonal`.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.chunk = int(MAX_CHUNK_S * VAD_SAMPLE_RATE)
        self.pending: list[np.ndarray] = []  # speech not yet cut into chunks
        self.size = 0
        self.ready: list[np.ndarray] = []  # chunks waiting for a model call
        self.head: list[np.ndarray] = []  # the first TONAL_MAX_S of speech
        self.head_size = 0
        self.sums = np.zeros(3)  # weight, weight x female logit, weight x child logit
        self.child = True  # the model estimates p_child
        self.sounded = False  # a piece held a sound as long as a syllable (speech.vad.too_brief's measure)

    def add(self, piece: np.ndarray) -> None:
        if not self.sounded:  # checked piece by piece until one holds such a sound (with speech: the first)
            self.sounded = holds_a_syllable(piece)
        if self.head_size < TONAL_MAX_S * VAD_SAMPLE_RATE:
            self.head.append(piece[:int(TONAL_MAX_S * VAD_SAMPLE_RATE) - self.head_size])
            self.head_size += len(self.head[-1])
        self.pending.append(piece)
        self.size += len(piece)
        if self.size >= 2 * self.chunk:
            speech = np.concatenate(self.pending)
            cut = len(speech) - self.chunk  # whole chunks, leaving between one and two chunks' worth
            cut -= cut % self.chunk
            self.ready.extend(np.split(speech[:cut], cut // self.chunk))
            self.pending, self.size = [speech[cut:]], len(speech) - cut
        if len(self.ready) >= CHUNKS_PER_CALL:
            self._score()

    def looks_tonal(self) -> bool:
        return bool(self.head) and looks_tonal(np.concatenate(self.head))

    def finish(self) -> tuple[float, float | None]:
        """(p_female, p_child) of all speech added."""
        if self.size:
            speech = np.concatenate(self.pending)
            self.ready.extend(np.array_split(speech, -(-len(speech) // self.chunk)))  # equal parts
            self.pending, self.size = [], 0
        self._score()
        weight, female, child = self.sums
        if weight <= 0:
            raise ValueError("no speech was scored")
        p_child = float(sigmoid(child / weight)) if self.child else None
        return float(sigmoid(female / weight)), p_child

    def _score(self) -> None:
        if not self.ready:
            return
        scores = score_speech(self.model, self.ready)
        female, child = scores.p_female, scores.p_child
        weights = np.array([len(x) for x in self.ready], np.float64)
        self.child = self.child and child is not None
        self.sums += [weights.sum(), float(weights @ logit(female)),
                      float(weights @ logit(child)) if child is not None else 0.0]
        self.ready = []


def analyse_samples(name: str, samples16k: np.ndarray, duration_s: float, model: Model, options: PredictOptions,
                     watch: Watch) -> Prepared:
    """Speech detection, speaking time and (for speech longer than one chunk) scores of audio in memory."""
    speech, speech_s = classified_speech(samples16k, options.vad_config, options.min_speech_s,
                                         check=model.speech_check, vad=options.vad)
    watch.progress()
    prepared = Prepared(name, duration_s, speech, speech_s)
    if speech_s < options.min_speech_s:
        return prepared
    if speech_s > options.speaking_time_above_s:
        timeline = _timeline(model, options, _memory_spans(samples16k))
        step = int(STREAM_BLOCK_S * VAD_SAMPLE_RATE)
        for i in range(0, len(samples16k), step):
            timeline.feed(samples16k[i:i + step])
            watch.progress(step)
        _timeline_answer(timeline, prepared, options)
    if len(speech) > MAX_CHUNK_S * VAD_SAMPLE_RATE:  # scored here: a batch holds only short speech
        scores = score_speech(model, [speech])
        prepared.scores = (float(scores.p_female[0]), None if scores.p_child is None else float(scores.p_child[0]))
        prepared.speech = None
    return prepared


def _analyse_stream(path: Path, name: str, model: Model, options: PredictOptions, watch: Watch) -> Prepared:
    """A long file block by block: speech scored chunk by chunk as it is found, windows as in ``segment``."""
    speech = SpeechStream(options.vad_config) if options.vad else None
    chunks = _ChunkScorer(model)
    # silero's TorchScript fallback holds one stream's state: the timeline's own detector then gets a second pass
    together = backend_name() == "onnx-sequence" or speech is None
    wanted = math.isfinite(options.speaking_time_above_s) and together
    timeline = _timeline(model, options, _file_spans(path, watch)) if wanted else None
    total = 0
    for block in stream_audio(path, VAD_SAMPLE_RATE, STREAM_BLOCK_S, on_progress=watch.progress):
        total += len(block)
        for piece in speech.feed(block) if speech is not None else [block]:
            chunks.add(piece)
        if timeline is not None:
            timeline.feed(block)
        watch.progress(len(block))
    if speech is not None:
        for piece in speech.finish():
            chunks.add(piece)
    duration_s = total / VAD_SAMPLE_RATE
    speech_s = speech_seconds(speech.regions) if speech is not None else duration_s
    if speech is not None and speech_s and (chunks.looks_tonal() or not chunks.sounded):  # as find_speech: tones,
        speech_s = 0.0  # and clicks or beeps (no sound as long as a syllable: speech.vad.too_brief) are no speech
    if speech is not None and speech_s < options.min_speech_s and duration_s <= RECHECK_MAX_S:
        # streamed for its decoded size (48 kHz stereo from 41 s), not its length: decoded whole once more (at most
        # 46 MB while decoding), it gets find_speech's lenient passes and the speech check as a smaller file would
        samples = load_audio(path, VAD_SAMPLE_RATE, on_progress=watch.progress).samples
        return analyse_samples(name, samples, len(samples) / VAD_SAMPLE_RATE, model, options, watch)
    prepared = Prepared(name, duration_s, None, speech_s)
    if speech_s < options.min_speech_s:
        return prepared
    prepared.scores = chunks.finish()
    if speech_s > options.speaking_time_above_s:
        if timeline is None and not together:
            timeline = _timeline(model, options, _file_spans(path, watch))
            for block in stream_audio(path, VAD_SAMPLE_RATE, STREAM_BLOCK_S, on_progress=watch.progress):
                timeline.feed(block)
                watch.progress(len(block))
        if timeline is not None:
            _timeline_answer(timeline, prepared, options)
    return prepared


def analyse_file(path: str | os.PathLike, model: Model, options: PredictOptions, watch: Watch) -> Prepared:
    """Decode, detect speech, and score what is not left to the batch; raises on files that cannot be decoded."""
    name, path = str(path), Path(path)
    if path.is_file() and path.stat().st_size > 0 and _should_stream(path):
        return _analyse_stream(path, name, model, options, watch)
    try:
        audio = load_audio(path, sr=VAD_SAMPLE_RATE, max_bytes=MAX_DECODE_BYTES, on_progress=watch.progress)
    except AudioTooLong:  # a small file decoding to a lot (a header soundfile cannot read, silence compresses)
        return _analyse_stream(path, name, model, options, watch)
    watch.progress(len(audio.samples))
    return analyse_samples(name, audio.samples, audio.duration_s, model, options, watch)


def prepare_file(path: str | os.PathLike, model: Model, options: PredictOptions, watch: Watch | None = None
                 ) -> Prepared:
    """:func:`analyse_file`, with any problem of the file turned into an error row that names it in one line."""
    name = str(path)
    try:
        return analyse_file(path, model, options, watch or Watch())
    except ModelError:  # the model, not the file: stop
        raise
    except VoiceGenderError as e:
        return Prepared(name, error=_one_line(str(e)))
    except Exception as e:  # whatever else a strange file makes a decoder raise (FFmpeg has many error types)
        log.debug("unexpected error on %s", name, exc_info=True)
        return Prepared(name, error=_one_line(f"{name}: {type(e).__name__}: {e}"))

