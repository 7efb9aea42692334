#!/usr/bin/env bash
# Create .venv (if needed) and install voicegender with the given extras, e.g. `scripts/setup.sh dev,web`.
# torch is pinned to 2.13.0 in pyproject.toml: a looser range would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
python -m pip install -q -e "$spec"
