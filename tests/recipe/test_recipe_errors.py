"""Each bad recipe raises a RecipeError naming the field path and the line it is on."""

from __future__ import annotations

import pickle

import pytest
from _recipe_helpers import BASE, errors_of, line_of

from honing.recipe import Problem, RecipeError, parse_recipe

# (id, text of BASE replaced, by, expected path, snippet of the offending line, words the message has)
CASES = [
    ("unknown top key", "seed: 0", "seed: 0\nsede: 1", "sede", "sede:", ["did you mean 'seed'", "allowed:"]),
    ("unknown nested key", "  val_size: 0.2", "  val_size: 0.2\n  vals: 3", "data.vals", "vals:", ["unknown key"]),
    ("wrong type", "{name: adam, lr: 0.01}", "{name: adam, lr: abc}", "training.optimizer.lr", "optimizer:",
     ["got 'abc'; allowed: a number > 0 or null"]),
    ("wrong int", "epochs: 5", "epochs: 2.5", "training.epochs", "epochs:", ["got 2.5; allowed: an integer >= 1"]),
    ("bad literal", "  test_size: 0.2", "  test_size: 0.2\n  scale: zscore", "data.scale", "scale:",
     ["'standard', 'minmax' or null"]),
    ("low > high", "{float: [1.0e-3, 1.0e-1], log: true}", "{float: [1.0e-1, 1.0e-3]}",
     "tune.space.training.optimizer.lr", "training.optimizer.lr:", ["greater than high"]),
    ("empty choice", "{choice: [[8], [16, 8]]}", "{choice: []}", "tune.space.model.hidden", "model.hidden:",
     ["empty"]),
    ("log with low 0", "{float: [1.0e-3, 1.0e-1], log: true}", "{float: [0, 1.0e-1], log: true}",
     "tune.space.training.optimizer.lr", "training.optimizer.lr:", ["log"]),
    ("python tag", "seed: 0", "seed: !!python/object/apply:os.system [echo hi]", "seed", "seed:",
     ["tag", "python/object/apply:os.system"]),
    ("yaml syntax", "  hidden: [16]", "  hidden: [16", "", "dropout:", ["invalid YAML"]),
    ("duplicate key", "  dropout: 0.1", "  dropout: 0.1\n  dropout: 0.2", "model.dropout", "dropout: 0.2",
     ["duplicate key"]),
    ("missing data file", "source: sklearn:iris", "source: csv:no/such.csv", "data.source", "source:",
     ["no such file", "such.csv"]),
    ("unknown sklearn set", "source: sklearn:iris", "source: sklearn:irs", "data.source", "source:",
     ["did you mean 'iris'"]),
    ("unknown model argument", "  dropout: 0.1", "  dropout: 0.1\n  widths: [3]", "model.widths", "widths:",
     ["unknown argument 'widths' for model 'mlp'", "hidden"]),
    ("bad model argument value", "dropout: 0.1", "dropout: 1.5", "model.dropout", "dropout:", ["got 1.5"]),
    ("bad model argument type", "hidden: [16]", "hidden: sixteen", "model.hidden", "hidden:",
     ["allowed: a list of integers"]),
    ("unknown model", "name: mlp", "name: mpl", "model.name", "name: mpl", ["did you mean 'mlp'"]),
    ("unknown optimizer name", "{name: adam, lr: 0.01}", "{name: adamm, lr: 0.01}", "training.optimizer.name",
     "optimizer:", ["unknown optimizer 'adamm'", "did you mean", "'adam'", "sgd"]),
    ("unknown optimizer argument", "{name: adam, lr: 0.01}", "{name: adam, lr: 0.01, momentum: 0.9}",
     "training.optimizer.momentum", "optimizer:", ["unknown argument 'momentum' for optimizer 'adam'", "betas"]),
    ("bad optimizer value", "{name: adam, lr: 0.01}", "{name: adam, lr: 0.01, betas: [0.9, 1.5]}",
     "training.optimizer.betas", "optimizer:", ["1.5"]),
    ("unknown schedule argument", "  batch_size: 16", "  batch_size: 16\n  schedule: {name: cosine, gamma: 2}",
     "training.schedule.gamma", "schedule:", ["unknown argument 'gamma' for schedule 'cosine'", "min_lr"]),
    ("unknown loss", "  batch_size: 16", "  batch_size: 16\n  loss: crossentropy", "training.loss", "loss:",
     ["did you mean 'cross_entropy'"]),
    ("bad loss option", "  batch_size: 16", "  batch_size: 16\n  loss: {name: focal, gamma: -1}",
     "training.loss.gamma", "loss:", ["gamma"]),
    ("bad monitor", "monitor: val_loss", "monitor: accuracy", "training.early_stopping.monitor",
     "early_stopping:", ["did you mean 'val_accuracy'"]),
    ("unknown augmentation", "  test_size: 0.2", "  test_size: 0.2\n  augment: {rotate: 10}", "data.augment.rotate",
     "augment:", ["did you mean 'rotation'"]),
    ("grid with a continuous param", "sampler: tpe", "sampler: grid", "tune.space.training.optimizer.lr",
     "training.optimizer.lr:", ["sampler grid", "float without step"]),
    ("unknown space path", "    model.hidden:", "    model.hiden:", "tune.space.model.hiden", "model.hiden:",
     ["unknown path 'model.hiden'", "did you mean 'model.hidden'", "model (mlp) allows"]),
    ("unknown space section field", "    model.hidden:", "    training.epoch: {int: [1, 3]}\n    model.hidden:",
     "tune.space.training.epoch", "training.epoch:", ["training allows", "did you mean 'training.epochs'"]),
    ("space value not allowed", "{choice: [[8], [16, 8]]}", "{choice: [[8], [0]]}", "tune.space.model.hidden",
     "model.hidden:", ["[0]", "model.hidden"]),
    ("unknown sampler", "sampler: tpe", "sampler: tpee", "tune.sampler", "sampler:", ["did you mean 'tpe'"]),
    ("one objective", "  metric: val_accuracy", "  objectives: [{metric: val_accuracy}]", "tune.objectives",
     "objectives:", ["at least 2"]),
    ("bad objective metric", "  metric: val_accuracy", "  objectives: [{metric: val_accuracy}, {metric: size}]",
     "tune.objectives.1.metric", "objectives:", ["params", "latency_ms"]),
    ("best_trial with cv", "  metric: val_accuracy", "  metric: val_accuracy\n  cv: 3\n  final: best_trial",
     "tune.final", "final:", ["retrain"]),
    ("cv of 1", "  metric: val_accuracy", "  metric: val_accuracy\n  cv: 1", "tune.cv", "cv:", [">= 2"]),
    ("bad name", "name: tiny", "name: my run", "name", "name: my run", ["letters, digits"]),
    ("metric not computed", "seed: 0", "seed: 0\nevaluate: {metrics: [f1_macro]}", "tune.metric",
     "  metric: val_accuracy", ["not computed", "val_f1_macro"]),
    ("metric of another task", "  test_size: 0.2", "  test_size: 0.2\n  task: regression", "tune.metric",
     "  metric: val_accuracy", ["a classification metric", "regression"]),
    ("direction with objectives", "  metric: val_accuracy",
     "  direction: maximize\n  objectives: [{metric: val_accuracy}, {metric: params}]", "tune.direction",
     "direction:", ["each objective"]),
    ("search without a validation split", "  val_size: 0.2", "  val_size: 0", "data.val_size", "val_size:",
     ["tune.cv"]),
    ("no budget", "n_trials: 4", "n_trials: null", "tune.n_trials", "n_trials:", ["timeout"]),
    ("both gradient clips", "  batch_size: 16", "  batch_size: 16\n  grad_clip_norm: 1.0\n  grad_clip_value: 0.5",
     "training.grad_clip_value", "grad_clip_value:", ["one of them"]),
    ("bad device", "  batch_size: 16", "  batch_size: 16\n  device: gpu0", "training.device", "device:", ["cuda"]),
    ("unknown evaluate metric", "seed: 0", "seed: 0\nevaluate: {metrics: [accuracy, auc]}", "evaluate.metrics.1",
     "evaluate:", ["unknown metric 'auc'"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_recipe_names_path_and_line(case: tuple) -> None:
    _, old, new, path, snippet, words = case
    assert old in BASE
    text = BASE.replace(old, new, 1)
    err = errors_of(text)
    line = line_of(text, snippet)
    prefix = f"r.yaml:{line}: {path}: " if path else f"r.yaml:{line}: "
    text_of_error = str(err)
    assert any(row.startswith(prefix) for row in text_of_error.splitlines()), text_of_error
    problem = next(p for p in err.problems if p.path == path)
    assert problem.line == line
    for word in words:
        assert word in problem.message, problem.message


def test_every_problem_is_reported_at_once() -> None:
    text = BASE.replace("epochs: 5", "epochs: -1").replace("batch_size: 16", "batch_size: big")
    text = text.replace("hidden: [16]", "hidden: [16]\n  colour: red")
    err = errors_of(text)
    assert [p.path for p in err.problems] == ["model.colour", "training.epochs", "training.batch_size"]
    assert [p.line for p in err.problems] == [line_of(text, "colour"), line_of(text, "epochs"),
                                             line_of(text, "batch_size")]
    assert len(str(err).splitlines()) == 3


def test_error_from_a_mapping_has_no_line() -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe({"data": {"source": "sklearn:iris"}, "model": {"name": "mlp", "depth": 3}}, source="x")
    assert info.value.problems == [info.value.problems[0]]
    problem = info.value.problems[0]
    assert problem.path == "model.depth" and problem.line is None
    assert str(info.value).startswith("x: model.depth: unknown argument 'depth'")


def test_missing_sections_and_non_mapping_documents() -> None:
    err = errors_of("name: x\n")
    assert {p.path for p in err.problems} == {"data"}
    assert all("required" in p.message for p in err.problems)
    # a model section or a transfer section: neither is an error once the data section is valid
    err = errors_of("name: x\ndata: {source: 'sklearn:iris'}\n")
    assert [p.path for p in err.problems] == ["model"]
    assert "model section" in err.problems[0].message and "transfer section" in err.problems[0].message
    both = errors_of("data: {source: 'sklearn:iris'}\nmodel: {name: mlp}\ntransfer: {from: minilm}\n")
    assert "beside a transfer section" in str(both)
    assert "a mapping" in str(errors_of("- a\n- b\n"))
    assert "empty" in str(errors_of(""))


def test_problem_format_and_pickling() -> None:
    err = RecipeError([Problem("training.optimizer.lr", 12, "got 'abc'; allowed: a number")], source="recipe.yaml")
    assert str(err) == "recipe.yaml:12: training.optimizer.lr: got 'abc'; allowed: a number"
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == err.problems and str(again) == str(err)
