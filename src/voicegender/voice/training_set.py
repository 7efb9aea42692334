"""Training copies of labelled corpora and their features, computed once and cached on disk.

Every clip of a corpus is decoded at 16 kHz and turned into several **copies** (:data:`COPY_KINDS`): the clean
recording, fixed test channels (telephone, a low-bit-rate codec) and random training channels
(:func:`voicegender.audio.augment.random_channel`), plus short crops (0.15–1.5 s, cut inside the detected speech) for
single-word durations. Each whole-clip copy then goes through what ``predict`` does to a file — speech detection
(:func:`voicegender.speech.classified.classified_speech`), speech regions concatenated — and its speech is
described by the GE2E embedding, the encoder's hidden means and the pitch / vocal-tract measures of
:mod:`voicegender.voice.acoustic`.
So the features a head is fitted on are the features it meets at prediction time, channel and speech detector
included (but for the model's speech check, which at prediction time only confirms what the lenient passes of speech
detection find: a head being fitted has none yet).

The cache lives in one folder per corpus (``<cache>/<corpus>-<hash>/``, the hash covering the clip list and
:data:`RECIPE_VERSION`), written in chunks so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..corpora import Clip, Corpus, age_years
from ..fileio import atomic_write

log = logging.getLogger(__name__)

SR = 16_000  # Hz
RECIPE_VERSION = 4  # bump when a copy's definition, the speech detector or the embedding changes
COPY_KINDS = ("clean", "tel", "codec", "aug1", "aug2", "short", "short_tel", "short_aug")
TEST_KINDS = ("clean", "tel", "codec")  # fixed channels a held-out corpus is scored on
TRAIN_KINDS = ("clean", "tel", "codec", "aug1", "aug2", "short", "short_aug")  # what the shipped head learns from
SHORT_KINDS = ("short", "short_tel", "short_aug")
SHORT_RANGE_S = (0.15, 1.5)  # crop lengths (log-uniform) of the short copies: single words and digits
TEST_CODECS = (("mp3", 16_000), ("opus", 8_000), ("aac", 16_000), ("amr_nb", 7_950))  # round-robin over clips
CHUNK = 48  # clips per cached chunk (and per worker task)
POOL_CLIPS = 120  # clean clips that babble noise is made of
CHILD_MAX_AGE = 12  # years: age <= 12 is a child
MIN_FEATURE_SAMPLES = int(0.05 * SR)  # shorter speech gets no features (NaN)
ARRAYS = ("lengths", "speech", "ge2e", "hidden", "acoustic")  # cached per copy kind
WAIT_S = 6 * 3600.0  # how long rank 0 waits for the other ranks' chunks


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float64) * 32767), -32768, 32767).astype(np.int16)


def decode_clean(path: Path) -> np.ndarray:
    """A clip decoded to 16 kHz float32 mono with its DC offset removed (AudioMNIST-AZ carries -0.085)."""
    from ..audio.decode import load_audio

    x = load_audio(path, SR).samples.astype(np.float32)
    return x - x.mean()


def _crop(span: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """A random stretch of log-uniform length in :data:`SHORT_RANGE_S` inside ``span`` (samples)."""
    lo, hi = SHORT_RANGE_S
    n = int(np.exp(rng.uniform(np.log(lo), np.log(hi))) * SR)
    first, last = span
    if n >= last - first:
        return first, last
    start = int(rng.integers(first, last - n + 1))
    return start, start + n


def speech_span(wave: np.ndarray) -> tuple[int, int]:
    """Samples from the first detected speech to the last (the whole clip when none is found)."""
    from ..speech.classified import PREDICT_VAD
    from ..speech.vad import speech_segments

    segments = speech_segments(wave, PREDICT_VAD)
    if not segments:
        return 0, len(wave)
    return int(segments[0][0] * SR), min(len(wave), int(segments[-1][1] * SR))


def make_copies(wave: np.ndarray, seed: list[int], pool: list[np.ndarray]) -> dict[str, np.ndarray]:
    """All :data:`COPY_KINDS` of one clean clip (before speech detection), deterministic in ``seed``."""
    from ..audio import augment

    rng = np.random.default_rng(seed)
    codec_name, bit_rate = TEST_CODECS[seed[-1] % len(TEST_CODECS)]
    out = {"clean": wave, "tel": augment.telephone(wave, SR, codec=True),
           "codec": augment.codec(wave, SR, codec_name, bit_rate)}
    out["aug1"] = augment.random_channel(wave, SR, np.random.default_rng(seed + [1]), pool)
    out["aug2"] = augment.random_channel(wave, SR, np.random.default_rng(seed + [2]), pool)
    # short crops inside the speech (between its first and last detected frame), so a crop is rarely silence
    span = speech_span(wave)
    a, b = _crop(span, rng)
    out["short"], out["short_tel"] = wave[a:b], out["tel"][a:b]
    a, b = _crop(span, rng)
    out["short_aug"] = out["aug1"][a:b]
    return out


# --- worker side --------------------------------------------------------------------------------------------
_pool: list[np.ndarray] = []


def _init_worker(pool_paths: list[str]) -> None:
    if sys.modules.get("torch") is not None:  # a forked worker of a process that uses torch: one thread each
        sys.modules["torch"].set_num_threads(1)
    global _pool
    _pool = []
    for p in pool_paths:
        try:
            _pool.append(decode_clean(Path(p)))
        except Exception as e:  # noqa: BLE001 - a bad pool clip only thins the babble
            log.warning("babble pool: %s skipped (%s)", p, e)


def speech_of(wave: np.ndarray) -> np.ndarray:
    """What ``predict`` classifies in a recording: its detected speech, concatenated (16 kHz)."""
    from ..speech.classified import classified_speech

    return classified_speech(wave)[0]


def _chunk_features(paths: list[str], seeds: list[list[int]], kinds: tuple[str, ...]) -> dict[str, dict]:
    """Per kind: speech of each copy (int16, concatenated + lengths), GE2E embeddings and hidden means, acoustic
    measures."""
    from .acoustic import N_FEATURES, voice_features

    speech: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    failed: list[str] = []
    for path, seed in zip(paths, seeds, strict=True):
        try:
            copies = make_copies(decode_clean(Path(path)), seed, _pool)
            for k in kinds:  # short crops lie inside the speech already: no detector (it needs onset context)
                speech[k].append(copies[k] if k in SHORT_KINDS else speech_of(copies[k]))
        except Exception as e:  # noqa: BLE001 - one unreadable clip must not stop a corpus
            log.warning("%s: skipped (%s)", path, e)
            failed.append(path)
            for k in kinds:
                speech[k].append(np.zeros(0, np.float32))
    if len(failed) > len(paths) // 2:  # not a bad clip but a broken set-up: do not cache empty rows
        raise RuntimeError(f"{len(failed)} of {len(paths)} clips failed, e.g. {failed[0]}; see the log")
    out = {}
    for k in kinds:
        waves = speech[k]
        usable = [i for i, w in enumerate(waves) if len(w) >= MIN_FEATURE_SAMPLES]
        emb, hidden = _encoder_features(waves, usable)
        ac = np.full((len(waves), N_FEATURES), np.nan, np.float32)
        for i in usable:
            ac[i] = voice_features(waves[i])
        out[k] = {"lengths": np.array([len(w) for w in waves], np.int64),
                  "speech": np.concatenate([_int16(w) for w in waves]) if waves else np.zeros(0, np.int16),
                  "ge2e": emb, "hidden": hidden, "acoustic": ac}
    return out


def _encoder_features(waves: list[np.ndarray], usable: list[int], threads: int = 1
                      ) -> tuple[np.ndarray, np.ndarray]:
    """GE2E embeddings and hidden means of ``waves`` (NaN rows where not ``usable``)."""
    from .embeddings import EMBEDDING_DIM, ge2e_features

    emb = np.full((len(waves), EMBEDDING_DIM), np.nan, np.float32)
    hidden = np.full((len(waves), EMBEDDING_DIM), np.nan, np.float32)
    if usable:
        emb[usable], hidden[usable] = ge2e_features([waves[i] for i in usable], threads=threads)
    return emb, hidden


def _run_chunk(args: tuple) -> tuple[int, dict]:
    start, paths, seeds, kinds = args
    return start, _chunk_features(paths, seeds, kinds)


# --- the cache ----------------------------------------------------------------------------------------------
def corpus_key(corpus: Corpus) -> str:
    """``<name>-<8 hex>``: the corpus's cache folder, changing with its clip list and the recipe version."""
    h = hashlib.sha256(f"v{RECIPE_VERSION}\n".encode())
    for c in corpus.clips:
        h.update(f"{c.path.name}|{c.speaker}|{c.gender}\n".encode())
    return f"{corpus.name}-{h.hexdigest()[:8]}"


def _clip_meta(c: Clip) -> dict:
    age = c.extra.get("age")
    return {"path": str(c.path), "speaker": c.speaker_key, "gender": c.gender, "corpus": c.corpus,
            "age": None if age in (None, "") else str(age), **{k: c.extra[k] for k in ("emotion",) if k in c.extra}}


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def cache_corpus(corpus: Corpus, cache_dir: str | os.PathLike, pool_paths: list[str], workers: int = 2,
                 kinds: tuple[str, ...] = COPY_KINDS, rank: int = 0, world_size: int = 1,
                 wait_s: float = WAIT_S) -> Path | None:
    """Compute (or resume) the cached copies and features of one corpus; returns its cache folder.

    Under several processes (``rank`` of ``world_size``, e.g. from torchrun on machines sharing ``cache_dir``)
    each computes every ``world_size``-th chunk; rank 0 then waits for the others' chunks (up to ``wait_s``
    seconds), assembles the arrays and returns the folder; the other ranks return None once their share is done.
    """
    from ..progress import progress

    folder = Path(cache_dir) / corpus_key(corpus)
    if (folder / "done.json").exists():
        if rank == 0:
            add_hidden_means(folder)
        return folder
    chunks = folder / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "clips.json", lambda f: f.write(json.dumps([_clip_meta(c) for c in corpus.clips]).encode()))
    corpus_id = int(hashlib.sha256(corpus.name.encode()).hexdigest()[:7], 16)
    starts = list(range(0, len(corpus.clips), CHUNK))
    tasks = []
    for k, start in enumerate(starts):
        if k % world_size != rank or (chunks / f"{start:06d}.npz").exists():
            continue
        part = corpus.clips[start:start + CHUNK]
        tasks.append((start, [str(c.path) for c in part], [[corpus_id, start + i] for i in range(len(part))], kinds))
    log.info("%s: %d clips, %d chunks to compute", corpus.name, len(corpus.clips), len(tasks))
    bar = progress(range(len(tasks)), desc=corpus.name, unit="chunk")
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(pool_paths,)) as ex:
        for start, result in ex.map(_run_chunk, tasks):
            arrays = {f"{k}.{name}": v for k, r in result.items() for name, v in r.items()}
            atomic_write(chunks / f"{start:06d}.npz", lambda f, a=arrays: np.savez(f, **a))
            next(bar, None)
    for _ in bar:
        pass
    if rank != 0:
        return None
    _wait_for_chunks(chunks, starts, wait_s)
    # assemble per kind
    parts = [np.load(chunks / f"{start:06d}.npz") for start in starts]
    for k in kinds:
        for name in ARRAYS:
            if all(f"{k}.{name}" in p for p in parts):  # chunks cached before 2.1 have no hidden means: added below
                _save_npy(folder / f"{k}.{name}.npy", np.concatenate([p[f"{k}.{name}"] for p in parts]))
    atomic_write(folder / "done.json", lambda f: f.write(json.dumps({"kinds": list(kinds)}).encode()))
    add_hidden_means(folder)
    return folder


def _acoustic_of(args: tuple[str, str]) -> tuple[str, np.ndarray]:
    from .acoustic import N_FEATURES, voice_features

    folder, kind = args
    waves = stored_speech(Path(folder), kind)
    out = np.full((len(waves), N_FEATURES), np.nan, np.float32)
    for i, wave in enumerate(waves):
        if len(wave) >= MIN_FEATURE_SAMPLES:
            out[i] = voice_features(wave)
    return kind, out


def refresh_acoustic(folder: str | os.PathLike, workers: int = 2) -> None:
    """Recompute the voice measures of a cached corpus from its stored speech (after :mod:`acoustic` changed)."""
    folder = Path(folder)
    kinds = json.loads((folder / "done.json").read_text())["kinds"]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for kind, values in ex.map(_acoustic_of, [(str(folder), k) for k in kinds]):
            _save_npy(folder / f"{kind}.acoustic.npy", values)
    log.info("%s: voice measures recomputed", folder.name)


def stored_speech(folder: Path, kind: str, row: int | None = None) -> list[np.ndarray]:
    """The cached speech of every clip's ``kind`` copy, or of clip ``row`` only (float32, 16 kHz)."""
    lengths = np.load(folder / f"{kind}.lengths.npy")
    speech = np.load(folder / f"{kind}.speech.npy", mmap_mode="r")
    ends = np.cumsum(lengths)
    rows = range(len(lengths)) if row is None else [row]
    return [np.asarray(speech[ends[i] - lengths[i]:ends[i]], np.float32) / 32767.0 for i in rows]


def add_hidden_means(folder: str | os.PathLike) -> None:
    """Compute the encoder's hidden means from the stored speech of a corpus cached before they were (no copy is
    made again: the speech is what the embeddings were computed from)."""
    folder = Path(folder)
    kinds = json.loads((folder / "done.json").read_text())["kinds"]
    for kind in kinds:
        if (folder / f"{kind}.hidden.npy").exists():
            continue
        waves = stored_speech(folder, kind)
        _, hidden = _encoder_features(waves, [i for i, w in enumerate(waves) if len(w) >= MIN_FEATURE_SAMPLES],
                                      threads=2)
        _save_npy(folder / f"{kind}.hidden.npy", hidden)
        log.info("%s: hidden means of the %s copies added", folder.name, kind)


def _wait_for_chunks(chunks: Path, starts: list[int], wait_s: float, poll_s: float = 5.0) -> None:
    """Block until every chunk file exists (the other ranks write theirs), or raise after ``wait_s`` seconds."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        missing = [s for s in starts if not (chunks / f"{s:06d}.npz").exists()]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{chunks}: {len(missing)} chunks still missing after {wait_s:.0f} s (did a rank "
                               "fail?); rerun the same command to resume")
        log.info("%s: waiting for %d chunks from other ranks", chunks.parent.name, len(missing))
        time.sleep(poll_s)


def babble_pool(corpora: list[Corpus], n: int = POOL_CLIPS, seed: int = 123) -> list[str]:
    """Paths of ``n`` clips (spread over the corpora) that babble noise is made of."""
    paths = [str(c.path) for corpus in corpora for c in corpus.clips]
    rng = np.random.default_rng(seed)
    return [paths[i] for i in sorted(rng.choice(len(paths), min(n, len(paths)), replace=False))]


@dataclass
class FeatureTable:
    """Features of every clip of several corpora, per copy kind (rows = clips, in corpus order)."""

    meta: list[dict]
    folders: list[Path]
    offsets: list[int]  # first row of each corpus

    def __post_init__(self) -> None:
        self.y = np.array([0 if m["gender"] == "female" else 1 for m in self.meta])  # 0 = female
        self.speaker = np.array([m["speaker"] for m in self.meta])
        self.corpus = np.array([m["corpus"] for m in self.meta])
        self.age = np.array([age_years(m["age"]) for m in self.meta])
        self.child = np.array([a is not None and a <= CHILD_MAX_AGE for a in self.age])
        self._cache: dict[str, np.ndarray] = {}

    def get(self, kind: str, name: str) -> np.ndarray:
        """``name`` ("ge2e", "hidden", "acoustic", "lengths") of every clip's ``kind`` copy, stacked over corpora."""
        key = f"{kind}.{name}"
        if key not in self._cache:
            self._cache[key] = np.concatenate([np.load(f / f"{key}.npy") for f in self.folders])
        return self._cache[key]

    def speech_seconds(self, kind: str) -> np.ndarray:
        return self.get(kind, "lengths") / SR

    def speech(self, kind: str, row: int) -> np.ndarray:
        """The stored speech (float32, 16 kHz) of one clip's ``kind`` copy."""
        c = int(np.searchsorted(self.offsets, row, side="right") - 1)
        return stored_speech(self.folders[c], kind, row - self.offsets[c])[0]


def load_feature_table(corpora: list[Corpus], cache_dir: str | os.PathLike, workers: int = 2, rank: int = 0,
                       world_size: int = 1) -> FeatureTable | None:
    """Cache (or reuse) every corpus and return their features as one table (None on ranks other than 0, which
    only compute their share of the chunks; see :func:`cache_corpus`)."""
    pool = babble_pool(corpora)
    folders, meta, offsets = [], [], []
    for corpus in corpora:
        folder = cache_corpus(corpus, cache_dir, pool, workers, rank=rank, world_size=world_size)
        if folder is None:
            continue
        offsets.append(len(meta))
        meta += json.loads((folder / "clips.json").read_text())
        folders.append(folder)
    return FeatureTable(meta, folders, offsets) if rank == 0 else None
