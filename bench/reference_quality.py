"""(b) Reference quality on Fashion-MNIST, and (c) peak resident memory of the training process.

Each model trains in its own process (so its peak RSS is its own), on the official
60,000/10,000 split with 9,000 training rows held out for validation (early stopping and
best-epoch weights use them; the test set is scored once at the end).
Goals: MLP with Adam >= 0.88 test accuracy; small CNN >= 0.91; CNN process peak RSS < 1 GiB.

usage: bench/run.sh bench/reference_quality.py [--threads 2] [--only mlp|cnn]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RECIPES = {
    # an MLP trained with Adam, as the issue asks
    "mlp": {
        "model": {"name": "mlp", "hidden": [512, 256], "dropout": 0.2, "batch_norm": True},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "schedule": {"name": "cosine", "warmup_steps": 200},
        "epochs": 30, "batch_size": 128, "augment": None, "flat": True,
    },
    # a small CNN: two conv blocks (32, 64 channels) and a 128-unit head
    "cnn": {
        "model": {"name": "cnn", "channels": [32, 64], "batch_norm": True, "dropout": 0.25, "head_hidden": 128,
                  "global_pool": None},
        "optimizer": {"name": "adamw", "lr": 2e-3, "weight_decay": 5e-4},
        "schedule": {"name": "onecycle", "max_lr": 4e-3},
        "epochs": 15, "batch_size": 128, "augment": {"translate": [0.08, 0.08], "flip": 0.5}, "flat": False,
    },
}


def train_one(name: str, threads: int) -> dict:
    import torch

    import honing
    from _common import peak_rss_mib
    from honing.data import create_augment, load
    from honing.models import count_parameters, create_model
    from honing.optim import create_optimizer, create_schedule
    from honing.train import EarlyStopping, TrainConfig, Trainer

    r = RECIPES[name]
    start = time.perf_counter()
    honing.seed_everything(0)
    data = load("fashion-mnist", image=not r["flat"], seed=0)
    t_data = time.perf_counter() - start
    model_kw = dict(r["model"])
    model = create_model(model_kw.pop("name"), data=data, seed=0, **model_kw)
    config = TrainConfig(epochs=r["epochs"], batch_size=r["batch_size"], seed=0, threads=threads,
                         monitor="val_accuracy", keep_best=True, progress=False)
    opt_kw = dict(r["optimizer"])
    opt = create_optimizer(model, opt_kw.pop("name"), **opt_kw)
    sched_kw = dict(r["schedule"])
    sched = create_schedule(opt, sched_kw.pop("name"), epochs=config.epochs,
                            steps_per_epoch=config.steps_per_epoch(len(data.train)), **sched_kw)
    augment = None if r["augment"] is None else create_augment(r["augment"], num_classes=data.num_outputs, seed=0)
    trainer = Trainer(model, opt, schedule=sched, config=config, augment=augment,
                      callbacks=[EarlyStopping(monitor="val_accuracy", patience=6)])
    result = trainer.fit(data.train, data.val)
    test = trainer.evaluate(data.test)
    return {
        "model": name,
        "recipe": r,
        "parameters": count_parameters(model),
        "threads": torch.get_num_threads(),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "best_val_accuracy": result.best_value,
        "test_accuracy": test["accuracy"],
        "test_f1_macro": test["f1_macro"],
        "seconds_data": t_data,
        "seconds_total": time.perf_counter() - start,
        "seconds_per_epoch": sum(h["time"] for h in result.history) / len(result.history),
        "peak_rss_mib": peak_rss_mib(),
        "train_rows": len(data.train),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=sorted(RECIPES))
    ap.add_argument("--child", choices=sorted(RECIPES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(train_one(args.child, args.threads)))
        return
    from _common import machine, save

    rows = []
    for name in [args.only] if args.only else list(RECIPES):
        # the child runs with glibc's default allocator settings: the timing settings of bench/run.sh
        # never give memory back to the system and raised this peak RSS from 967 to 1483 MiB in a check
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run([sys.executable, __file__, "--child", name, "--threads", str(args.threads)],
                             check=True, capture_output=True, text=True, cwd=Path(__file__).parent, env=env)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name}: test accuracy {row['test_accuracy']:.4f} (best val {row['best_val_accuracy']:.4f} at epoch "
              f"{row['best_epoch']}/{row['epochs_run']}), {row['parameters']:,} params, {row['seconds_total']:.0f} s "
              f"wall ({row['seconds_per_epoch']:.1f} s/epoch, {row['threads']} threads), peak RSS "
              f"{row['peak_rss_mib']:.0f} MiB", flush=True)
    path = save("reference_quality" + (f"_{args.only}" if args.only else ""), {"machine": machine(), "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
