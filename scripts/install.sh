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
# uv resolves nothing here (the lock is exact); it only downloads and unpacks in parallel, which takes the
# 3.5 GB stack (torch with its CUDA libraries) from about 4 min with pip to under a minute on a fresh machine.
# uv reads UV_INDEX_URL / UV_EXTRA_INDEX_URL, not pip.conf: behind a private mirror set those, or
# AVSSL_INSTALLER=pip to install with pip as before.
# --compile-bytecode: unlike pip, uv leaves the packages without .pyc files, and where Python may not write
# them (PYTHONDONTWRITEBYTECODE, a read-only venv) every process compiles what it imports, every time:
# torch 6.6 s instead of 3.2, torchcodec's decoders 15.9 instead of 6.2, great_expectations 15.9 instead
# of 5.4 (measured on 2 cores). Every stage, DataLoader worker and test subprocess paid it; compiling once
# costs about a minute here.
UV_VERSION=0.13.9
INSTALLER=${AVSSL_INSTALLER:-uv}
if [ "$INSTALLER" = uv ] && ! .venv/bin/pip install -q --disable-pip-version-check "uv==$UV_VERSION"; then
  echo "[install] uv==$UV_VERSION is not installable here; installing with pip instead (slower)"
  INSTALLER=pip
fi
echo "[install] Python packages (pinned in requirements.lock, with $INSTALLER)"
if [ "$INSTALLER" = uv ]; then
  .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python -r requirements.lock
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
else
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
fi
.venv/bin/avssl --help >/dev/null
echo "[install] done: $(.venv/bin/python -c 'import torch, av; print("torch", torch.__version__, "| av", av.__version__)')"
