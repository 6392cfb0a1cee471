"""(a) Trainer overhead against a plain PyTorch loop.

The same model (same initial weights), optimizer, data order and seed run through
honing's Trainer and through the loop a user writes by hand (slice pre-built tensors with a
seeded permutation, forward, loss, backward, step; evaluate on the validation set each
epoch). Runs are paired and alternated (A B, B A, ...); each pair gives the ratio of median
epoch times (training + validation); the figure is the median over pairs. Losses of the two
must agree to 5 decimals. Goal: ratio at most 1.05.

usage: bench/run.sh bench/trainer_overhead.py [--pairs 7] [--epochs 8] [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from _common import check_env, machine, median, save
from honing.data import load
from honing.models import create_model
from honing.train import Callback, TrainConfig, Trainer


def plain_loop(model, opt, x, y, xv, yv, *, epochs, batch_size, seed, eval_batch, gather=False):
    """The loop from a PyTorch tutorial, over pre-built tensors.

    ``gather=False`` indexes each batch (``x[perm[i:i+B]]``); ``gather=True`` permutes the
    whole epoch once and slices views, the faster way (and the Trainer's way).
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    times, losses, val_losses = [], [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        if gather:
            xs, ys = x[perm], y[perm]
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if gather:
                xb, yb = xs[i : i + batch_size], ys[i : i + batch_size]
            else:
                xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(xv[i : i + eval_batch]) for i in range(0, xv.shape[0], eval_batch)])
            val_loss = F.cross_entropy(out, yv).item()
            _ = (out.argmax(1) == yv).float().mean().item()
        times.append(time.perf_counter() - t0)
        losses.append(total / n)
        val_losses.append(val_loss)
    return times, losses, val_losses


class EpochTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_epoch_start(self, trainer, epoch):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, trainer, epoch, logs):
        self.times.append(time.perf_counter() - self._t0)


def honing_loop(model, opt, train, val, *, epochs, batch_size, seed, eval_batch):
    timer = EpochTimer()
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, eval_batch_size=eval_batch, progress=False)
    trainer = Trainer(model, opt, loss="cross_entropy", metrics=["accuracy"], callbacks=[timer], config=config)
    result = trainer.fit(train, val)
    return timer.times, [h["loss"] for h in result.history], [h["val_loss"] for h in result.history]


def workload(name, data, model_kwargs, *, batch_size, epochs, pairs, lr=1e-3):
    seed = 0
    eval_batch = 1024
    rows = []
    first_losses = None
    for p in range(pairs):
        results = {}
        order = ("plain", "gather", "honing") if p % 2 == 0 else ("honing", "gather", "plain")
        for who in order:
            model = create_model(data=data, seed=seed, **model_kwargs)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            if who in ("plain", "gather"):
                results[who] = plain_loop(model, opt, data.train.x, data.train.y, data.val.x, data.val.y,
                                          epochs=epochs, batch_size=batch_size, seed=seed, eval_batch=eval_batch,
                                          gather=who == "gather")
            else:
                results[who] = honing_loop(model, opt, data.train, data.val, epochs=epochs,
                                           batch_size=batch_size, seed=seed, eval_batch=eval_batch)
        # the first epoch warms caches and the allocator; time the rest
        t_plain, t_hon = median(results["plain"][0][1:]), median(results["honing"][0][1:])
        t_gather = median(results["gather"][0][1:])
        rows.append({"plain_s": t_plain, "gather_s": t_gather, "honing_s": t_hon,
                     "ratio": t_hon / t_plain, "ratio_gather": t_hon / t_gather})
        if first_losses is None:
            first_losses = {w: {"loss": results[w][1], "val_loss": results[w][2]} for w in results}
    ratios = [r["ratio"] for r in rows]
    same = all(
        round(a, 5) == round(b, 5)
        for other in ("plain", "gather")
        for key in ("loss", "val_loss")
        for a, b in zip(first_losses[other][key], first_losses["honing"][key])
    )
    out = {
        "workload": name,
        "batch_size": batch_size,
        "epochs_per_run": epochs,
        "pairs": pairs,
        "median_epoch_s_plain": median([r["plain_s"] for r in rows]),
        "median_epoch_s_honing": median([r["honing_s"] for r in rows]),
        "median_epoch_s_plain_gather": median([r["gather_s"] for r in rows]),
        "ratio_median": median(ratios),
        "ratio_vs_gather_median": median([r["ratio_gather"] for r in rows]),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "losses_equal_5dp": same,
        "losses": first_losses,
    }
    print(f"{name:32s} b={batch_size:<4d} plain {out['median_epoch_s_plain']*1e3:8.1f} ms  honing "
          f"{out['median_epoch_s_honing']*1e3:8.1f} ms  ratio {out['ratio_median']:.3f} "
          f"[{out['ratio_min']:.3f}, {out['ratio_max']:.3f}]  vs gathered loop {out['ratio_vs_gather_median']:.3f}  "
          f"losses equal to 5 dp: {same}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fmnist-rows", type=int, default=12000, help="training rows of the Fashion-MNIST subset")
    ap.add_argument("--quick", action="store_true", help="2 pairs of 3 epochs (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.epochs = 2, 3
    check_env()
    torch.set_num_threads(args.threads)
    results = []
    digits = load("sklearn:digits", seed=0)
    for bs in (32, 128):
        results.append(workload("digits MLP [128, 64]", digits, {"name": "mlp", "hidden": [128, 64]},
                                batch_size=bs, epochs=args.epochs * 3, pairs=args.pairs))
    fmnist = load("fashion-mnist", image=True, limit=args.fmnist_rows, seed=0)
    results.append(workload("fashion-mnist CNN [32, 64]", fmnist, {"name": "cnn", "channels": [32, 64]},
                            batch_size=128, epochs=max(2, args.epochs // 2), pairs=args.pairs))
    path = save("trainer_overhead", {"machine": machine(), "args": vars(args), "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
