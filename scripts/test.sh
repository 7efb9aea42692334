#!/usr/bin/env bash
# Set up and run the tests: .venv with the dev extras (every extra, so torch 2.13.0: on Linux its CPU build, see
# scripts/setup.sh), plus (when run as root and they are missing) Debian's
# espeak-ng (real speech for the speech-detection tests) and chromium (the browser test). Without them those
# tests skip with a reason; everything else runs on audio the tests synthesise.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || echo "warning: could not install ${missing[*]}; their tests will skip"
  fi
fi
bash scripts/setup.sh dev
. .venv/bin/activate
python -m pytest -q "$@"
