"""Run every benchmark of bench/ in turn (`make bench`); each writes bench/out/<name>.json.

usage: bench/run.sh bench/run_all.py [--quick] [--only NAME ...]

Benchmarks run one after another, never side by side: they time themselves, and two of them
sharing the 2 cores would slow each other. Figures are copied from bench/out/ into bench/README.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, extra arguments for --quick: a smoke run that checks the script works)
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "trainer_overhead": ("trainer_overhead.py", ["--quick"]),
    "reference_quality": ("reference_quality.py", ["--only", "mlp"]),
    "time_to_target": ("time_to_target.py", ["--quick"]),
    "lcbench_regret": ("lcbench_regret.py", ["--quick"]),
    "run_memory": ("run_memory.py", ["--quick"]),
    "transfer_images": ("transfer_images.py", ["--quick"]),
    "minilm_rotten_tomatoes": ("minilm_rotten_tomatoes.py", ["--quick"]),
    "compress_fashion": ("compress_fashion.py", ["--quick"]),
    "baselines": ("baselines.py", ["--only", "wine-cv", "--n-trials", "2"]),
    "refit_vs_retrain": ("refit_vs_retrain.py", []),
    "label_noise": ("label_noise.py", ["--workloads", "digits", "--rates", "0.1", "--seeds", "1"]),
}
# serve_throughput.py and drift_evidently.py compare with LitServe and Evidently, which live in
# their own venv: `bench/run_serve.sh bench/serve_throughput.py` (make bench runs them too)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke runs (small settings), not the published figures")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    args = ap.parse_args()
    failed = []
    for name in args.only or list(BENCHMARKS):
        script, quick_args = BENCHMARKS[name]
        path = HERE / script
        if not path.is_file():
            print(f"== {name}: {script} is missing", flush=True)
            failed.append(name)
            continue
        cmd = [sys.executable, str(path), *(quick_args if args.quick else [])]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd, cwd=HERE)
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
