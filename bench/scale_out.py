"""(issue 16) Throughput of the ways out of one process, on this machine.

1. Trials per hour: ``examples/digits-mlp.yaml`` with ``--trials`` trials (default 16), run by
   ``honing.pipeline.run`` with 1 local worker, 2 local worker processes, and 2 Ray tasks on a
   local Ray head started beforehand (its start-up is not counted). Figures from results.json:
   the search stage's seconds. Per-trial overhead: the time the workers were busy
   (workers x search seconds) minus the trials' own durations (claim to result, as the study
   stored them), per trial: process start, imports, data loading, claiming.
2. Data-parallel training: a Fashion-MNIST CNN (the example's [16, 32] CNN, 12,000 training
   rows, batch 128, ``--epochs`` epochs) with ``fit_distributed`` on 1 and 2 processes of 1
   thread each, against one process with 1 and 2 threads. Figures: training rows per second
   (wall time of the whole call, start-up included, and of the epochs alone, from the history).

    bench/run.sh bench/scale_out.py [--trials 16] [--epochs 3] [--parts trials,ddp]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "scale_out"


def _trials_part(n_trials: int) -> list[dict]:
    from honing.pipeline import run
    from honing.tune import load_study_result

    recipe = yaml.safe_load((HERE.parent / "examples" / "digits-mlp.yaml").read_text())
    recipe["tune"].update(n_trials=n_trials, warm_start=False)
    recipe.setdefault("output", {})["report"] = False
    rows = []
    address = _ray_head()
    try:
        for label, kw in (("1 local worker", {"workers": 1}), ("2 local workers", {"workers": 2}),
                          ("2 Ray tasks", {"workers": 2, "executor": "ray", "address": address})):
            out = OUT / re.sub(r"\W+", "-", label)
            shutil.rmtree(out, ignore_errors=True)
            res = run(recipe, out=out, progress=False, threads=1, **kw).results
            search = res["timings"]["search"]
            study = load_study_result(str(out / "study.journal"), recipe["name"])
            busy = sum(t["duration_s"] or 0.0 for t in study.trials)
            row = {"part": "trials", "how": label, "trials": len(study.trials), "search_s": round(search, 2),
                   "trials_per_hour": round(3600 * len(study.trials) / search),
                   "overhead_per_trial_s": round((kw["workers"] * search - busy) / len(study.trials), 3),
                   "mean_trial_s": round(busy / len(study.trials), 3)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True)
    return rows


def _ray_head() -> str:
    temp = tempfile.mkdtemp(prefix="honing-ray-")
    out = subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port=0", "--num-cpus=2",
                          "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=100000000",
                          f"--temp-dir={temp}"], capture_output=True, text=True, timeout=120)
    found = re.search(r"ray start --address='([^']+)'", out.stdout + out.stderr)
    if not found:
        raise SystemExit(f"ray start failed:\n{out.stdout}\n{out.stderr}")
    return found.group(1)


class CnnTrainer:
    """The Fashion-MNIST CNN's Trainer on every rank (picklable)."""

    def __init__(self, epochs: int, threads: int = 1) -> None:
        self.epochs, self.threads = epochs, threads

    def __call__(self, rank: int = 0):
        import torch

        from honing.models import create_model
        from honing.train import TrainConfig, Trainer

        model = create_model("cnn", input_shape=(1, 28, 28), num_outputs=10, channels=[16, 32], batch_norm=False,
                             global_pool=None, head_hidden=128, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        config = TrainConfig(epochs=self.epochs, batch_size=128, seed=0, keep_best=False, monitor="loss",
                             threads=self.threads)
        return Trainer(model, opt, loss="cross_entropy", task="classification", config=config)


def _ddp_part(epochs: int) -> list[dict]:
    import torch

    from honing.data import load
    from honing.train import fit_distributed

    data = load("fashion-mnist", limit=12000, val_size=0.0, test_size=0.0, seed=0)
    train = (data.train.x, data.train.y)
    rows = []
    for label, procs, threads in (("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2),
                                  ("2 processes x 1 thread (DDP)", 2, 1)):
        t0 = time.perf_counter()
        if procs == 1:
            torch.set_num_threads(threads)
            trainer = CnnTrainer(epochs, threads)()
            result = trainer.fit(train)
        else:
            result = fit_distributed(CnnTrainer(epochs, threads), train, processes=procs, threads=threads).result
        wall = time.perf_counter() - t0
        epoch_s = sum(h["time"] for h in result.history)
        rows.append({"part": "ddp", "how": label, "rows": len(train[0]), "epochs": epochs,
                     "rows_per_s_wall": round(epochs * len(train[0]) / wall),
                     "rows_per_s_epochs": round(epochs * len(train[0]) / epoch_s),
                     "final_loss": round(result.history[-1]["loss"], 4), "wall_s": round(wall, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--parts", default="trials,ddp")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    if "trials" in args.parts:
        rows += _trials_part(args.trials)
    if "ddp" in args.parts:
        rows += _ddp_part(args.epochs)
    with (OUT / "results.jsonl").open("a") as f:
        for row in rows:
            f.write(json.dumps({**row, "cpu": _cpu()}) + "\n")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return os.uname().machine


if __name__ == "__main__":
    main()
