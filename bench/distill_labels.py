"""Distillation against the same student trained alone, with all the training labels and with a
fraction of them, on Fashion-MNIST (through the recipe path, as compress_fashion.py does).

The teachers are the ones `bench/compress_fashion.py` trained (run it first): an MLP [512, 256]
and a CNN [32, 64], both on all 54,000 training images. The student sees only the rows that
``data.train_fraction`` keeps (seeded, stratified): distilled, it learns from the teacher's soft
outputs on those rows and their labels; alone, from the labels. Same recipe, epochs and seeds.

usage: bench/run.sh bench/distill_labels.py [--fractions 1.0 0.1] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from _common import OUT, check_env, machine, save
from compress_fashion import ARCH, recipe

from honing.pipeline import compress_folder, train_once


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=sorted(ARCH), default=["mlp", "cnn"])
    ap.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.02])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    args = ap.parse_args()
    check_env()
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    for arch in args.only:
        spec = ARCH[arch]
        teacher = OUT / "compress" / arch / "teacher" / "model"
        if not teacher.is_dir():
            print(f"{teacher} is missing: run bench/compress_fashion.py first", file=sys.stderr)
            return 2
        rows = []
        for fraction in args.fractions:
            for seed in args.seeds:
                root = OUT / "distill_labels" / arch / f"{fraction:g}-{seed}"
                steps = [{"distill": {"model": spec["student"], "temperature": args.temperature,
                                      "alpha": args.alpha, "epochs": spec["student_epochs"]}}]
                r = recipe(arch, spec["teacher"], spec["student_epochs"], seed=seed, steps=steps)
                r["data"]["train_fraction"] = fraction
                t0 = time.perf_counter()
                kd = compress_folder(teacher, r, out=root / "distilled", progress=False)
                kd_s = time.perf_counter() - t0
                alone_recipe = recipe(f"{arch}-student", spec["student"], spec["student_epochs"], seed=seed)
                alone_recipe["data"]["train_fraction"] = fraction
                t0 = time.perf_counter()
                alone = train_once(alone_recipe, out=root / "alone", progress=False)
                row = {"fraction": fraction, "seed": seed, "train_rows": alone.results["data"]["rows"]["train"],
                       "distilled": kd["stages"][1]["metrics"]["accuracy"],
                       "alone": alone.results["test_metrics"]["accuracy"],
                       "teacher": kd["stages"][0]["metrics"]["accuracy"],
                       "student_parameters": kd["stages"][1]["parameters"],
                       "teacher_parameters": kd["stages"][0]["parameters"],
                       "distill_seconds": round(kd_s, 1), "alone_seconds": round(time.perf_counter() - t0, 1)}
                rows.append(row)
                print(f"{arch} fraction {fraction:g} seed {seed} ({row['train_rows']} rows): distilled "
                      f"{row['distilled']:.4f} alone {row['alone']:.4f}", flush=True)
                results[arch] = rows
                save("distill_labels", results)
        for fraction in args.fractions:
            sel = [r for r in rows if r["fraction"] == fraction]
            gain = [100 * (r["distilled"] - r["alone"]) for r in sel]
            print(f"{arch} fraction {fraction:g}: distilled {statistics.median(r['distilled'] for r in sel):.4f} "
                  f"alone {statistics.median(r['alone'] for r in sel):.4f} gain median {statistics.median(gain):+.2f} pt "
                  f"(min {min(gain):+.2f}, max {max(gain):+.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
