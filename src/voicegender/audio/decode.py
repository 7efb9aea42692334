"""Audio input: decode any file to float32 mono at the rate a feature asks for.

soundfile (libsndfile) reads WAV/FLAC/OGG (Vorbis, Opus)/MP3 and most other PCM containers; PyAV (FFmpeg
libraries inside its wheel, no system ffmpeg needed) reads what libsndfile cannot: AAC/M4A from phones,
WebM/Opus from browsers, and so on. Samples come back in [-1, 1] (int16 files divided by 32768, which is what
soundfile does), so the int16 scale the seed project used is simply ``samples * INT16_SCALE``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioDecodeError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # working rate of the log-mel models and the speech detector
INT16_SCALE = 32_768.0  # float samples in [-1, 1) times this = the int16 sample values the seed used
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".webm", ".aiff", ".aif")


def audio_files(folder: str | Path) -> list[Path]:
    """The files under ``folder`` (recursively) with an audio extension (:data:`AUDIO_EXTENSIONS`), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)

# A header claiming a lower rate is a lie or not audio: at 1 Hz, 16,000 samples would "last" 4.4 hours and resample
# to a gigabyte of float32 at 16 kHz. The lowest rate in real use is 4 kHz (old telephony); speech needs more.
MIN_SAMPLE_RATE = 1_000  # Hz
# Float samples are full scale at +-1; a float file may go past it, but not by 120 dB: values beyond this are not a
# recording (a header's scale misread, random bytes), and their squares overflow the float32 spectra downstream
MAX_SAMPLE_MAGNITUDE = 1e6
MAX_BLOCK_BYTES = 4_000_000  # decoded float32 per block of stream_audio (8 channels at 384 kHz: 0.33 s)

ProgressCallback = Callable[[int], None]  # called with the frames just decoded (may be 0); may raise to stop


class AudioTooLong(AudioDecodeError):
    """Decoding would take more memory than the caller allowed (``load_audio(max_bytes=...)``): stream it instead."""


@dataclass(frozen=True)
class Audio:
    """Decoded audio: float32 mono samples in [-1, 1] at ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int
    source_rate: int  # the file's own sample rate, before resampling
    source_channels: int  # channels in the file, before the mix-down to mono

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioDecodeError(f"{path}: file not found")
    if path.is_dir():
        raise AudioDecodeError(f"{path}: is a directory, not an audio file")
    if not path.is_file():  # a pipe, /dev/stdin, a device: its size says nothing and it can be read only once
        raise AudioDecodeError(f"{path}: not a regular file (a pipe or a device); save the audio to a file first")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: empty file (0 bytes)")


def _wav_missing_bytes(path: Path) -> int:
    """How many bytes of a RIFF/WAVE file's data chunk are missing (0 if complete or not a WAV).

    libsndfile silently reads what is left of a cut-off WAV; we report it instead, since a truncated upload or
    copy usually means the user has the wrong file.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
                    return 0
                return max(0, pos + 8 + chunk_size - size)
            pos += 8 + chunk_size + (chunk_size & 1)
    return 0


def _check_values(path: Path, samples: np.ndarray) -> None:
    """One-line error for NaN or infinite samples, or samples far beyond full scale (:data:`MAX_SAMPLE_MAGNITUDE`)."""
    if not samples.size:
        return
    peak = float(np.max(np.abs(samples)))
    if not np.isfinite(peak):
        raise AudioDecodeError(f"{path}: contains NaN or infinite sample values")
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise AudioDecodeError(f"{path}: holds sample values up to {peak:.3g}; float audio is full scale at 1, and "
                               f"values beyond {MAX_SAMPLE_MAGNITUDE:.0e} are not a recording")


def _check_rate(path: Path, rate: int) -> None:
    if rate < MIN_SAMPLE_RATE:
        raise AudioDecodeError(f"{path}: sample rate {rate} Hz is not usable audio (at least {MIN_SAMPLE_RATE} Hz)")


def soundfile_name(path: str | os.PathLike) -> str | bytes:
    """``path`` as soundfile takes it: the text, or the file system's own bytes for a name that is not valid in
    its encoding (a file copied from another system: soundfile would fail to encode the text; PyAV takes it)."""
    name = os.fspath(path)
    try:
        name.encode(sys.getfilesystemencoding())
    except UnicodeEncodeError:
        return os.fsencode(name)
    return name


def _too_long(path: Path, frames: int, channels: int, max_bytes: int | None) -> None:
    if max_bytes is not None and frames * max(1, channels) * 4 > max_bytes:
        raise AudioTooLong(f"{path}: {frames} frames x {channels} channels exceed {max_bytes / 1e6:.0f} MB decoded")


def _soundfile_blocks(f: sf.SoundFile, frames: int) -> Iterator[np.ndarray]:
    """(frames, channels) float32 blocks until the data really ends.

    Not ``sf.read`` / ``sf.blocks``: both size their output from the header's frame count, which a damaged MP3
    (its Xing frame count) or WAV can inflate: ``read`` then allocates for it at once, and ``blocks`` yields its
    stale buffer again until the claimed count is reached (a 5 kB MP3 "decoded" to 20 hours).
    """
    while len(block := f.read(frames, dtype="float32", always_2d=True)):
        yield block


def _read_soundfile(path: Path, max_bytes: int | None = None) -> tuple[np.ndarray, int]:
    with sf.SoundFile(soundfile_name(path)) as f:
        _check_rate(path, f.samplerate)
        _too_long(path, f.frames, f.channels, max_bytes)
        size = max(1, MAX_BLOCK_BYTES // (4 * max(1, f.channels)))
        blocks, frames = [], 0
        for block in _soundfile_blocks(f, size):
            blocks.append(block)
            frames += len(block)
            _too_long(path, frames, f.channels, max_bytes)
        data = np.concatenate(blocks) if blocks else np.zeros((0, max(1, f.channels)), np.float32)
        return data, f.samplerate


def _read_pyav(path: Path, max_bytes: int | None = None, on_progress: ProgressCallback | None = None
               ) -> tuple[np.ndarray, int]:
    import av  # imported lazily: only needed for formats libsndfile does not read

    chunks: list[np.ndarray] = []
    frames = 0
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 1
        # Resample every frame to packed float32 at the stream's own rate and channel count.
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name if stream.layout else None,
                                      rate=stream.rate)
        rate = stream.rate
        _check_rate(path, rate or 0)  # before decoding: at 1 Hz FFmpeg's resampler takes seconds per second
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, channels))
                frames += len(chunks[-1])
            _too_long(path, frames, channels, max_bytes)  # a small file may decode to hours (silence compresses)
            if on_progress is not None:
                on_progress(frame.samples)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1, channels))
    if not chunks:
        return np.zeros((0, 1), np.float32), rate
    return np.concatenate(chunks).astype(np.float32, copy=False), rate


def _decode(path: Path, max_bytes: int | None = None, on_progress: ProgressCallback | None = None
            ) -> tuple[np.ndarray, int]:
    """Decode to (frames, channels) float32 and the file's rate; try soundfile, then PyAV."""
    try:
        return _read_soundfile(path, max_bytes)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as sf_error:
        try:
            return _read_pyav(path, max_bytes, on_progress)
        except AudioDecodeError:  # too long, or a sample rate no audio has: said clearly already
            raise
        except Exception as av_error:  # PyAV raises many FFmpeg error types; all mean "cannot decode"
            log.debug("%s: soundfile: %s; PyAV: %s", path, sf_error, av_error)
            raise _unreadable(path, av_error) from av_error


def _unreadable(path: Path, error: Exception) -> AudioDecodeError:
    """The one wording of "FFmpeg cannot read this file", whether it is decoded whole (predict) or streamed
    (segment, long files): the same bad file gets the same line from every command."""
    return AudioDecodeError(f"{path}: not a readable audio file, or damaged ({_ffmpeg_reason(error)})")


def _ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's own words for a decode failure, without the errno and the path PyAV adds ("[Errno 1094995529]
    Invalid data found when processing input: 'x.mp3'" -> "FFmpeg: invalid data found when processing input").
    libsndfile's message is not used: for a format it does not know it says the file may not exist."""
    text = str(error).strip()
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    text = re.sub(r":\s*'[^']*'$", "", text).strip().rstrip(".")
    return f"FFmpeg: {text[:1].lower() + text[1:]}" if text else type(error).__name__


def to_mono(frames: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array into float32 mono."""
    if frames.ndim == 1:
        return frames.astype(np.float32, copy=False)
    return frames.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample float32 mono audio with soxr (high quality); a no-op when the rates match."""
    if from_rate == to_rate or len(samples) == 0:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sr: int | None = SAMPLE_RATE, *, max_bytes: int | None = None,
               on_progress: ProgressCallback | None = None) -> Audio:
    """Decode an audio file to float32 mono.

    Parameters
    ----------
    path : file in any format soundfile or PyAV can decode (WAV 8/16/24/32-bit int or float, FLAC,
        OGG Vorbis/Opus, MP3, AAC/M4A, WebM, ...).
    sr : sample rate in Hz to resample to, or None to keep the file's own rate. Default 16 kHz.
    max_bytes : raise :class:`AudioTooLong` instead of decoding more than this many bytes of float32 samples
        (all channels, the file's rate); None: no limit. Use :func:`stream_audio` for such files.
    on_progress : called with the frames each step decoded (PyAV: each frame); may raise to stop decoding.

    Raises
    ------
    AudioDecodeError naming the file when it is missing, empty, not audio, truncated, has no samples, has
    NaN/Inf samples, samples beyond :data:`MAX_SAMPLE_MAGNITUDE`, or a sample rate below :data:`MIN_SAMPLE_RATE`.
    """
    path = Path(path)
    _check_file(path)
    frames, rate = _decode(path, max_bytes, on_progress)
    _check_rate(path, rate)
    missing = _wav_missing_bytes(path)
    if missing:
        raise AudioDecodeError(f"{path}: truncated WAV file ({missing} bytes of audio data missing)")
    if frames.shape[0] == 0:
        raise AudioDecodeError(f"{path}: contains no audio samples (zero length)")
    _check_values(path, frames)
    mono = to_mono(frames)
    target = rate if sr is None else sr
    return Audio(resample(mono, rate, target), target, rate, frames.shape[1])


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header when soundfile can read it, else by decoding."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(soundfile_name(path))
        if info.frames > 0:
            return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError):
        pass
    return load_audio(path, sr=None).duration_s


def stream_audio(path: str | Path, sr: int = SAMPLE_RATE, block_s: float = 30.0, *,
                 on_progress: ProgressCallback | None = None) -> Iterator[np.ndarray]:
    """Yield float32 mono blocks of about ``block_s`` seconds at ``sr`` without loading the whole file.

    Memory stays bounded by the block size (and :data:`MAX_BLOCK_BYTES` of decoded samples, however many
    channels) for formats soundfile reads; for the others PyAV decodes frame by frame. Resampling is continuous
    across blocks (soxr's streaming resampler), so concatenating the blocks equals resampling the whole file.
    ``on_progress`` is called with the frames of each decoded block (PyAV: each frame) and may raise to stop.
    A truncated WAV is an error here too, as in :func:`load_audio`.
    """
    path = Path(path)
    _check_file(path)
    missing = _wav_missing_bytes(path)
    if missing:
        raise AudioDecodeError(f"{path}: truncated WAV file ({missing} bytes of audio data missing)")
    try:
        info = sf.info(soundfile_name(path))
    except (sf.LibsndfileError, RuntimeError):
        info = None
    if info is not None and info.frames > 0:
        _check_rate(path, info.samplerate)
        size = max(1, min(int(block_s * info.samplerate), MAX_BLOCK_BYTES // (4 * max(1, info.channels))))
        blocks = _soundfile_mono_blocks(path, size)
        rate = info.samplerate
    else:
        blocks, rate = _pyav_blocks(path, block_s, on_progress)
    stream = soxr.ResampleStream(rate, sr, 1, dtype="float32", quality="HQ") if rate != sr else None
    produced = 0
    for block in blocks:
        if on_progress is not None and info is not None and info.frames > 0:
            on_progress(len(block))
        _check_values(path, block)
        out = stream.resample_chunk(block) if stream is not None else block
        produced += len(out)
        if len(out):
            yield out
    if stream is not None:
        tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
        produced += len(tail)
        if len(tail):
            yield tail
    if produced == 0:
        raise AudioDecodeError(f"{path}: contains no audio samples (zero length)")


def _soundfile_mono_blocks(path: Path, frames: int) -> Iterator[np.ndarray]:
    with sf.SoundFile(soundfile_name(path)) as f:
        blocks = _soundfile_blocks(f, frames)
        while True:
            try:
                block = next(blocks, None)
            except (sf.LibsndfileError, RuntimeError) as e:  # corrupt data in the middle of the file
                raise AudioDecodeError(f"{path}: corrupt audio data ({str(e).strip()})") from e
            if block is None:
                return
            yield to_mono(block)


def _pyav_blocks(path: Path, block_s: float, on_progress: ProgressCallback | None = None
                 ) -> tuple[Iterator[np.ndarray], int]:
    import av

    try:
        container = av.open(str(path))
    except Exception as e:  # any FFmpeg open error means the file is not usable audio
        raise _unreadable(path, e) from e
    if not container.streams.audio:
        container.close()
        raise _unreadable(path, ValueError("no audio stream"))
    stream = container.streams.audio[0]
    rate = stream.rate or 0
    channels = stream.codec_context.channels or 1
    if rate < MIN_SAMPLE_RATE:
        container.close()
        _check_rate(path, rate)
    try:  # a header that says 0 channels (or a layout FFmpeg cannot convert) fails here, before any decoding
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name if stream.layout else None,
                                      rate=rate)
    except (ValueError, av.FFmpegError) as e:
        container.close()
        raise _unreadable(path, e) from e

    def generate() -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []
        size = 0
        try:
            for frame in _decoding(path, container, stream):
                for out in resampler.resample(frame):
                    mono = to_mono(out.to_ndarray().reshape(-1, channels))
                    pending.append(mono)
                    size += len(mono)
                if on_progress is not None:
                    on_progress(frame.samples)
                if size >= block_s * rate:
                    yield np.concatenate(pending)
                    pending, size = [], 0
        finally:
            container.close()
        if pending:
            yield np.concatenate(pending)

    return generate(), rate


def _decoding(path: Path, container, stream) -> Iterator:
    """``container.decode(stream)`` with FFmpeg's errors (many types) turned into one AudioDecodeError."""
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except Exception as e:  # corrupt data in the middle of the file: worded as when it is decoded whole
            raise _unreadable(path, e) from e
        yield frame


# --- what a picture of a recording shows ---------------------------------------------------------------------------
# A map (`predict --explain`, the web page) covers at most MAP_MAX_S seconds, the loudest stretch: its cost grows with
# length (integrated gradients through the GE2E encoder: ~0.7 s of CPU per second of audio). It is looked for in the
# first PICTURE_READ_S seconds only: a small compressed file can hold hours (3 h of FLAC silence: 546 kB), and
# decoding all of it to pick 20 s took 3.9 GB.
MAP_MAX_S = 20.0
PICTURE_READ_S = 600.0


def read_first_seconds(path: str | Path, seconds: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The first ``seconds`` of an audio file at ``sr`` (float32 mono), decoded block by block: no more is read."""
    want = int(seconds * sr)
    blocks, have = [], 0
    for block in stream_audio(path, sr):
        blocks.append(block[:want - have])
        have += len(blocks[-1])
        if have >= want:
            break
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def loudest_span(samples: np.ndarray, seconds: float | None = None, sr: int = SAMPLE_RATE) -> tuple[int, int]:
    """Start and end sample of the ``seconds`` (default :data:`MAP_MAX_S`) with the most energy (the whole waveform
    if shorter)."""
    n = int((MAP_MAX_S if seconds is None else seconds) * sr)
    if len(samples) <= n:
        return 0, len(samples)
    hop = sr // 10  # 100 ms energy steps
    frames = len(samples) // hop
    energy = np.square(samples[:frames * hop].astype(np.float64)).reshape(frames, hop).sum(1)
    width = n // hop
    start = int(np.convolve(energy, np.ones(width), mode="valid").argmax()) * hop
    return start, start + n


def spans_of(blocks: Iterable[np.ndarray], spans: Sequence[tuple[int, int]]) -> Iterator[tuple[int, np.ndarray]]:
    """The samples of each span ``(start, end)`` (sample indices) of audio given as blocks, as ``(span index,
    samples)`` pairs as each span is complete; a span past the audio's end is cut short.

    Reads the blocks once and holds at most one block plus the spans still open: a second pass over a long file
    (:func:`stream_audio`) to fetch a few seconds from each of many places costs the decoding, not the memory.
    """
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    pending: dict[int, list[np.ndarray]] = {}
    nxt = 0  # next span (in start order) not yet opened
    offset = 0  # sample index of the current block's first sample
    for block in blocks:
        end_block = offset + len(block)
        while nxt < len(order) and spans[order[nxt]][0] < end_block:
            pending[order[nxt]] = []
            nxt += 1
        for i in sorted(pending, key=lambda k: spans[k][0]):
            s, e = spans[i]
            if s < end_block and e > offset:
                pending[i].append(block[max(0, s - offset):max(0, min(e, end_block) - offset)])
            if e <= end_block:
                parts = pending.pop(i)
                yield i, np.concatenate(parts) if parts else np.zeros(0, np.float32)
        offset = end_block
    for i in list(pending) + order[nxt:]:  # past the end
        parts = pending.pop(i, [])
        yield i, np.concatenate(parts) if parts else np.zeros(0, np.float32)
