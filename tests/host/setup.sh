#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh machine: torch, the ComfyUI host (see
# fetch_comfyui.py) and its Python requirements, and the test tools. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}

pip_install() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }

if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  echo "[setup] installing torch"
  pip_install torch==2.14.1 torchvision==0.29.1
fi

HOST=$("$PY" tests/host/fetch_comfyui.py)
echo "[setup] ComfyUI host: $HOST"

# ComfyUI's own requirements, without the torch family (installed above; torchaudio is not available here).
grep -vE '^\s*(#|$)|^(torch|torchvision|torchaudio)\s*$' "$HOST/requirements.txt" > .cache/host-requirements.txt
pip_install -r .cache/host-requirements.txt
pip_install pytest selenium

if [ "${STYLEALIGN_SKIP_BROWSER:-0}" != "1" ] && ! command -v chromedriver >/dev/null 2>&1; then
  echo "[setup] installing chromium and chromedriver (browser test)"
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "[setup] chromium could not be installed: the browser test will be skipped"
  fi
fi
echo "[setup] done"
