#!/usr/bin/env bash
# Run one benchmark script with the allocator settings that make timings hold still.
# usage: bench/run.sh bench/trainer_overhead.py [args...]
set -euo pipefail
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=536870912
here="$(cd "$(dirname "$0")/.." && pwd)"
exec "$here/.venv/bin/python" "$@"
