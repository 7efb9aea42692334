#!/usr/bin/env bash
# Quick start: set up .venv with the light install (no torch) and run the main job — predict the gender of the
# bundled example recordings with the shipped default model (no training, no internet beyond the package index).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "voicegender demo: setting up .venv, then predicting the bundled example recordings"
bash scripts/setup.sh
. .venv/bin/activate
echo "predicting the example recordings (src/voicegender/examples/README.md says what each one is)"
voicegender predict "$(python -c 'import voicegender.examples as e; print(e.EXAMPLES_DIR)')"
