"""Which frequency bands, and when, carried the shipped model's answer: per-band occlusion over the ONNX encoder.

No gradients and no torch, so the web page draws it in every install. The picture is the GE2E encoder's own input
(40 mel bands, 10 ms frames; clips under 1.6 s tiled as the encoder reads them). Each 1.6 s window the encoder
reads is run again once per group of :data:`BAND_GROUP` bands, with those bands set to the recording's average
level in them (their geometric mean over all frames: what is particular to this moment in that band is removed,
without punching a silent hole into the spectrum). The cell's relevance is how much the answer's log-odds in the
main gender layer fall when that window's bands are masked, the clip's embedding pooled over all windows as predict
pools it; a frame shares the drops of the windows that cover it (windows overlap: 1.6 s every 0.77 s). Positive:
the band helped the answer there.

Cost: (1 + 10) encoder windows per window, ~0.6 s for 20 s of audio on one thread (torch's Integrated Gradients
map over the same network took 1.2 s for 4.7 s and 5.7 s for 20 s here). Coarser than gradients (4 bands by 0.8 s
instead of 1 band by 10 ms), and it explains the main layer: speech shorter than the head's ``short_max_s`` is
answered by the short-speech layer (:func:`unmapped_below_s`). A window's drop is drawn over its sounding frames
only: frames 50 dB below the loudest cell (silence around the speech) get none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from .default_model import VoiceModel
from .embeddings import (
    MEL_BANDS,
    MEL_HOP,
    SAMPLE_RATE,
    encode_windows,
    mel_band_centres_hz,
    mel_frames,
    partial_windows,
    prepare,
)

BAND_GROUP = 4  # mel bands masked together: 10 groups of the encoder's 40 (as `voicegender explain` does for GE2E)
LOG_FLOOR = 1e-10  # added to mel power before the log (the picture)
SILENT_NEPERS = 11.5  # frames whose loudest band lies 50 dB (11.5 nepers of power) below the loudest cell: no map


@dataclass(frozen=True)
class OcclusionMap:
    """One recording's picture and map, on the encoder's grid (rows: mel bands, low first; columns: 10 ms frames)."""

    log_mel: np.ndarray  # (40, frames) natural log of the encoder's mel power
    relevance: np.ndarray  # (40, frames) fall of the answer's log-odds when the cell's bands are masked (> 0: helped)
    p_female: float  # the main gender layer's probability (uncalibrated), the answer the map explains
    frame_s: float  # seconds per column
    band_hz: np.ndarray  # (40,) centre frequency of each row

    @property
    def answer(self) -> str:
        return "female" if self.p_female >= 0.5 else "male"


def unmapped_below_s(model: Any) -> float:
    """Seconds of speech below which ``model`` answers with a layer the map does not show (0: none)."""
    return float(model.head.short_max_s) if isinstance(model, VoiceModel) else 0.0


def occlusion_map(model: Any, samples16k: np.ndarray, threads: int = 1) -> OcclusionMap:
    """The per-band occlusion map of float mono audio at 16 kHz (at most a few tens of seconds: the page's picture).

    Raises ModelError for a model that is not the shipped kind (a :class:`VoiceModel`) or whose main layer reads
    pitch or formant measures, which masking mel bands cannot change; ValueError for audio under 10 ms.
    """
    if not isinstance(model, VoiceModel):
        raise ModelError(f"{getattr(model, 'name', type(model).__name__)}: this map explains the shipped kind of model "
                         "(a voice head); other models need the research extras' maps")
    head = model.head
    if head.uses_voice:
        raise ModelError(f"{model.name}: its main layer reads pitch or formant measures, which masking mel bands "
                         "does not change; no map")
    mel = mel_frames(prepare(samples16k))  # (frames, 40) power, as the encoder reads it
    spans = partial_windows(len(mel))
    windows = np.stack([mel[s] for s in spans])  # (W, 160, 40)
    baseline = np.exp(np.log(mel + LOG_FLOOR).mean(axis=0))  # (40,) the recording's average level per band
    groups = [slice(b, b + BAND_GROUP) for b in range(0, MEL_BANDS, BAND_GROUP)]
    masked = np.repeat(windows[None], len(groups), axis=0)  # (G, W, 160, 40)
    for g, rows in enumerate(groups):
        masked[g, :, :, rows] = baseline[rows]
    n = len(windows)
    emb, hidden = encode_windows(np.concatenate([windows, masked.reshape(-1, *windows.shape[1:])]), threads=threads,
                                 hidden=True)
    emb, hidden = emb.astype(np.float64), hidden.astype(np.float64)
    base_emb, base_hidden = emb[:n], hidden[:n]
    emb_sum, hidden_sum = base_emb.sum(axis=0), base_hidden.sum(axis=0)

    def male_logit(emb_sums: np.ndarray, hidden_sums: np.ndarray) -> np.ndarray:
        """The main layer's log-odds of "male" for clips pooled as predict pools its windows."""
        pooled = emb_sums / np.linalg.norm(emb_sums, axis=-1, keepdims=True).clip(1e-12)
        return head.gender.logit(head.inputs(pooled, None, hidden_sums / n))

    base = float(male_logit(emb_sum[None], hidden_sum[None])[0])
    # each (group, window): the whole clip with only that window's bands masked
    swapped = emb_sum - base_emb + emb[n:].reshape(len(groups), n, -1)  # (G, W, 256)
    swapped_hidden = hidden_sum - base_hidden + hidden[n:].reshape(len(groups), n, -1)
    logits = male_logit(swapped.reshape(-1, swapped.shape[-1]), swapped_hidden.reshape(-1, swapped.shape[-1]))
    sign = -1.0 if base < 0 else 1.0  # log-odds of the answer: "male" when the male logit is positive
    drop = sign * (base - logits.reshape(len(groups), n))  # (G, W)
    relevance = np.zeros((MEL_BANDS, len(mel)))
    cover = np.zeros(len(mel))
    for w, span in enumerate(spans):
        cover[span] += 1
        for g, rows in enumerate(groups):
            relevance[rows, span] += drop[g, w]
    relevance /= cover.clip(1)
    log_mel = np.log(mel + LOG_FLOOR).T
    relevance[:, log_mel.max(axis=0) < log_mel.max() - SILENT_NEPERS] = 0.0  # a window's drop, not silence's
    return OcclusionMap(log_mel.astype(np.float32), relevance.astype(np.float32),
                        float(1.0 / (1.0 + np.exp(base))), MEL_HOP / SAMPLE_RATE, mel_band_centres_hz())
