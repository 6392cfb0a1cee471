"""Peak memory and wall time of a whole `honing run` (search, final model, test, report).

The run is a child process; this script samples the whole process tree (the `honing` process
and its worker processes) from /proc every 0.1 s and keeps the peak of
- the sum of resident set sizes (RSS: pages shared between processes, such as torch's
  libraries, count once per process, so this over-states the true total), and
- the sum of proportional set sizes (PSS: shared pages split between the processes sharing
  them; what the tree really holds).
Goal (issue 3): peak of `examples/fashion-mnist-cnn.yaml` with `--workers 2` under 2.5 GiB.

usage: .venv/bin/python bench/run_memory.py [--recipe examples/fashion-mnist-cnn.yaml] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(c) for c in text.split()]
    except OSError:
        pass
    return found


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _kib(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def sample(pid: int) -> tuple[int, int, int]:
    """(sum of RSS KiB, sum of PSS KiB, number of processes) of the tree under pid."""
    pids = _tree(pid)
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return rss, pss, len(pids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "examples" / "fashion-mnist-cnn.yaml"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2 trials of the digits recipe (a smoke run)")
    args = ap.parse_args()
    from _common import machine, save

    recipe = ROOT / "examples" / "digits-mlp.yaml" if args.quick else Path(args.recipe)
    out = ROOT / "bench" / "out" / f"run-{recipe.stem}"
    shutil.rmtree(out, ignore_errors=True)
    honing = Path(sys.executable).parent / "honing"
    cmd = [str(honing), "run", str(recipe), "--out", str(out), "--workers", str(args.workers), "--quiet"]
    if args.quick:
        cmd += ["--n-trials", "2"]
    print(" ".join(cmd), flush=True)
    start = time.perf_counter()
    # glibc's default allocator settings, as a user has them: the timing settings of bench/run.sh
    # never give memory back to the system and inflate peaks (967 -> 1483 MiB in one check)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"})
    peak_rss = peak_pss = peak_procs = 0
    while proc.poll() is None:
        rss, pss, n = sample(proc.pid)
        peak_rss, peak_pss, peak_procs = max(peak_rss, rss), max(peak_pss, pss), max(peak_procs, n)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"honing run failed with exit code {proc.returncode}")
    results = json.loads((out / "results.json").read_text())
    row = {
        "recipe": str(recipe.relative_to(ROOT)),
        "workers": args.workers,
        "wall_s": round(wall, 1),
        "peak_rss_sum_mib": round(peak_rss / 1024, 1),
        "peak_pss_sum_mib": round(peak_pss / 1024, 1),
        "processes": peak_procs,
        "trials": results["trials"],
        "test_accuracy": results["test_metrics"].get("accuracy"),
        "timings": results["timings"],
    }
    print(f"{row['recipe']} --workers {args.workers}: {wall:.0f} s wall, peak memory of the process tree: "
          f"RSS sum {row['peak_rss_sum_mib']:.0f} MiB, PSS sum {row['peak_pss_sum_mib']:.0f} MiB "
          f"({peak_procs} processes); test accuracy {row['test_accuracy']}; trials {results['trials']}")
    path = save("run_memory" + ("_quick" if args.quick else ""), {"machine": machine(), "result": row})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
