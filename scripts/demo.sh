#!/usr/bin/env bash
# Quick start: set up .venv with the light install (no torch) and run the main job — predict the gender of the
# bundled example recordings with the shipped default model (no training, no internet beyond the package index).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
voicegender predict "$(python -c 'import voicegender.examples as e; print(e.EXAMPLES_DIR)')"
