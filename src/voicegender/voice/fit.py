"""Fit the shipped model's kind of head on labelled corpora: GE2E embedding + pitch / vocal-tract measures → gender,
child voice, and calibration per speech duration.

The recipe (``voicegender fit``) reads its features from :mod:`voicegender.voice.training_set` (cached copies of every
clip through several channels) and fits, with numpy and scikit-learn only:

1. the **gender head**: a logistic regression on the standardised GE2E embedding and the voice measures of
   :mod:`voicegender.voice.acoustic` (missing measures imputed with the training mean), strongly L2-regularised and
   weighted so each gender, and each speaker within a gender, counts equally;
2. the **child head**: the same kind of regression for "speaker aged 12 or younger", on the clips with a known age;
3. **calibration**: a temperature and a confidence floor fitted on out-of-fold logits — leave-one-corpus-out when
   there are several corpora, speaker k-fold otherwise — with every held-out cell (unit × clean / telephone /
   codec copy) weighted equally, checked per speech-duration band (:data:`DURATION_BANDS`) on short
   (0.15–1.5 s) crops so a 0.2 s word does not get the confidence of a 10 s sentence.

The result is a :class:`voicegender.voice.head.VoiceHead` (a small ``.npz``; no torch needed to use it). The
pieces: :mod:`voicegender.voice.layers` (what each layer reads and how it is fitted),
:mod:`voicegender.voice.calibration` (temperatures, ECE) and :mod:`voicegender.voice.heldout` (folds and the
held-out report).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import CorpusError
from .calibration import MAX_FLOOR, MAX_TEMPERATURE, MIN_TEMPERATURE, fit_held_out, held_out_cells
from .head import DURATION_BANDS, Calibration, VoiceHead
from .heldout import (
    child_auc,
    child_flag_heldout,
    corpus_folds,
    gender_scorer,
    heldout_report,
    out_of_fold,
    speaker_folds,
    speech_check_report,
)
from .layers import HeadConfig, build_head, config_dict, fit_speech_check, nonspeech_embeddings

log = logging.getLogger(__name__)


# --- the recipe as one call ---------------------------------------------------------------------------------
TEST_KINDS = ("clean", "tel", "codec", "short", "short_tel")  # held-out copies scored for the report
DEFAULT_CORPORA = ("audiomnist_az", "baved", "speechocean762_train", "cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")
DEFAULT_GROUPS = {"common_voice": ("cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")}  # one test corpus in LOCO


# Fit holds speakers (speaker 5-fold) or corpora (leave-one-corpus-out) out to score and calibrate the head, and
# fits on the rest: with fewer than MIN_SPEAKERS voices of a gender a fold has none of it to fit on. Below
# FEW_SPEAKERS of a gender, speaker 5-fold leaves folds without it (their balanced accuracy is n/a), and below
# FEW_CLIPS clips the held-out scores and the temperature rest on a handful of answers: fit warns.
MIN_SPEAKERS = 2
FEW_SPEAKERS = 5
FEW_CLIPS = 50


def held_out_units(names: set[str], groups: dict[str, tuple[str, ...]] | None) -> dict[str, tuple[str, ...]]:
    """The held-out units of leave-one-corpus-out: each corpus alone, or with the others of its ``groups`` entry."""
    joined = {g: tuple(m for m in members if m in names) for g, members in (groups or {}).items()}
    joined = {g: m for g, m in joined.items() if m}
    in_group = {m for members in joined.values() for m in members}
    return {**{n: (n,) for n in sorted(names - in_group)}, **joined}


def check_corpora(corpora: list, groups: dict[str, tuple[str, ...]] | None = None,
                  exclude_children: bool = True) -> list[str]:
    """What :func:`fit_corpora` can make of ``corpora``, from their labels alone (before any audio is read).

    Raises :class:`~voicegender.errors.CorpusError` (one line naming the corpora and the fix) when no head can be
    fitted: one gender missing, fewer than :data:`MIN_SPEAKERS` speakers of a gender, or a held-out corpus whose
    others lack a gender. Returns warnings: too few speakers or clips for the held-out scores to mean much, and
    clips whose speaker is only their file name (:func:`voicegender.corpora.speaker_note`).
    """
    from ..corpora import speaker_note
    from .training_set import CHILD_MAX_AGE

    def adult(clip) -> bool:
        return not exclude_children or clip.age is None or clip.age > CHILD_MAX_AGE

    clips = [c for corpus in corpora for c in corpus.clips if adult(c)]
    names = ", ".join(c.name for c in corpora)
    speakers = {g: {c.speaker_key for c in clips if c.gender == g} for g in ("female", "male")}
    for gender, other in (("female", "male"), ("male", "female")):
        if not speakers[other]:
            have = sum(c.gender == gender for c in clips)
            children = " (children left out: --with-children keeps them)" if exclude_children and any(
                not adult(c) for corpus in corpora for c in corpus.clips if c.gender == other) else ""
            raise CorpusError(f"{names}: only {gender} voices ({have} clips){children}; fit tells female from male "
                              f"and needs both: add {other} recordings (a {other}/ folder, or manifest rows with "
                              f"gender {other})")
    for gender, found in speakers.items():
        if len(found) < MIN_SPEAKERS:
            raise CorpusError(f"{names}: only {len(found)} {gender} speaker ({', '.join(sorted(found))}); fit holds "
                              f"speakers out to score and calibrate the model, so it needs at least {MIN_SPEAKERS} "
                              "female and male speakers")
    units = held_out_units({c.name for c in corpora}, groups)
    if len(units) >= 2:  # leave-one-corpus-out: what is left when each unit is held out must hold both genders
        for unit, members in units.items():
            rest = {c.gender for c in clips if c.corpus not in members}
            for gender in ("female", "male"):
                if gender not in rest:
                    everyone = ",".join(sorted(c.name for c in corpora))
                    raise CorpusError(f"holding out {unit} (fit scores each corpus on a model fitted on the others) "
                                      f"leaves no {gender} voice to fit on; give corpora that each hold both genders, "
                                      f"or hold them out together: --join all={everyone}")
    warnings = [note for note in map(speaker_note, corpora) if note]
    counts = {g: (len(found), sum(c.gender == g for c in clips)) for g, found in speakers.items()}
    if min(n for n, _ in counts.values()) < FEW_SPEAKERS or len(clips) < FEW_CLIPS:
        warnings.append(f"{names}: only {counts['female'][0]} female and {counts['male'][0]} male speakers "
                        f"({len(clips)} clips): the held-out scores and the calibration rest on too few voices to "
                        f"mean much (at least {FEW_SPEAKERS} of each gender and {FEW_CLIPS} clips; a model that "
                        "holds up needs dozens of speakers of each)")
    return warnings


def report_warnings(report: dict) -> list[str]:
    """What the held-out report says the user must know: held-out units whose balanced accuracy is n/a (one gender
    only), and temperatures at their bounds (too few or too easy held-out answers to calibrate on)."""
    out = []
    na = sorted(g for g, rows in report["corpora"].items() if not math.isfinite(rows.get("clean", {}).get("bacc",
                                                                                                       math.nan)))
    if na:
        unit = "fold" if report.get("protocol", "").startswith("speaker") else "held-out corpus"
        out.append(f"balanced accuracy is n/a for {len(na)} of {len(report['corpora'])} {unit}s ({', '.join(na)}): "
                   "their held-out clean clips hold one gender or none")
    bound = [t for t in report.get("temperatures", []) if t <= MIN_TEMPERATURE * 1.01 or t >= MAX_TEMPERATURE * 0.99]
    if report.get("confidence_floor", 0.0) >= MAX_FLOOR * 0.99:
        out.append(f"the confidence floor is at its bound ({MAX_FLOOR:g}): the held-out answers are wrong too often "
                   "at high confidence (labels or corpora at odds with each other?), so p_female never exceeds "
                   f"{1 - MAX_FLOOR:g}")
    if bound:
        out.append(f"the calibration temperature ({bound[0]:.3g}) is at its bound ({MIN_TEMPERATURE:g}..."
                   f"{MAX_TEMPERATURE:g}): too few or too easy held-out answers to calibrate on, so p_female is not "
                   "calibrated")
    return out


def held_out_logits(table, names: set[str], cfg: HeadConfig = HeadConfig(),
                    groups: dict[str, tuple[str, ...]] | None = None) -> tuple[str, list, dict[str, np.ndarray]]:
    """The recipe's held-out scores of ``table`` (corpora ``names``): (protocol, folds, out-of-fold log-odds of
    *female* per test copy). Leave-one-corpus-out (``groups`` joining corpora into one held-out unit) with two or
    more units; speaker 5-fold otherwise."""
    units = held_out_units(names, groups)
    protocol = "leave-one-corpus-out" if len(units) >= 2 else "speaker 5-fold"
    folds = corpus_folds(table, units) if len(units) >= 2 else speaker_folds(table)
    return protocol, folds, out_of_fold(table, folds, gender_scorer(table, cfg), TEST_KINDS)


def calibration_metadata(calibration: Calibration, cross_fitted: dict, protocol: str) -> dict:
    """What a model file says of its calibration: the method, the bands, the temperatures and floor, and the
    cross-fitted figures of :func:`voicegender.voice.heldout.calibration_report` (``cross_fitted``)."""
    return {"method": "a temperature and a confidence floor minimising the mean log-loss of the "
                      f"{protocol} cells (held-out unit x clean / telephone / codec copy; adults), each cell weighted "
                      "equally; softer temperatures for speech under 0.6 s fitted on the held-out short crops "
                      "(voicegender.voice.calibration.fit_calibration)",
            "bands_s": [[lo, None if hi == float("inf") else hi] for lo, hi in DURATION_BANDS],
            "temperatures": list(calibration.temperatures), "confidence_floor": calibration.floor,
            "ece_before": cross_fitted["ece_before"], "ece_after_cross_fitted": cross_fitted["ece_shipped"],
            "worst_cell_ece_cross_fitted": cross_fitted["worst_cell"]["shipped"]}


def default_cache_dir() -> Path:
    """Where training features are cached: ``fit/`` in the user cache folder (``$VOICEGENDER_CACHE_DIR`` or the
    platform's, see :func:`voicegender.cache.cache_dir`)."""
    from ..cache import cache_dir

    return cache_dir() / "fit"


def fit_corpora(corpora: list, out: str | Path, cfg: HeadConfig = HeadConfig(), *,
                cache_dir: str | Path | None = None, groups: dict[str, tuple[str, ...]] | None = None,
                workers: int = 2, metadata: dict | None = None, rank: int = 0, world_size: int = 1,
                warn: Callable[[str], None] | None = None
                ) -> tuple[VoiceHead, dict] | None:
    """Fit a voice head on labelled corpora and write it to ``out`` (``.npz``); returns (head, report).

    Parameters
    ----------
    corpora : list of :class:`voicegender.corpora.Corpus` (audio corpora with speaker and gender labels).
    out : the model file to write.
    cfg : features, regularisation, training copies (:class:`HeadConfig`).
    cache_dir : where the copies' features are cached (default :func:`default_cache_dir`).
    groups : corpora joined into one held-out corpus for leave-one-corpus-out, e.g. ``{"cv": ("cv_en", "cv_fa")}``.
    workers : processes computing features.
    metadata : extra fields for the file's metadata (name, version, command).
    rank, world_size : this process's place in a multi-process job (torchrun's ``RANK`` / ``WORLD_SIZE``, on
        machines sharing ``cache_dir``): every rank computes its share of the features; rank 0 gathers them, fits
        and writes ``out``; the other ranks return None.
    warn : called (on rank 0) with each warning of :func:`check_corpora`, before any feature is computed, and of
        :func:`report_warnings`, after the fit (default: logged); ``report["warnings"]`` holds them all.

    Raises :class:`~voicegender.errors.CorpusError` before any work when the corpora cannot make a head
    (:func:`check_corpora`).

    Calibration: with two or more (groups of) corpora the temperatures come from leave-one-corpus-out logits (and
    the report holds held-out-corpus accuracy); with one, from speaker 5-fold logits.
    """
    import datetime

    from .. import __version__
    from .training_set import load_feature_table

    warn = warn or log.warning
    warnings = check_corpora(corpora, groups, cfg.exclude_children)
    for message in warnings if rank == 0 else []:
        warn(message)
    table = load_feature_table(corpora, cache_dir or default_cache_dir(), workers, rank, world_size)
    if table is None:  # not rank 0: its share of the features is cached
        return None
    names = {c.name for c in corpora}
    protocol, folds, oof = held_out_logits(table, names, cfg, groups)
    report = heldout_report(table, oof, folds)
    report["protocol"] = protocol
    calibration = fit_held_out(held_out_cells(table, oof, {name: test for name, _, test in folds}))
    temperatures = list(calibration.temperatures)
    report["temperatures"] = temperatures
    report["confidence_floor"] = calibration.floor
    report["child"] = child_auc(table, cfg) if table.child.any() else None
    if table.child.any() and protocol == "leave-one-corpus-out":
        report["child_flag_heldout"] = child_flag_heldout(table, cfg, folds)
    adults = ~table.child if cfg.exclude_children else np.ones(len(table.y), bool)
    meta = {
        "date": datetime.date.today().isoformat(),
        "voicegender_version": __version__,
        "training_corpora": sorted(names),
        "n_clips": int(adults.sum()),
        "n_speakers": int(len(np.unique(table.speaker[adults]))),
        "config": config_dict(cfg),
        "calibration": calibration_metadata(calibration, report["calibration"], protocol),
        "heldout": {g: {k: round(v["bacc"], 4) for k, v in r.items()} for g, r in report["corpora"].items()},
        "child_auc": None if report["child"] is None else report["child"].get("auc"),
        **(metadata or {}),
    }
    speech = fit_speech_check(table, nonspeech_embeddings(), cfg) if cfg.speech_check else None
    if speech is not None:
        report["speech_check"] = meta["speech_check"] = speech_check_report(speech, table)
    head = build_head(table, cfg, temperatures, meta, speech, calibration.floor)
    head.save(out)
    log.info("wrote %s", out)
    after = report_warnings(report)
    for message in after:
        warn(message)
    report["warnings"] = warnings + after
    return head, report
