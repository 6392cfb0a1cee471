"""Wrong labels in the training data: ``data.check_labels: drop`` against training on every row.

Each workload's training rows get a share of their labels changed to another class at random
(seeded); the test rows keep their true labels (a fixed test set: ``npz`` with ``x_test``), so
the test accuracy says how well each model learned the true task. Per workload, noise rate and
seed, two ``honing train`` runs of the same recipe: ``data.check_labels`` null (every row
trains) and ``drop`` (the suspect training rows are left out). Also: how many of the changed
labels the check found (recall) and how many of the rows it found were changed (precision),
and the check's own seconds.

  digits   sklearn's 1,797 8x8 digits, 15% of them (stratified) as the clean test set; the
           example's MLP ([128, 64], 40 epochs, early stopping), no search
  fashion  Fashion-MNIST: the first 12,000 training images, the 10,000 test images; an MLP
           [256, 128], 15 epochs

``--noise pairs`` changes each class's labels to one other class (i -> i + 1) instead of any.

usage: bench/run.sh bench/label_noise.py [--workloads digits,fashion] [--rates 0,0.1,0.2] [--seeds 3]
       [--noise uniform|pairs] [--tag NAME]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "label_noise.json"


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x, xt, y, yt = train_test_split(d.data.astype(np.float32), d.target, test_size=0.15, stratify=d.target,
                                    random_state=0)
    return x, y, xt, yt


def _fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from honing.data import read_source

    raw = read_source("fashion-mnist", image=False)
    return (raw.x[:12000].astype(np.float32) / 255, raw.y[:12000].astype(np.int64),
            raw.x_test.astype(np.float32) / 255, raw.y_test.astype(np.int64))


WORKLOADS = {
    "digits": (_digits, {"name": "mlp", "hidden": [128, 64], "dropout": 0.1},
               {"epochs": 40, "batch_size": 64, "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.01},
                "schedule": {"name": "cosine", "warmup_steps": 20},
                "early_stopping": {"monitor": "val_loss", "patience": 8}, "threads": 1}),
    "fashion": (_fashion, {"name": "mlp", "hidden": [256, 128], "dropout": 0.1},
                {"epochs": 15, "batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.01},
                 "early_stopping": {"monitor": "val_loss", "patience": 4}, "threads": 1}),
}


def _noisy(y: np.ndarray, rate: float, seed: int, classes: int, kind: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """``uniform``: a changed label becomes any other class; ``pairs``: class i always becomes i + 1
    (systematic confusion, as when one class is often mistaken for another)."""
    rng = np.random.default_rng(1000 + seed)
    flip = rng.random(len(y)) < rate
    out = y.copy()
    shift = rng.integers(1, classes, flip.sum()) if kind == "uniform" else 1
    out[flip] = (out[flip] + shift) % classes
    return out, flip


def one(workload: str, rate: float, seed: int, folder: Path, kind: str = "uniform") -> list[dict]:
    from honing.pipeline import train_once

    make, model, training = WORKLOADS[workload]
    x, y, xt, yt = make()
    classes = int(max(y.max(), yt.max())) + 1
    noisy, flip = _noisy(y, rate, seed, classes, kind)
    path = folder / f"{workload}-{rate}-{seed}.npz"
    np.savez(path, x=x, y=noisy, x_test=xt, y_test=yt)
    rows = []
    for check in (None, "drop"):
        recipe = {"name": f"{workload}-{check}", "seed": seed,
                  "data": {"source": f"npz:{path}", "val_size": 0.15, "check_labels": check,
                           "drop_duplicates": False},
                  "model": copy.deepcopy(model), "training": copy.deepcopy(training)}
        t0 = time.perf_counter()
        res = train_once(recipe, out=folder / f"{workload}-{rate}-{seed}-{check}", threads=1, progress=False).results
        row = {"workload": workload, "noise": kind, "rate": rate, "seed": seed, "check": check or "none",
               "accuracy": res["test_metrics"]["accuracy"], "seconds": round(time.perf_counter() - t0, 1),
               "train_rows": res["data"]["rows"]["train"]}
        issues = res["data"].get("label_issues")
        if issues:
            found = np.asarray(issues["row_numbers"], dtype=np.int64) - 1
            hit = flip[found]
            row.update(found=issues["found"], dropped=issues["dropped"], agreement=issues["agreement"],
                       precision=round(float(hit.mean()), 4) if len(found) else None,
                       recall=round(float(hit.sum() / max(flip.sum(), 1)), 4), flipped=int(flip.sum()))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="digits,fashion")
    ap.add_argument("--rates", default="0,0.1,0.2")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--noise", choices=("uniform", "pairs"), default="uniform")
    ap.add_argument("--tag", default="", help="a suffix of the output file")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workload in args.workloads.split(","):
            for rate in [float(r) for r in args.rates.split(",")]:
                for seed in range(args.seeds):
                    rows += one(workload, rate, seed, Path(tmp), args.noise)
    out = OUT.with_name(f"label_noise{'_' + args.tag if args.tag else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print("\n| workload | noise | check | test accuracy (median) | per seed | found | dropped | precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["workload"], r["rate"], r["check"]) for r in rows}, key=lambda k: (k[0], k[1], k[2] != "none"))
    for w, rate, check in keys:
        sel = [r for r in rows if (r["workload"], r["rate"], r["check"]) == (w, rate, check)]
        acc = [r["accuracy"] for r in sel]
        cells = [w, f"{rate:.0%}", check, f"{statistics.median(acc):.4f}", ", ".join(f"{a:.4f}" for a in acc)]
        if check == "drop":
            cells += [", ".join(str(r["found"]) for r in sel), ", ".join(str(r["dropped"]) for r in sel),
                      f"{statistics.median(r['precision'] or 0 for r in sel):.2f}",
                      f"{statistics.median(r['recall'] for r in sel):.2f}" if rate else "-"]
        else:
            cells += ["", "", "", ""]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
