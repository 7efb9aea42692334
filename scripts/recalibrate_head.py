"""Give an existing voice head the current recipe's calibration, keeping its layers (its answers do not change).

The calibration (:func:`voicegender.voice.calibration.fit_calibration`: temperatures per speech-duration band and a
confidence floor) is fitted on the leave-one-corpus-out logits of ``voicegender fit``'s recipe on the shipped
model's corpora (``../shared/data``; the fit's feature cache is reused), exactly as ``voicegender fit`` would
calibrate a new head, and written into the head's file with the cross-fitted figures of
:func:`voicegender.voice.heldout.calibration_report`. Used for the shipped model 2.3.0 (layers of 2.2.0):

    python scripts/recalibrate_head.py src/voicegender/assets/default_model.npz --model-version 2.3.0
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

DEFAULT_DATA = Path("..") / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="the voice head (.npz) to recalibrate in place")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared corpora")
    ap.add_argument("--cache", type=Path, default=None, help="voicegender fit's feature cache (default: its own)")
    ap.add_argument("--model-version", default=None, help="the model's new version (metadata)")
    args = ap.parse_args(argv)
    from voicegender import __version__
    from voicegender.corpora import load_corpus
    from voicegender.errors import VoiceGenderError
    from voicegender.voice import fit
    from voicegender.voice.calibration import fit_held_out, held_out_cells
    from voicegender.voice.head import VoiceHead
    from voicegender.voice.heldout import calibration_report
    from voicegender.voice.training_set import load_feature_table

    try:
        head = VoiceHead.load(args.model)
    except (OSError, VoiceGenderError) as e:
        print(f"{args.model}: {e}", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"{args.data}: not found (the shared corpora; --data)", file=sys.stderr)
        return 2
    corpora = [load_corpus(args.data / name) for name in fit.DEFAULT_CORPORA]
    table = load_feature_table(corpora, args.cache or fit.default_cache_dir())
    protocol, folds, oof = fit.held_out_logits(table, {c.name for c in corpora}, groups=fit.DEFAULT_GROUPS)
    calibration = fit_held_out(held_out_cells(table, oof, {name: test for name, _, test in folds}))
    report = calibration_report(table, oof, folds)
    before = {"temperatures": head.temperatures, "confidence_floor": head.confidence_floor}
    head.temperatures = list(calibration.temperatures)
    head.confidence_floor = calibration.floor
    meta = head.metadata
    meta["calibration"] = {
        **fit.calibration_metadata(calibration, report, protocol),
        "recalibrated": {"date": datetime.date.today().isoformat(), "voicegender_version": __version__,
                         "command": "python scripts/recalibrate_head.py " + " ".join(sys.argv[1:]),
                         "before": before}}
    if args.model_version:
        meta["version"] = args.model_version
    head.save(args.model)
    print(f"{args.model}: temperatures {[round(t, 3) for t in head.temperatures]}, confidence floor "
          f"{head.confidence_floor:.4f} (cross-fitted ECE {report['ece_shipped']:.3f}, worst cell "
          f"{report['worst_cell']['shipped']:.3f}; before {before})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
