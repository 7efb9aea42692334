#!/usr/bin/env bash
# Set up (venv + dev/web extras + headless Chromium for the browser test when we are root) and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
. .venv/bin/activate
python -m pytest -q "$@"
