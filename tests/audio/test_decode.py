from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicegender.audio.decode import INT16_SCALE, audio_duration, load_audio, stream_audio
from voicegender.errors import AudioDecodeError

SR = 22_050
TONE = (0.5 * np.sin(2 * np.pi * 300 * np.arange(SR) / SR)).astype(np.float32)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_sample_formats_decode_to_same_signal(tmp_path: Path, subtype: str):
    path = tmp_path / f"tone_{subtype}.wav"
    sf.write(path, TONE, SR, subtype=subtype)
    audio = load_audio(path, sr=None)
    assert audio.sample_rate == SR and audio.samples.dtype == np.float32
    tolerance = 1 / 64 if subtype == "PCM_U8" else 1e-4
    np.testing.assert_allclose(audio.samples, TONE, atol=tolerance)


@pytest.mark.parametrize("fmt,subtype,ext", [("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"),
                                             ("OGG", "OPUS", "opus"), ("MP3", "MPEG_LAYER_III", "mp3")])
def test_compressed_formats_resample_to_16k(tmp_path: Path, fmt: str, subtype: str, ext: str):
    path = tmp_path / f"tone.{ext}"
    sr = 24_000 if subtype == "OPUS" else SR  # Opus only encodes 8/12/16/24/48 kHz
    tone = (0.5 * np.sin(2 * np.pi * 300 * np.arange(sr) / sr)).astype(np.float32)
    sf.write(path, tone, sr, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.sample_rate == 16_000 and audio.source_rate == sr
    assert abs(audio.duration_s - 1.0) < 0.06  # MP3/Opus add a little encoder padding
    spectrum = np.abs(np.fft.rfft(audio.samples))
    assert abs(np.argmax(spectrum) * 16_000 / len(audio.samples) - 300) < 5  # still a 300 Hz tone


def test_m4a_aac_through_pyav(tmp_path: Path):
    av = pytest.importorskip("av")
    path = tmp_path / "phone.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44_100)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(TONE[None, :], format="flt", layout="mono")
        frame.sample_rate = 44_100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    audio = load_audio(path)
    assert audio.source_rate == 44_100 and audio.sample_rate == 16_000
    assert 0.45 < audio.duration_s < 0.6  # 22,050 samples at 44.1 kHz (+ AAC priming)


def test_stereo_is_mixed_to_mono(tmp_path: Path):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([TONE, np.zeros_like(TONE)], axis=1), SR, subtype="FLOAT")
    audio = load_audio(path, sr=None)
    assert audio.source_channels == 2
    np.testing.assert_allclose(audio.samples, TONE / 2, atol=1e-6)


def test_int16_scale_recovers_sample_values(tmp_path: Path):
    values = np.array([0, 1, -1, 1000, -32768, 32767], dtype=np.int16)
    path = tmp_path / "ints.wav"
    sf.write(path, values, 8000, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(path, sr=None).samples * INT16_SCALE, values.astype(np.float32))


def _truncated_wav(tmp_path: Path) -> Path:
    full = tmp_path / "full.wav"
    sf.write(full, TONE, SR, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:20_000])
    return cut


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing.wav", "file not found"),
    (lambda p: (p / "empty.wav").write_bytes(b"") and p / "empty.wav" or p / "empty.wav", "empty file"),
    (lambda p: (p / "text.wav").write_text("not audio at all") and p / "text.wav", "not a readable audio file"),
    (lambda p: p, "is a directory"),
    (_truncated_wav, "truncated"),
])
def test_bad_files_raise_error_naming_the_file(tmp_path: Path, make, message: str):
    path = make(tmp_path)
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path)
    assert str(path) in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("name, data", [("text.wav", b"not audio at all\n" * 20), ("noise.m4a", bytes(range(256)) * 40),
                                        ("words.webm", b"hello" * 300)])
def test_a_bad_file_gets_the_same_words_decoded_whole_or_streamed(tmp_path: Path, name: str, data: bytes):
    """predict decodes short files whole, segment streams them: the same bad file must read the same (issue 22:
    "[Errno 1094995529] Invalid data..." in segment, "FFmpeg: invalid data..." in predict)."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AudioDecodeError) as whole:
        load_audio(path)
    with pytest.raises(AudioDecodeError) as streamed:
        list(stream_audio(path))
    assert str(whole.value) == str(streamed.value)
    assert str(whole.value).startswith(f"{path}: not a readable audio file, or damaged (FFmpeg: ")
    assert "Errno" not in str(whole.value) and f"'{path}'" not in str(whole.value)


def test_zero_length_and_nan_files(tmp_path: Path):
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0, np.float32), SR)
    with pytest.raises(AudioDecodeError, match="no audio samples"):
        load_audio(zero)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan, 0.2] * 50, np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio(nan)


def test_float_samples_far_beyond_full_scale_are_one_error_and_a_loud_float_file_is_read(tmp_path: Path):
    """Float WAVs may pass full scale (1.0); 1e19 is not a recording: its squares overflow the spectra downstream
    (numpy warnings and a no_speech answer before). Both readers say so with the peak; 1e3 is read as it is."""
    huge = tmp_path / "huge.wav"
    sf.write(huge, (TONE * 1e19).astype(np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"huge.wav: holds sample values up to 5e\+18"):
        load_audio(huge)
    with pytest.raises(AudioDecodeError, match=r"huge.wav: holds sample values up to 5e\+18"):
        list(stream_audio(huge))
    loud = tmp_path / "loud.wav"
    sf.write(loud, (TONE * 1e3).astype(np.float32), SR, subtype="FLOAT")
    assert float(np.abs(load_audio(loud, sr=None).samples).max()) == pytest.approx(1e3 * np.abs(TONE).max(), rel=1e-5)


def test_stream_equals_whole_file_resampling(tmp_path: Path):
    path = tmp_path / "long.flac"
    signal = np.tile(TONE, 5)
    sf.write(path, signal, SR)
    blocks = list(stream_audio(path, sr=16_000, block_s=0.37))
    assert len(blocks) > 5
    streamed = np.concatenate(blocks)
    whole = load_audio(path).samples
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    np.testing.assert_allclose(streamed[100:n - 100], whole[100:n - 100], atol=1e-3)
    assert audio_duration(path) == pytest.approx(5.0)


# --- headers that lie (issue 13) --------------------------------------------------------------------------------
def _mp3_claiming_hours(path: Path) -> float:
    """An MP3 whose Xing/Info header claims ~16.7 M frames (about 12 h at 22.05 kHz); returns its true seconds."""
    import struct

    sf.write(path, TONE, SR, format="MP3", subtype="MPEG_LAYER_III")
    data = bytearray(path.read_bytes())
    tag = max(data.find(b"Xing"), data.find(b"Info"))
    assert tag > 0 and struct.unpack_from(">I", data, tag + 4)[0] & 1, "no frame count in the Xing/Info header"
    struct.pack_into(">I", data, tag + 8, 0x00FFFFFF)
    path.write_bytes(bytes(data))
    return len(TONE) / SR


def test_an_mp3_header_claiming_hours_decodes_to_what_it_holds(tmp_path: Path):
    path = tmp_path / "liar.mp3"
    seconds = _mp3_claiming_hours(path)
    assert sf.info(str(path)).duration > 3600  # what the header says
    assert load_audio(path, sr=16_000).duration_s == pytest.approx(seconds, abs=0.1)
    streamed = sum(len(b) for b in stream_audio(path, 16_000, block_s=0.5)) / 16_000
    assert streamed == pytest.approx(seconds, abs=0.1)  # sf.blocks would repeat its buffer for 12 hours


def test_absurd_sample_rates_and_truncation_are_errors_when_streamed_too(tmp_path: Path):
    import struct

    from voicegender.audio.decode import AudioTooLong

    path = tmp_path / "rate1.wav"
    sf.write(path, TONE, SR, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24, 1)  # 1 Hz: 22,050 samples would last 6 hours
    path.write_bytes(bytes(data))
    for read in (lambda: load_audio(path), lambda: list(stream_audio(path))):
        with pytest.raises(AudioDecodeError, match="rate1.wav: sample rate 1 Hz"):
            read()
    cut = tmp_path / "cut.wav"
    sf.write(cut, TONE, SR, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[:-1000])
    with pytest.raises(AudioDecodeError, match="cut.wav: truncated WAV file"):
        list(stream_audio(cut))
    whole = tmp_path / "whole.wav"
    sf.write(whole, TONE, SR, subtype="PCM_16")
    with pytest.raises(AudioTooLong):  # a caller's limit on decoded bytes (predict streams such files instead)
        load_audio(whole, max_bytes=1000)


def test_a_header_with_no_channels_is_an_error_streamed_or_whole(tmp_path: Path):
    import struct

    path = tmp_path / "ch0.wav"
    sf.write(path, TONE, SR, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, data.find(b"fmt ") + 10, 0)  # the fmt chunk's channel count
    path.write_bytes(bytes(data))
    for read in (lambda: load_audio(path), lambda: list(stream_audio(path))):
        with pytest.raises(AudioDecodeError, match="ch0.wav: "):
            read()


def test_a_file_name_that_is_not_utf8_is_read(tmp_path: Path):
    import os

    name = os.fsdecode(b"voice-\xff\xfe.wav")  # bytes another system wrote: surrogates in the text
    sf.write(os.fsencode(tmp_path) + b"/voice-\xff\xfe.wav", TONE, SR, subtype="PCM_16")
    whole = load_audio(tmp_path / name, 16_000).samples
    streamed = np.concatenate(list(stream_audio(tmp_path / name, 16_000)))
    assert len(whole) == len(streamed) == pytest.approx(len(TONE) * 16_000 / SR, abs=2)
    assert audio_duration(tmp_path / name) == pytest.approx(len(TONE) / SR)
