"""Simulated conversations with a known answer: who spoke when, and each speaker's gender.

A conversation is made from labelled corpora (:mod:`voicegender.corpora`) and background recordings (music and
noise scenes, a folder with ``manifest.csv``: path, kind, title, artist, licence): speakers take turns, each turn
one speaker's clips (decoded at 16 kHz, DC removed, trimmed to speech by energy, joined with short pauses and cut
to the drawn length), then noise, a murmur of other voices, music and a telephone line are added as the
:class:`ConversationSpec` asks. The reference (:class:`Turn` list, music-alone stretches) is exact to the sample.

Used to benchmark timelines (``benchmarks/conversations.py``) and to train and tune what needs conversations
(a speech / music / noise check, speaker clustering). The five conditions of issue 19 are :data:`CONDITIONS`::

    from voicegender.voice.conversations import conversation_set

    for conv in conversation_set("../shared/data/baved", "music", n=3, seed=0,
                                 background_dir="../shared/data/background", n_speakers=3):
        conv.save("mixes")  # mixes/<name>.wav, .rttm (the reference), .json (reference and provenance)

Everything is deterministic given the seed; the parts of a conversation draw from separate random streams, so
the same seed gives the same speech with or without noise, babble or music (paired conditions).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

from ..audio.augment import pink_noise, rms, telephone
from ..audio.decode import load_audio
from ..corpora import Clip, Corpus, load_corpus
from ..errors import CorpusError, VoiceGenderError

log = logging.getLogger(__name__)

SR = 16_000  # Hz: conversations are 16 kHz mono float32
GENDERS = ("female", "male")
CHILD_MAX_AGE = 12  # years: speakers this young or younger are left out (children's voices are not the target)
FRAME = 160  # samples: 10 ms energy frames for trimming and pauses
TRIM_TOP_DB = 30.0  # dB below a clip's loudest frame that counts as silence: trims to about silero's speech span
CORE_DB = 20.0  # dB below the loudest frame: a clip's speech runs from its first to its last frame this loud...
EDGE_S = 0.2  # s: ...widened by at most this through frames within TRIM_TOP_DB (weak onsets, final consonants)
BRIDGE_FRAMES = 2  # quieter frames the widening steps over
EDGE_BURST_S, EDGE_GAP_S = 0.05, 0.2  # s: a click at a clip's edge, apart from its speech, is trimmed
LEVEL_HIGHPASS_HZ = 100.0  # levels for trimming are measured above this: rumble (AudioMNIST-AZ's) is not speech
CUT_PAUSE_S = 0.08  # s: a silent run at least this long inside a sentence is a place to cut it
MIN_PIECE_S = 0.25  # s: shorter remainders of a turn are not filled (the turn ends a little early instead)
CUT_SLACK_S = 0.3  # s: a clip may run this far past the drawn turn length before it is cut
FADE_S = 0.005  # s: fade in / out of every piece (no clicks at trimmed or cut edges)
LOOP_FADE_S = 0.1  # s: cross-fade where a noise or music recording is looped
BREAK_RAMP_S = 0.1  # s: music rises to and falls from its break level over this, inside the break
BREAK_MARGIN_S = 0.2  # s: at least this much silence between speech and a music-alone break
MAX_PEAK = 0.98  # the mix is scaled down (every part alike) if its peak exceeds this
RTTM_TYPES = {"female": "adult_female", "male": "adult_male"}  # RTTM's speaker sub-types (NIST RT-09)


# --- the reference -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Turn:
    """One speaker talking, without a pause longer than a spec's ``pause_s`` (pauses inside clips included)."""

    speaker: str  # "<corpus>/<speaker id>" (Clip.speaker_key): unique across corpora
    gender: str  # "female" | "male", the corpus's label for the speaker
    start_s: float
    end_s: float
    corpus: str = ""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class SpeakingTime:
    """Seconds of speech by gender (overlapping turns of one gender counted once) and by speaker."""

    by_gender: dict[str, float]
    by_speaker: dict[str, float]

    @property
    def female_share(self) -> float | None:
        """Female seconds over female + male seconds; None without speech."""
        total = self.by_gender.get("female", 0.0) + self.by_gender.get("male", 0.0)
        return self.by_gender.get("female", 0.0) / total if total > 0 else None


def _union_s(spans: Iterable[tuple[float, float]]) -> float:
    total, end = 0.0, -np.inf
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def speaking_time(turns: Iterable[Turn]) -> SpeakingTime:
    """Speaking time of a reference, by gender and by speaker."""
    turns = list(turns)
    by_gender = {g: _union_s((t.start_s, t.end_s) for t in turns if t.gender == g) for g in GENDERS}
    by_speaker: dict[str, float] = {}
    for t in turns:
        by_speaker[t.speaker] = by_speaker.get(t.speaker, 0.0) + t.duration_s
    return SpeakingTime(by_gender, by_speaker)


def _frame_range(start_s: float, end_s: float, frame_s: float, n: int) -> tuple[int, int]:
    """Frames whose centre lies in [start_s, end_s)."""
    a = int(np.ceil(start_s / frame_s - 0.5))
    b = int(np.ceil(end_s / frame_s - 0.5))
    return max(0, a), min(n, b)


def frame_genders(turns: Iterable[Turn], duration_s: float, frame_s: float = 0.01) -> list[frozenset[str]]:
    """Per frame of ``frame_s`` (``round(duration_s / frame_s)`` frames; a frame counts at its centre) the set of
    genders speaking: empty (nobody), one gender, or both (cross-talk of a woman and a man)."""
    n = int(round(duration_s / frame_s))
    counts = {g: np.zeros(n + 1, np.int32) for g in GENDERS}
    for t in turns:
        a, b = _frame_range(t.start_s, t.end_s, frame_s, n)
        if b > a:
            counts[t.gender][a] += 1
            counts[t.gender][b] -= 1
    active = {g: np.cumsum(c)[:n] > 0 for g, c in counts.items()}
    sets = {(f, m): frozenset(g for g, on in (("female", f), ("male", m)) if on)
            for f in (False, True) for m in (False, True)}
    return [sets[f, m] for f, m in zip(active["female"].tolist(), active["male"].tolist(), strict=True)]


def frame_speaker_counts(turns: Iterable[Turn], duration_s: float, frame_s: float = 0.01) -> np.ndarray:
    """Per frame (as :func:`frame_genders`) the number of speakers talking (2 where turns overlap)."""
    n = int(round(duration_s / frame_s))
    counts = np.zeros(n + 1, np.int32)
    for t in turns:
        a, b = _frame_range(t.start_s, t.end_s, frame_s, n)
        if b > a:
            counts[a] += 1
            counts[b] -= 1
    return np.cumsum(counts)[:n]


def frame_mask(spans: Iterable[tuple[float, float]], duration_s: float, frame_s: float = 0.01) -> np.ndarray:
    """Per frame (as :func:`frame_genders`) whether it falls in one of ``spans`` (e.g. the music-alone ones)."""
    n = int(round(duration_s / frame_s))
    out = np.zeros(n, bool)
    for s, e in spans:
        a, b = _frame_range(s, e, frame_s, n)
        out[a:b] = True
    return out


def _rttm_name(speaker: str) -> str:
    return re.sub(r"\s+", "_", speaker) or "unknown"


def turns_to_rttm(turns: Iterable[Turn], file_id: str) -> str:
    """RTTM ``SPEAKER`` lines (the diarization standard), one a turn; the gender is the speaker sub-type
    (``adult_female`` / ``adult_male``, as NIST RT-09 defines it), which scoring tools ignore."""
    file_id = _rttm_name(file_id)
    return "".join(f"SPEAKER {file_id} 1 {t.start_s:.3f} {t.duration_s:.3f} <NA> "
                   f"{RTTM_TYPES.get(t.gender, '<NA>')} {_rttm_name(t.speaker)} <NA> <NA>\n" for t in turns)


def read_rttm(text: str) -> dict[str, list[Turn]]:
    """Turns per file id from RTTM text (``SPEAKER`` lines; others skipped). The gender comes from the sub-type
    (``adult_female`` / ``adult_male``; else ""), the corpus from a ``<corpus>/<id>`` speaker name."""
    genders = {v: k for k, v in RTTM_TYPES.items()}
    out: dict[str, list[Turn]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"RTTM line {number}: expected at least 8 fields, got {len(fields)}: {line!r}")
        start, dur, speaker = float(fields[3]), float(fields[4]), fields[7]
        corpus = speaker.split("/", 1)[0] if "/" in speaker else ""
        out.setdefault(fields[1], []).append(Turn(speaker, genders.get(fields[6], ""), start, start + dur, corpus))
    return out


@dataclass
class Conversation:
    """A simulated conversation and its reference."""

    name: str
    samples: np.ndarray  # 16 kHz mono float32: everything mixed (and through the telephone line, if asked)
    turns: list[Turn]  # in order of start
    music: list[tuple[float, float]]  # (start_s, end_s) of the music-alone breaks (no speech in them)
    condition: str  # a CONDITIONS name, or "custom"
    seed: int | None  # simulate(..., rng=seed) with the same speakers, background and spec rebuilds it
    spec: ConversationSpec | None = None
    babble_speakers: list[str] = field(default_factory=list)  # the murmur's voices (never conversation speakers)
    background: list[dict] = field(default_factory=list)  # the music / noise recordings used (credits)
    stems: dict[str, np.ndarray] | None = None  # simulate(keep_stems=True): the parts before the telephone line

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SR

    @property
    def speakers(self) -> dict[str, list[str]]:
        """The speakers who talk, by gender (sorted)."""
        return {g: sorted({t.speaker for t in self.turns if t.gender == g}) for g in GENDERS}

    def speaking_time(self) -> SpeakingTime:
        return speaking_time(self.turns)

    def frame_genders(self, frame_s: float = 0.01) -> list[frozenset[str]]:
        return frame_genders(self.turns, self.duration_s, frame_s)

    def music_frames(self, frame_s: float = 0.01) -> np.ndarray:
        """Per frame, whether it lies in a music-alone break."""
        return frame_mask(self.music, self.duration_s, frame_s)

    def to_rttm(self, file_id: str | None = None) -> str:
        return turns_to_rttm(self.turns, file_id or self.name)

    def reference(self) -> dict:
        """Everything but the audio, JSON-ready: turns, music-alone stretches, speakers, provenance."""
        return {"name": self.name, "condition": self.condition, "seed": self.seed, "sample_rate": SR,
                "duration_s": round(self.duration_s, 6), "speakers": self.speakers,
                "turns": [dataclasses.asdict(t) for t in self.turns], "music": [list(m) for m in self.music],
                "babble_speakers": self.babble_speakers, "background": self.background,
                "spec": None if self.spec is None else dataclasses.asdict(self.spec)}

    def save(self, folder: str | Path) -> Path:
        """Write ``<name>.wav`` (16-bit PCM), ``<name>.rttm`` and ``<name>.json`` (:meth:`reference`) into
        ``folder``; returns the WAV's path."""
        import soundfile as sf

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        wav = folder / f"{self.name}.wav"
        sf.write(wav, self.samples, SR, subtype="PCM_16")
        (folder / f"{self.name}.rttm").write_text(self.to_rttm())
        (folder / f"{self.name}.json").write_text(json.dumps(self.reference(), indent=1))
        return wav


def load_conversation(json_path: str | Path) -> Conversation:
    """A conversation written by :meth:`Conversation.save` (its JSON, and the WAV beside it)."""
    json_path = Path(json_path)
    ref = json.loads(json_path.read_text())
    samples = load_audio(json_path.with_suffix(".wav"), SR).samples
    spec = ref.get("spec")
    if spec is not None:
        spec = ConversationSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    return Conversation(ref["name"], samples, [Turn(**t) for t in ref["turns"]],
                        [tuple(m) for m in ref["music"]], ref["condition"], ref["seed"], spec,
                        ref.get("babble_speakers", []), ref.get("background", []))


# --- what to simulate --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConversationSpec:
    """How a conversation is made. Seconds and dB; a (low, high) pair is drawn uniformly per conversation, turn
    or pause. SNRs are speech power over the added part's power: speech measured inside the turns, the part over
    the whole conversation."""

    speakers: tuple[int, int] = (4, 4)  # number of speakers (simulate's n_speakers overrides it)
    genders: str = "balanced"  # "balanced": half each (an odd one random); "random": at least min_per_gender each
    min_per_gender: int = 1  # "random" genders: at least this many of each (when there are enough speakers)
    turn_s: tuple[float, float] = (1.0, 6.0)  # length of a turn (the last clip may run CUT_SLACK_S past it)
    gap_s: float = 0.2  # silence between turns (unused when crosstalk_s > 0)
    crosstalk_s: float = 0.0  # > 0: each turn starts this long before the previous one ends (at most half of either)
    pause_s: tuple[float, float] = (0.05, 0.15)  # pauses between the clips (words, sentences) of one turn
    duration_s: tuple[float, float] = (90.0, 120.0)  # target length; the last turn ends near it
    edge_s: float = 0.5  # silence before the first turn and after the last
    speech_dbfs: float = -26.0  # RMS level of a turn (each clip brought to it)
    level_spread_db: float = 3.0  # each speaker's level is speech_dbfs + uniform(-this, +this)
    floor_dbfs: float | None = -66.0  # faint pink noise everywhere, so pauses are not digital silence; None: none
    noise_snr_db: float | None = None  # a noise scene from background/noise (looped, cut, RMS-normalised); None: none
    babble_voices: int = 0  # other speakers of the same corpora murmuring throughout (never conversation speakers)
    babble_snr_db: float | None = None  # the murmur's level
    telephone: bool = False  # everything through a narrow-band telephone line (augment.telephone: µ-law, 8 kHz)
    music_snr_db: float | None = None  # music under the speech throughout (SNR outside the breaks); None: none
    music_break_every: int | None = None  # a music-alone break after every this many turns; None: no breaks
    music_break_s: tuple[float, float] = (2.0, 4.0)  # length of a break
    music_break_db: float = 0.0  # music level in a break relative to the speech level (0: about speech level)

    def __post_init__(self) -> None:
        lo, hi = self.speakers
        if not 1 <= lo <= hi:
            raise ValueError(f"speakers must be a range (low, high) with 1 <= low <= high, got {self.speakers}")
        if self.genders not in ("balanced", "random"):
            raise ValueError(f"genders must be 'balanced' or 'random', got {self.genders!r}")
        if not 0 < self.turn_s[0] <= self.turn_s[1]:
            raise ValueError(f"turn_s must be a range of positive seconds, got {self.turn_s}")
        if self.gap_s < 0 or self.crosstalk_s < 0:
            raise ValueError("gap_s and crosstalk_s must be >= 0")
        if self.babble_voices and self.babble_snr_db is None:
            raise ValueError("babble_voices needs babble_snr_db")
        if self.music_break_every is not None and self.music_break_every < 1:
            raise ValueError("music_break_every must be >= 1 or None")


_CLEAN = ConversationSpec()
CONDITIONS: dict[str, ConversationSpec] = {
    # 2 women + 2 men taking 1-6 s turns with 0.2 s gaps
    "clean": _CLEAN,
    # the same, back to back with 0.3 s of cross-talk, a noise scene at 15 dB
    "crosstalk_noise": dataclasses.replace(_CLEAN, crosstalk_s=0.3, noise_snr_db=15.0),
    # 0.5-3 s turns over a murmur of six other voices at 12 dB
    "babble": dataclasses.replace(_CLEAN, turn_s=(0.5, 3.0), babble_voices=6, babble_snr_db=12.0),
    # the clean conversation through a telephone line, a noise scene at 20 dB (added before the line)
    "telephone": dataclasses.replace(_CLEAN, noise_snr_db=20.0, telephone=True),
    # music under the speech at 10 dB, 2-4 s of music alone (at about speech level) after every six turns
    "music": dataclasses.replace(_CLEAN, music_snr_db=10.0, music_break_every=6),
}


# --- speakers and their clips -------------------------------------------------------------------------------------

def speaker_pool(corpora: Iterable[Corpus]) -> dict[str, list[Clip]]:
    """Clips by speaker (``Clip.speaker_key``) of audio corpora, without children (a known age <= CHILD_MAX_AGE on
    any clip) and without speakers whose clips disagree on the gender."""
    by_speaker: dict[str, list[Clip]] = {}
    for corpus in corpora:
        if corpus.kind != "audio":
            raise CorpusError(f"{corpus.name}: an image corpus has no audio to make conversations from")
        for clip in corpus.clips:
            by_speaker.setdefault(clip.speaker_key, []).append(clip)
    pool = {}
    for key, clips in sorted(by_speaker.items()):
        if any(c.age is not None and c.age <= CHILD_MAX_AGE for c in clips):
            continue
        if len({c.gender for c in clips}) > 1:
            log.warning("%s: clips labelled with both genders; speaker left out", key)
            continue
        pool[key] = clips
    return pool


_HIGHPASS = butter(4, LEVEL_HIGHPASS_HZ, "highpass", fs=SR, output="sos")


def _frame_db(x: np.ndarray) -> np.ndarray:
    """Level above LEVEL_HIGHPASS_HZ of each 10 ms frame, in dB relative to the loudest frame."""
    n = len(x) // FRAME
    x = sosfilt(_HIGHPASS, np.asarray(x, np.float64)[:n * FRAME])
    power = np.mean(x.reshape(n, FRAME) ** 2, axis=1) + 1e-20
    db = 10 * np.log10(power)
    return db - db.max() if n else db


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[first, last + 1) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _extend(weak: np.ndarray, i: int, step: int, limit: int) -> int:
    """From frame i, the farthest frame in direction ``step`` (at most ``limit`` away) reached through weak frames
    with gaps of at most BRIDGE_FRAMES."""
    end, quiet, k = i, 0, i + step
    while 0 <= k < len(weak) and abs(k - i) <= limit and quiet <= BRIDGE_FRAMES:
        if weak[k]:
            end, quiet = k, 0
        else:
            quiet += 1
        k += step
    return end


def trim_to_speech(x: np.ndarray, top_db: float = TRIM_TOP_DB) -> np.ndarray:
    """``x`` trimmed to its speech by level (10 ms frames, above LEVEL_HIGHPASS_HZ, relative to the loudest): from
    the first to the last frame within CORE_DB of the loudest, widened by up to EDGE_S through frames within ``top_db``
    (weak onsets and endings); an edge burst shorter than EDGE_BURST_S and EDGE_GAP_S or more from the rest (a
    click) is left out, as are breaths and noise apart from the speech."""
    db = _frame_db(x)
    runs = _runs(db > -CORE_DB)
    if not runs:
        return x[:0]
    burst, gap = EDGE_BURST_S * SR / FRAME, EDGE_GAP_S * SR / FRAME
    while len(runs) > 1 and runs[0][1] - runs[0][0] < burst and runs[1][0] - runs[0][1] >= gap:
        runs.pop(0)
    while len(runs) > 1 and runs[-1][1] - runs[-1][0] < burst and runs[-1][0] - runs[-2][1] >= gap:
        runs.pop()
    weak, limit = db > -top_db, int(EDGE_S * SR / FRAME)
    first = _extend(weak, runs[0][0], -1, limit)
    last = _extend(weak, runs[-1][1] - 1, 1, limit)
    return x[max(0, (first - 1) * FRAME):min(len(x), (last + 2) * FRAME)]


def pause_points(x: np.ndarray, min_pause_s: float = CUT_PAUSE_S, top_db: float = TRIM_TOP_DB) -> np.ndarray:
    """Sample positions of the middles of the silent runs (>= ``min_pause_s``) inside ``x``: places to cut."""
    quiet = np.concatenate([[False], _frame_db(x) <= -top_db, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    keep = (ends - starts) * FRAME >= min_pause_s * SR
    return ((starts[keep] + ends[keep]) // 2 * FRAME).astype(np.int64)


def _fade(x: np.ndarray, seconds: float = FADE_S) -> np.ndarray:
    n = min(int(seconds * SR), len(x) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


class ClipCache:
    """Clips decoded once per cache: 16 kHz, DC removed, trimmed to speech, unit RMS (None when unusable).
    Share one across :func:`simulate` calls on the same corpora; only the clips a conversation uses are decoded."""

    def __init__(self) -> None:
        self._clips: dict[Path, np.ndarray | None] = {}

    def get(self, clip: Clip) -> np.ndarray | None:
        if clip.path not in self._clips:
            self._clips[clip.path] = self._prepare(clip)
        return self._clips[clip.path]

    @staticmethod
    def _prepare(clip: Clip) -> np.ndarray | None:
        try:
            x = load_audio(clip.path, SR).samples.astype(np.float32)
        except VoiceGenderError as e:
            log.warning("%s; clip skipped", e)
            return None
        x = trim_to_speech(x - np.float32(np.mean(x)))
        level = rms(x)
        if len(x) < 0.1 * SR or level < 1e-5:
            return None
        return (x / level).astype(np.float32)

    def __len__(self) -> int:
        return len(self._clips)


class _Talker:
    """One speaker's clips in a shuffled order, dealt out without repeats until all were used."""

    def __init__(self, key: str, clips: list[Clip], cache: ClipCache, rng: np.random.Generator) -> None:
        self.key, self.clips, self.cache, self.rng = key, clips, cache, rng
        self.gender = clips[0].gender
        self.corpus = clips[0].corpus
        self.order: list[int] = []

    def next_clip(self) -> np.ndarray:
        for _ in range(2 * len(self.clips) + 1):
            if not self.order:
                self.order = self.rng.permutation(len(self.clips)).tolist()
            x = self.cache.get(self.clips[self.order.pop()])
            if x is not None:
                return x
        raise CorpusError(f"{self.key}: none of the speaker's {len(self.clips)} clips holds usable speech")

    def turn(self, seconds: float, pause_s: tuple[float, float]) -> np.ndarray:
        """About ``seconds`` of this speaker: clips joined with short pauses; a clip that would run more than
        CUT_SLACK_S past the length is cut at its pause nearest the length, else at the length."""
        target, slack = int(seconds * SR), int(CUT_SLACK_S * SR)
        pieces: list[np.ndarray] = []
        length = 0
        while length < target:
            pause = np.zeros(int(self.rng.uniform(*pause_s) * SR) if pieces else 0, np.float32)
            room = target - length - len(pause)
            if pieces and room < MIN_PIECE_S * SR:
                break
            x = self.next_clip()
            if len(x) > room + slack:
                x = _cut(x, max(room, int(MIN_PIECE_S * SR)), slack)
            pieces += [pause, _fade(x.copy())]
            length += len(pause) + len(x)
        return np.concatenate(pieces)


def _cut(x: np.ndarray, room: int, slack: int) -> np.ndarray:
    """``x`` cut near ``room`` samples: at the pause nearest it (not past room + slack), else at ``room``."""
    points = pause_points(x)
    points = points[(points >= MIN_PIECE_S * SR) & (points <= room + slack)]
    if len(points):
        cut = trim_to_speech(x[:int(points[np.argmin(np.abs(points - room))])])
        if len(cut) >= MIN_PIECE_S * SR:
            return cut
    return x[:room]


# --- background recordings ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackgroundRecording:
    path: Path
    kind: str  # "music" | "noise"
    title: str = ""
    artist: str = ""
    licence: str = ""
    singing: bool | None = None  # from details.csv when present

    def credit(self) -> dict:
        return {"kind": self.kind, "path": self.path.name, "title": self.title, "artist": self.artist,
                "licence": self.licence}


class Background:
    """Music and noise recordings to mix under and between speech, decoded once (16 kHz, DC removed)."""

    def __init__(self, recordings: Iterable[BackgroundRecording]) -> None:
        recordings = list(recordings)
        self.music = [r for r in recordings if r.kind == "music"]
        self.noise = [r for r in recordings if r.kind == "noise"]
        self._audio: dict[Path, np.ndarray] = {}

    @property
    def artists(self) -> list[str]:
        return sorted({r.artist for r in self.music})

    def select(self, keep: Callable[[BackgroundRecording], bool]) -> Background:
        """The recordings ``keep`` accepts (e.g. one group of :func:`music_artist_group`); decoded audio shared."""
        out = Background(r for r in (*self.music, *self.noise) if keep(r))
        out._audio = self._audio
        return out

    def only_artists(self, artists: Iterable[str]) -> Background:
        """The same noise, music by ``artists`` only."""
        wanted = set(artists)
        if wanted - set(self.artists):
            raise CorpusError(f"no music by {', '.join(sorted(wanted - set(self.artists)))} in the background "
                              f"(artists: {', '.join(self.artists)})")
        return self.select(lambda r: r.kind != "music" or r.artist in wanted)

    def audio(self, recording: BackgroundRecording) -> np.ndarray:
        if recording.path not in self._audio:
            x = load_audio(recording.path, SR).samples.astype(np.float32)
            self._audio[recording.path] = x - np.float32(np.mean(x))
        return self._audio[recording.path]


def load_background(folder: str | Path, music_artists: Iterable[str] | None = None) -> Background:
    """The recordings listed in ``folder/manifest.csv`` (path, kind, title, artist, licence; ``singing`` from
    ``details.csv`` when present), music limited to ``music_artists`` when given (e.g. one group of
    :func:`music_artist_group`, so training and test use different artists)."""
    folder = Path(folder)
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise CorpusError(f"{folder}: no manifest.csv of background recordings (path, kind, title, artist, licence)")
    singing = {}
    if (folder / "details.csv").is_file():
        with (folder / "details.csv").open(newline="", encoding="utf-8") as f:
            singing = {row["path"]: row.get("singing", "").strip().lower() == "yes" for row in csv.DictReader(f)}
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    recordings = [BackgroundRecording(folder / r["path"], r["kind"].strip(), r.get("title", ""), r.get("artist", ""),
                                      r.get("licence", ""), singing.get(r["path"])) for r in rows]
    if music_artists is not None:
        wanted = set(music_artists)
        known = {r.artist for r in recordings if r.kind == "music"}
        if wanted - known:
            raise CorpusError(f"{manifest}: no music by {', '.join(sorted(wanted - known))} "
                              f"(artists: {', '.join(sorted(known))})")
        recordings = [r for r in recordings if r.kind != "music" or r.artist in wanted]
    return Background(recordings)


def music_artist_group(artist: str, groups: int = 4) -> int:
    """A fixed group (0 .. groups - 1) for an artist, from a stable hash of the name: folds of music by artist
    (and of noise scenes by file name, as benchmarks/conversations.py and make_fold_heads.py use it)."""
    return int(hashlib.sha256(artist.encode("utf-8")).hexdigest(), 16) % groups


def _loop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``x`` from a random start, looped with LOOP_FADE_S cross-fades when it is too short."""
    if len(x) >= n:
        start = int(rng.integers(0, len(x) - n + 1))
        return x[start:start + n].copy()
    if not len(x):
        return np.zeros(n, np.float32)
    fade = min(int(LOOP_FADE_S * SR), len(x) // 4)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out = x[int(rng.integers(0, len(x) - 2 * fade)):].copy()
    while len(out) < n:
        head = x.copy()
        if fade:
            head[:fade] = head[:fade] * ramp + out[-fade:] * ramp[::-1]
            out = out[:-fade]
        out = np.concatenate([out, head])
    return out[:n]


# --- the simulation -----------------------------------------------------------------------------------------------

def _cast(spec: ConversationSpec, n: int, pool: dict[str, list[Clip]], rng: np.random.Generator) -> list[str]:
    by_gender = {g: sorted(k for k, clips in pool.items() if clips[0].gender == g) for g in GENDERS}
    if spec.genders == "balanced":
        n_female = n // 2 + (int(rng.integers(2)) if n % 2 else 0)
    else:
        least = min(spec.min_per_gender, n // 2)
        n_female = int(rng.integers(least, n - least + 1))
    need = {"female": n_female, "male": n - n_female}
    for g in GENDERS:
        if len(by_gender[g]) < need[g]:
            raise CorpusError(f"a conversation of {n} speakers needs {need[g]} {g} speakers; the corpora give "
                              f"{len(by_gender[g])} (children and speakers of mixed labels left out)")
    cast = [str(k) for g in GENDERS for k in rng.choice(by_gender[g], need[g], replace=False)]
    return [cast[i] for i in rng.permutation(len(cast))]


def _babble(voices: list[str], pool: dict[str, list[Clip]], cache: ClipCache, n: int,
            rng: np.random.Generator) -> np.ndarray:
    """A murmur: each voice talks on throughout (its clips in turn, 0.1-0.5 s apart), voices at equal level."""
    out = np.zeros(n, np.float64)
    for key in voices:
        talker = _Talker(key, pool[key], cache, rng)
        parts, have = [np.zeros(int(rng.uniform(0, 1.0) * SR), np.float32)], 0
        while have < n:
            parts += [talker.next_clip(), np.zeros(int(rng.uniform(0.1, 0.5) * SR), np.float32)]
            have += len(parts[-2]) + len(parts[-1])
        voice = np.concatenate(parts)[:n]
        out += voice / max(rms(voice), 1e-12)
    return (out / max(rms(out), 1e-12)).astype(np.float32)


def _babble_voices(count: int, cast: list[str], pool: dict[str, list[Clip]], rng: np.random.Generator) -> list[str]:
    """``count`` speakers not in the conversation, half of each gender where the pool allows."""
    others = {g: [k for k in sorted(pool) if k not in cast and pool[k][0].gender == g] for g in GENDERS}
    if sum(len(v) for v in others.values()) < count:
        raise CorpusError(f"babble needs {count} speakers besides the conversation's {len(cast)}; "
                          f"the corpora give {sum(len(v) for v in others.values())}")
    want_f = count // 2 + (int(rng.integers(2)) if count % 2 else 0)
    want_f = max(count - len(others["male"]), min(want_f, len(others["female"])))
    chosen = [str(k) for g, m in (("female", want_f), ("male", count - want_f))
              for k in rng.choice(others[g], m, replace=False)]
    return sorted(chosen)


def _pick(recordings: list[BackgroundRecording], kind: str, rng: np.random.Generator) -> BackgroundRecording:
    if not recordings:
        raise CorpusError(f"the background holds no {kind} recordings (check the folder and the music artists)")
    return recordings[int(rng.integers(len(recordings)))]


def simulate(spec: ConversationSpec, clips_by_speaker: dict[str, list[Clip]], background: Background | None,
             rng: np.random.Generator | int, name: str = "conversation", *, n_speakers: int | None = None,
             condition: str | None = None, cache: ClipCache | None = None, keep_stems: bool = False) -> Conversation:
    """One conversation as ``spec`` asks.

    Parameters
    ----------
    spec : what to make (:data:`CONDITIONS` holds the five of issue 19).
    clips_by_speaker : the speakers to draw from, by ``Clip.speaker_key`` (see :func:`speaker_pool`, which leaves
        children out); conversation and babble speakers both come from it, never the same ones.
    background : music and noise recordings (:func:`load_background`); None when the spec adds neither.
    rng : a Generator, or an int seed (then recorded in ``Conversation.seed``).
    n_speakers : overrides ``spec.speakers``.
    condition : the name recorded in the conversation (default: the CONDITIONS name of ``spec``, else "custom").
    cache : decoded clips shared between calls (default: a new one).
    keep_stems : keep each part (speech, floor, noise, babble, music; before the telephone line) in ``stems``.

    Raises
    ------
    CorpusError when the speakers or background recordings cannot give what the spec asks.
    """
    seed = int(rng) if isinstance(rng, int | np.integer) else None
    rng = np.random.default_rng(rng) if seed is not None else rng
    if condition is None:
        condition = next((k for k, v in CONDITIONS.items() if v == spec), "custom")
    cache = cache if cache is not None else ClipCache()
    # separate streams: the speech does not change when noise, babble or music are added or left out
    r_cast, r_turns, r_levels, r_breaks, r_floor, r_noise, r_babble, r_music = rng.spawn(8)

    n = n_speakers if n_speakers is not None else int(r_cast.integers(spec.speakers[0], spec.speakers[1] + 1))
    cast = _cast(spec, n, clips_by_speaker, r_cast)
    talkers = {k: _Talker(k, clips_by_speaker[k], cache, r_turns) for k in cast}
    levels = {k: 10 ** ((spec.speech_dbfs + r_levels.uniform(-1, 1) * spec.level_spread_db) / 20) for k in cast}

    target_end = r_turns.uniform(*spec.duration_s) - spec.edge_s
    placed: list[tuple[int, np.ndarray, str]] = []  # (start sample, audio, speaker)
    music_breaks: list[tuple[int, int]] = []
    gap, margin = int(round(spec.gap_s * SR)), int(round(max(spec.gap_s, BREAK_MARGIN_S) * SR))
    next_start = int(round(spec.edge_s * SR))
    after_break = False
    while True:
        k = len(placed)
        if k < len(cast):
            speaker = cast[k]  # everyone speaks once before anyone speaks twice
        else:
            speaker = str(r_turns.choice([s for s in cast if s != placed[-1][2]]))
        audio = talkers[speaker].turn(r_turns.uniform(*spec.turn_s), spec.pause_s) * levels[speaker]
        start = next_start
        if placed and spec.crosstalk_s > 0 and not after_break:
            overlap = min(int(round(spec.crosstalk_s * SR)), len(placed[-1][1]) // 2, len(audio) // 2)
            start = placed[-1][0] + len(placed[-1][1]) - overlap
        placed.append((start, audio, speaker))
        end = start + len(audio)
        after_break = False
        if len(placed) >= max(2, len(cast)) and end >= target_end * SR:
            break
        if spec.music_break_every and len(placed) % spec.music_break_every == 0:
            b0 = end + margin
            b1 = b0 + int(r_breaks.uniform(*spec.music_break_s) * SR)
            music_breaks.append((b0, b1))
            next_start, after_break = b1 + margin, True
        else:
            next_start = end + gap
    total = placed[-1][0] + len(placed[-1][1]) + int(round(spec.edge_s * SR))

    speech = np.zeros(total, np.float32)
    in_turn = np.zeros(total, bool)
    for start, audio, _ in placed:
        speech[start:start + len(audio)] += audio
        in_turn[start:start + len(audio)] = True
    speech_level = rms(speech[in_turn])
    stems = {"speech": speech}
    used: list[BackgroundRecording] = []
    if spec.floor_dbfs is not None:
        stems["floor"] = (pink_noise(total, r_floor) * 10 ** (spec.floor_dbfs / 20)).astype(np.float32)
    if spec.noise_snr_db is not None:
        rec = _pick(background.noise if background else [], "noise", r_noise)
        used.append(rec)
        x = _loop(background.audio(rec), total, r_noise)
        stems["noise"] = x * np.float32(speech_level * 10 ** (-spec.noise_snr_db / 20) / max(rms(x), 1e-12))
    babble_voices: list[str] = []
    if spec.babble_voices:
        babble_voices = _babble_voices(spec.babble_voices, cast, clips_by_speaker, r_babble)
        x = _babble(babble_voices, clips_by_speaker, cache, total, r_babble)
        stems["babble"] = x * np.float32(speech_level * 10 ** (-spec.babble_snr_db / 20))
    if spec.music_snr_db is not None or music_breaks:
        rec = _pick(background.music if background else [], "music", r_music)
        used.append(rec)
        stems["music"] = _music(background.audio(rec), total, speech_level, spec, music_breaks, r_music)

    mix = np.sum([s.astype(np.float64) for s in stems.values()], axis=0)
    if spec.telephone:
        mix = telephone(mix, SR)
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    scale = MAX_PEAK / peak if peak > MAX_PEAK else 1.0
    turns = [Turn(s, talkers[s].gender, start / SR, (start + len(a)) / SR, talkers[s].corpus)
             for start, a, s in placed]
    return Conversation(name, (mix * scale).astype(np.float32), sorted(turns, key=lambda t: t.start_s),
                        [(a / SR, b / SR) for a, b in music_breaks], condition, seed, spec, babble_voices,
                        [r.credit() for r in used],
                        {k: (v * scale).astype(np.float32) for k, v in stems.items()} if keep_stems else None)


def _music(x: np.ndarray, n: int, speech_level: float, spec: ConversationSpec, breaks: list[tuple[int, int]],
           rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of music: at ``music_snr_db`` under the speech (measured outside the breaks; silent when None),
    raised in each break to
    ``music_break_db`` relative to the speech (measured over the break itself), with BREAK_RAMP_S ramps."""
    x = _loop(x, n, rng)
    outside = np.ones(n, bool)
    for a, b in breaks:
        outside[a:b] = False
    whole = max(rms(x[outside]) if outside.any() else rms(x), 1e-12)
    under = 0.0 if spec.music_snr_db is None else speech_level * 10 ** (-spec.music_snr_db / 20) / whole
    gain = np.full(n, under, np.float32)
    ramp_n = int(BREAK_RAMP_S * SR)
    for a, b in breaks:
        level = rms(x[a:b])
        raised = speech_level * 10 ** (spec.music_break_db / 20) / (level if level > 0.05 * whole else whole)
        ramp = np.linspace(under, raised, min(ramp_n, (b - a) // 2), dtype=np.float32)
        gain[a:b] = raised
        gain[a:a + len(ramp)] = ramp
        gain[b - len(ramp):b] = ramp[::-1]
    return (x * gain).astype(np.float32)


def _as_corpora(corpora: str | Path | Corpus | Sequence[str | Path | Corpus]) -> list[Corpus]:
    if isinstance(corpora, str | Path | Corpus):
        corpora = [corpora]
    return [c if isinstance(c, Corpus) else load_corpus(c) for c in corpora]


def conversation_set(corpora: str | Path | Corpus | Sequence[str | Path | Corpus], condition: str | ConversationSpec,
                     n: int, seed: int, background_dir: str | Path | Background | None,
                     music_artists: Iterable[str] | None = None, *, n_speakers: int | None = None,
                     cache: ClipCache | None = None, name_prefix: str | None = None) -> list[Conversation]:
    """``n`` conversations of one condition from the pooled speakers of ``corpora`` (paths or Corpus objects; children
    left out), named ``<prefix>_<i>``.

    Conversation i is ``simulate(..., rng=s_i)`` with ``s_i`` derived from ``(seed, i)`` (recorded in its ``seed``),
    so a set is reproducible and any one member can be rebuilt alone. ``music_artists`` limits the music (folds by
    artist); ``background_dir`` may be a loaded :class:`Background` (its decoded audio is then reused).
    """
    if isinstance(condition, str) and condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; one of {', '.join(CONDITIONS)}")
    spec = CONDITIONS[condition] if isinstance(condition, str) else condition
    name = condition if isinstance(condition, str) else "custom"
    pool = speaker_pool(_as_corpora(corpora))
    if isinstance(background_dir, Background):
        background = background_dir if music_artists is None else background_dir.only_artists(music_artists)
    else:
        background = None if background_dir is None else load_background(background_dir, music_artists)
    cache = cache if cache is not None else ClipCache()
    prefix = name_prefix or name
    out = []
    for i in range(n):
        s_i = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        out.append(simulate(spec, pool, background, s_i, f"{prefix}_{i:03d}", n_speakers=n_speakers,
                            condition=name, cache=cache))
    return out
