#!/usr/bin/env bash
# Installs everything the tests and the demo need, into the active virtual environment:
#   torch, the ComfyUI hosts (see fetch_comfyui.py: 0.3.75 by default, COMFYUI_PATH wins; further hosts from
#   ../shared/hosts/*.tar.gz), every host's requirements.txt, tests/requirements.txt, and Chromium for the
#   browser test. Each host is then started once (main.py --quick-test-for-ci), so a missing install step
#   fails here. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
START=$(date +%s)
say() { echo "[setup $(( $(date +%s) - START ))s] $*"; }
pip_install() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }

if [ "$("$PY" -c 'import sys; print(sys.prefix != sys.base_prefix)')" != "True" ] && [ "${STYLEALIGN_ANY_PYTHON:-0}" != "1" ]; then
  echo "[setup] $("$PY" -c 'import sys; print(sys.executable)') is not a virtual environment; make one first:" >&2
  echo "          python3 -m venv .venv && . .venv/bin/activate && bash tests/host/setup.sh" >&2
  echo "        (or set STYLEALIGN_ANY_PYTHON=1 to install into this Python anyway)" >&2
  exit 1
fi

# torch 2.14.1 / torchvision 0.29.1 lie on this machine's disk (a CUDA build that runs on the CPU); torchaudio
# 2.11.1 (torch>=2.11, stable ABI) is the newest on the registries and imports with it, so ComfyUI's audio
# nodes load too.
if ! "$PY" -c "import torch, torchvision, torchaudio" 2>/dev/null; then
  say "installing torch"
  pip_install torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.1
fi

HOST=$("$PY" tests/host/fetch_comfyui.py)
say "ComfyUI host: $HOST"
EXTRA_HOSTS=$("$PY" tests/host/fetch_comfyui.py --extra-hosts)
for EXTRA in $EXTRA_HOSTS; do say "further ComfyUI host: $EXTRA"; done

# Every host's requirements.txt (torch family excepted: installed above). One venv for all hosts; a further
# host's pins that differ from the default host's (front end, templates, docs) go into its own folder.
mkdir -p .cache/host-packages
"$PY" tests/host/fetch_comfyui.py --requirements .cache/host-requirements.txt .cache/host-packages/
say "installing the hosts' requirements and tests/requirements.txt"
pip_install -r .cache/host-requirements.txt -r tests/requirements.txt
for EXTRA in $EXTRA_HOSTS; do
  NAME=$(basename "$EXTRA")
  OWN=.cache/host-packages/$NAME
  if [ -s "$OWN.txt" ] && ! cmp -s "$OWN.txt" "$OWN/requirements.txt" 2>/dev/null; then
    say "installing $NAME's own package versions into $OWN"
    rm -rf "$OWN.partial"
    pip_install --target "$OWN.partial" -r "$OWN.txt"
    cp "$OWN.txt" "$OWN.partial/requirements.txt"
    rm -rf "$OWN" && mv "$OWN.partial" "$OWN"
  fi
done

if [ "${STYLEALIGN_SKIP_BROWSER:-0}" != "1" ] && ! command -v chromedriver >/dev/null 2>&1; then
  say "installing chromium and chromedriver (browser test)"
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "[setup] chromium could not be installed: the browser test will be skipped"
  fi
fi

# Start each host once, as the tests will: a module its requirements.txt forgot fails here, not in a test.
for ROOT in $HOST $EXTRA_HOSTS; do
  say "start-up check: $ROOT"
  "$PY" tests/host/server.py --check "$ROOT"
done
say "done"
