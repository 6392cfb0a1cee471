"""NAS strategies on a synthetic cell-space benchmark (issue 15).

The benchmark: ``cellnet`` cells (the NAS-Bench-201 space, 5 operations on 6 edges: 15,625
cells) trained for real on 8x8 digits images, then a surrogate fitted to them, so that a
strategy can query any cell in a millisecond, as published tabular benchmarks allow.

1. ``--train N``: N distinct cells drawn at random (seed 0), each a ``cellnet`` (8 channels, 2
   stages, 1 cell per stage) trained 12 epochs with Adam (lr 3e-3, batch 64) on sklearn's
   digits as 1x8x8 images (the split of ``honing.data.load("sklearn:digits")``), 2 seeds; the
   mean validation accuracy is kept in ``bench/nas_cells_trained.jsonl`` (committed: the
   surrogate can be rebuilt without training).
2. The surrogate: scikit-learn's gradient boosting on the one-hot edges plus three counts that
   matter to such cells (convolutions on the input-to-output paths, whether any path reaches
   the output, parameter-free paths), fitted to the trained cells; its cross-validated R2 is
   printed. The benchmark's value of a cell is the surrogate's prediction; its optimum is found
   by scoring all 15,625 cells.
3. Each strategy (``honing.nas.search``) runs ``--budget`` evaluations for ``--seeds`` seeds;
   regret = optimum - best value found so far, reported at 10, 25, 50, 100, 200 evaluations
   (mean over seeds), with each strategy's mean rank.

usage: bench/run.sh bench/nas_cells.py [--train 150] [--seeds 10] [--budget 200]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TABLE = HERE / "nas_cells_trained.jsonl"
OUT = HERE / "out" / "nas_cells"
OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")


def _digits():
    from honing.data import load

    data = load("sklearn:digits", seed=0)
    shape = lambda s: (s.x.reshape(-1, 1, 8, 8), s.y)  # noqa: E731
    return shape(data.train), shape(data.val)


def train_cell(ops: list[str], seed: int, train, val, *, epochs: int = 12) -> float:
    import torch

    from honing.models import create_model

    torch.manual_seed(seed)
    model = create_model("cellnet", input_shape=(1, 8, 8), num_outputs=10, cell=ops, channels=8, stages=2, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = train
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(val[0]).argmax(1) == val[1]).float().mean())


def train_table(n: int) -> None:
    import torch

    torch.set_num_threads(1)
    train, val = _digits()
    done = {json.dumps(json.loads(line)["cell"]) for line in TABLE.read_text().splitlines()} if TABLE.is_file() else set()
    rng = random.Random(0)
    every = list(itertools.product(OPS, repeat=6))
    rng.shuffle(every)
    for cell in every[:n]:
        if json.dumps(list(cell)) in done:
            continue
        t0 = time.perf_counter()
        accs = [train_cell(list(cell), s, train, val) for s in (0, 1)]
        with TABLE.open("a") as f:
            f.write(json.dumps({"cell": list(cell), "val_accuracy": round(sum(accs) / 2, 5),
                                "seeds": accs, "seconds": round(time.perf_counter() - t0, 2)}) + "\n")
        print(cell, accs, flush=True)


def features(cells: list[list[str]]) -> np.ndarray:
    """One-hot edges, plus: convolutions on the longest input->output path, whether any path
    reaches the output, and whether a parameter-free path (skip/pool only) does."""
    from honing.models import CELL_EDGES as EDGES

    rows = []
    for cell in cells:
        onehot = [float(op == o) for op in cell for o in OPS]
        op = {e: cell[i] for i, e in enumerate(EDGES)}
        paths = [p for p in ([(0, 3)], [(0, 1), (1, 3)], [(0, 2), (2, 3)], [(0, 1), (1, 2), (2, 3)])]
        live = [p for p in paths if all(op[e] != "none" for e in p)]
        convs = max((sum(op[e].startswith("conv") for e in p) for p in live), default=0)
        free = any(all(op[e] in ("skip", "avgpool3x3") for e in p) for p in live)
        rows.append(onehot + [convs, float(bool(live)), float(free)])
    return np.array(rows)


def surrogate():
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.model_selection import cross_val_score

    rows = [json.loads(line) for line in TABLE.read_text().splitlines()]
    x, y = features([r["cell"] for r in rows]), np.array([r["val_accuracy"] for r in rows])
    model = GradientBoostingRegressor(n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=0)
    r2 = cross_val_score(model, x, y, cv=5, scoring="r2")
    model.fit(x, y)
    every = [list(c) for c in itertools.product(OPS, repeat=6)]
    table = dict(zip(map(tuple, every), model.predict(features(every))))
    return table, float(r2.mean()), len(rows), (float(y.min()), float(y.max()))


def run_strategies(seeds: int, budget: int) -> None:
    from honing import nas

    table, r2, n, (lo, hi) = surrogate()
    best = max(table.values())
    print(f"surrogate: {n} trained cells (validation accuracy {lo:.3f} to {hi:.3f}), 5-fold R2 {r2:.3f}; "
          f"optimum over 15,625 cells {best:.4f}")
    space = nas.cell_space()
    objective = lambda arch: float(table[tuple(nas.cell_ops(arch))])  # noqa: E731
    marks = [m for m in (10, 25, 50, 100, 200, 500) if m <= budget]
    curves: dict[str, list[list[float]]] = {}
    for strategy in ("random", "evolution", "local", "reinforce", "tpe"):
        for seed in range(seeds):
            t0 = time.perf_counter()
            result = nas.search(space, objective, strategy=strategy, budget=budget, seed=seed)
            regret = [best - v for v in result.best_so_far()]
            curves.setdefault(strategy, []).append(regret)
        print(f"{strategy:<10} " + "  ".join(f"@{m}: {np.mean([c[m - 1] for c in curves[strategy]]):.4f}"
                                             for m in marks) + f"   ({time.perf_counter() - t0:.1f} s per search)")
    ranks = {s: [] for s in curves}
    for m in marks:
        for seed in range(seeds):
            vals = sorted((curves[s][seed][m - 1], s) for s in curves)
            for r, (_, s) in enumerate(vals, 1):
                ranks[s].append(r)
    print("mean rank over seeds and marks: " + ", ".join(f"{s} {np.mean(r):.2f}" for s, r in ranks.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "regret.json").write_text(json.dumps({"optimum": best, "r2": r2, "cells": n, "curves": curves}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=0, help="train this many cells first (kept in the table)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=200)
    args = ap.parse_args()
    if args.train:
        train_table(args.train)
    run_strategies(args.seeds, args.budget)


if __name__ == "__main__":
    main()
