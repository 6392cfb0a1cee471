"""Shared set-up for benchmarks: quiet allocator, fixed threads, medians and ratios.

glibc's allocator makes epoch times vary by ~10% between identical runs; with these
variables page faults fall to ~1 per epoch and repeats agree within ~1% (see data.md).
Set them in the environment *before* Python starts: run benchmarks through
`bench/run.sh` or `make bench`, which do.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "MALLOC_TOP_PAD_": "536870912",
}
OUT = Path(__file__).resolve().parent / "out"


def check_env() -> list[str]:
    """Names of the allocator variables that are missing (a warning, not an error)."""
    missing = [k for k, v in MALLOC_ENV.items() if os.environ.get(k) != v]
    if missing:
        print(f"warning: {', '.join(missing)} not set; timings will be noisier (use bench/run.sh)", file=sys.stderr)
    return missing


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
