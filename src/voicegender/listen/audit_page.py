"""The label audit's page (``voicegender audit --html DIR``): ``DIR/index.html`` with a player for each clip of
every speaker the audit did not pass (flagged, likely children, clips labelled both ways), so that a curator can
listen and decide, and the files of the speakers whose every clip failed, with why, to fix them.

The research report's page (:mod:`voicegender.research.report`) needs the research extras; this one is plain HTML
and CSS with no script, made in the light install. The clips sit beside it as 16 kHz 16-bit WAV (what the model
heard, the first :data:`CLIP_MAX_S` seconds; every browser plays it): ``DIR/clips/<rank>/<n>.wav``, linked relatively,
so the folder can be moved or zipped as a whole. Names and paths that are not UTF-8 show their bytes as ``\\udcff``
(:func:`voicegender.fileio.readable`).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

from ..audio.decode import read_first_seconds
from ..errors import VoiceGenderError
from ..fileio import atomic_write, readable
from .label_audit import AuditRule, summary
from .speaker_answers import FAILED, ClipScore, SpeakerAnswer

log = logging.getLogger(__name__)

PAGE_NAME = "index.html"
CLIP_MAX_S = 30.0  # seconds of each clip copied beside the page
SAMPLE_RATE = 16_000
LISTED = ("flagged", "child", "mixed", FAILED)  # the verdicts listed (with players but for failed), in this order
HEADINGS = {"flagged": "Flagged: the audio contradicts the label",
            "child": "Likely children: contradicted, but a child's voice (not flagged)",
            "mixed": "Clips labelled both ways",
            FAILED: "Every clip failed: nothing was heard (fix or remove the files)"}

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;
text-align:right;vertical-align:middle}th{background:#f4f4f4}td.l,th.l{text-align:left}.small{color:#666;
font-size:.85em}section{border-top:2px solid #ccc;margin-top:1.5em}audio{height:2em;width:16em}
.against{color:#b00;font-weight:600}"""


def write_audit_page(ranked: Sequence[SpeakerAnswer], folder: str | Path, corpus: str, rule: AuditRule | None = None,
                     model_name: str = "", max_clips: int = 12, threshold: float = 0.5) -> Path:
    """Write ``folder/index.html`` and the clips of the speakers to listen to; returns the page's path.

    ranked : :func:`voicegender.listen.label_audit.audit`'s speakers (with verdicts), in its order.
    rule : the rule the audit applied (its words head the page); default :class:`AuditRule`'s.
    max_clips : clips per speaker on the page, those most against the label first.
    """
    folder, rule = Path(folder), rule or AuditRule()
    shown = [s for v in LISTED for s in ranked if s.verdict == v]
    sections = []
    for k, speaker in enumerate(shown, 1):
        clips = sorted(speaker.scores, key=lambda c: _against(c, speaker.label))[:max_clips]
        rows = "".join(_clip_row(c, folder, f"clips/{k}/{n}.wav", speaker.label, threshold)
                       for n, c in enumerate(clips, 1))
        more = len(speaker.scores) - len(clips)
        note = f"<p class=small>{more} more clip{'s' if more > 1 else ''} not shown (--max-clips)</p>" if more else ""
        sections.append((speaker.verdict, f"<section id=s{k}><h3>{_text(speaker.speaker)}</h3>"
                         f"<p>{html.escape(evidence(speaker))}</p><table><tr><th class=l>clip</th><th>p_female</th>"
                         f"<th>pitch Hz</th><th>speech s</th><th class=l>file</th></tr>{rows}</table>{note}"
                         "</section>"))
    body = [f"<p>{html.escape(summary(ranked))}.</p>", _rule_text(rule, model_name), _overview(shown)]
    for v in LISTED:
        mine = [h for verdict, h in sections if verdict == v]
        if mine:
            body.append(f"<h2>{html.escape(HEADINGS[v])}</h2>" + "".join(mine))
    if not shown:
        body.append("<p>Every speaker's audio agrees with its label: nothing to listen to.</p>")
    title = f"Label audit: {readable(corpus)}"
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}</body></html>")
    path = folder / PAGE_NAME
    atomic_write(path, lambda f: f.write(page.encode("utf-8")))
    return path


def evidence(s: SpeakerAnswer) -> str:
    """One sentence: the label, what the audio says, and how sure (for the page and the table's caption)."""
    if s.answer == FAILED:
        clips = "its only clip" if s.clips == 1 else f"all {s.clips} of its clips"
        return f"labelled {s.label}; {clips} failed, so nothing was heard"
    if s.label == "mixed":
        n_f = sum(c.label == "female" for c in s.scores)
        return (f"labelled female on {n_f} and male on {len(s.scores) - n_f} of {len(s.scores)} clips; heard as "
                f"{s.answer}" + (f" (p_female {s.p_female:.3f})" if s.p_female is not None else ""))
    parts = [f"labelled {s.label}, heard as {s.answer}"]
    if s.p_female is not None:
        parts.append(f"p_female {s.p_female:.3f}")
    if s.against_label is not None:
        parts.append(f"{s.against_label} of {s.answered} clips answered against the label")
    if s.pitch_hz is not None:
        parts.append(f"median pitch {s.pitch_hz:.0f} Hz")
    if s.p_child is not None:
        parts.append(f"p_child {s.p_child:.2f}")
    return "; ".join(parts)


def _against(c: ClipScore, label: str | None) -> float:
    """Sort key: the clip's probability of its own label, so the clips most against it come first."""
    if c.p_female is None:
        return 2.0  # unanswered clips last
    if label == "male":
        return 1.0 - c.p_female
    if label == "female":
        return c.p_female
    return 0.5


def _clip_row(c: ClipScore, folder: Path, rel: str, label: str | None, threshold: float) -> str:
    player = c.error is None and _copy_clip(c.path, folder / rel)  # a clip that failed would only fail again
    audio = (f'<audio controls preload=none src="{html.escape(rel)}"></audio>' if player
             else "<span class=small>(cannot be read)</span>")
    why = f"<br><span class=small>{_text(c.error)}</span>" if c.error is not None else ""
    if c.p_female is None:
        p = "no speech" if c.error is None else "failed"
    else:
        own = "female" if c.p_female >= threshold else "male"
        against = label in ("female", "male") and own != label
        p = f"<span class=against>{c.p_female:.3f}</span>" if against else f"{c.p_female:.3f}"
    pitch = "" if c.pitch_hz is None else f"{c.pitch_hz:.0f}"
    label_note = f" <span class=small>({c.label})</span>" if label == "mixed" else ""
    return (f"<tr><td class=l>{audio}</td><td>{p}</td><td>{pitch}</td><td>{c.speech_s:.1f}</td>"
            f"<td class=l><span class=small>{_text(c.path)}</span>{label_note}{why}</td></tr>")


def _copy_clip(source: str, target: Path) -> bool:
    """The first CLIP_MAX_S seconds of ``source`` as 16 kHz PCM_16 WAV at ``target``; False when it cannot be read."""
    try:
        samples = read_first_seconds(source, CLIP_MAX_S, SAMPLE_RATE)
    except VoiceGenderError as e:
        log.warning("%s", e)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda f: sf.write(f, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16"))
    return True


def _rule_text(rule: AuditRule, model_name: str) -> str:
    model = f" Model: <code>{html.escape(model_name)}</code>." if model_name else ""
    return (f"<p class=small>A speaker is flagged when its clips together give the other gender a probability of at "
            f"least {rule.min_p:g} and at least {_share(rule.min_against)} of its answered clips are answered against "
            f"the label; a contradicted speaker whose p_child reaches {rule.child_p:g} is listed as a likely child "
            f"instead. Clips are as the model heard them (16 kHz, at most the first {CLIP_MAX_S:.0f} s); p_female "
            f"in red is against the label.{model}</p>")


def _share(x: float) -> str:
    """2/3 as "2/3", 0.75 as "3/4", 0.7 as "70 %"."""
    from fractions import Fraction

    f = Fraction(x).limit_denominator(6)
    exact = abs(float(f) - x) < 1e-9 and f.denominator > 1
    return f"{f.numerator}/{f.denominator}" if exact else f"{100 * x:.0f} %"


def _overview(shown: Sequence[SpeakerAnswer]) -> str:
    if not shown:
        return ""
    rows = "".join(
        f"<tr><td><a href=#s{k}>{k}</a></td><td class=l>{_text(s.speaker)}</td><td class=l>{s.verdict}</td>"
        f"<td class=l>{s.label}</td><td class=l>{s.answer}</td><td>{_num(s.p_female, 3)}</td>"
        f"<td>{_num(s.p_child, 2)}</td><td>{_num(s.pitch_hz, 0)}</td>"
        f"<td>{'' if s.against_label is None else f'{s.against_label} / {s.answered}'}</td></tr>"
        for k, s in enumerate(shown, 1))
    return ("<table><tr><th></th><th class=l>speaker</th><th class=l>verdict</th><th class=l>label</th>"
            "<th class=l>heard</th><th>p_female</th><th>p_child</th><th>pitch Hz</th><th>against label</th></tr>"
            f"{rows}</table>")


def _text(name: str) -> str:
    """A name, path or message as page text: readable (bytes that are not UTF-8 as \\udcff) and escaped."""
    return html.escape(readable(name))


def _num(x: float | None, places: int) -> str:
    return "" if x is None else f"{x:.{places}f}"
