#!/usr/bin/env bash
# Installs the project with its test tools (scripts/setup.sh dev) and runs the whole suite.
# The README's test command and .ci/run both call this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m ruff check memory inference tools server scripts tests
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
