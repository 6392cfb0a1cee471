"""Generated malformed recipes (seeded, fast): each one exits 2 with a message, writes nothing,
runs nothing (a canary file that a YAML tag would create stays absent) and shows no traceback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from honing.cli import main

GOOD = """\
name: fuzz
seed: 0
data: {source: sklearn:iris, val_size: 0.2, test_size: 0.2}
model: {name: mlp, hidden: [8], dropout: 0.1}
training:
  epochs: 2
  batch_size: 16
  optimizer: {name: adamw, lr: 0.003}
tune:
  n_trials: 2
  sampler: random
  space:
    training.optimizer.lr: {float: [1.0e-4, 1.0e-2], log: true}
"""

# bad values for fields, by dotted path: numbers out of range, wrong types, unknown names
BAD_VALUES = {
    "seed": [-1, 2**70, "zero", 1.5, [0]],
    "name": ["has space", "", "../escape", 7],
    "data.source": ["nosuch:thing", "csv:/no/such/file.csv", 3, ""],
    "data.val_size": [-0.1, 1.5, "half"],
    "data.test_size": [2, -1, [0.2]],
    "model.name": ["nosuch", 3, ""],
    "model.hidden": ["wide", [-3], [0], {"a": 1}],
    "model.dropout": [1.5, -0.2, "x"],
    "training.epochs": [0, -5, 1e30, "many", 10**12],
    "training.batch_size": [0, 1e30, -1, 2**40],
    "training.optimizer.lr": ["fast", -1.0, [1]],
    "training.optimizer.name": ["nosuch", 5],
    "tune.n_trials": [0, -1, 10**9, "all"],
    "tune.sampler": ["nosuch", 4, {"nome": "tpe"}],
    "tune.pruner": ["nosuch", []],
    "tune.cv": [1, 10**6, "k"],
    "tune.space": [{"training.epochs": {"int": [1, 10**30]}},
                   {"training.optimizer.lr": {"float": [1.0, 0.1]}},
                   {"model.hidden": {"choice": []}},
                   {"nosuch.field": {"float": [0, 1]}},
                   {"training.batch_size": {"int": [1, 10**30]}},
                   "lr"],
}

# whole documents: syntax, tags, bombs, nesting, sizes, shapes
DOCUMENTS = [
    "", "---\n", "[1, 2, 3]\n", "just a string\n", "name: [unclosed\n", "a: b: c\n", "\t- tab\n", "\x00\x01\x02\n",
    "name: x\nname: y\n",
    "!!python/object/apply:os.system ['touch {canary}']\n",
    "name: !!python/object/apply:os.system ['touch {canary}']\n",
    "data: !!python/object/new:subprocess.Popen [['touch', '{canary}']]\n",
    "name: !!binary aGVsbG8=\nseed: !!set {{a, b}}\n",
    "a: &a [1, *a]\n",
    "name: x\n" + "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdef", "bcdefg")),
    "name: x\nn: " + "[" * 5000 + "]" * 5000 + "\n",
    "name: x\nn: " + "{a: " * 200 + "1" + "}" * 200 + "\n",
    "name: x\npad: '" + "x" * (2 << 20) + "'\n",
]


def _cases() -> list[tuple[str, str]]:
    rng = random.Random(0)
    out = [(f"document {i}", doc) for i, doc in enumerate(DOCUMENTS)]
    for path, values in BAD_VALUES.items():
        for value in values:
            recipe = yaml.safe_load(GOOD)
            *parents, key = path.split(".")
            node = recipe
            for part in parents:
                node = node[part]
            node[key] = value
            out.append((f"{path}={str(value)[:30]}", yaml.safe_dump(recipe)))
    good_lines = GOOD.splitlines(keepends=True)
    while len(out) < 130:  # seeded damage of the good recipe: a line cut, swapped or corrupted
        lines = list(good_lines)
        kind = rng.choice(["cut", "indent", "colon", "garbage", "unknown"])
        i = rng.randrange(len(lines))
        if kind == "cut":
            lines[i] = lines[i][: rng.randrange(1, max(2, len(lines[i]) - 1))] + ": ["
        elif kind == "indent":
            lines[i] = " " * rng.randrange(1, 4) + lines[i] + "  bad: [\n"
        elif kind == "colon":
            lines[i] = lines[i].replace(":", "", 1).rstrip("\n") + " ]]\n"
        elif kind == "garbage":
            lines[i] = "".join(chr(rng.randrange(33, 127)) for _ in range(rng.randrange(5, 30))) + ": {\n"
        else:
            section = rng.choice(["data", "model", "training", "tune"])
            lines.append(f"{section}_typo_{rng.randrange(1000)}: 1\n")
        text = "".join(lines)
        try:
            yaml.safe_load(text)
            from honing.recipe import parse_recipe

            parse_recipe(text)
            continue  # still a valid recipe: not a malformed case
        except Exception:
            out.append((f"damaged {len(out)} ({kind})", text))
    return out


CASES = _cases()


def test_the_fuzz_suite_has_at_least_100_malformed_recipes():
    assert len(CASES) >= 100


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_a_malformed_recipe_exits_2_and_writes_and_runs_nothing(tmp_path, capsys, index):
    canary = tmp_path / "canary"
    _, text = CASES[index]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text.replace("{canary}", str(canary)), encoding="utf-8", errors="surrogateescape")
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip() and "Traceback" not in err
    assert not out.exists() and not canary.exists() and not Path("runs/fuzz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]
