#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine with Python 3.11:
# mosquitto and PostgreSQL 15 from Debian's packages (if missing), a virtual env, the
# pinned packages.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  step "installing mosquitto from Debian packages"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
  # We only want the binaries: Ansim starts its own broker from ./mosquitto.conf.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
fi
# PostgreSQL 15 binaries (initdb, pg_ctl, postgres, psql): Ansim runs its own cluster in
# DATA_DIR/postgres (core/pgserver.py), never the packaged system service.
PG_BIN_DIR="${ANSIM_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$PG_BIN_DIR/initdb" ] || [ ! -x "$PG_BIN_DIR/pg_ctl" ]; then
  step "installing PostgreSQL 15 from Debian packages"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null
  # We only want the binaries: stop and disable the cluster the package may have started.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
  elif command -v pg_ctlcluster >/dev/null 2>&1; then
    $SUDO pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
  fi
fi
# The browser tests drive Debian's chromium (never a browser downloaded by a test tool).
# A Korean font too: the console is Korean by default and screenshots must be legible.
if [ "${ANSIM_SETUP_BROWSER:-0}" = "1" ] && { ! command -v chromium >/dev/null 2>&1 \
     || ! dpkg -s fonts-nanum >/dev/null 2>&1; }; then
  step "installing chromium and a Korean font from Debian packages (browser tests)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-nanum >/dev/null
fi
for tool in mosquitto_ctrl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "setup: $tool missing after install" >&2; exit 1; }
done
for tool in initdb pg_ctl postgres pg_isready psql; do
  [ -x "$PG_BIN_DIR/$tool" ] || { echo "setup: $PG_BIN_DIR/$tool missing after install" >&2; exit 1; }
done

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.ansim-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  step "installing Python packages (pinned in pyproject.toml)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
step "ready"
