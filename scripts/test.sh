#!/usr/bin/env bash
# Set up, then lint, type-check and run every test against a real mosquitto,
# real SQLite files and the API under a real server.
set -euo pipefail
cd "$(dirname "$0")/.."
ANSIM_SETUP_BROWSER=1 ./scripts/setup.sh
echo "[test] ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy" >&2
.venv/bin/mypy core broker_bridge api scheduler simulator notifier ansim
echo "[test] pytest" >&2
.venv/bin/pytest "$@"
