"""(refit) ``honing refit`` against a full retrain from scratch, on shifted data.

Two cases (``--case``):

* ``digits``: the served model is the digits MLP trained by ``honing train`` on
  ``sklearn:digits``; the new data is 900 digits rows with every pixel brightened by N(2, 1)
  (clipped to 0..16), written as a CSV;
* ``fashion``: the served model is a Fashion-MNIST CNN (the example's architecture) trained on
  20,000 of the 60,000 training images for 5 epochs; the new data is 4,000 other training
  images at lower contrast plus noise (``0.5 x + 40 + N(0, 20)``, clipped), written as an npz:
  a case where a retrain costs far more than a refit.

Compared, each scored on the new data's held-out test rows and on the old model's own test rows
(the same rows for every model):

* the old model as it is;
* refit with replay of 500 old rows (the default; and at the recipe's full learning rate),
  with learning without forgetting (``lwf`` 0.5) and no replay, with EWC, and with
  ``--search`` (6 trials over the default space, scored on validation rows);
* a full retrain: a fresh model of the same recipe trained from scratch on the old training
  rows plus the new ones, for the recipe's epochs.

    bench/run.sh bench/refit_vs_retrain.py [--case digits|fashion]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import check_env, machine, save

RECIPE = {"name": "refit-digits", "seed": 0, "data": {"source": "sklearn:digits"},
          "model": {"name": "mlp", "hidden": [128, 64]},
          "training": {"epochs": 20, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.003}},
          "output": {"report": False}}


FASHION = {"name": "refit-fashion", "seed": 0, "data": {"source": "fashion-mnist", "val_size": 0.15, "limit": 20000},
           "model": {"name": "cnn", "channels": [16, 32], "batch_norm": True, "dropout": 0.2, "head_hidden": 128,
                     "global_pool": None},
           "training": {"epochs": 5, "batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.002,
                                                                       "weight_decay": 0.0005}, "threads": 1},
           "output": {"report": False}}


def shifted_fashion(path: Path) -> str:
    from honing.data import read_source

    raw = read_source("fashion-mnist")
    rng = np.random.default_rng(1)
    idx = rng.choice(len(raw.x), 4000, replace=False)  # mostly images the old model never saw
    x = np.asarray(raw.x[idx], dtype=np.float32).reshape(-1, 28, 28)
    x = np.clip(0.5 * x + 40 + rng.normal(0, 20, x.shape), 0, 255).astype(np.float32)
    np.savez(path, x=x, y=np.asarray(raw.y[idx]))
    return f"npz:{path}"


def shifted_digits(path: Path) -> str:
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame.sample(900, random_state=1)
    pixels = [c for c in frame.columns if c.startswith("pixel")]
    rng = np.random.default_rng(0)
    frame[pixels] = np.clip(frame[pixels].values + rng.normal(2.0, 1.0, size=frame[pixels].shape), 0, 16).round()
    frame.to_csv(path, index=False)
    return f"csv:{path}"


@torch.no_grad()
def accuracy(model: torch.nn.Module, split) -> float:
    model.eval()
    return float((model(split.x).argmax(1) == split.y).float().mean())


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=["digits", "fashion"], default="digits")
    case = parser.parse_args().case
    check_env()
    torch.set_num_threads(1)
    from honing.artifacts import load_model
    from honing.data import Split, load
    from honing.pipeline import build_model, build_trainer, train_once
    from honing.recipe import parse_recipe
    from honing.serve import RefitConfig, refit

    work = Path(tempfile.mkdtemp(prefix="honing-refit-bench-"))
    t0 = time.perf_counter()
    train_once(RECIPE if case == "digits" else FASHION, out=work / "run", progress=False)
    first_fit = time.perf_counter() - t0
    source = shifted_digits(work / "new.csv") if case == "digits" else shifted_fashion(work / "new.npz")
    old = load_model(work / "run" / "model")
    recipe = parse_recipe(old.recipe)
    old_data = load(recipe.data.source, **{**recipe.load_args(), "preprocessor": old.preprocessor})
    new_recipe = recipe.with_params({"data.source": source})
    new_data = load(source, **{**new_recipe.load_args(), "preprocessor": old.preprocessor})
    rows: list[dict] = [{"model": "old model (no update)", "new_data": accuracy(old.model, new_data.test),
                         "old_data": accuracy(old.model, old_data.test), "seconds": first_fit}]
    for label, config in (("refit, replay 500 (default)", RefitConfig(promote=False)),
                          ("refit, replay 500, lr x1.0", RefitConfig(lr_scale=1.0, promote=False)),
                          ("refit, lwf 0.5, no replay", RefitConfig(replay=0, lwf=0.5, promote=False)),
                          ("refit, replay 500, ewc 100", RefitConfig(ewc=100.0, promote=False)),
                          ("refit --search 6 (default space)", RefitConfig(search=6, promote=False))):
        t0 = time.perf_counter()
        result = refit(work / "run", source, work / f"out-{len(rows)}", config)
        seconds = time.perf_counter() - t0
        cand = load_model(work / f"out-{len(rows)}" / "model")
        rows.append({"model": label, "new_data": accuracy(cand.model, new_data.test),
                     "old_data": accuracy(cand.model, old_data.test), "seconds": seconds,
                     "gates_pass": all(result["gates"].values()), "epochs": result["epochs_run"],
                     "chosen": result["chosen"] if result["search"] else None})
    # a full retrain from scratch on old + new training rows
    train = Split(torch.cat([old_data.train.x, old_data.val.x, new_data.train.x]),
                  torch.cat([old_data.train.y, old_data.val.y, new_data.train.y]))
    if new_data.val is None:
        raise SystemExit("the new data has no validation rows")
    t0 = time.perf_counter()
    plan = build_model(recipe, old_data, seed=recipe.seed)
    trainer = build_trainer(recipe, plan, new_data, seed=recipe.seed, num_train=len(train), with_val=True)
    trainer.fit(train, new_data.val)
    rows.append({"model": "full retrain on old + new rows", "new_data": accuracy(plan.model, new_data.test),
                 "old_data": accuracy(plan.model, old_data.test), "seconds": time.perf_counter() - t0})
    for r in rows:
        print(f"{r['model']:<34} new data {r['new_data']:.4f}  old data {r['old_data']:.4f}  {r['seconds']:.2f} s"
              + (f"  gates pass: {r['gates_pass']}" if "gates_pass" in r else ""))
    print(f"rows: new test {len(new_data.test)}, old test {len(old_data.test)}; train rows: refit "
          f"{len(new_data.train)} + replay, retrain {len(train)}")
    for r in rows:
        if r.get("chosen"):
            print(f"search chose: {r['chosen']}")
    print(f"wrote {save(f'refit_vs_retrain_{case}', {'machine': machine(), 'rows': rows, 'work': str(work)})}")


if __name__ == "__main__":
    main()
