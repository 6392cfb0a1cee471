"""Realistic fake report data and checks on the rendered HTML (balanced tags, PNG pixels)."""

from __future__ import annotations

import math
import random
import struct
import zlib
from html.parser import HTMLParser

from honing.report import ReportData

ERROR_TEXT = "ValueError: bad <script>alert(1)</script> value & more"
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
HIDDEN = [[64], [128, 64], [256, 128, 64]]


def _curve(rng: random.Random, quality: float, epochs: int) -> dict[int, float]:
    return {e: round(quality * (1 - math.exp(-e / 3.0)) + rng.uniform(-0.01, 0.01), 6)
            for e in range(1, epochs + 1)}


def fake_trials(n: int = 30, *, seed: int = 0, objectives: int = 1) -> list[dict]:
    """``n`` trials: mostly complete, some pruned, two failed (one error with a script tag),
    the last one running; a conditional parameter (momentum only with sgd), a list-valued one."""
    rng = random.Random(seed)
    trials = []
    for i in range(n):
        name = rng.choice(["adamw", "sgd"])
        params: dict = {
            "training.optimizer.lr": 10 ** rng.uniform(-4, -1),
            "training.optimizer.name": name,
            "model.hidden": HIDDEN[rng.randrange(3)],
            "model.dropout": round(rng.uniform(0, 0.5), 3),
            "training.batch_size": rng.choice([32, 64, 128]),
            "model.batchnorm": rng.random() < 0.5,
            "training.optimizer.layer_decay": rng.choice([None, 0.8]),
        }
        if name == "sgd":
            params["training.optimizer.momentum"] = round(rng.uniform(0.5, 0.99), 3)
        quality = 0.75 + 0.2 * (1 - abs(math.log10(params["training.optimizer.lr"]) + 2.5) / 2)
        if i == n - 1:
            state = "RUNNING"
        elif i in (7, 19):
            state = "FAIL"
        elif i > 4 and rng.random() < 0.3:
            state = "PRUNED"
        else:
            state = "COMPLETE"
        epochs = {"COMPLETE": 20, "PRUNED": rng.randint(3, 8), "FAIL": 2, "RUNNING": 4}[state]
        inter = _curve(rng, quality, epochs)
        values = None
        if state == "COMPLETE":
            values = [max(inter.values())]
            if objectives > 1:
                values.append(round(1e4 * len(params["model.hidden"]) * rng.uniform(0.5, 2), 1))
            if objectives > 2:
                values.append(round(rng.uniform(1, 10), 3))
        attrs: dict = {"curve": list(inter.values())}
        if state == "FAIL":
            attrs["error"] = (ERROR_TEXT if i == 7 else
                              "Traceback (most recent call last):\n  File \"x.py\", line 3\n"
                              "DivergedError: loss is nan at epoch 2")
        trials.append({"number": i, "state": state, "params": params, "values": values,
                       "intermediate": inter, "user_attrs": attrs,
                       "duration_s": None if state == "RUNNING" else round(rng.uniform(5, 60), 2)})
    return trials


def counts(trials: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        out[t["state"]] = out.get(t["state"], 0) + 1
    return out


def full_data() -> ReportData:
    trials = fake_trials()
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(done, key=lambda t: t["values"][0])
    history = [{"epoch": e, "loss": 2.0 * math.exp(-e / 4) + 0.1, "val_loss": 2.1 * math.exp(-e / 4) + 0.2,
                "accuracy": 0.95 - 0.6 * math.exp(-e / 3), "val_accuracy": 0.92 - 0.6 * math.exp(-e / 3),
                "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * (e - 1) / 15))} for e in range(1, 16)]
    rng = random.Random(1)
    matrix = [[(900 if i == j else rng.randint(0, 30)) for j in range(10)] for i in range(10)]
    return ReportData(
        title="fashion <mlp> & friends", task="classification", metric="val_accuracy",
        directions=["maximize"], best_params=best["params"], best_value=best["values"][0],
        counts=counts(trials), trials=trials,
        param_importances={"training.optimizer.lr": 0.61, "model.hidden": 0.17, "model.dropout": 0.09,
                           "training.optimizer.name": 0.06, "training.batch_size": 0.04,
                           "model.batchnorm": 0.02, "training.optimizer.momentum": 0.01},
        log_params={"training.optimizer.lr"}, final_history=history,
        test_metrics={"loss": 0.3012, "accuracy": 0.8931, "f1_macro": 0.8877},
        confusion_matrix=matrix, class_names=FASHION,
        timings={"search": 512.3, "final": 64.0, "test": 0.8},
        recipe={"name": "fashion-mlp", "seed": 0, "data": {"source": "idx:fashion-mnist"},
                "model": {"name": "mlp", "hidden": [128, 64]},
                "tune": {"n_trials": 30, "space": {"training.optimizer.lr": {"low": 1e-4, "high": 0.1,
                                                                             "log": True}}}},
        versions={"honing": "0.1.0", "torch": "2.13.0", "python": "3.11.7"}, seed=0,
        data_summary={"source": "fashion-mnist", "task": "classification", "target": ["(the source's labels)"],
                      "target_from": "fixed by the source", "rows_read": 70000,
                      "rows": {"train": 51000, "val": 9000, "test": 10000},
                      "test_rows_from": "the source's fixed test set", "dropped": {"duplicates": 12},
                      "classes": {n: {"train": 5100, "val": 900, "test": 1000} for n in FASHION}},
        baselines={"majority": {"metrics": {"accuracy": 0.1, "f1_macro": 0.018}, "what": "the most frequent class"},
                   "logistic_regression": {"metrics": {"accuracy": 0.8412, "f1_macro": 0.8399},
                                           "what": "logistic regression on the prepared inputs"}},
        vs_baseline={"metric": "accuracy", "model": 0.8931, "best_baseline": "logistic_regression",
                     "baseline": 0.8412, "better": True},
        primary_metric="accuracy", warnings=["a warning <b>escaped</b>"],
        extra_tables=[{"title": "Compression", "columns": ["method", "size (MB)", "accuracy"],
                       "rows": [["none", 1.2, 0.8931], ["int8 <quant>", 0.3, 0.8902]]}],
    )


def multi_objective_data(objectives: int = 2) -> ReportData:
    trials = fake_trials(24, seed=3, objectives=objectives)
    done = [t for t in trials if t["state"] == "COMPLETE"]
    front = []
    for t in done:  # maximize accuracy, minimize size: brute-force Pareto front
        a, b = t["values"][0], t["values"][1]
        if not any(u["values"][0] >= a and u["values"][1] <= b and u is not t
                   and (u["values"][0] > a or u["values"][1] < b) for u in done):
            front.append(t["number"])
    names = ["val_accuracy", "parameters", "latency_ms"][:objectives]
    return ReportData(
        title="multi", task="classification", metric="val_accuracy",
        directions=["maximize", "minimize", "minimize"][:objectives], objective_names=names,
        best_params=done[0]["params"], counts=counts(trials), trials=trials,
        pareto=sorted(front), selected_trial=front[0], seed=7,
    )


class TagChecker(HTMLParser):
    """Checks that every non-void tag is closed in order; counts tags and collects text."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        self.ids += [v for k, v in attrs if k == "id" and v]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(html: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.errors == [], checker.errors[:5]
    assert checker.stack == [], f"unclosed tags: {checker.stack}"
    return checker


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes): width, height, rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows
