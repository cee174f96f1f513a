#!/usr/bin/env bash
# Start the whole system on this machine with a small simulated fleet:
# broker, bridge, API, scheduler and the demo fleet. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/ansim up --demo "$@"
