"""Voice heads fitted without one test corpus each, for the leave-one-corpus-out benchmarks.

For each test corpus (``audiomnist_az``, ``baved``, ``speechocean762_train``, ``common_voice`` = the four Common
Voice folders) this fits the shipped recipe (``voicegender fit``'s :func:`voicegender.voice.fit.fit_corpora`) on the
other corpora, with the window check fitted on their speech and on the background recordings outside the test
corpus's group (music by artist and noise by file name, :func:`voicegender.voice.conversations.music_artist_group`,
the groups benchmarks/conversations.py tests with), and writes ``DIR/without_<corpus>.npz``. Then it measures the
window check on what it never saw: the test corpus's speech (clean and mixed with the held-out background) and the
held-out music and noise alone.

    python benchmarks/make_fold_heads.py --out .cache/heads          # ~15-25 min on 2 cores with a warm feature cache
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TESTS = {"audiomnist_az": ("audiomnist_az",), "baved": ("baved",), "speechocean762_train": ("speechocean762_train",),
         "common_voice": ("cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")}
GROUPS = 4


def background_split(folder: Path, test_index: int):
    """(training recordings, held-out recordings): music by artist group, noise by file-name group."""
    from voicegender.voice.conversations import load_background, music_artist_group

    bg = load_background(folder)
    held = [r for r in bg.music if music_artist_group(r.artist, GROUPS) == test_index]
    held += [r for r in bg.noise if music_artist_group(r.path.name, GROUPS) == test_index]
    train = [r for r in (*bg.music, *bg.noise) if r not in held]
    return [r.path for r in train], [r.path for r in held]


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for without_<corpus>.npz")
    p.add_argument("--data", type=Path, default=DATA, help="the shared corpora")
    p.add_argument("--only", nargs="*", choices=sorted(TESTS), help="these test corpora only")
    args = p.parse_args(argv)
    from voicegender.audio.decode import load_audio
    from voicegender.corpora import load_corpus
    from voicegender.voice import window_check as wc
    from voicegender.voice.fit import DEFAULT_CORPORA, fit_corpora

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for index, (test, members) in enumerate(TESTS.items()):
        if args.only and test not in args.only:
            continue
        t0 = time.perf_counter()
        train_names = [n for n in DEFAULT_CORPORA if n not in members]
        corpora = [load_corpus(args.data / n) for n in train_names]
        groups = {"common_voice": tuple(n for n in TESTS["common_voice"] if n in train_names)}
        groups = {g: m for g, m in groups.items() if m}
        train_bg, held_bg = background_split(args.data / "background", index)
        out = args.out / f"without_{test}.npz"
        head, report = fit_corpora(corpora, out, groups=groups, background=train_bg,
                                   metadata={"name": f"without-{test}", "command": "benchmarks/make_fold_heads.py"})
        # the window check on what it never saw
        rng = np.random.default_rng(100 + index)
        backs = [load_audio(path, 16_000).samples for path in held_bg]
        backs = [(x - x.mean()).astype(np.float32) for x in backs]
        test_corpora = [load_corpus(args.data / n) for n in members]
        clips = wc.clips_by_speaker(test_corpora, rng, speakers_per_corpus=40, clips_per_speaker=6)
        speech = wc.window_embeddings(wc.speech_recordings(clips, backs, rng))
        alone = wc.window_embeddings(wc.background_recordings(backs, rng))
        held = wc.check_report(head.window_speech, speech, alone)
        summary[test] = {"heldout_window_check": held, "in_sample_window_check": report["window_check"],
                         "heldout_background": [str(path.relative_to(args.data / "background")) for path in held_bg],
                         "gender_heldout": report["corpora"], "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{test}: wrote {out}; window check held out: speech rejected {_share(held['speech_rejected'])} of "
              f"{held['speech_windows']} windows, music/noise accepted {_share(held['background_accepted'])} of "
              f"{held['background_windows']} ({time.perf_counter() - t0:.0f} s)", flush=True)
    (args.out / "fold_heads.json").write_text(json.dumps(summary, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
