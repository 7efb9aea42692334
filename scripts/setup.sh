#!/usr/bin/env bash
# Create .venv (if needed) and install voicegender with the given extras, e.g. `scripts/setup.sh dev` or
# `scripts/setup.sh web,record`. Without extras: the light install (predict, segment, merge; no torch).
# Extras that bring torch (research, dev) get PyTorch's CPU build on Linux: torch is pinned to 2.13.0 in
# pyproject.toml, and PyPI's Linux build of it is the CUDA one (several GB with its nvidia-* packages).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
# pip -q says nothing for the half minute an install takes: show one line per package it collects instead (and its
# errors and warnings); the pipeline keeps pip's exit status (pipefail)
pip_install() {
  python -m pip install --progress-bar off "$@" 2>&1 \
    | { grep --line-buffered -E '^(Collecting|Installing collected|ERROR|WARNING|error)' || true; } \
    | sed -u 's/^/  /'
}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv"
  python3 -m venv .venv
fi
. .venv/bin/activate
echo "updating pip in .venv"
python -m pip install -q --upgrade pip
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
case ",$extras," in
  *,dev,*|*,research,*)
    # only when no torch is installed: a CUDA build someone installed on purpose stays
    if [ "$(uname -s)" = Linux ] && ! python -c 'import importlib.metadata as m; m.version("torch")' 2>/dev/null; then
      echo "installing torch 2.13.0, CPU build (PyTorch's CPU wheel index; README: Install)"
      pip_install --retries 1 torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu
    fi
    ;;
esac
echo "installing voicegender${extras:+[$extras]} into .venv (a line per package pip collects)"
pip_install -e "$spec"
echo "installed: $(voicegender --version)"
