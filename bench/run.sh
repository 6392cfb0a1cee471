#!/usr/bin/env bash
# Run one benchmark script with the allocator settings that make timings hold still.
# usage: bench/run.sh bench/trainer_overhead.py [args...]
set -euo pipefail
source "$(dirname "$0")/_env.sh"
exec "$here/.venv/bin/python" "$@"
