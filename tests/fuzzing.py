"""Seeded mutated audio files: what a decoder meets in the wild (tests/test_fuzz.py, benchmarks/fuzz.py).

Seven small recordings of a synthetic voice (16-bit WAV, float WAV, 48 kHz stereo WAV, FLAC, MP3, OGG Opus, M4A/AAC)
are mutated, one to three times each, by bit flips, truncation, zeroed blocks, a copied span or garbage after
the end, another format's header on this one's body, and - for WAV - header lies: sample rate 0/1/4e9, channels
0/65535, bits 0/7/64, data size 0/0xFFFFFFFF, RIFF size, duplicated chunks. ``fuzz_cases(n, seed)`` always yields
the same files for the same seed (on the same encoder libraries).
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from voicegender.audio.synth import synth_noise, synth_voice

SR = 16_000


@dataclass(frozen=True)
class FuzzCase:
    name: str  # e.g. "0042-flac-bit_flips+truncate"
    suffix: str  # the base recording's extension
    data: bytes
    mutations: tuple[str, ...]


def _voice() -> np.ndarray:
    """1.6 s: a male-like and a female-like burst around quiet noise (float32, 16 kHz)."""
    return np.concatenate([synth_noise(0.2, SR, 0, 0.002), synth_voice(120, 0.6, SR, seed=1),
                           synth_noise(0.2, SR, 1, 0.002), synth_voice(220, 0.6, SR, seed=2)]).astype(np.float32)


def encode_av(x: np.ndarray, fmt: str, codec: str) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=SR)
        stream.layout = "mono"
        size = stream.codec_context.frame_size or 1024
        for pts in range(0, len(x), size):
            chunk = np.pad(x[pts:pts + size], (0, max(0, pts + size - len(x))))
            frame = av.AudioFrame.from_ndarray(chunk[None].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts = SR, pts
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def encode_sf(x: np.ndarray, rate: int, **kwargs) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, **kwargs)
    return buf.getvalue()


@functools.cache
def base_recordings() -> dict[str, tuple[str, bytes]]:
    """name -> (suffix, bytes) of the unmutated recordings."""
    from voicegender.audio.decode import resample

    x = _voice()
    x48 = resample(x, SR, 48_000)
    return {
        "wav": (".wav", encode_sf(x, SR, format="WAV", subtype="PCM_16")),
        "wav_float": (".wav", encode_sf(x, SR, format="WAV", subtype="FLOAT")),
        "wav_stereo48k": (".wav", encode_sf(np.stack([x48, 0.5 * x48], axis=1), 48_000, format="WAV",
                                             subtype="PCM_16")),
        "flac": (".flac", encode_sf(x, SR, format="FLAC", subtype="PCM_16")),
        "opus": (".opus", encode_sf(x48, 48_000, format="OGG", subtype="OPUS")),
        "mp3": (".mp3", encode_av(x, "mp3", "libmp3lame")),
        "m4a": (".m4a", encode_av(x, "mp4", "aac")),
    }


# --- mutations: (bytes, rng) -> bytes ------------------------------------------------------------------------------
def bit_flips(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for pos in rng.integers(0, len(out), int(rng.integers(1, 65))):
        out[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[:int(rng.integers(0, len(data)))]


def zero_block(data: bytes, rng: np.random.Generator) -> bytes:
    start, size = int(rng.integers(0, len(data))), int(rng.integers(1, 4097))
    return data[:start] + bytes(len(data[start:start + size])) + data[start + size:]


def copy_span(data: bytes, rng: np.random.Generator) -> bytes:
    a, b = sorted(int(v) for v in rng.integers(0, len(data) + 1, 2))
    at = int(rng.integers(0, len(data) + 1))
    return data[:at] + data[a:b] + data[at:]


def garbage_tail(data: bytes, rng: np.random.Generator) -> bytes:
    return data + rng.bytes(int(rng.integers(1, 8193)))


def foreign_header(data: bytes, rng: np.random.Generator) -> bytes:
    """Another format's first 12-200 bytes in place of this file's."""
    others = [b for _, b in base_recordings().values() if b[:4] != data[:4]]
    other = others[int(rng.integers(0, len(others)))]
    k = int(rng.integers(12, 201))
    return other[:k] + data[k:]


def _chunks(data: bytes) -> dict[bytes, int]:
    """Offsets of the first RIFF chunk of each id (at its 8-byte header)."""
    found, pos = {}, 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        found.setdefault(cid, pos)
        pos += 8 + size + (size & 1)
    return found


_FMT_LIES = {  # offset in the fmt chunk's body, struct format, values
    "sample_rate": (4, "<I", (0, 1, 7, 4_000_000_000, 0xFFFFFFFF)),
    "channels": (2, "<H", (0, 3, 65535)),
    "bits": (14, "<H", (0, 1, 7, 64)),
    "byte_rate": (8, "<I", (0, 0xFFFFFFFF)),
    "block_align": (12, "<H", (0, 65535)),
    "format_tag": (0, "<H", (0, 2, 0xFFFE)),
}


def riff_lie(data: bytes, rng: np.random.Generator) -> bytes:
    """A WAV header field set to an absurd value, or a chunk duplicated."""
    if data[:4] != b"RIFF":
        return bit_flips(data, rng)
    chunks = _chunks(data)
    out = bytearray(data)
    kind = int(rng.integers(0, 4))
    if kind == 0 and b"fmt " in chunks:
        offset, fmt, values = list(_FMT_LIES.values())[int(rng.integers(0, len(_FMT_LIES)))]
        struct.pack_into(fmt, out, chunks[b"fmt "] + 8 + offset, values[int(rng.integers(0, len(values)))])
    elif kind == 1 and b"data" in chunks:
        sizes = (0, 1, 0xFFFFFFFF, 0xF0000000, 0x7FFFFFFF, len(data))
        struct.pack_into("<I", out, chunks[b"data"] + 4, sizes[int(rng.integers(0, len(sizes)))])
    elif kind == 2:
        struct.pack_into("<I", out, 4, (0, 4, 0xFFFFFFFF)[int(rng.integers(0, 3))])
    else:  # a chunk twice (the fmt chunk with another rate, or the data chunk again)
        cid = (b"fmt ", b"data")[int(rng.integers(0, 2))]
        if cid in chunks:
            pos = chunks[cid]
            size = struct.unpack_from("<I", data, pos + 4)[0]
            copy = bytearray(data[pos:pos + 8 + size + (size & 1)])
            if cid == b"fmt ":
                struct.pack_into("<I", copy, 12, int(rng.choice([8_000, 96_000, 1])))
            out[pos:pos] = copy
    return bytes(out)


MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    f.__name__: f for f in (bit_flips, truncate, zero_block, copy_span, garbage_tail, foreign_header, riff_lie)
}


def fuzz_cases(n: int, seed: int = 0) -> Iterator[FuzzCase]:
    """``n`` mutated recordings; case ``i`` depends only on (seed, i)."""
    bases = base_recordings()
    names = sorted(bases)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        base = names[int(rng.integers(0, len(names)))]
        suffix, data = bases[base]
        chosen = []
        for _ in range(int(rng.integers(1, 4))):
            # header lies are the point of WAV cases: half of their mutations
            if suffix == ".wav" and rng.random() < 0.5:
                name = "riff_lie"
            else:
                name = list(MUTATIONS)[int(rng.integers(0, len(MUTATIONS)))]
            data = MUTATIONS[name](data, rng)
            chosen.append(name)
        yield FuzzCase(f"{i:04d}-{base}-{'+'.join(chosen)}", suffix, data, tuple(chosen))


def write_fuzz_files(folder: str | Path, n: int, seed: int = 0) -> list[tuple[Path, FuzzCase]]:
    """Write ``fuzz_cases(n, seed)`` into ``folder``; returns (path, case) pairs in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for case in fuzz_cases(n, seed):
        path = folder / f"{case.name}{case.suffix}"
        path.write_bytes(case.data)
        out.append((path, case))
    return out
