"""Spiking networks against the same-size plain networks on Fashion-MNIST (issue 17).

``honing train`` runs of one recipe (``--rows`` rows of the training file, 70/15/15 split,
seed 0, Adam lr 0.002, batch 128, ``--epochs`` epochs, 1 torch thread, no augmentation) that
differ only in the model:

  mlp        MLP [128]
  snn-t4     SNN hidden [128], 4 time steps, direct input (the same weights as the MLP)
  snn-t8     the same, 8 time steps
  snn-rate8  the same, 8 steps of rate-coded (Bernoulli) input spikes
  cnn        CNN channels [16, 32] (3x3, 2x2 max pooling), flatten, head 128
  snn-cnn-t4 SNN channels [16, 32] (3x3 + 2x2 max pooling), hidden [128], 4 time steps

Each reports test accuracy, the fit stage's seconds (training only; data loading apart) and, for
the spiking ones, the spike rate per
layer and synaptic operations per sample against the multiply-accumulates of the same network
run once (the run's ``spikes`` stage).

usage: bench/run.sh bench/snn_fashion.py [--rows 12000] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "snn_fashion"

MODELS = {
    "mlp": {"name": "mlp", "hidden": [128]},
    "snn-t4": {"name": "snn", "hidden": [128], "steps": 4},
    "snn-t8": {"name": "snn", "hidden": [128], "steps": 8},
    "snn-rate8": {"name": "snn", "hidden": [128], "steps": 8, "encoding": "rate"},
    "cnn": {"name": "cnn", "channels": [16, 32], "head_hidden": 128, "global_pool": None},
    "snn-cnn-t4": {"name": "snn", "channels": [16, 32], "hidden": [128], "steps": 4},
}


def recipe(kind: str, rows: int, epochs: int) -> dict:
    return {
        "name": f"snn-{kind}", "seed": 0,
        "data": {"source": "fashion-mnist", "limit": rows, "val_size": 0.15, "test_size": 0.15},
        "model": MODELS[kind],
        "training": {"epochs": epochs, "batch_size": 128, "optimizer": {"name": "adam", "lr": 0.002}, "threads": 1},
        "evaluate": {"baselines": False}, "output": {"report": False},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    from honing.models import count_parameters  # noqa: F401  (honing imported before the runs)
    from honing.pipeline import train_once

    OUT.mkdir(parents=True, exist_ok=True)
    table = {}
    for kind in args.models:
        t0 = time.perf_counter()
        res = train_once(recipe(kind, args.rows, args.epochs), out=OUT / kind, progress=False).results
        s = res.get("spikes") or {}
        table[kind] = {"accuracy": res["test_metrics"]["accuracy"], "parameters": res["parameters"],
                       "fit_s": next(r["seconds"] for r in res["stages"] if r["stage"] == "fit"),
                       "steps": s.get("time_steps"),
                       "spike_rate": s.get("spike_rate"), "synaptic_ops": s.get("synaptic_ops"),
                       "ann_macs": s.get("ann_macs"), "wall_s": time.perf_counter() - t0}
        print(kind, json.dumps(table[kind]), flush=True)
    (OUT / "summary.json").write_text(json.dumps({"args": vars(args), "results": table}, indent=1))


if __name__ == "__main__":
    main()
