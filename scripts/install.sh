#!/usr/bin/env bash
# Install everything avssl needs on a fresh Debian/Ubuntu machine: FFmpeg's shared libraries (torchcodec
# and torchaudio.load need them), a virtual environment in .venv with the pinned stack, and avssl itself.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

if ! command -v ffmpeg >/dev/null 2>&1 || ! ldconfig -p | grep -q libavcodec; then
  echo "[install] system FFmpeg (apt-get install ffmpeg)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
# PostgreSQL server binaries: Optuna studies shared by several workers, and the test that starts one.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "[install] apt-get install postgresql (shared Optuna studies and their tests)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[install] virtual environment .venv ($($PY --version))"
  "$PY" -m venv .venv
fi
echo "[install] Python packages (pinned in requirements.lock)"
.venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
.venv/bin/avssl --help >/dev/null
echo "[install] done: $(.venv/bin/python -c 'import torch, av; print("torch", torch.__version__, "| av", av.__version__)')"
