"""The ``compress`` section: the two forms, defaults filled, order of steps, errors with paths and lines."""

from __future__ import annotations

import pytest
from _recipe_helpers import BASE, errors_of, line_of

from honing.recipe import parse_recipe


def _with(block: str) -> str:
    return BASE + block


LIST_FORM = """\
compress:
  - distill: {model: {name: mlp, hidden: [4]}, feature_weight: 0.5}
  - prune: {method: structured, amount: 0.25}
  - finetune
  - quantize: {mode: dynamic}
  - quantize: {mode: bf16}
  - export: {format: onnx-int8, quantization: dynamic}
"""


def test_list_form_fills_every_default_and_round_trips() -> None:
    recipe = parse_recipe(_with(LIST_FORM))
    c = recipe.to_dict()["compress"]
    names = [next(iter(s)) for s in c["steps"]]
    assert names == ["distill", "prune", "finetune", "quantize", "quantize", "export"]
    distill, prune, finetune = (next(iter(s.values())) for s in c["steps"][:3])
    assert distill["temperature"] == 2.0 and distill["alpha"] == 0.9 and distill["model"]["hidden"] == [4]
    assert prune == {**prune, "method": "structured", "amount": 0.25, "sparsity": None, "steps": 1}
    assert finetune == {"epochs": 3, "lr": None}
    assert c["latency"] == {"batch_sizes": [1, 256], "repeats": 20, "rounds": 3, "threads": 1}
    assert parse_recipe(recipe.to_dict()) == recipe


def test_mapping_form_is_the_same_recipe() -> None:
    mapping = """\
compress:
  steps:
    - prune: {sparsity: 0.6}
    - export
  latency: {batch_sizes: [1, 32], repeats: 5}
"""
    c = parse_recipe(_with(mapping)).to_dict()["compress"]
    assert c["steps"][0]["prune"]["method"] == "magnitude" and c["steps"][0]["prune"]["sparsity"] == 0.6
    assert c["steps"][1] == {"export": {"format": "onnx", "quantization": "static", "tolerance": 1e-4,
                                        "calibration_batches": 8}}
    assert c["latency"]["batch_sizes"] == [1, 32] and c["latency"]["repeats"] == 5


def test_no_compress_section_is_none() -> None:
    assert parse_recipe(BASE).compress is None


@pytest.mark.parametrize("step, path, words", [
    ("- prun: {}", "compress.steps.0", "unknown compression step 'prun' (did you mean 'prune'?)"),
    ("- prune: {sparsity: 1.5}", "compress.steps.0.prune.sparsity", "got 1.5; allowed: a number >= 0 and < 1"),
    ("- prune: {method: structured, amount: 1.0}", "compress.steps.0.prune.amount", "got 1.0"),
    ("- prune: {method: structured, sparsity: 0.5}", "compress.steps.0.prune.sparsity", "takes amount"),
    ("- prune: {amount: 0.5}", "compress.steps.0.prune.amount", "takes sparsity"),
    ("- quantize: {mode: int4}", "compress.steps.0.quantize.mode", "'dynamic', 'static', 'qat', 'fp16', 'bf16'"),
    ("- quantize: {mode: static, runtime: torch}", "compress.steps.0.quantize.runtime", "ONNX Runtime"),
    ("- export: {format: tflite}", "compress.steps.0.export.format", "'onnx', 'onnx-int8', 'torch-export'"),
    ("- distill: {temperature: 2}", "compress.steps.0.distill.model", "missing"),
    ("- distill: {model: {name: mlp, widths: [4]}}", "compress.steps.0.distill.model.widths", "unknown argument"),
    ("- finetune: {epochs: 0}", "compress.steps.0.finetune.epochs", "got 0"),
    ("- finetune: {epoch: 2}", "compress.steps.0.finetune.epoch", "unknown key 'epoch'"),
    ("- {prune: {}, export: {}}", "compress.steps.0", "a one-key mapping"),
    ("- quantize: fast", "compress.steps.0.quantize", "a mapping of options"),
])
def test_bad_steps_name_the_field_and_the_line(step: str, path: str, words: str) -> None:
    text = _with(f"compress:\n  - finetune\n  {step}\n".replace("compress.steps.0", "compress.steps.1"))
    err = errors_of(text)
    want = path.replace("steps.0", "steps.1")
    problem = next((p for p in err.problems if p.path == want), None)
    assert problem is not None, [p.path for p in err.problems]
    assert words in problem.message
    assert problem.line == line_of(text, step.split(":")[0].strip() if step.startswith("- {") else step)


def test_training_steps_after_a_variant_are_refused() -> None:
    err = errors_of(_with("compress:\n  - quantize: {mode: dynamic}\n  - finetune\n"))
    assert [p.path for p in err.problems] == ["compress.steps.1"]
    assert "got 'finetune' after 'quantize' (step 0)" in err.problems[0].message


def test_empty_steps_are_refused() -> None:
    err = errors_of(_with("compress: []\n"))
    assert err.problems[0].path == "compress.steps" and "got []" in err.problems[0].message


def test_changing_only_compress_keeps_the_study_folder(tmp_path) -> None:
    """Adding compression steps to a finished run's recipe is not 'a different recipe'."""
    import json

    from honing.pipeline._stage_search import check_same_study as _check_same_study

    r = parse_recipe(BASE).to_dict()
    _check_same_study(tmp_path, r)
    _check_same_study(tmp_path, parse_recipe(_with(LIST_FORM)).to_dict())
    assert "compress" in json.loads((tmp_path / "recipe.json").read_text())
