#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine with Python 3.11: a venv in .venv with
# the CPU build of torch 2.13.0 (named exactly, or pip pulls a multi-GB CUDA build) and
# this package with its test and evaluation extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" - <<'PY' || { echo "setup.sh: Python >= 3.11 is required" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,eval,frontend]"
# The browser page's onnxruntime-web (`ssvoip listen --web`, docs/browser.md), pinned by web/package-lock.json.
if command -v npm >/dev/null; then npm ci --prefix web --silent --no-audit --no-fund; else echo "setup.sh: no npm: listen --web cannot serve the page (its test skips)" >&2; fi
