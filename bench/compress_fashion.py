"""Compression on Fashion-MNIST, an MLP and a CNN, through the recipe path (honing.pipeline).

For each architecture:
1. train the teacher once (``train_once``), tested on the 10,000 test images;
2. ``compress_folder`` with the deployment variants of the teacher: PyTorch dynamic int8, bf16,
   fp16, ONNX Runtime static int8, float ONNX, ONNX Runtime dynamic int8;
3. ``compress_folder`` with structured pruning of half the neurons/channels, fine-tuning, and
   the float ONNX export of the pruned model;
4. ``compress_folder`` with distillation into a student of at most a fifth of the parameters,
   against the same student trained alone (same recipe, epochs and seeds);
5. latency of every saved stage side by side: the folders are read back and timed in
   interleaved rounds (1 thread; median over rounds of the median of ``--repeats`` runs), so
   drift of the machine hits every stage alike; ratios are against the teacher in PyTorch.

usage: bench/run.sh bench/compress_fashion.py [--quick] [--only mlp cnn] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _common import OUT, check_env, machine, save

from honing.pipeline import compress_folder, load_model, median_forward_ms, train_once

TRAINING = {"batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.0001},
            "schedule": {"name": "cosine"}, "threads": 2}
ARCH = {
    "mlp": {"teacher": {"name": "mlp", "hidden": [512, 256], "dropout": 0.1}, "epochs": 12,
            "student": {"name": "mlp", "hidden": [32]}, "student_epochs": 40, "finetune": 3},
    "cnn": {"teacher": {"name": "cnn", "channels": [32, 64], "batch_norm": True, "head_hidden": 128,
                        "global_pool": None}, "epochs": 5,
            "student": {"name": "cnn", "channels": [8, 16], "batch_norm": True, "head_hidden": 32,
                        "global_pool": None}, "student_epochs": 12, "finetune": 2},
}
VARIANTS = [{"quantize": {"mode": "dynamic"}}, {"quantize": {"mode": "bf16"}}, {"quantize": {"mode": "fp16"}},
            {"quantize": {"mode": "static"}}, {"export": {"format": "onnx"}},
            {"export": {"format": "onnx-int8", "quantization": "dynamic"}}]


def recipe(name: str, model: dict[str, Any], epochs: int, *, seed: int = 0, steps: list | None = None,
           quick: bool = False) -> dict[str, Any]:
    r: dict[str, Any] = {"name": name, "seed": seed, "data": {"source": "fashion-mnist", "val_size": 0.1},
                         "model": model, "training": {**copy.deepcopy(TRAINING), "epochs": 1 if quick else epochs}}
    if quick:
        r["data"]["limit"] = 3000
    if steps:
        r["compress"] = {"steps": steps, "latency": {"batch_sizes": [1, 256], "repeats": 5, "threads": 1}}
    return r


def side_by_side(folders: dict[str, Path], x: torch.Tensor, *, rounds: int, repeats: int) -> dict[str, dict[str, float]]:
    """{stage: {"1": ms, "256": ms}}, every stage timed once per round, in turn."""
    torch.set_num_threads(1)
    models = {k: load_model(f).model for k, f in folders.items()}
    for m in models.values():
        m.eval()
    samples: dict[str, dict[str, list[float]]] = {k: {"1": [], "256": []} for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            for b in ("1", "256"):
                samples[k][b].append(median_forward_ms(m, x[: int(b)], repeats=repeats, warmup=3))
    return {k: {b: round(statistics.median(v), 4) for b, v in s.items()} for k, s in samples.items()}


def run_arch(arch: str, args: argparse.Namespace) -> dict[str, Any]:
    spec, root = ARCH[arch], OUT / ("compress_quick" if args.quick else "compress") / arch
    out: dict[str, Any] = {"teacher": spec["teacher"], "student": spec["student"]}
    t0 = time.perf_counter()
    teacher = train_once(recipe(f"{arch}-teacher", spec["teacher"], spec["epochs"], quick=args.quick),
                         out=root / "teacher", progress=False)
    out["teacher_seconds"] = round(time.perf_counter() - t0, 1)
    out["teacher_test"] = teacher.results["test_metrics"]
    model_dir = root / "teacher" / "model"
    groups = {
        "variants": VARIANTS,
        "pruned": [{"prune": {"method": "structured", "amount": 0.5}},
                   {"finetune": {"epochs": 1 if args.quick else spec["finetune"], "lr": 0.001}},
                   {"export": {"format": "onnx"}}],
    }
    tables: dict[str, Any] = {}
    for group, steps in groups.items():
        t0 = time.perf_counter()
        tables[group] = compress_folder(model_dir, recipe(arch, spec["teacher"], spec["epochs"], steps=steps,
                                                          quick=args.quick), out=root / group, progress=True)
        tables[group]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{arch} {group}: {tables[group]['seconds']} s", flush=True)
    # distillation against the same student alone, per seed
    students: list[dict[str, Any]] = []
    epochs = spec["student_epochs"]
    for seed in args.seeds:
        steps = [{"distill": {"model": spec["student"], "temperature": args.temperature, "alpha": args.alpha,
                              "epochs": 1 if args.quick else epochs}}]
        t0 = time.perf_counter()
        kd = compress_folder(model_dir, recipe(arch, spec["teacher"], epochs, seed=seed, steps=steps, quick=args.quick),
                             out=root / f"distill-{seed}", progress=True)
        kd_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        alone = train_once(recipe(f"{arch}-student", spec["student"], epochs, seed=seed, quick=args.quick),
                           out=root / f"student-alone-{seed}", progress=False)
        row = {"seed": seed, "distilled": kd["stages"][1]["metrics"]["accuracy"],
               "alone": alone.results["test_metrics"]["accuracy"],
               "student_parameters": kd["stages"][1]["parameters"], "teacher_parameters": kd["stages"][0]["parameters"],
               "distill_seconds": round(kd_seconds, 1), "alone_seconds": round(time.perf_counter() - t0, 1)}
        students.append(row)
        print(f"{arch} seed {seed}: distilled {row['distilled']:.4f} alone {row['alone']:.4f}", flush=True)
    tables["distillation"] = students
    # latency side by side
    folders = {"teacher (pytorch)": model_dir}
    for group in groups:
        for row in tables[group]["stages"][1:]:
            folders[f"{group}: {row['stage']}"] = Path(row["folder"])
    folders["distilled student"] = root / f"distill-{args.seeds[0]}" / "compress" / "01-distill"
    data_x = load_model(model_dir)
    from honing.data import load

    test_x = load("fashion-mnist", val_size=0.1, preprocessor=data_x.preprocessor).test.x[:256]
    lat = side_by_side(folders, test_x, rounds=2 if args.quick else args.rounds, repeats=args.repeats)
    base = lat["teacher (pytorch)"]
    out["latency"] = {k: {**v, "ratio_1": round(v["1"] / base["1"], 3), "ratio_256": round(v["256"] / base["256"], 3)}
                      for k, v in lat.items()}
    out["tables"] = tables
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 epoch on 3,000 rows: a smoke run, not the figures")
    ap.add_argument("--only", nargs="+", choices=sorted(ARCH), default=sorted(ARCH, reverse=True))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    # a small student learns best from soft targets at a low temperature (sweep in bench/README.md)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    check_env()
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    for arch in args.only:
        results[arch] = run_arch(arch, args)
        save("compress_fashion" + ("_quick" if args.quick else ""), results)
    for arch in args.only:
        r = results[arch]
        print(f"\n{arch}: teacher test accuracy {r['teacher_test']['accuracy']:.4f} ({r['teacher_seconds']} s)")
        for group in ("variants", "pruned"):
            for row in r["tables"][group]["stages"][1:]:
                key = f"{group}: {row['stage']}"
                lat = r["latency"][key]
                print(f"  {key:<36} size {row['vs_uncompressed']['size']:.3f}x  params {row['parameters']:>8,}  "
                      f"b1 {lat['ratio_1']:.2f}x  b256 {lat['ratio_256']:.2f}x  "
                      f"acc {row['metrics']['accuracy']:.4f} ({100 * row['vs_uncompressed']['accuracy']:+.2f} pt)")
        for row in r["tables"]["distillation"]:
            print(f"  distill seed {row['seed']}: {row['distilled']:.4f} vs alone {row['alone']:.4f} "
                  f"({row['student_parameters']:,} / {row['teacher_parameters']:,} parameters)")
        lat = r["latency"]["distilled student"]
        print(f"  distilled student latency b1 {lat['ratio_1']:.2f}x b256 {lat['ratio_256']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
