"""The recipe's ``transfer:`` section through the CLI: a honing model fine-tuned by another run,
searched strategies, few-shot, continual fine-tuning, text with MiniLM and LoRA, the model
folder loaded back, and recipe errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from honing.cli import main
from honing.pipeline import load_model
from honing.recipe import RecipeError, parse_recipe

SOURCE = {
    "name": "digits-source",
    "seed": 0,
    "data": {"source": "sklearn:digits"},
    "model": {"name": "mlp", "hidden": [32, 16]},
    "training": {"epochs": 8, "batch_size": 64, "threads": 1},
}


def _run(tmp: Path, name: str, recipe: dict[str, Any]) -> tuple[int, Path]:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    out = tmp / name
    return main(["run", str(path), "--out", str(out), "--quiet", "--threads", "1"]), out


def _results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code, out = _run(tmp_path_factory.mktemp("source"), "source", SOURCE)
    assert code == 0
    return out


def _ft(source: Path, **transfer: Any) -> dict[str, Any]:
    return {"name": "ft", "seed": 0, "data": {"source": "sklearn:digits"},
            "transfer": {"from": f"honing:{source}", **transfer},
            "training": {"epochs": 5, "batch_size": 64, "threads": 1, "optimizer": {"name": "adamw", "lr": 0.01}}}


def test_recipe_round_trips_with_the_from_alias(source_run: Path) -> None:
    rec = parse_recipe(_ft(source_run, strategy="lora", lora={"r": 4, "targets": ["linear"]}, layer_decay=0.7,
                           head={"hidden": [16], "dropout": 0.1}))
    raw = rec.to_dict()
    assert raw["transfer"]["from"] == f"honing:{source_run}" and "from_" not in raw["transfer"]
    assert parse_recipe(raw) == rec
    again = rec.with_params({"transfer.lora.r": 16, "transfer.from": f"honing:{source_run}/model"})
    assert again.transfer.lora.r == 16 and again.transfer.source.endswith("/model")


def test_search_over_strategies_then_the_saved_model_loads_back(source_run: Path, tmp_path: Path) -> None:
    recipe = _ft(source_run, strategy="full")
    recipe["tune"] = {"n_trials": 3, "sampler": "grid", "pruner": "none",
                      "space": {"transfer.strategy": {"grid": ["probe", "gradual", "full"]},
                                "transfer.layer_decay": {"grid": [0.5]}}}
    code, out = _run(tmp_path, "search", recipe)
    assert code == 0
    res = _results(out)
    assert res["trials"]["complete"] == 3
    assert res["transfer"]["strategy"] == res["best_params"]["transfer.strategy"]
    assert res["test_metrics"]["accuracy"] > 0.85
    loaded = load_model(out)
    assert type(loaded.model).__name__ == "TransferModel"
    again = loaded.evaluate("sklearn:digits")
    assert again["accuracy"] > 0.85


def test_probe_keeps_the_source_weights(source_run: Path, tmp_path: Path) -> None:
    code, out = _run(tmp_path, "probe", _ft(source_run, strategy="probe"))
    assert code == 0
    src = load_file(str(source_run / "model" / "model.safetensors"))
    new = load_file(str(out / "model" / "model.safetensors"))
    for name in ("blocks.0.linear.weight", "blocks.1.linear.bias"):
        assert (new[f"backbone.module.{name}"] == src[name]).all()
    assert (new["backbone.old_head.weight"] == src["head.weight"]).all()
    res = _results(out)
    assert res["transfer"]["trainable_parameters"] == 16 * 10 + 10


def test_a_honing_source_scales_new_rows_with_its_own_preprocessing(source_run: Path) -> None:
    from honing.pipeline._build import load_data

    src = json.loads((source_run / "model" / "preprocessor.json").read_text())
    data = load_data(parse_recipe(_ft(source_run, strategy="probe")))
    assert data.info["preprocessor"] == "given"
    assert data.preprocessor.state_dict() == src
    refit = load_data(parse_recipe(_ft(source_run, strategy="probe", preprocessing="refit")))
    assert "preprocessor" not in refit.info
    # another split of the same rows: refit statistics differ from the source's
    other = _ft(source_run, strategy="probe", preprocessing="refit")
    other["seed"] = 3
    assert load_data(parse_recipe(other)).preprocessor.state_dict() != src


def test_few_shot_recipe_trains_nothing_and_beats_chance(source_run: Path, tmp_path: Path) -> None:
    code, out = _run(tmp_path, "few", _ft(source_run, strategy="few_shot", shots=5))
    assert code == 0
    res = _results(out)
    assert res["final_model"].startswith("few-shot prototypes of 5")
    assert res["test_metrics"]["accuracy"] > 0.6  # 10 classes: chance is 0.1
    assert load_model(out).evaluate("sklearn:digits")["accuracy"] > 0.6


def test_continual_fine_tuning_reports_the_old_task(source_run: Path, tmp_path: Path) -> None:
    recipe = _ft(source_run, strategy="full", continual={"replay": 100, "ewc": 10.0})
    recipe["seed"] = 1  # a new task: another split of the digits
    code, out = _run(tmp_path, "continual", recipe)
    assert code == 0
    old = _results(out)["transfer"]["old_task"]
    assert old["source"] == "sklearn:digits"
    assert 0.8 < old["before"] <= 1.0 and 0.0 <= old["after"] <= 1.0
    assert old["forgetting"] == pytest.approx(old["before"] - old["after"], abs=1e-6)
    report = (out / "report.html").read_text()
    assert "Fine-tuning" in report and "forgetting (points)" in report and f"{old['before']:.4f}" in report


def test_text_csv_with_minilm_lora_saves_a_self_contained_merged_model(tmp_path: Path) -> None:
    good = ["a wonderful, moving film", "brilliant acting and a great story", "a joy from start to finish",
            "funny, warm and smart", "beautifully made and deeply felt"]
    bad = ["a dull, lifeless mess", "boring and far too long", "the worst film of the year",
           "a tedious waste of time", "clumsy, loud and empty"]
    rows = [(t, "pos") for t in good * 3] + [(t, "neg") for t in bad * 3]
    csv = tmp_path / "reviews.csv"
    csv.write_text("review,label\n" + "".join(f'"{t} {i}",{y}\n' for i, (t, y) in enumerate(rows)))
    recipe = {"name": "text", "seed": 0,
              "data": {"source": f"text-csv:{csv}", "text_column": "review", "max_length": 16,
                       "val_size": 0.2, "test_size": 0.2},
              "transfer": {"from": "minilm", "strategy": "lora", "lora": {"r": 2, "targets": ["query", "value"]}},
              "training": {"epochs": 1, "batch_size": 8, "threads": 1, "optimizer": {"name": "adamw", "lr": 1.0e-3}}}
    code, out = _run(tmp_path, "text", recipe)
    assert code == 0
    res = _results(out)
    assert res["transfer"]["trainable_parameters"] < 0.05 * res["transfer"]["parameters"]
    folder = out / "model"
    assert (folder / "tokenizer" / "tokenizer.json").is_file() and (folder / "encoder" / "config.json").is_file()
    weights = load_file(str(folder / "model.safetensors"))
    assert not [k for k in weights if "lora_" in k]  # merged before saving
    loaded = load_model(out)
    probs = loaded.predict_proba(["a wonderful film", "a dull mess"])
    assert probs.shape == (2, 2)
    assert sorted(loaded.class_names) == ["neg", "pos"]
    # honing predict on a table of texts: the model's text column (review), the label column ignored
    from honing.artifacts import predict_file

    (tmp_path / "new.csv").write_text('review,label\n"a wonderful film",pos\n"a dull mess, NA",neg\n')
    assert predict_file(out, tmp_path / "new.csv", out=str(tmp_path / "pred.csv")) == 2
    lines = (tmp_path / "pred.csv").read_text().splitlines()
    assert lines[0] == "prediction" and lines[1:] == list(loaded.predict(["a wonderful film", "a dull mess, NA"]))


def test_recipe_errors_name_the_transfer_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def errors(recipe: dict[str, Any]) -> str:
        with pytest.raises(RecipeError) as info:
            parse_recipe(recipe)
        return str(info.value)

    base = {"data": {"source": "sklearn:digits"}}
    assert "transfer.strategy" in errors({**base, "transfer": {"from": "minilm", "strategy": "lorra"}})
    assert "transfer.freeze_blocks" in errors({**base, "transfer": {"from": "honing:x", "strategy": "freeze"}})
    assert "transfer.from" in errors({**base, "transfer": {"from": "resnet50"}})
    assert "text encoder" in errors({**base, "transfer": {"from": "minilm"}})
    assert "transfer.continual" in errors({**base, "transfer": {"from": "efficientnet-lite0", "continual": {"replay": 5}}})
    text = errors({"data": {"source": "rotten-tomatoes"}, "model": {"name": "mlp"}})
    assert "text encoder" in text
    bad = {**base, "transfer": {"from": "honing:x"}, "training": {"epochs": 2},
           "tune": {"space": {"transfer.bogus": {"choice": [1, 2]}}}}
    assert "transfer.bogus" in errors(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({**base, "transfer": {"from": f"honing:{tmp_path / 'nowhere'}"}}))
    assert main(["run", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert "not a honing model folder" in capsys.readouterr().err and not (tmp_path / "out").exists()
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**base, "transfer": {"from": "minilm", "strategy": "lorra"}}))
    assert main(["validate", str(path)]) == 2
    assert "transfer.strategy" in capsys.readouterr().err


def test_efficientnet_probe_on_small_images_through_a_recipe(tmp_path: Path) -> None:
    recipe = {"name": "effnet", "seed": 0,
              "data": {"source": "sklearn:digits", "image": True, "scale": "minmax", "limit": 300},
              "transfer": {"from": "efficientnet-lite0", "strategy": "probe", "image_size": 32},
              "training": {"epochs": 2, "batch_size": 32, "threads": 1, "optimizer": {"name": "adamw", "lr": 0.01}}}
    code, out = _run(tmp_path, "effnet", recipe)
    assert code == 0
    res = _results(out)
    assert res["transfer"]["trainable_parameters"] == 1280 * 10 + 10  # the new linear head only
    assert res["test_metrics"]["accuracy"] > 0.3  # 10 classes, 45 test images, 2 epochs of a probe
    loaded = load_model(out)
    assert loaded.model.backbone.image_size == 32
    import torch

    assert loaded.forward_prepared(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_saving_a_lora_model_leaves_the_callers_model_unmerged(source_run: Path, tmp_path: Path) -> None:
    """save_model writes merged weights from a copy: the model still trains (or compresses) with
    its adapters afterwards, and the saved folder loads to the same outputs."""
    from honing.artifacts import load_model, save_model
    from honing.pipeline._build import build_model, load_data
    from honing.transfer import has_lora

    rec = parse_recipe(_ft(source_run, strategy="lora", lora={"r": 4}))
    data = load_data(rec)
    model = build_model(rec, data, seed=0).model
    assert has_lora(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    save_model(tmp_path / "m", model, recipe=rec.to_dict(), preprocessor=data.preprocessor, task=data.task,
               input_shape=data.input_shape, num_outputs=data.num_outputs, class_names=data.class_names)
    assert has_lora(model) and set(model.state_dict()) == set(before)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    loaded = load_model(tmp_path / "m")
    assert not has_lora(loaded.model)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded.model(data.test.x[:16]), model(data.test.x[:16]), atol=1e-5)
