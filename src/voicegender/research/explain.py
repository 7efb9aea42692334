"""Why did the model say female or male? Class-activation maps, per-band occlusion, and how well they agree.

The seed project averaged 7×7 Grad-CAM maps of its ResNet over the 12×98 MFCC axes and read the per-row means
as frequencies. Here the same analysis is reproduced and then made sound:

* :func:`cam` computes Grad-CAM (captum ``LayerGradCam``) and two finer members of the family, HiResCAM
  (channel sum of gradient × activation, captum ``LayerGradientXActivation``) and LayerCAM (channel sum of
  ReLU(gradient) × activation), on any named stage, upsampled to the input's (rows, frames) grid.
* :func:`band_occlusion` is the ground truth: replace a group of input rows (mel bands or MFCC coefficients)
  by a neutral value and measure how much the probability of the true class drops (captum ``FeatureAblation``).
* :func:`profile_agreement` states whether a map's per-row profile ranks the bands the way occlusion does
  (Spearman rank correlation).

Method specs are ``"method"`` or ``"method@stage"`` (e.g. ``"gradcam"``, ``"layercam@stage2"``); without a stage,
Grad-CAM uses the model's last block (``model.cam_layer``, as the seed did) and the finer methods use
:data:`FINE_LAYER` (stage2 of SmallCNN: F/2 rows; layer2 of the ResNet: 28×28).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..corpora import LABELS, Clip
from ..errors import ModelError, VoiceGenderError
from ..voice.default_model import VoiceModel
from ..voice.model import GENDERS
from .models import LoadedModel, ModelConfig, build_model, load_checkpoint

log = logging.getLogger(__name__)

CAM_METHODS = ("gradcam", "hirescam", "layercam", "ig")  # ig: Integrated Gradients on the input (any model)
DEFAULT_METHODS = ("gradcam", "hirescam", "layercam")  # the seed's method on the last block + two finer ones
CLIP_METHOD = "layercam"  # single-clip overlays (predict --explain, web page): the finest readable map
FINE_LAYER = {"SmallCNN": "stage2", "SeedResNet": "layer2"}  # default stage of hirescam / layercam
SEED_GRID = (12, 98)  # the seed's MFCC matrix: coefficients × 10 ms frames
REPORT_TITLE = "What the model listens to"  # heading of the explain section in the HTML report
CLIP_FRAMES = 100  # frames per clip for class means (log-mel: 1 s at a 10 ms hop)
OCCLUSION_BANDS = {"log_mel": 16, "seed_mfcc": 12, "seed_image": 12, "ge2e": 10}  # band groups per feature kind
GE2E_FLOOR = 1e-10  # added to the encoder's mel power before the log (its input is exp of what we perturb)
IG_STEPS = 16  # Integrated Gradients: points on the path from silence to the input


# --- maps ------------------------------------------------------------------------------------------------------
def parse_method(spec: str) -> tuple[str, str | None]:
    """``"layercam@stage2"`` → ``("layercam", "stage2")``; ``"gradcam"`` → ``("gradcam", None)``."""
    method, _, layer = spec.strip().partition("@")
    if method not in CAM_METHODS:
        raise VoiceGenderError(f"unknown explanation method {method!r}; choose from {', '.join(CAM_METHODS)} "
                               "(optionally with @<stage>, e.g. layercam@stage2)")
    return method, layer or None


def resolve_layer(model: nn.Module, layer: str | nn.Module | None, method: str = "gradcam") -> nn.Module:
    """The module to hook: a module, a name from ``model.cam_layers``, or the method's default."""
    if isinstance(layer, nn.Module):
        return layer
    if not hasattr(model, "cam_layers"):
        raise ModelError(f"{type(model).__name__} has no cam_layers: class-activation maps need a conv net")
    if layer is None:
        if method == "gradcam":
            return model.cam_layer
        layer = FINE_LAYER.get(type(model).__name__)
        if layer is None:
            return model.cam_layer
    names = model.cam_layers
    if layer not in names:
        raise VoiceGenderError(f"no layer {layer!r} in {type(model).__name__}; choose from {', '.join(names)}")
    return names[layer]


def log_odds(model: nn.Module):
    """``x → (B, n_classes)`` log-odds ``z_c − logsumexp_{j≠c} z_j`` = log p_c / (1 − p_c) of every class.

    Maps explain this instead of the raw logit: it is what the softmax decision depends on, and a head that keeps one
    logit fixed (a logistic regression stored as two logits, like the default GE2E head) has zero gradient on that
    logit, so raw-logit maps of that class would be empty.
    """

    def forward(x: Tensor) -> Tensor:
        z = model(x)
        if z.shape[1] < 2:
            return z
        return torch.stack([z[:, c] - torch.logsumexp(torch.cat([z[:, :c], z[:, c + 1:]], 1), 1)
                            for c in range(z.shape[1])], dim=1)

    return forward


def cam(model: nn.Module, inputs: Tensor, target_class: int | Sequence[int], layer: str | nn.Module | None = None,
        method: str = "gradcam", normalise: bool = True) -> np.ndarray:
    """Class-activation maps of ``target_class`` upsampled to the input grid: float32 ``(B, rows, frames)``.

    Gradients are those of the target class's log-odds (:func:`log_odds`), not of its raw logit.

    Parameters
    ----------
    model : SmallCNN ``(B, 1, F, T)`` or SeedResNet ``(B, 3, 224, 224)``; put in eval mode here.
    inputs : the batch the model takes.
    target_class : class index (0 = female, 1 = male) for all clips, or one per clip.
    layer : a name from ``model.cam_layers`` (e.g. ``"stage3"``), a module, or None for the method's default.
    method : ``"gradcam"`` (channel weights = mean gradient), ``"hirescam"`` (element-wise gradient ×
        activation summed over channels), ``"layercam"`` (ReLU(gradient) × activation summed over channels), or
        ``"ig"`` (captum IntegratedGradients on the input itself from a silent baseline — each clip's minimum —
        positive part summed over channels; no layer, so it also works for the GE2E encoder).
    normalise : divide each map by its maximum so every clip weighs the same in class means (maps are ≥ 0).
    """
    from captum.attr import (
        IntegratedGradients,
        LayerActivation,
        LayerAttribution,
        LayerGradCam,
        LayerGradientXActivation,
    )

    if method not in CAM_METHODS:
        raise VoiceGenderError(f"unknown CAM method {method!r}; choose from {', '.join(CAM_METHODS)}")
    model.eval()
    target = [int(target_class)] * len(inputs) if np.isscalar(target_class) else [int(t) for t in target_class]
    x = inputs.detach().clone().requires_grad_(True)
    module = resolve_layer(model, layer, method) if method != "ig" else None
    f = log_odds(model)
    if method == "ig":
        silence = inputs.detach().flatten(1).amin(1).view(-1, *[1] * (inputs.dim() - 1)).expand_as(inputs)
        attr = IntegratedGradients(f).attribute(x, baselines=silence.contiguous(), target=target,
                                                n_steps=IG_STEPS, internal_batch_size=len(x) * 4)
        maps = attr.detach().sum(1, keepdim=True).relu()
    elif method == "gradcam":
        maps = LayerGradCam(f, module).attribute(x, target=target, relu_attributions=True)
    elif method == "hirescam":
        maps = LayerGradientXActivation(f, module).attribute(x, target=target).sum(1, keepdim=True).relu()
    else:
        grads = LayerGradientXActivation(f, module, multiply_by_inputs=False).attribute(x, target=target)
        acts = LayerActivation(f, module).attribute(x)
        maps = (grads.relu() * acts).sum(1, keepdim=True).relu()
    maps = LayerAttribution.interpolate(maps.detach(), tuple(inputs.shape[-2:]), "bilinear")[:, 0]
    if normalise:
        maps = maps / maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return maps.numpy().astype(np.float32)


def to_grid(maps: np.ndarray, grid: tuple[int, int] = SEED_GRID) -> np.ndarray:
    """Area-average ``(B, H, W)`` maps (e.g. 224×224 over the seed's image) onto a coarser grid (12×98 MFCC)."""
    t = torch.from_numpy(np.asarray(maps, np.float32))[:, None]
    return F.adaptive_avg_pool2d(t, grid)[:, 0].numpy()


def class_mean_maps(maps: np.ndarray, labels: Sequence[int], names: Sequence[str] = LABELS) -> dict[str, np.ndarray]:
    """Mean map per class: ``{"female": (rows, frames), "male": ...}`` (classes without clips are left out)."""
    labels = np.asarray(labels)
    return {name: maps[labels == k].mean(0) for k, name in enumerate(names) if (labels == k).any()}


def row_profile(map_: np.ndarray) -> np.ndarray:
    """Mean over time (last axis): one value per row — the seed's per-coefficient bar plot."""
    return np.asarray(map_).mean(-1)


# --- occlusion ------------------------------------------------------------------------------------------------
def band_slices(n_rows: int, bands: int | Sequence[slice]) -> list[slice]:
    """``bands`` equal (±1 row) contiguous groups of ``n_rows`` rows, or the given slices unchanged."""
    if not isinstance(bands, int):
        return list(bands)
    if not 1 <= bands <= n_rows:
        raise ValueError(f"bands must be 1..{n_rows}, got {bands}")
    edges = np.linspace(0, n_rows, bands + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def band_occlusion(model: nn.Module, inputs: Tensor, target: int | Sequence[int], bands: int | Sequence[slice] = 16,
                   baseline: str | float | Tensor = "mean", batch_size: int = 64) -> np.ndarray:
    """Drop in the target-class probability when each band of input rows is masked: ``(B, n_bands)``.

    Rows are the second-to-last input axis (mel bands, MFCC coefficients, or image rows of the seed's 224×224
    MFCC picture). ``baseline`` is what a masked band becomes: ``"mean"`` (default) = that row's mean over the
    given clips and all their frames — the clip set's average spectrum, so masking removes what is particular
    to this clip in that band without inventing a spectral hole; ``"min"`` = the global minimum (silence for
    log-mel); or a number / a tensor broadcastable to ``inputs``. Positive values: the band helped the decision.
    """
    from captum.attr import FeatureAblation

    if inputs.dim() != 4:
        raise ValueError(f"inputs must be (batch, channels, rows, frames), got {tuple(inputs.shape)}")
    model.eval()
    n_rows = inputs.shape[-2]
    slices = band_slices(n_rows, bands)
    if isinstance(baseline, str):
        if baseline == "mean":
            base = inputs.mean(dim=(0, 3), keepdim=True).expand_as(inputs[:1])  # per channel and row
        elif baseline == "min":
            base = float(inputs.min())
        else:
            raise ValueError(f"baseline must be 'mean', 'min', a number or a tensor, got {baseline!r}")
    else:
        base = baseline
    mask = torch.full((n_rows,), -1, dtype=torch.long)
    for k, s in enumerate(slices):
        mask[s] = k
    if (mask < 0).any():
        raise ValueError("band slices must cover every row")
    shape = [1] * inputs.dim()
    shape[-2] = n_rows
    mask = mask.view(shape).expand_as(inputs[:1])
    target = [int(target)] * len(inputs) if np.isscalar(target) else [int(t) for t in target]
    ablation = FeatureAblation(lambda x: torch.softmax(model(x), dim=1))
    out = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            xb = inputs[i:i + batch_size]
            bb = base[: 1].expand_as(xb) if isinstance(base, Tensor) and base.dim() == inputs.dim() else base
            attr = ablation.attribute(xb, baselines=bb, target=target[i:i + batch_size],
                                      feature_mask=mask.expand_as(xb))
            out.append(torch.stack([attr[:, 0, s.start, 0] for s in slices], dim=1))
    return torch.cat(out).numpy()


def band_profile(profile: np.ndarray, bands: Sequence[slice]) -> np.ndarray:
    """Average a per-row profile over each band group (to compare a CAM profile with occlusion)."""
    return np.array([np.asarray(profile)[s].mean() for s in bands])


def profile_agreement(cam_profile: np.ndarray, occlusion_profile: np.ndarray) -> float:
    """Spearman rank correlation between a CAM band profile and an occlusion band profile (1 = same ranking)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(cam_profile, float), np.asarray(occlusion_profile, float)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


# --- features of one clip or recording --------------------------------------------------------------------------
def feature_axes(feature_config: dict) -> tuple[float, np.ndarray | None]:
    """(seconds per frame, centre Hz of each row or None for MFCC rows) of a checkpoint's map grid."""
    from .features import LogMelConfig, SeedMfccConfig

    fields = {k: v for k, v in feature_config.items() if k != "kind"}
    kind = feature_config["kind"]
    if kind == "log_mel":
        cfg = LogMelConfig(**fields)
        return cfg.hop_seconds, cfg.band_centres_hz()
    if kind in ("seed_mfcc", "seed_image"):
        return SeedMfccConfig(**fields).hop_seconds, None
    if kind == "ge2e":
        import librosa

        from ..voice.embeddings import MEL_BANDS, MEL_HOP, SAMPLE_RATE

        return MEL_HOP / SAMPLE_RATE, librosa.mel_frequencies(MEL_BANDS + 2, fmin=0.0, fmax=SAMPLE_RATE / 2)[1:-1]
    raise ModelError(_not_explainable(kind))


def _not_explainable(kind: str) -> str:
    return f"feature kind {kind!r} cannot be explained (supported: log_mel, seed_mfcc, seed_image, ge2e)"


class GE2EOnMel(nn.Module):
    """A GE2E-embedding classifier as one differentiable network over the encoder's own input.

    Input ``(B, 1, 40, T)``: natural log of the encoder's 40-band mel power frames (T ≥ 160, 10 ms hop).
    Forward: exp → 1.6 s windows (as ``embeddings.partial_windows``) → resemblyzer's LSTM encoder → mean of the
    window embeddings, L2-normalised (as ``embeddings.ge2e_embeddings``) → the checkpoint's head → logits. So
    occlusion and Integrated Gradients can ask which mel bands and moments the embedding model relies on.
    """

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        from ..voice.embeddings import load_encoder

        self.encoder = load_encoder()
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        from ..voice.embeddings import partial_windows

        frames = torch.exp(x[:, 0]).transpose(1, 2)  # (B, T, 40) mel power
        windows = torch.stack([frames[:, s] for s in partial_windows(frames.shape[1])], dim=1)  # (B, W, 160, 40)
        b, w = windows.shape[:2]
        embs = self.encoder(windows.flatten(0, 1)).view(b, w, -1).sum(1)  # every window in one LSTM call
        return self.head(embs / embs.norm(dim=1, keepdim=True).clamp_min(1e-12))


@functools.singledispatch
def as_checkpoint(model: Any) -> LoadedModel:
    """The torch network a :class:`~voicegender.voice.model.Model` is explained through (maps need gradients): a
    checkpoint as it is, the shipped kind of model (a VoiceModel) as its GE2E head. Other kinds cannot be explained.
    """
    raise ModelError(f"{getattr(model, 'name', type(model).__name__)}: maps need a voicegender checkpoint or a voice "
                     "head; this model cannot be explained")


@as_checkpoint.register
def _(model: LoadedModel) -> LoadedModel:
    return model


@as_checkpoint.register
def _(model: VoiceModel) -> LoadedModel:
    """The gender head over the GE2E embedding as a torch network (what the maps differentiate through); only for
    heads that read the embedding alone. It is the main layer: speech shorter than ``head.short_max_s`` is answered
    by the short-speech layer, which maps do not explain (the web page says so)."""
    if model.head.features != "ge2e":
        raise ModelError(f"{model.name}: maps need a head over the GE2E embedding alone "
                         f"(this one reads {model.head.features})")
    layer = model.head.gender
    cfg = ModelConfig(arch="ge2e_head", in_rows=len(layer.coef), hidden=2, dropout=0.0)
    net = build_model(cfg).eval()
    with torch.no_grad():  # BatchNorm = the standardiser; relu(z) - relu(-z) = z, the log-odds of "male"
        bn = net.input_norm
        bn.running_mean.copy_(torch.tensor(layer.mean, dtype=torch.float32))
        bn.running_var.copy_(torch.tensor(layer.scale**2, dtype=torch.float32) - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        coef = torch.tensor(layer.coef, dtype=torch.float32)
        net.body[0].weight.copy_(torch.stack([coef, -coef]))
        net.body[0].bias.copy_(torch.tensor([layer.bias, -layer.bias], dtype=torch.float32))
        net.head.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0]]))
        net.head.bias.zero_()
    return LoadedModel(model=net, model_config=cfg, feature_config={"kind": "ge2e"}, labels=list(GENDERS),
                       extra=dict(model.metadata), path=model.path,
                       voicegender_version=str(model.metadata.get("voicegender_version", "")))


@functools.singledispatch
def unmapped_below_s(model: Any) -> float:
    """Seconds of speech below which the model answers with a layer its maps do not show (0: none)."""
    return 0.0


@unmapped_below_s.register
def _(model: VoiceModel) -> float:
    return float(model.head.short_max_s)  # the short-speech layer (see as_checkpoint)


def explainable_model(loaded: Any) -> nn.Module:
    """The network maps are computed on: the checkpoint's own, or :class:`GE2EOnMel` for a GE2E head."""
    kind = loaded.feature_config["kind"]
    if kind == "ge2e":
        return GE2EOnMel(loaded.model).eval()
    if kind not in OCCLUSION_BANDS:
        raise ModelError(_not_explainable(kind))
    return loaded.model.eval()


def ge2e_log_mel(samples16k: np.ndarray) -> np.ndarray:
    """The GE2E encoder's input for 16 kHz audio as a picture: log mel power (40, frames), ≥ 160 frames."""
    from ..voice.embeddings import mel_frames, prepare

    return np.log(mel_frames(prepare(samples16k)).T + GE2E_FLOOR).astype(np.float32)


def model_input(feature: np.ndarray, kind: str) -> Tensor:
    """One clip's feature → the model's batch of one: (1, 1, rows, frames), or (1, 3, 224, 224) in 0…1."""
    if kind == "seed_image":
        return torch.from_numpy(np.asarray(feature, np.float32) / 255.0).permute(2, 0, 1)[None]
    return torch.from_numpy(np.asarray(feature, np.float32))[None, None]


def display_grid(feature: np.ndarray, kind: str) -> np.ndarray:
    """The (rows, frames) picture of a feature that maps are drawn over (the seed image → its 12×98 grid)."""
    if kind == "seed_image":
        return to_grid(np.asarray(feature, np.float32)[None, :, :, 0])[0]
    return np.asarray(feature, np.float32)


def loudest_window(feature: np.ndarray, frames: int) -> np.ndarray:
    """The ``frames`` consecutive columns of a log-mel with the most energy (padded with its minimum if short)."""
    n = feature.shape[1]
    if n <= frames:
        return np.pad(feature, ((0, 0), (0, frames - n)), constant_values=feature.min())
    energy = np.convolve(np.exp(feature).sum(0), np.ones(frames), mode="valid")
    start = int(energy.argmax())
    return feature[:, start:start + frames]


def clip_feature(clip: Clip | str | Path, feature_config: dict, frames: int = CLIP_FRAMES) -> np.ndarray:
    """A corpus clip → the model's input feature.

    Audio goes through ``features.featurize`` (log-mel cut to its loudest ``frames`` frames; GE2E: the encoder's
    log-mel, its loudest 1.6 s window). The seed's JPEGs are read as they are (seed_image) or their first channel
    area-averaged to 12×98 (seed_mfcc, as ``dataset.image_feature`` does for training)."""
    from ..audio.decode import load_audio
    from ..corpora import IMAGE_EXTENSIONS
    from .features import feature_sample_rate, featurize

    path = Path(clip.path if isinstance(clip, Clip) else clip)
    kind = feature_config["kind"]
    if kind not in OCCLUSION_BANDS:
        raise ModelError(_not_explainable(kind))
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        from PIL import Image

        if kind in ("log_mel", "ge2e"):
            raise VoiceGenderError(f"{path}: an MFCC image cannot feed a log-mel model; give an audio corpus")
        image = np.asarray(Image.open(path).convert("RGB"))
        return image if kind == "seed_image" else display_grid(image, "seed_image")
    rate = feature_sample_rate(feature_config)
    if kind == "ge2e":  # one 1.6 s encoder window: the loudest
        from ..voice.embeddings import PARTIAL_FRAMES

        return loudest_window(ge2e_log_mel(load_audio(path, rate).samples), PARTIAL_FRAMES)
    feature = featurize(load_audio(path, rate).samples, rate, feature_config)
    return loudest_window(feature, frames) if kind == "log_mel" else feature


# --- one recording: the overlay for predict --explain and the web page ------------------------------------------
def explain_waveform(samples: np.ndarray, sample_rate: int, loaded: Any, method: str = CLIP_METHOD,
                     target: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Map one recording through a checkpoint's own feature pipeline.

    Parameters
    ----------
    samples : float mono audio in [-1, 1]; sample_rate : its rate in Hz.
    loaded : a ``models.LoadedModel`` (SmallCNN on log_mel / seed_mfcc, SeedResNet on seed_image, or a GE2E
        head — explained over the encoder's 40-band log-mel input with Integrated Gradients, see :class:`GE2EOnMel`).
    method : a method spec (see :func:`parse_method`); default LayerCAM on the fine stage (``ig`` for GE2E).
    target : class to explain; None = the predicted class.

    Returns
    -------
    (spectrogram, cam_map, p_female): two (rows, frames) arrays — log-mel (whole recording; for GE2E tiled to at
    least 1.6 s) or the seed's 12×98 MFCC grid — and the model's (uncalibrated) probability of "female".
    """
    loaded = as_checkpoint(loaded)
    fc = loaded.feature_config
    kind = fc["kind"]
    model = explainable_model(loaded)
    if kind == "ge2e":
        from ..audio.decode import resample

        feature = ge2e_log_mel(resample(np.asarray(samples, np.float32), sample_rate, 16_000))
        method = "ig" if parse_method(method)[0] != "ig" else method  # no conv layers: gradients on the input
    else:
        from .features import featurize

        feature = featurize(np.asarray(samples, np.float32), sample_rate, fc)
    x = model_input(feature, kind)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)[0].numpy()
    name, layer = parse_method(method)
    cls = int(probs.argmax()) if target is None else int(target)
    maps = cam(model, x, cls, layer, name)
    if kind == "seed_image":
        maps = to_grid(maps)
    p_female = float(probs[list(loaded.labels).index("female")]) if "female" in loaded.labels else float("nan")
    return display_grid(feature, kind), maps[0], p_female


METHOD_WORDS = {"ig": "integrated gradients", "gradcam": "Grad-CAM", "hirescam": "HiResCAM", "layercam": "LayerCAM"}


def explain_clip_png(samples: np.ndarray, sample_rate: int, loaded: Any, method: str = CLIP_METHOD,
                     title: str | None = None, target: str | None = None) -> bytes:
    """:func:`explain_waveform` drawn by :func:`plots.clip_overlay_png`: PNG bytes of one recording's map.

    target : the label to explain ("female" / "male"; default: what the network says of these samples). Give the
        recording's answer when the samples are only part of it (the loudest stretch), so the map explains it.
    title : the picture's title; default: the label, the network's probability of these samples and the method in
        words (no abbreviations).
    """
    from .plots import clip_overlay_png

    loaded = as_checkpoint(loaded)
    index = None if target is None else list(loaded.labels).index(target)
    spec, map_, p_female = explain_waveform(samples, sample_rate, loaded, method, target=index)
    frame_s, hz = feature_axes(loaded.feature_config)
    method = "ig" if loaded.feature_config["kind"] == "ge2e" else method
    said = target or ("female" if p_female >= 0.5 else "male")
    words = METHOD_WORDS.get(parse_method(method)[0], method)
    title = title if title is not None else f"Why '{said}' (p_female of this audio {p_female:.2f}; {words})"
    return clip_overlay_png(spec, map_, frame_s, hz, title)


# --- a set of clips: class means, occlusion, agreement, pictures --------------------------------------------------
def resolve_model(model: str | Path | None = None) -> tuple[LoadedModel, Path | None]:
    """A model file, a run folder (its ``model.pt``), or None (the shipped default model) → (the network to explain,
    see :func:`as_checkpoint`; the folder it came from).

    The run dir is returned so a caller can default to its ``test.csv`` (the clips the model never saw).
    """
    from ..voice.loading import load_model

    if model is None:
        return as_checkpoint(load_model()), None
    if Path(model).suffix == ".npz":  # a voice head from `voicegender fit`
        return as_checkpoint(load_model(model)), Path(model).parent
    path = Path(model).expanduser()
    if path.is_dir():
        found = [path / n for n in ("model.pt", "best.pt") if (path / n).is_file()] or sorted(path.glob("*.pt"))
        if not found:
            folds = sorted(p.name for p in path.glob("fold*") if p.is_dir())
            hint = f"; pick one fold, e.g. {path / folds[0]}" if folds else ""
            raise ModelError(f"{path}: no model.pt (or other .pt checkpoint) in this run folder{hint}")
        return load_checkpoint(found[0]), path
    return load_checkpoint(path), path.parent
