"""Voice heads fitted without one test corpus each, for the leave-one-corpus-out benchmarks.

For each test corpus (``audiomnist_az``, ``baved``, ``speechocean762_train``, ``common_voice`` = the four Common
Voice folders) this fits the shipped recipe (``voicegender fit``'s :func:`voicegender.voice.fit.fit_corpora`) on the
other corpora and writes ``DIR/without_<corpus>.npz`` (benchmarks/conversations.py --heads DIR reads them), with
the fit's held-out report per fold in ``DIR/fold_heads.json``.

    python benchmarks/make_fold_heads.py --out .cache/heads      # a few minutes per fold with a warm feature cache
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TESTS = {"audiomnist_az": ("audiomnist_az",), "baved": ("baved",), "speechocean762_train": ("speechocean762_train",),
         "common_voice": ("cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for without_<corpus>.npz")
    p.add_argument("--data", type=Path, default=DATA, help="the shared corpora")
    p.add_argument("--only", nargs="*", choices=sorted(TESTS), help="these test corpora only")
    args = p.parse_args(argv)
    from voicegender.corpora import load_corpus
    from voicegender.voice.fit import DEFAULT_CORPORA, fit_corpora

    args.out.mkdir(parents=True, exist_ok=True)
    summary_file = args.out / "fold_heads.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    for test, members in TESTS.items():
        if args.only and test not in args.only:
            continue
        t0 = time.perf_counter()
        train_names = [n for n in DEFAULT_CORPORA if n not in members]
        corpora = [load_corpus(args.data / n) for n in train_names]
        groups = {"common_voice": tuple(n for n in TESTS["common_voice"] if n in train_names)}
        groups = {g: m for g, m in groups.items() if m}
        out = args.out / f"without_{test}.npz"
        _, report = fit_corpora(corpora, out, groups=groups,
                                metadata={"name": f"without-{test}", "command": "benchmarks/make_fold_heads.py"})
        summary[test] = {"trained_on": train_names, "gender_heldout_inside_the_fold": report["corpora"],
                         "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{test}: wrote {out} ({time.perf_counter() - t0:.0f} s)", flush=True)
    summary_file.write_text(json.dumps(summary, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
