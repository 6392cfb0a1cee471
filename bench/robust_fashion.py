"""Adversarial robustness on Fashion-MNIST: standard training against PGD-AT and TRADES (issue 17).

Three ``honing train`` runs of one recipe that differ only in ``training.adversarial``: the
CNN of ``examples/fashion-mnist-cnn.yaml`` (channels [16, 32], batch norm, dropout 0.2, a 128
head), AdamW lr 0.002, ``--epochs`` epochs, batch 128, 1 torch thread, on ``--rows`` rows of
the training file (70/15/15 split, seed 0), no augmentation:

  standard  plain training
  pgd       PGD-AT at epsilon 0.1 ([0, 1] pixel units), ``--steps`` steps of 2.5 x eps / steps
  trades    TRADES, beta 6, the same attack budget

Each final model is then attacked by the run's ``robust`` stage on the first 1,000 test rows:
FGSM, PGD (20 steps, 1 restart), APGD-CE (20 steps) and Square (300 queries) at epsilon 0.05
and 0.1, plus the three corruptions. Time and energy are results.json's (``timings`` and
``energy``; the energy is the labelled CPU-time estimate where no RAPL counter is readable).

usage: bench/run.sh bench/robust_fashion.py [--rows 12000] [--epochs 6] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "robust_fashion"

METHODS = {
    "standard": None,
    "pgd": {"method": "pgd", "epsilon": 0.1},
    "trades": {"method": "trades", "epsilon": 0.1, "beta": 6.0},
}


def recipe(method: str, rows: int, epochs: int, steps: int) -> dict:
    r = {
        "name": f"robust-{method}", "seed": 0,
        "data": {"source": "fashion-mnist", "limit": rows, "val_size": 0.15, "test_size": 0.15},
        "model": {"name": "cnn", "channels": [16, 32], "batch_norm": True, "dropout": 0.2, "head_hidden": 128,
                  "global_pool": None},
        "training": {"epochs": epochs, "batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.002,
                                                                       "weight_decay": 0.0005}, "threads": 1},
        "robust": {"epsilons": [0.05, 0.1], "attacks": ["fgsm", "pgd", "apgd", "square"], "steps": 20,
                   "queries": 300, "rows": 1000},
        "evaluate": {"baselines": False},
        "output": {"report": True},
    }
    if METHODS[method] is not None:
        r["training"]["adversarial"] = {**METHODS[method], "steps": steps}
    return r


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    args = parser.parse_args()
    from honing.pipeline import train_once

    OUT.mkdir(parents=True, exist_ok=True)
    table = {}
    for method in args.methods:
        t0 = time.perf_counter()
        res = train_once(recipe(method, args.rows, args.epochs, args.steps), out=OUT / method, progress=False).results
        r = res["robustness"]
        table[method] = {
            "clean": r["clean_accuracy"], "test_accuracy": res["test_metrics"]["accuracy"],
            "accuracy": r["accuracy"], "robust": r["robust_accuracy"],
            "corruptions_mean": (r.get("corruptions") or {}).get("mean"),
            "checks_failed": [c["check"] for c in r["checks"] if not c["passed"]],
            "train_s": res["timings"]["final_training"],  # data loading included (a few seconds) "train_j": res["energy"]["final_training"]["joules"],
            "energy_method": res["energy"]["final_training"]["method"], "attack_s": r["seconds"]["total"],
            "wall_s": time.perf_counter() - t0,
        }
        print(method, json.dumps(table[method]), flush=True)
    summary = {"cpu": platform.processor() or platform.machine(), "args": vars(args), "results": table}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{'method':<10}{'clean':>8}{'pgd 0.05':>10}{'pgd 0.1':>9}{'robust 0.1':>11}{'corrupt':>9}"
          f"{'train s':>9}{'train J':>9}")
    for m, v in table.items():
        print(f"{m:<10}{v['clean']:>8.4f}{v['accuracy']['pgd']['0.05']:>10.4f}{v['accuracy']['pgd']['0.1']:>9.4f}"
              f"{v['robust']['0.1']:>11.4f}{(v['corruptions_mean'] or 0):>9.4f}{v['train_s']:>9.1f}{v['train_j']:>9.1f}")


if __name__ == "__main__":
    main()
