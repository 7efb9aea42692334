#!/usr/bin/env bash
# The inaSpeechSegmenter peer of benchmarks/conversations.py. Recreate, from scratch, in $VOICEGENDER_INA_DIR
# (default: .cache/peers/ina under the repository root, which git ignores):
#   venv/    inaSpeechSegmenter 0.8.0 on tensorflow-cpu 2.15.1 / numpy 1.26 (exact pins: requirements-ina.txt)
#   models/  its three Keras models, taken from the inaSpeechSegmenter 0.5.1 sdist on PyPI (0.8.0 no longer ships
#            them and would download them from GitHub at run time), checked by SHA-256
#   speech_music_noise.npz (+ LICENSE.inaSpeechSegmenter)  ina's speech/music/noise CNN as numpy arrays, for the
#            numpy port ina_smn.py (benchmarks/ina_smn_parity.py), written by make_ina_smn.py beside this script
#   male_female.npz  ina's male/female CNN as numpy arrays, for the numpy port ina_gender.py
#            (benchmarks/ina_second_opinion.py), written by make_ina_gender.py beside this script
# then run a smoke test (ina_segment.py, beside this script, on 3 s of synthetic audio).
#
# Usage: bash benchmarks/peers/setup.sh              (PYTHON=python3.11 by default: CPython 3.9-3.11, Linux x86_64)
#        KEEP_VENV=1 bash benchmarks/peers/setup.sh  only (re)fetch the models, run the smoke test, (re)make the npzs
# Then:  python benchmarks/conversations.py --ina-python "$VOICEGENDER_INA_DIR/venv/bin/python" ...
# Needs: network access to PyPI (pip), ~1.7 GB of disk for the venv. No ffmpeg, no torch, no GPU.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
INA_DIR="${VOICEGENDER_INA_DIR:-$REPO/.cache/peers/ina}"
PYTHON="${PYTHON:-python3.11}"
VENV="$INA_DIR/venv"
MODELS="$INA_DIR/models"
mkdir -p "$INA_DIR"

INA_VERSION=0.8.0
SDIST_VERSION=0.5.1
SDIST_SHA256=0fa43aff53751490e55ba944279870781299b0687239d86127bb9f94a8519fc3
MODEL_FILES=(keras_speech_music_noise_cnn.hdf5 keras_male_female_cnn.hdf5 keras_speech_music_cnn.hdf5)
declare -A MODEL_SHA256=(
  [keras_speech_music_noise_cnn.hdf5]=f04b5e3c86fa2e81666d106b0867350fe7858c7bd006c2a74c27b5b45507e7d8
  [keras_male_female_cnn.hdf5]=2ed3714bdbda7f1ed115b3077ff285ccbb23279df7a3bab6969ee98b6019736f
  [keras_speech_music_cnn.hdf5]=14379ba71352d8981bc24a15c069c84cf6f78ff2ffe7377d43b32465ebd06e01
)

say() { echo "setup.sh: $*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- 1. the venv ------------------------------------------------------------------------------------------------
if [ "${KEEP_VENV:-0}" != 1 ]; then
  pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$pyver" in 3.9|3.10|3.11) ;; *) say "$PYTHON is Python $pyver; tensorflow-cpu 2.15.1 needs 3.9-3.11 (set PYTHON=)"; exit 1;; esac
  if [ -e "$VENV" ]; then
    [ -f "$VENV/pyvenv.cfg" ] || { say "$VENV exists and is not a venv: not touching it"; exit 1; }
    say "removing the old venv"
    rm -rf "$VENV"
  fi
  say "creating venv with $PYTHON ($pyver)"
  "$PYTHON" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
  # everything pinned; inaspeechsegmenter without its declared deps (tensorflow[and-cuda], onnxruntime-gpu,
  # pyannote.core, matplotlib, Pyro4: none of them is used by Segmenter)
  "${PIP[@]}" install -r "$HERE/requirements-ina.txt"
  "${PIP[@]}" install --no-deps "inaspeechsegmenter==$INA_VERSION"
fi
PY="$VENV/bin/python"

# --- 2. the models ----------------------------------------------------------------------------------------------
models_ok() {
  for f in "${MODEL_FILES[@]}"; do
    [ -f "$MODELS/$f" ] && [ "$(sha "$MODELS/$f")" = "${MODEL_SHA256[$f]}" ] || return 1
  done
}
if models_ok; then
  say "models present and verified in $MODELS"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  say "fetching the inaSpeechSegmenter $SDIST_VERSION sdist (its models, MIT licence)"
  "$PY" -m pip --disable-pip-version-check download --no-deps --no-binary :all: \
    "inaspeechsegmenter==$SDIST_VERSION" -d "$tmp"
  tarball=("$tmp"/*.tar.gz)
  [ "$(sha "${tarball[0]}")" = "$SDIST_SHA256" ] || { say "sdist SHA-256 mismatch: ${tarball[0]}"; exit 1; }
  tar -xzf "${tarball[0]}" -C "$tmp" --wildcards '*/inaSpeechSegmenter/*.hdf5' '*/LICENSE'
  mkdir -p "$MODELS"
  for f in "${MODEL_FILES[@]}"; do
    src=("$tmp"/*/inaSpeechSegmenter/"$f")
    [ "$(sha "${src[0]}")" = "${MODEL_SHA256[$f]}" ] || { say "SHA-256 mismatch: $f"; exit 1; }
    cp "${src[0]}" "$MODELS/$f"
  done
  lic=("$tmp"/*/LICENSE)
  cp "${lic[0]}" "$MODELS/LICENSE.inaSpeechSegmenter"
  models_ok || { say "model check failed"; exit 1; }
  say "models written to $MODELS"
fi

# --- 3. smoke test ----------------------------------------------------------------------------------------------
tmpw="$(mktemp -d)"
"$PY" - "$tmpw/tone.wav" <<'EOF'
import sys, numpy as np, soundfile as sf
t = np.arange(3 * 16000) / 16000
x = 0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))
sf.write(sys.argv[1], x.astype(np.float32), 16000, subtype="PCM_16")
EOF
line="$("$PY" "$HERE/ina_segment.py" --threads 1 --models "$MODELS" --out - "$tmpw/tone.wav" 2> "$tmpw/log")" \
  || { cat "$tmpw/log" >&2; say "smoke test failed"; exit 1; }
rm -rf "$tmpw"
echo "$line" | "$PY" -c 'import json, sys; r = json.loads(sys.stdin.read()); assert r["segments"], r; print("smoke test:", r)'

# --- 4. the smn and gender networks for the numpy ports (benchmarks/peers/ina_smn.py, ina_gender.py) ------------
"$PY" "$HERE/make_ina_smn.py" --models "$MODELS" --out "$INA_DIR"
"$PY" "$HERE/make_ina_gender.py" --models "$MODELS" --out "$INA_DIR"

say "OK: python benchmarks/conversations.py --ina-python $VENV/bin/python ..."
say "    (or alone: $VENV/bin/python $HERE/ina_segment.py --models $MODELS --out results.jsonl FILE.wav ...)"
