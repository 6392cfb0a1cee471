"""Transfer on images, and forgetting: a honing CNN pretrained on Fashion-MNIST classes 0-4,
fine-tuned on classes 5-9 with 10% of their training labels.

Old task: classes 0-4 (T-shirt, Trouser, Pullover, Dress, Coat); new task: classes 5-9 (Sandal,
Shirt, Sneaker, Bag, Ankle boot), relabelled 0-4. Per seed:

1. Pretrain a CNN (channels [16, 32], no batch norm, flattened 7x7 maps, a 128-unit hidden head
   layer and a linear output layer) with
   honing's Trainer on all 30,000 old-task training images and save it as a honing model folder
   (``honing.pipeline.save_model``), so it loads through ``transfer.load_backbone('honing:<folder>')``.
   The transferred backbone is everything but the output layer (two conv blocks and the hidden
   layer, 205k parameters); the output layer is kept as the old head. Preprocessing: one mean/std over the old-task training pixels (the source model's own
   preprocessing, saved in its folder), used unchanged for the new task.
2. New-task data: a stratified, seeded 10% of the classes 5-9 training labels (600 per class,
   3,000 images) to train on, and 200 more per class (1,000 images, disjoint, from the other 90%)
   as a validation split used only to measure time to target: no early stopping or best-epoch
   selection reads it, every contender trains the same fixed number of epochs and is scored on
   the official 5,000 classes 5-9 test images with its final weights.
3. Contenders (same optimizer, batch size, epochs and batch order):
   (b) ``scratch`` (the same CNN, random init), ``full`` (transfer, every weight trains, new
   head), ``probe`` (transfer, frozen backbone, new linear head);
   (d) ``replay`` (``full`` + ``transfer.Replay`` of 500 old training images through
   ``transfer.ContinualLoss``), ``ewc-<lambda>`` (``full`` + ``transfer.EWC`` on 2,000 old
   training images, each lambda given). Old-task accuracy is the old head
   (``transfer.old_task_accuracy``) on the 5,000 classes 0-4 test images, before and after.
   The order of the contenders alternates between seeds (forward, reversed, forward).

Time to target: training seconds (the Trainer's per-epoch step time, validation passes left out)
summed up to the first epoch whose validation accuracy reaches the target. Targets are set after
the runs from scratch's curves: the lowest of its per-seed best validation accuracies, rounded
down to 0.005 (so scratch reaches it on every seed), and that minus 0.02. Pretraining time is not
counted in transfer's time; it is reported on its own.

usage: bench/run.sh bench/transfer_images.py [--seeds 3] [--epochs 20] [--pretrain-epochs 4]
       [--ewc 1,10,100,1000,10000] [--head-hidden 128] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, check_env, machine, median, save  # noqa: E402

from honing import transfer  # noqa: E402
from honing.data import FASHION_MNIST_CLASSES, ArrayPreprocessor, Split, find_idx_files, read_idx  # noqa: E402
from honing.models import count_parameters, create_model  # noqa: E402
from honing.optim import create_optimizer  # noqa: E402
from honing.pipeline import save_model  # noqa: E402
from honing.train import Callback, TrainConfig, Trainer  # noqa: E402

FOLDER = "/usr/share/datasets/fashion-mnist"
SHAPE = (1, 28, 28)
CNN = {"name": "cnn", "channels": [16, 32], "global_pool": None, "head_hidden": 128}
OPTIMIZER = {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4}
BATCH = 64
TRAIN_PER_CLASS, VAL_PER_CLASS = 600, 200  # 10% of the 6,000 training images per class; validation
REPLAY_SIZE = 500
EWC_ROWS = 2000
TRANSFER = ("full", "probe")


# ----------------------------------------------------------------------------------- data

def load_data(folder: str) -> dict[str, Any]:
    files = find_idx_files(folder)
    xtr = read_idx(files["train_images"]).reshape(-1, *SHAPE)  # (60000, 1, 28, 28) uint8
    ytr = read_idx(files["train_labels"]).astype(np.int64)
    xte = read_idx(files["test_images"]).reshape(-1, *SHAPE)
    yte = read_idx(files["test_labels"]).astype(np.int64)
    old_tr, old_te = ytr < 5, yte < 5
    pre = ArrayPreprocessor(SHAPE, scale="standard", pixel_max=255, channel_axis=1).fit(xtr[old_tr])
    return {
        "pre": pre,
        "old_train": Split(pre.transform(xtr[old_tr]), torch.from_numpy(ytr[old_tr])),
        "old_test": Split(pre.transform(xte[old_te]), torch.from_numpy(yte[old_te])),
        "new_pool_x": pre.transform(xtr[~old_tr]),  # the 30,000 classes 5-9 training images
        "new_pool_y": torch.from_numpy(ytr[~old_tr] - 5),
        "new_test": Split(pre.transform(xte[~old_te]), torch.from_numpy(yte[~old_te] - 5)),
    }


def new_task_splits(data: dict[str, Any], seed: int, per_class: int, val_per_class: int) -> tuple[Split, Split]:
    """A stratified, seeded sample of the classes 5-9 training images and a disjoint validation sample."""
    rng = np.random.default_rng(seed)
    y = data["new_pool_y"].numpy()
    tr, va = [], []
    for c in range(5):
        idx = rng.permutation(np.flatnonzero(y == c))
        tr.append(idx[:per_class])
        va.append(idx[per_class:per_class + val_per_class])
    tr_idx, va_idx = (torch.from_numpy(np.sort(np.concatenate(p))) for p in (tr, va))
    x, yy = data["new_pool_x"], data["new_pool_y"]
    return Split(x[tr_idx], yy[tr_idx]), Split(x[va_idx], yy[va_idx])


# ------------------------------------------------------------------------------- training

class Clock(Callback):
    """Wall seconds from the start of fit to the end of each epoch (validation included)."""

    def on_fit_start(self, trainer: Any) -> None:
        self.start, self.wall = time.perf_counter(), []

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        self.wall.append(time.perf_counter() - self.start)


def optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    kw = dict(OPTIMIZER)
    return create_optimizer(model, kw.pop("name"), **kw)


def pretrain(data: dict[str, Any], seed: int, epochs: int, folder: Path) -> dict[str, Any]:
    kw = {k: v for k, v in CNN.items() if k != "name"}
    model = create_model(CNN["name"], input_shape=SHAPE, num_outputs=5, seed=seed, **kw)
    config = TrainConfig(epochs=epochs, batch_size=BATCH, seed=seed, threads=1, progress=False, monitor="loss")
    trainer = Trainer(model, optimizer(model), config=config)
    start = time.perf_counter()
    result = trainer.fit(data["old_train"])
    seconds = time.perf_counter() - start
    test = trainer.evaluate(data["old_test"])["accuracy"]
    recipe = {"name": f"fashion-mnist-0-4-seed{seed}", "model": dict(CNN), "optimizer": dict(OPTIMIZER),
              "epochs": epochs, "batch_size": BATCH, "seed": seed}
    save_model(folder, model, recipe=recipe, preprocessor=data["pre"], task="classification", input_shape=SHAPE,
               num_outputs=5, class_names=FASHION_MNIST_CLASSES[:5])
    return {"seed": seed, "folder": str(folder), "epochs": epochs, "seconds": seconds,
            "train_loss": [h["loss"] for h in result.history], "old_test_accuracy": test,
            "parameters": count_parameters(model)}


def finetune(contender: str, data: dict[str, Any], train: Split, val: Split, seed: int, epochs: int,
             folder: Path) -> dict[str, Any]:
    torch.manual_seed(10_000 + seed)  # the new head's initial weights (transfer contenders)
    loss: Any = None
    callbacks: list[Any] = []
    before = None
    t_setup = time.perf_counter()
    if contender == "scratch":
        kw = {k: v for k, v in CNN.items() if k != "name"}
        model = create_model(CNN["name"], input_shape=SHAPE, num_outputs=5, seed=20_000 + seed, **kw)
    else:
        strategy = "probe" if contender == "probe" else "full"
        model, callbacks = transfer.create(f"honing:{folder}", 5, strategy=strategy)
        before = transfer.old_task_accuracy(model, data["old_test"].x, data["old_test"].y)
        old = data["old_train"]
        if contender == "replay":
            replay = transfer.Replay(old.x, old.y, size=REPLAY_SIZE, batch_size=32, seed=seed)
            loss = transfer.ContinualLoss(F.cross_entropy, model, replay=replay)
        elif contender.startswith("ewc-"):
            ewc = transfer.EWC(model, old.x, old.y, max_rows=EWC_ROWS, seed=seed)
            loss = transfer.ContinualLoss(F.cross_entropy, model, ewc=ewc, ewc_lambda=float(contender[4:]))
        elif contender not in TRANSFER:
            raise ValueError(f"unknown contender {contender!r}")
    setup_s = time.perf_counter() - t_setup
    clock = Clock()
    config = TrainConfig(epochs=epochs, batch_size=BATCH, seed=seed, threads=1, progress=False, monitor="val_accuracy")
    trainer = Trainer(model, optimizer(model), loss=loss, callbacks=[*callbacks, clock], config=config)
    result = trainer.fit(train, val)
    row: dict[str, Any] = {
        "contender": contender,
        "seed": seed,
        "setup_s": setup_s,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "val_accuracy": [h["val_accuracy"] for h in result.history],
        "train_s": [h["time"] for h in result.history],
        "wall_s": clock.wall,
        "test_accuracy": trainer.evaluate(data["new_test"])["accuracy"],
    }
    if before is not None:
        row["old_before"] = before
        row["old_after"] = transfer.old_task_accuracy(model, data["old_test"].x, data["old_test"].y)
    return row


# -------------------------------------------------------------------------------- summary

def time_to(run: dict[str, Any], target: float) -> tuple[float, int | None]:
    """Training seconds to the first epoch at or above ``target`` (inf when never), and that epoch."""
    total = 0.0
    for i, (acc, s) in enumerate(zip(run["val_accuracy"], run["train_s"])):
        total += s
        if acc >= target - 1e-9:
            return total, i + 1
    return math.inf, None


def med(values: list[float]) -> float:
    """Median counting inf (never reached) as longer than anything reached."""
    return median(values) if values else math.nan


def ratio(a: float, b: float) -> float | None:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return None
    return round(a / b, 3)


def summarize(runs: dict[str, list[dict[str, Any]]], pretrained: list[dict[str, Any]]) -> dict[str, Any]:
    best_scratch = [max(r["val_accuracy"]) for r in runs["scratch"]]
    hi = math.floor(min(best_scratch) / 0.005 + 1e-9) * 0.005
    targets = [round(hi, 3), round(hi - 0.02, 3)]
    rows: dict[str, Any] = {}
    for name, rs in runs.items():
        s_per_epoch = [median(r["train_s"][1:] or r["train_s"]) for r in rs]
        row: dict[str, Any] = {
            "test_accuracy": [round(r["test_accuracy"], 4) for r in rs],
            "median_test_accuracy": med([r["test_accuracy"] for r in rs]),
            "best_val_accuracy": [round(max(r["val_accuracy"]), 4) for r in rs],
            "median_s_per_epoch": med(s_per_epoch),
            "median_train_s": med([sum(r["train_s"]) for r in rs]),
            "median_setup_s": med([r["setup_s"] for r in rs]),
            "trainable_parameters": rs[0]["trainable_parameters"],
        }
        for t in targets:
            hits = [time_to(r, t) for r in rs]
            row[f"time_to_{t}"] = {"seconds": [h[0] for h in hits], "epochs": [h[1] for h in hits],
                                  "median_s": med([h[0] for h in hits]),
                                  "reached": sum(h[1] is not None for h in hits)}
        if "old_before" in rs[0]:
            row["old_before"] = [round(r["old_before"], 4) for r in rs]
            row["old_after"] = [round(r["old_after"], 4) for r in rs]
            row["median_old_before"] = med([r["old_before"] for r in rs])
            row["median_old_after"] = med([r["old_after"] for r in rs])
            row["median_forgetting"] = med([r["old_before"] - r["old_after"] for r in rs])
        rows[name] = row
    sc = rows["scratch"]
    for name, row in rows.items():
        row["test_accuracy_ratio_to_scratch"] = ratio(row["median_test_accuracy"], sc["median_test_accuracy"])
        row["test_error_ratio_to_scratch"] = ratio(1 - row["median_test_accuracy"], 1 - sc["median_test_accuracy"])
        for t in targets:
            row[f"time_to_{t}"]["ratio_to_scratch"] = ratio(row[f"time_to_{t}"]["median_s"],
                                                            sc[f"time_to_{t}"]["median_s"])
    return {"targets": targets, "rows": rows,
            "pretrain": {"median_seconds": med([p["seconds"] for p in pretrained]),
                         "old_test_accuracy": [round(p["old_test_accuracy"], 4) for p in pretrained],
                         "median_old_test_accuracy": med([p["old_test_accuracy"] for p in pretrained])}}


def fmt_s(v: float) -> str:
    return "never" if not math.isfinite(v) else f"{v:.1f} s"


def fmt_times(seconds: list[float]) -> str:
    return ", ".join("-" if not math.isfinite(s) else f"{s:.1f}" for s in seconds)


def tables(summary: dict[str, Any], epochs: int) -> str:
    rows, targets = summary["rows"], summary["targets"]
    b = [n for n in ("scratch", *TRANSFER) if n in rows]
    lines = [f"(b) classes 5-9, 3,000 training images, {epochs} epochs; medians over seeds (per seed in brackets)", "",
             "| contender | trainable params | test acc | ratio to scratch (error ratio) | best val acc | "
             + " | ".join(f"time to val {t} (per seed; reached) | epochs | ratio" for t in targets) + " | s/epoch |",
             "|---|---|---|---|---|" + "---|---|---|" * len(targets) + "---|"]
    for n in b:
        r = rows[n]
        cells = [f"{n}", f"{r['trainable_parameters']:,}",
                 f"**{r['median_test_accuracy']:.4f}** ({', '.join(f'{v:.4f}' for v in r['test_accuracy'])})",
                 f"{r['test_accuracy_ratio_to_scratch']} ({r['test_error_ratio_to_scratch']})",
                 f"{median(r['best_val_accuracy']):.4f}"]
        for t in targets:
            tt = r[f"time_to_{t}"]
            epochs_med = med([math.inf if e is None else e for e in tt["epochs"]])
            cells += [f"**{fmt_s(tt['median_s'])}** ({fmt_times(tt['seconds'])}; {tt['reached']}/{len(tt['seconds'])})",
                      "-" if not math.isfinite(epochs_med) else f"{epochs_med:g}",
                      "-" if tt["ratio_to_scratch"] is None else f"**{tt['ratio_to_scratch']}**"]
        cells.append(f"{r['median_s_per_epoch']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    p = summary["pretrain"]
    lines += ["", f"pretraining (classes 0-4, 30,000 images, not counted above): median {p['median_seconds']:.1f} s, "
              f"old-task test accuracy {p['median_old_test_accuracy']:.4f} ({', '.join(map(str, p['old_test_accuracy']))})", "",
              "(d) forgetting: old task = classes 0-4 test images through the old head; medians over seeds", "",
              "| method | old-task acc before | old-task acc after | forgetting (points) | new-task test acc | s/epoch | set-up |",
              "|---|---|---|---|---|---|---|"]
    for n, r in rows.items():
        if "old_before" not in r:
            continue
        lines.append(f"| {n} | {r['median_old_before']:.4f} | **{r['median_old_after']:.4f}** "
                     f"({', '.join(f'{v:.4f}' for v in r['old_after'])}) | {100 * r['median_forgetting']:.1f} | "
                     f"**{r['median_test_accuracy']:.4f}** ({', '.join(f'{v:.4f}' for v in r['test_accuracy'])}) | "
                     f"{r['median_s_per_epoch']:.2f} | {r['median_setup_s']:.2f} s |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20, help="fine-tuning / scratch epochs (every contender)")
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--ewc", default="1,10,100,1000,10000", help="EWC lambdas, comma-separated (each one a contender)")
    ap.add_argument("--head-hidden", type=int, default=128,
                    help="width of the CNN's hidden head layer, part of the transferred backbone (0: linear head)")
    ap.add_argument("--only", choices=("b", "d"), help="only the contenders of (b) or of (d) (scratch always runs)")
    ap.add_argument("--folder", default=FOLDER, help="the Fashion-MNIST IDX folder")
    ap.add_argument("--quick", action="store_true", help="1 seed, 1 pretraining epoch, 2 epochs, one lambda (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.pretrain_epochs, args.ewc = 1, 2, 1, args.ewc.split(",")[0]
    CNN.pop("head_hidden", None)
    if args.head_hidden:
        CNN["head_hidden"] = args.head_hidden
    check_env()
    torch.set_num_threads(1)
    t_all = time.perf_counter()
    lambdas = [v.strip() for v in args.ewc.split(",") if v.strip()]
    contenders = ["scratch", *TRANSFER] if args.only != "d" else ["scratch", "full"]
    if args.only != "b":
        contenders += ["replay", *[f"ewc-{lam}" for lam in lambdas]]
    name = "transfer_images" + ("_quick" if args.quick else "")
    models = OUT / name
    data = load_data(args.folder)
    print(f"data: old train {len(data['old_train'])}, old test {len(data['old_test'])}, new pool "
          f"{len(data['new_pool_y'])}, new test {len(data['new_test'])} ({time.perf_counter() - t_all:.0f} s)", flush=True)

    pretrained: list[dict[str, Any]] = []
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
    for seed in range(args.seeds):
        folder = models / f"pretrained_seed{seed}"
        p = pretrain(data, seed, args.pretrain_epochs, folder)
        pretrained.append(p)
        print(f"seed {seed} pretrain: {p['seconds']:.1f} s, old-task test accuracy {p['old_test_accuracy']:.4f}", flush=True)
        train, val = new_task_splits(data, seed, TRAIN_PER_CLASS, VAL_PER_CLASS)
        order = contenders if seed % 2 == 0 else contenders[::-1]
        for c in order:
            row = finetune(c, data, train, val, seed, args.epochs, folder)
            runs[c].append(row)
            old = (f"  old task {row['old_before']:.4f} -> {row['old_after']:.4f}" if "old_after" in row else "")
            print(f"seed {seed} {c:10s} test {row['test_accuracy']:.4f}  best val {max(row['val_accuracy']):.4f}  "
                  f"train {sum(row['train_s']):.1f} s{old}  [total {time.perf_counter() - t_all:.0f} s]", flush=True)

    summary = summarize(runs, pretrained)
    text = tables(summary, args.epochs)
    print()
    print(text)
    path = save(name, {
        "machine": machine(), "args": vars(args), "total_wall_s": time.perf_counter() - t_all,
        "setup": {"model": CNN, "optimizer": OPTIMIZER, "batch_size": BATCH, "train_per_class": TRAIN_PER_CLASS,
                  "val_per_class": VAL_PER_CLASS, "replay_size": REPLAY_SIZE, "ewc_rows": EWC_ROWS,
                  "validation": "1,000 classes 5-9 training images outside the 10% subset (200 per class); "
                                "read only for time to target"},
        "summary": summary, "markdown": text, "pretrained": pretrained, "runs": runs,
    })
    print(f"wrote {path}  (total {time.perf_counter() - t_all:.0f} s)")


if __name__ == "__main__":
    main()
