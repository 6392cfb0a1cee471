"""Issue 4 (a) and (c): all-MiniLM-L6-v2 on the Rotten Tomatoes snippets.

(a) Fine-tuning through honing's own recipe path (``honing.train_once`` with a ``transfer:``
    section) against frozen embeddings + logistic regression: full fine-tuning and LoRA, test
    accuracy, wall time (data, training, validation and test included) and parameters trained.
(c) Few-shot: a prototype head (``honing.transfer.PrototypeHead``) on the frozen embeddings with
    1, 5 and 10 training examples per class, over many draws of the support set; logistic
    regression on the same examples as a reference.

Every contender sees the same split: ``honing.data.load("rotten-tomatoes", seed=0)`` (70 / 15 /
15 after dropping 56 duplicate snippets). Each arm runs in its own process with 2 torch
threads on an otherwise idle machine (the goal is 15 minutes on 2 cores).

usage: bench/run.sh bench/minilm_rotten_tomatoes.py [--arms frozen full lora lora_qv] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, check_env, machine, save  # noqa: E402

ARMS = ("frozen", "full", "lora", "lora_qv")
DEFAULT_ARMS = ("frozen", "full", "lora")
SHOTS = (1, 5, 10)
DRAWS = 50


def recipe(arm: str, *, quick: bool) -> dict:
    data = {"source": "rotten-tomatoes", "max_length": 64, **({"limit": 600} if quick else {})}
    training = {"epochs": 1 if quick else 2, "batch_size": 32, "threads": 2, "eval_batch_size": 128,
                "schedule": {"name": "cosine", "warmup_steps": 4 if quick else 30}}
    if arm == "full":
        transfer = {"from": "minilm", "strategy": "full"}
        training["optimizer"] = {"name": "adamw", "lr": 5.0e-5, "weight_decay": 0.01}
    elif arm == "lora":  # LoRA on every linear layer of the encoder
        transfer = {"from": "minilm", "strategy": "lora",
                    "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "targets": ["query", "key", "value", "dense"]}}
        training["optimizer"] = {"name": "adamw", "lr": 1.0e-3, "weight_decay": 0.01}
    else:  # lora_qv: the default targets (query, value), no adapter dropout
        transfer = {"from": "minilm", "strategy": "lora", "lora": {"r": 8, "alpha": 16}}
        training["optimizer"] = {"name": "adamw", "lr": 1.0e-3, "weight_decay": 0.01}
    return {"name": f"minilm-{arm}", "seed": 0, "data": data, "transfer": transfer, "training": training,
            "output": {"report": False}}


def run_finetune(arm: str, quick: bool) -> dict:
    import honing

    out = OUT / "runs" / f"minilm-{arm}{'-quick' if quick else ''}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: an old checkpoint there would be resumed
    t0 = time.perf_counter()
    res = honing.train_once(recipe(arm, quick=quick), out=out, threads=2, progress=False)
    wall = time.perf_counter() - t0
    r = res.results
    return {"arm": arm, "test_accuracy": r["test_metrics"]["accuracy"], "wall_s": round(wall, 1),
            "parameters": r["transfer"]["parameters"], "trainable": r["transfer"]["trainable_parameters"],
            "final_model": r["final_model"], "recipe": recipe(arm, quick=quick)}


def run_frozen(quick: bool) -> dict:
    """Frozen embeddings: logistic regression on all training rows, then few-shot prototypes."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from honing import transfer
    from honing.data import load

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    data = load("rotten-tomatoes", tokenizer=str(transfer.minilm_path()), max_length=64, seed=0,
                **({"limit": 600} if quick else {}))
    model, _ = transfer.create("minilm", data.num_outputs, strategy="probe")
    emb = {s: transfer.embed(model, getattr(data, s).x, batch_size=128).numpy() for s in ("train", "val", "test")}
    ys = {s: getattr(data, s).y.numpy() for s in ("train", "val", "test")}
    t_embed = time.perf_counter() - t0
    best = None
    for c in (0.1, 0.3, 1.0, 3.0, 10.0):  # C chosen on the validation split
        lr = LogisticRegression(C=c, max_iter=2000).fit(emb["train"], ys["train"])
        val = lr.score(emb["val"], ys["val"])
        if best is None or val > best[0]:
            best = (val, c, lr)
    test_acc = float(best[2].score(emb["test"], ys["test"]))
    wall = time.perf_counter() - t0

    few: dict[str, dict] = {}
    test = torch.as_tensor(emb["test"])
    for k in SHOTS:
        proto_acc, lr_acc = [], []
        for draw in range(5 if quick else DRAWS):
            idx = transfer.support_indices(ys["train"], k, seed=draw)
            head = transfer.PrototypeHead(data.num_outputs, emb["train"].shape[1])
            head.fit(torch.as_tensor(emb["train"][idx]), torch.as_tensor(ys["train"][idx]))
            proto_acc.append(float((head(test).argmax(1).numpy() == ys["test"]).mean()))
            lr = LogisticRegression(C=1.0, max_iter=2000).fit(emb["train"][idx], ys["train"][idx])
            lr_acc.append(float(lr.score(emb["test"], ys["test"])))
        few[str(k)] = {"prototype": _summary(proto_acc), "logreg": _summary(lr_acc)}
    majority = float(max(np.mean(ys["test"] == c) for c in np.unique(ys["test"])))
    return {"arm": "frozen", "test_accuracy": test_acc, "C": best[1], "val_accuracy": best[0],
            "wall_s": round(wall, 1), "embed_s": round(t_embed, 1), "majority": majority,
            "rows": {s: int(len(ys[s])) for s in ys}, "few_shot": few}


def _summary(values: list[float]) -> dict:
    a = np.asarray(values)
    return {"mean": round(float(a.mean()), 4), "median": round(float(np.median(a)), 4),
            "p10": round(float(np.percentile(a, 10)), 4), "p90": round(float(np.percentile(a, 90)), 4),
            "draws": len(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(DEFAULT_ARMS))
    ap.add_argument("--quick", action="store_true", help="600 snippets, 1 epoch: checks the script works")
    ap.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one arm, in this process
    args = ap.parse_args()
    if args.arm:
        out = run_frozen(args.quick) if args.arm == "frozen" else run_finetune(args.arm, args.quick)
        print("RESULT " + json.dumps(out), flush=True)
        return 0
    check_env()
    results = {}
    for arm in args.arms:  # each arm in a fresh process
        cmd = [sys.executable, __file__, "--arm", arm] + (["--quick"] if args.quick else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ,
                                                                        "OMP_NUM_THREADS": "2"})
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            return 1
        results[arm] = json.loads(line[len("RESULT "):])
        print(f"{arm}: {json.dumps({k: v for k, v in results[arm].items() if k != 'recipe'})}", flush=True)
    name = "minilm_rotten_tomatoes" + ("_quick" if args.quick else "")
    previous = OUT / f"{name}.json"
    if previous.is_file():  # arms run before (e.g. --arms lora_qv alone) stay in the file
        results = {**json.loads(previous.read_text()).get("results", {}), **results}
    payload = {"machine": machine(), "quick": args.quick, "results": results}
    if "frozen" in results:
        base = results["frozen"]["test_accuracy"]
        for arm in ("full", "lora", "lora_qv"):
            if arm in results:
                results[arm]["vs_frozen_points"] = round(100 * (results[arm]["test_accuracy"] - base), 2)
    if "full" in results and "lora" in results:
        payload["lora_minus_full_points"] = round(
            100 * (results["lora"]["test_accuracy"] - results["full"]["test_accuracy"]), 2)
        payload["lora_trainable_fraction"] = round(results["lora"]["trainable"] / results["lora"]["parameters"], 4)
    path = save(name, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
