"""Architecture search on Fashion-MNIST under a CPU-time budget, against the hand-designed CNN of
``examples/fashion-mnist-cnn.yaml`` (issue 15).

Two ``honing train`` runs of the same data, augmentation and training section (the example's:
15 epochs, AdamW, one-cycle, early stopping on validation accuracy), 1 torch thread each:

  cnn   the example's model as written (its search space left out: the recipe's own values)
  nas   ``model: mobilenet`` with a ``nas:`` section (the v2 space, ``examples/fashion-nas.yaml``'s before it took
        ``nas-v3ra``'s recipe):
        evolution over 3 mobilenet layers (op, kernel, expansion, width, squeeze-excitation;
        a stride-2 stem) and the head (average pooling or flatten), candidates trained 2
        epochs on 20% of the training rows, objectives validation accuracy and CPU latency
        (1 row), stopped after ``--budget-s`` seconds (default 900: 15 CPU-minutes); the run
        then trains the architecture at the front's knee as the recipe says. (bench/README.md
        also reports a first space, v1: 5 layers, average pooling, a 1x1 conv to 128.)

``--measure`` then loads both model folders and times them side by side in one process (1
thread, batch 1 and 256, rounds alternating, median of rounds), as a model folder runs them
(batch norm folded) and as trained, and writes the table and the accuracy/latency front of the
search (``bench/nas_fashion_front.svg``).

``--fixed NAME MODEL_JSON`` trains one hand-written mobilenet the same way (no search), e.g. the
two-layer networks bench/README.md reports; ``--measure --extra NAME ...`` times them beside the two.

``--run nas-ort`` searches v2's space with ``nas.latency_runtime: onnxruntime``, ``nas-ort-small`` a
space of 4 smaller layers; ``--half-cnn`` chooses the most accurate candidate within half the CNN's
ONNX Runtime latency (``nas.limits``) instead of the knee.

``--run nas-v3`` / ``nas-v3r``: two layers after the stem, the head's hidden width searched, no
dropout, limits of half the CNN's parameters and latency (absolute, or ``latency_ratio`` against
the CNN timed beside each candidate); ``nas-v3rp`` is v3r with ``nas.promote: 3``, ``nas-v3ra`` with
``nas.promote: auto`` (as many as fit in what the search left of its 900 s). ``nas-v3ra`` with
``--set training.epochs=25 --set training.early_stopping.patience=6 --set nas.limits.latency_ratio=0.48``
is ``examples/fashion-nas.yaml``.
``--front RUN`` draws a run's candidates and promoted ones (bench/nas_fashion_RUN.svg).

usage: bench/run.sh bench/nas_fashion.py --run cnn|nas|nas-ort|nas-ort-small [--budget-s 900] [--half-cnn];
       --fixed NAME MODEL_JSON [--epochs N]; --run/--fixed ... --seed K; then --measure [--extra NAME ...];
       --seeds NAME ... (test accuracy over the seeds, paired with the CNN's); --front RUN
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "nas_fashion"
SVG = HERE / "nas_fashion_front.svg"


def _base() -> dict:
    r = yaml.safe_load((HERE.parent / "examples" / "fashion-mnist-cnn.yaml").read_text())
    r.pop("tune")
    r["training"]["threads"] = 1
    return r


def _cnn_latency_ms(runtime: str) -> float:
    """The hand-designed CNN's latency (fresh weights, 1 row) as the search measures a candidate's."""
    import torch

    from honing.models import create_model
    from honing.pipeline._objective import measure_latency_ms

    torch.set_num_threads(1)
    m = _base()["model"]
    cnn = create_model(m.pop("name"), input_shape=(1, 28, 28), num_outputs=10, **m)
    return statistics.median(measure_latency_ms(cnn, (1, 28, 28), repeats=30, runtime=runtime) for _ in range(5))


def recipe(kind: str, budget_s: float, half_cnn: bool = False) -> dict:
    r = _base()
    r["name"] = f"fashion-{kind}"
    if kind.startswith("nas-ort"):  # latency in ONNX Runtime; --half-cnn: the most accurate within half the CNN's
        r = recipe("nas", budget_s)
        r["name"] = f"fashion-{kind}"
        r["nas"]["latency_runtime"] = "onnxruntime"
        if kind == "nas-ort-small":  # smaller layers: ONNX Runtime's cost follows the arithmetic
            r["nas"].update(blocks=4, widths=[8, 12, 16, 24, 32], expand=[2, 3])
        if half_cnn:
            limit = round(0.5 * _cnn_latency_ms("onnxruntime"), 5)
            print(f"nas.limits.latency_ms: {limit} (half the CNN's, measured here in onnxruntime)")
            r["nas"]["limits"] = {"latency_ms": limit}
    if kind == "nas-v3":  # the head's width searched, one or two layers after the stem, no dropout
        r = recipe("nas", budget_s)
        r["name"] = f"fashion-{kind}"
        r["model"]["dropout"] = 0.0  # networks this small underfit: their training loss stays above validation's
        r["nas"].update(blocks=2, strides=[0], heads=["flatten"], hidden=[None, 32, 64],
                        objectives=["val_accuracy", "params", "latency_ms"])
        if half_cnn:
            limit = round(0.5 * _cnn_latency_ms("torch"), 5)
            print(f"nas.limits: params 103485, latency_ms {limit} (half the CNN's, measured here in eager PyTorch)")
            r["nas"]["limits"] = {"params": 103485, "latency_ms": limit}
    if kind == "nas-v3r":  # v3 with its latency limit relative to the CNN, timed beside each candidate
        r = recipe("nas-v3", budget_s)
        r["name"] = f"fashion-{kind}"
        r["nas"].update(objectives=["val_accuracy", "params", "latency_ratio"], reference=_base()["model"],
                        limits={"params": 103485, "latency_ratio": 0.5})
    if kind == "nas-v3rp":  # v3r, then its best 3 trained again as the final model is, the best of those chosen
        r = recipe("nas-v3r", budget_s)
        r["name"] = f"fashion-{kind}"
        r["nas"]["promote"] = 3
    if kind == "nas-v3ra":  # v3r, then as many of its best as fit in the rest of the 900 s trained again
        r = recipe("nas-v3r", budget_s)
        r["name"] = f"fashion-{kind}"
        r["nas"]["promote"] = "auto"
    if kind == "nas":
        r["model"] = {"name": "mobilenet", "stem": 16, "stem_stride": 2, "last": None, "dropout": 0.2}
        r["nas"] = {"space": "mobile", "blocks": 3, "strides": [1], "heads": ["avg", "flatten"],
                    "widths": [16, 24, 32, 48, 64], "expand": [2, 3, 4], "kernels": [3, 5], "strategy": "evolution",
                    "budget": 1000, "epochs": 2, "fraction": 0.2, "timeout": budget_s,
                    "objectives": ["val_accuracy", "latency_ms"], "select": "knee"}
    return r


def fixed(name: str, model: dict, epochs: int | None = None) -> dict:
    """A mobilenet with the given architecture (``--fixed NAME JSON``: the model section's
    stem, blocks, head_hidden, ...), trained as the other two (``--epochs``: more or fewer): no search."""
    r = _base()
    r["name"] = f"fashion-{name}"
    if epochs is not None:
        r["training"]["epochs"] = epochs
    r["model"] = {"name": "mobilenet", "stem": 16, "stem_stride": 2, "last": None, "dropout": 0.2,
                  "global_pool": None, **model}
    return r


def _override(r: dict, settings: list[str]) -> dict:
    """``--set PATH=JSON`` (e.g. ``data.augment=null``, ``training.epochs=25``): the recipe's field
    at the dotted path replaced by the JSON value."""
    for item in settings:
        path, _, value = item.partition("=")
        *parents, last = path.split(".")
        node = r
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = json.loads(value)
    return r


def run(kind: str, budget_s: float, model: dict | None = None, half_cnn: bool = False,
        epochs: int | None = None, seed: int = 0, name: str | None = None, settings: list[str] = ()) -> None:
    from honing.pipeline import train_once

    t0 = time.process_time()
    r = fixed(kind, model, epochs) if model is not None else recipe(kind, budget_s, half_cnn)
    r = _override(r, settings)
    kind = name or kind
    if seed:  # another split of the training rows and other initial weights; the same for every network
        r["seed"] = seed
        kind = f"{kind}-seed{seed}"
    res = train_once(r, out=OUT / kind, threads=1, progress=True).results
    summary = {"kind": kind, "seed": seed, "test": res["test_metrics"], "val": res["final_validation"]["metrics"],
               "settings": list(settings), "parameters": res["parameters"],
               "cpu_s": round(time.process_time() - t0, 1), "timings": res["timings"]}
    if res.get("nas"):  # a search ran (a --fixed run has none)
        n = res["nas"]
        summary["nas"] = {k: n[k] for k in ("evaluated", "proposed", "chosen", "baseline", "front", "seconds", "epochs",
                                            "train_rows")}
        summary["nas"].update({k: n[k] for k in ("promoted", "stopped", "rejected") if k in n})
    (OUT / f"{kind}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("kind", "test", "parameters", "cpu_s")}))


def _ort_ms(session, x, repeats: int) -> float:
    feed = {session.get_inputs()[0].name: x}
    for _ in range(5):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def measure(extra: list[str] = (), rounds: int = 7, repeats: int = 50, cnn: str = "cnn") -> None:
    """``cnn``: the folder of the CNN to time the others beside (``--cnn-folder``: e.g. one trained
    longer; the architecture, not the weights, sets the time)."""
    import onnxruntime as ort
    import torch

    from honing.export import to_onnx

    from honing.artifacts import load_model
    from honing.pipeline import median_forward_ms

    torch.set_num_threads(1)
    # as a model folder runs them (eval mode, batch norm folded into the convolution before it),
    # and as trained ("-unfolded": the modules as they are, the first version of this table)
    loaded = {k: load_model(OUT / (cnn if k == "cnn" else k) / "model") for k in ("cnn", "nas", *extra)
              if (OUT / (cnn if k == "cnn" else k) / "model").exists()}
    extra = [k for k in extra if k in loaded]
    models = {**{k: m.inference_model() for k, m in loaded.items()},
              **{f"{k}-unfolded": m.model.eval() for k, m in loaded.items() if k in ("cnn", "nas")}}
    shape = (1, 28, 28)
    # the folded models in ONNX Runtime too (1 thread): per-layer cost there is a fraction of eager
    # PyTorch's, so the ratio follows the arithmetic more than the number of layers
    sessions = {}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    for k in loaded:
        path = OUT / f"{k}.onnx"
        to_onnx(models[k], path, torch.randn(1, *shape))
        sessions[k] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    table = {}
    for batch in (1, 256):
        x = torch.randn(batch, *shape)
        times = {k: [] for k in models}
        for r in range(rounds):
            for k in (list(models) if r % 2 == 0 else list(models)[::-1]):
                times[k].append(median_forward_ms(models[k], x, repeats=repeats))
        for k in models:
            table.setdefault(k, {})[f"latency_b{batch}_ms"] = round(statistics.median(times[k]), 4)
        times = {k: [] for k in sessions}
        for r in range(rounds):
            for k in (list(sessions) if r % 2 == 0 else list(sessions)[::-1]):
                times[k].append(_ort_ms(sessions[k], x.numpy(), repeats))
        for k in sessions:
            table[k][f"onnxruntime_b{batch}_ms"] = round(statistics.median(times[k]), 4)
    for k in models:
        name = k.removesuffix("-unfolded")
        s = json.loads((OUT / f"{cnn if name == 'cnn' else name}.json").read_text())
        table[k].update(accuracy=s["test"]["accuracy"], parameters=s["parameters"], cpu_s=s["cpu_s"])
    for k, row in table.items():
        print(k, row)
    c = table["cnn"]
    if "nas" in loaded:
        u, v = table["cnn-unfolded"], table["nas-unfolded"]
        print(f"unfolded nas / cnn: latency b1 {v['latency_b1_ms'] / u['latency_b1_ms']:.2f}x, "
              f"b256 {v['latency_b256_ms'] / u['latency_b256_ms']:.2f}x")
    for k in [k for k in ("nas", *extra) if k in loaded]:
        n = table[k]
        print(f"{k} / cnn: parameters {n['parameters'] / c['parameters']:.2f}x, latency b1 "
              f"{n['latency_b1_ms'] / c['latency_b1_ms']:.2f}x (onnxruntime "
              f"{n['onnxruntime_b1_ms'] / c['onnxruntime_b1_ms']:.2f}x), b256 "
              f"{n['latency_b256_ms'] / c['latency_b256_ms']:.2f}x (onnxruntime "
              f"{n['onnxruntime_b256_ms'] / c['onnxruntime_b256_ms']:.2f}x), "
              f"accuracy {100 * (n['accuracy'] - c['accuracy']):+.2f} pt")
    (OUT / "measure.json").write_text(json.dumps(table, indent=1))
    if (OUT / "nas.json").exists():
        _front_svg(json.loads((OUT / "nas.json").read_text())["nas"])


def seeds_table(names: list[str]) -> None:
    """Test accuracy of each network over the seeds trained (``--seed``), beside the CNN's at the
    same seeds (the same split): mean, standard deviation, and the paired difference."""
    def accs(name: str) -> dict[int, float]:
        out = {}
        for path in [OUT / f"{name}.json", *sorted(OUT.glob(f"{name}-seed*.json"))]:
            if path.is_file():
                s = json.loads(path.read_text())
                out[int(s.get("seed", 0))] = s["test"]["accuracy"]
        return out

    cnn = accs("cnn")
    table = {}
    print("| network | seeds | test accuracy, mean (sd) | paired difference from the CNN, mean (min, max) | better than the CNN |")
    print("|---|---|---|---|---|")
    for name in ["cnn", *names]:
        a = accs(name)
        both = sorted(set(a) & set(cnn))
        diffs = [100 * (a[k] - cnn[k]) for k in both]
        sd = statistics.stdev(a.values()) if len(a) > 1 else 0.0
        table[name] = {"seeds": sorted(a), "accuracy": a, "mean": statistics.mean(a.values()), "sd": sd,
                       "paired_pt": diffs}
        d = (f"{statistics.mean(diffs):+.2f} pt ({min(diffs):+.2f}, {max(diffs):+.2f})" if name != "cnn" and diffs
             else "")
        wins = f"{sum(x > 0 for x in diffs)} of {len(diffs)}" if name != "cnn" else ""
        print(f"| {name} | {len(a)} | {statistics.mean(a.values()):.4f} ({sd:.4f}) | {d} | {wins} |")
    (OUT / "seeds.json").write_text(json.dumps(table, indent=1))


def _front_svg(n: dict) -> None:
    """The candidates' validation accuracy against latency (ms, 1 row), the front joined, the
    chosen one and the recipe's own marked."""
    pts = [(f["scores"][1], f["scores"][0]) for f in n["front"]]
    base = (n["baseline"]["scores"][1], n["baseline"]["scores"][0])
    chosen = (n["chosen"]["scores"][1], n["chosen"]["scores"][0])
    xs = [p[0] for p in pts] + [base[0]]
    ys = [p[1] for p in pts] + [base[1]]
    x0, x1, y0, y1 = min(xs) * 0.9, max(xs) * 1.1, min(ys) - 0.01, max(ys) + 0.01
    w, h, m = 520, 360, 50
    sx = lambda v: m + (v - x0) / (x1 - x0) * (w - 2 * m)  # noqa: E731
    sy = lambda v: h - m - (v - y0) / (y1 - y0) * (h - 2 * m)  # noqa: E731
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(pts))
    dots = "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#1f77b4"/>' for x, y in pts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
             f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">latency, ms per row (CPU, 1 thread)</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">validation accuracy '
             f'({n["epochs"]} epochs, {n["train_rows"]} rows)</text>',
             f'<polyline points="{line}" fill="none" stroke="#1f77b4"/>', dots,
             f'<circle cx="{sx(chosen[0]):.1f}" cy="{sy(chosen[1]):.1f}" r="6" fill="none" stroke="#d62728" '
             'stroke-width="2"/>',
             f'<text x="{sx(chosen[0]) + 8:.1f}" y="{sy(chosen[1]) - 8:.1f}" fill="#d62728">chosen (knee)</text>',
             f'<rect x="{sx(base[0]) - 4:.1f}" y="{sy(base[1]) - 4:.1f}" width="8" height="8" fill="#2ca02c"/>',
             f'<text x="{sx(base[0]) + 8:.1f}" y="{sy(base[1]) + 4:.1f}" fill="#2ca02c">the recipe\'s own</text>']
    for v in (x0, (x0 + x1) / 2, x1):
        parts.append(f'<text x="{sx(v):.1f}" y="{h - m + 14}" text-anchor="middle">{v:.3f}</text>')
    for v in (y0, (y0 + y1) / 2, y1):
        parts.append(f'<text x="{m - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    parts.append("</svg>")
    SVG.write_text("".join(parts))
    print(f"front: {len(pts)} points -> {SVG}")


def promoted_svg(kind: str) -> Path:
    """``--front KIND``: the run's candidates, validation accuracy against the latency ratio to
    the CNN that the search measured (1 row), after the proxy training (blue, the 2-objective front
    joined) and, for the promoted ones, after the full training (red, a grey line from each one's
    proxy point); the chosen one circled, the limit dashed. Written to bench/nas_fashion_<kind>.svg."""
    res = json.loads((OUT / kind / "results.json").read_text())
    n = res["nas"]
    lat = n["objectives"].index("latency_ratio")
    cand = {c[0]: (c[1 + lat], c[1]) for c in n["candidates"]}  # index -> (latency ratio, proxy accuracy)
    promoted = [(cand[p["index"]][0], p["full"], p["index"]) for p in n.get("promoted", [])]
    front, best = [], -1.0
    for x, y in sorted(cand.values()):  # the accuracy / latency front of the proxy values
        if y > best:
            front.append((x, y))
            best = y
    limit = (n.get("limits") or {}).get("latency_ratio")
    xs = [x for x, _ in cand.values()] + ([limit] if limit else [])
    ys = [y for _, y in cand.values()] + [y for _, y, _ in promoted]
    x0, x1, y0, y1 = min(xs) - 0.02, max(xs) + 0.02, min(ys) - 0.01, max(ys) + 0.01
    w, h, m = 560, 400, 56
    sx = lambda v: m + (v - x0) / (x1 - x0) * (w - 2 * m)  # noqa: E731
    sy = lambda v: h - m - (v - y0) / (y1 - y0) * (h - 2 * m)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
             f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 14}" text-anchor="middle">latency at 1 row, ratio to the CNN timed beside '
             'it (eager, 1 thread)</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">validation '
             'accuracy</text>',
             f'<text x="{m + 6}" y="{m - 30}" fill="#1f77b4">blue: after {n["epochs"]} epochs on '
             f'{n["train_rows"]:,} rows (the proxy); line: its front</text>',
             f'<text x="{m + 6}" y="{m - 16}" fill="#d62728">red: promoted, after {res["recipe"]["training"]["epochs"]}'
             f' epochs on every row; circled: chosen</text>']
    if limit:
        parts.append(f'<line x1="{sx(limit):.1f}" y1="{m}" x2="{sx(limit):.1f}" y2="{h - m}" stroke="grey" '
                     f'stroke-dasharray="4 3"/><text x="{sx(limit) - 4:.1f}" y="{h - m - 6}" text-anchor="end" '
                     f'fill="grey">nas.limits: {limit}</text>')
    parts.append('<polyline points="' + " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in front)
                 + '" fill="none" stroke="#1f77b4"/>')
    parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#1f77b4"/>' for x, y in cand.values()]
    for x, y, i in promoted:
        parts.append(f'<line x1="{sx(x):.1f}" y1="{sy(cand[i][1]):.1f}" x2="{sx(x):.1f}" y2="{sy(y):.1f}" '
                     'stroke="#bbbbbb"/>')
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="#d62728"/>')
        if i == n["chosen"]["index"]:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="8" fill="none" stroke="#d62728" '
                         'stroke-width="2"/>')
    for v in (x0, (x0 + x1) / 2, x1):
        parts.append(f'<text x="{sx(v):.1f}" y="{h - m + 14}" text-anchor="middle">{v:.2f}</text>')
    for v in (y0, (y0 + y1) / 2, y1):
        parts.append(f'<text x="{m - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    parts.append("</svg>")
    path = HERE / f"nas_fashion_{kind}.svg"
    path.write_text("".join(parts))
    print(f"{kind}: {len(cand)} candidates, {len(promoted)} promoted -> {path}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", choices=("cnn", "nas", "nas-ort", "nas-ort-small", "nas-v3", "nas-v3r",
                                          "nas-v3rp", "nas-v3ra"))
    ap.add_argument("--half-cnn", action="store_true",
                    help="nas-ort*: choose the most accurate candidate within half the CNN's latency (nas.limits)")
    ap.add_argument("--budget-s", type=float, default=900.0)
    ap.add_argument("--fixed", nargs=2, metavar=("NAME", "MODEL_JSON"),
                    help="train one hand-written mobilenet architecture (the model section as JSON)")
    ap.add_argument("--epochs", type=int, default=None, help="with --fixed: training epochs (default: the example's 15)")
    ap.add_argument("--name", default=None, help="with --run: the run's folder and summary name (default: the kind)")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=JSON", dest="settings",
                    help="with --run or --fixed: a recipe field replaced, e.g. data.augment=null (repeatable)")
    ap.add_argument("--seed", type=int, default=0,
                    help="with --run or --fixed: the recipe's seed (split and weights); the folder gets -seedN")
    ap.add_argument("--seeds", nargs="*", default=None, metavar="NAME",
                    help="the test accuracy of these runs over their seeds, beside the CNN's (paired)")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--extra", nargs="*", default=[], help="with --measure: --fixed runs to time beside the two")
    ap.add_argument("--cnn-folder", default="cnn", help="with --measure: the CNN run to time the others beside")
    ap.add_argument("--front", metavar="RUN", default=None,
                    help="draw RUN's candidates and promoted ones (accuracy against latency ratio) to an SVG")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.run:
        run(args.run, args.budget_s, half_cnn=args.half_cnn, seed=args.seed, name=args.name, settings=args.settings)
    if args.fixed:
        run(args.fixed[0], args.budget_s, json.loads(args.fixed[1]), epochs=args.epochs, seed=args.seed,
            settings=args.settings)
    if args.measure:
        measure(args.extra, cnn=args.cnn_folder)
    if args.seeds is not None:
        seeds_table(args.seeds)
    if args.front:
        promoted_svg(args.front)


if __name__ == "__main__":
    main()
