"""The ``compress`` stage end to end: ``honing run`` with compression steps, ``honing compress``
on a saved model, every stage read back, failures recorded, bad steps exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _run_helpers import results_of, tiny, write_recipe

import honing
from honing.cli import main

STEPS = [
    {"prune": {"method": "structured", "amount": 0.5}},
    {"finetune": {"epochs": 1}},
    {"quantize": {"mode": "dynamic"}},
    {"quantize": {"mode": "bf16"}},
    {"quantize": {"mode": "static", "calibration_batches": 2}},
    {"export": {"format": "onnx"}},
    {"export": {"format": "torch-export"}},
]
LATENCY = {"batch_sizes": [1, 16], "repeats": 2, "threads": 1}


def _recipe(steps, **changes):
    return tiny({"tune": None, "model.hidden": [16, 8], "model.dropout": 0.0,
                 "compress": {"steps": steps, "latency": LATENCY}, **changes})


@pytest.fixture(scope="module")
def compressed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    recipe = write_recipe(out / "recipe.yaml", _recipe(STEPS))
    code = main(["run", str(recipe), "--out", str(out / "run"), "--quiet"])
    return code, out / "run"


def test_every_step_is_a_stage_read_back_tested_and_timed(compressed_run):
    code, out = compressed_run
    assert code == 0
    c = results_of(out)["compress"]
    assert c["failed"] == [] and c["metric"] == "accuracy"
    stages = [row["stage"] for row in c["stages"]]
    assert stages == ["uncompressed", "prune structured 0.5", "finetune", "quantize dynamic", "quantize bf16",
                      "quantize static", "export onnx", "export torch-export"]
    base = c["stages"][0]
    assert base["metrics"]["accuracy"] == pytest.approx(results_of(out)["test_metrics"]["accuracy"])
    for row in c["stages"]:
        assert set(row["latency_ms"]) == {"1", "16"} and all(v > 0 for v in row["latency_ms"].values())
        assert row["size_bytes"] > 0 and 0 <= row["metrics"]["accuracy"] <= 1
        if row["step"]:
            vs = row["vs_uncompressed"]
            assert vs["size"] == pytest.approx(row["size_bytes"] / base["size_bytes"], rel=1e-3)
            assert vs["accuracy"] == pytest.approx(row["metrics"]["accuracy"] - base["metrics"]["accuracy"], abs=1e-6)
    by = {row["stage"]: row for row in c["stages"]}
    # structured pruning rebuilt smaller layers: fewer parameters, a smaller file
    assert by["prune structured 0.5"]["parameters"] < base["parameters"] / 2
    assert by["prune structured 0.5"]["size_bytes"] < base["size_bytes"]
    widths = {r["layer"]: (r["in_before"], r["in_after"], r["out_before"], r["out_after"])
              for r in by["prune structured 0.5"]["layers"]}
    # hidden widths halved; the head reads 4 features instead of 8 and keeps its 3 outputs
    assert widths == {"blocks.0.linear": (4, 4, 16, 8), "blocks.1.linear": (16, 8, 8, 4), "head": (8, 4, 3, 3)}
    assert by["prune structured 0.5"]["notes"] == "narrowed: blocks.0.linear 16->8, blocks.1.linear 8->4"
    # the variants are of the pruned, fine-tuned trunk: same parameter count
    trunk = by["finetune"]["parameters"]
    assert all(by[s]["parameters"] == trunk for s in ("quantize dynamic", "quantize bf16", "export onnx"))
    assert by["quantize bf16"]["size_bytes"] < by["finetune"]["size_bytes"]
    assert by["quantize static"]["runtime"] == "onnxruntime" and by["export onnx"]["runtime"] == "onnxruntime"
    assert "ONNX Runtime" in by["export onnx"]["notes"]
    on_disk = json.loads((out / "compress" / "compress.json").read_text())
    assert on_disk["stages"] == c["stages"]


def test_each_stage_folder_predicts_raw_rows_like_its_table_row(compressed_run):
    _, out = compressed_run
    from sklearn.datasets import load_iris

    x = load_iris().data
    reference = honing.load_model(out / "compress" / "02-finetune").predict(x)
    for folder in sorted((out / "compress").iterdir()):
        if not folder.is_dir():
            continue
        loaded = honing.load_model(folder)
        pred = loaded.predict(x)
        assert pred.shape == (150,)
        if folder.name > "02":  # a variant of the fine-tuned trunk: nearly the same predictions
            assert np.mean(pred == reference) >= 0.9, folder.name
    meta = json.loads((out / "compress" / "01-prune-structured-0.5" / "meta.json").read_text())
    assert meta["compression"]["structured"] is True and meta["compression"]["format"] == "torch"
    assert (out / "compress" / "06-export-onnx" / "model.onnx").is_file()
    assert not list((out / "compress").glob("*/*.data"))


def test_the_report_has_the_compression_table(compressed_run):
    _, out = compressed_run
    html = (out / "report.html").read_text()
    assert "Compression" in html and "quantize static" in html and "latency b16 (ms)" in html


def test_honing_compress_on_a_saved_model_and_a_failed_variant_is_recorded(tmp_path, monkeypatch, capsys):
    recipe = _recipe([{"quantize": {"mode": "fp16"}}])
    recipe.pop("compress")
    path = write_recipe(tmp_path / "plain.yaml", recipe)
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "compress" not in results_of(tmp_path / "run") or results_of(tmp_path / "run")["compress"] is None

    from honing import export

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(export, "to_torch_export", broken)
    steps = [{"distill": {"model": {"name": "mlp", "hidden": [4]}, "epochs": 2}},
             {"export": {"format": "torch-export"}}, {"quantize": {"mode": "fp16"}}]
    spec = write_recipe(tmp_path / "compress.yaml", _recipe(steps))
    capsys.readouterr()
    code = main(["compress", str(tmp_path / "run" / "model"), str(spec), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1 and "exporter exploded" in captured.err
    c = json.loads((tmp_path / "run" / "compress" / "compress.json").read_text())
    assert [row["stage"] for row in c["stages"]] == ["uncompressed", "distill", "quantize fp16"]
    assert c["failed"] == [{"step": 2, "stage": "export torch-export", "error": "RuntimeError: exporter exploded"}]
    student = c["stages"][1]
    assert student["parameters"] == 4 * 4 + 4 + 4 * 3 + 3  # the student's architecture, from the step
    assert "quantize fp16" in captured.out


def test_honing_compress_shows_each_training_epoch_of_a_step(tmp_path, capsys):
    recipe = _recipe([{"quantize": {"mode": "fp16"}}])
    recipe.pop("compress")
    path = write_recipe(tmp_path / "plain.yaml", recipe)
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    spec = write_recipe(tmp_path / "compress.yaml",
                        _recipe([{"distill": {"model": {"name": "mlp", "hidden": [4]}, "epochs": 2}}]))
    capsys.readouterr()
    assert main(["compress", str(tmp_path / "run" / "model"), str(spec)]) == 0
    err = capsys.readouterr().err
    # a long distillation is not silent: one line per epoch, named by its step
    assert "compress 1/1: distill: epoch 1/2" in err and "compress 1/1: distill: epoch 2/2" in err


def test_bad_steps_exit_2_with_the_field_path(tmp_path, capsys):
    for steps, words in ([[{"prune": {"sparsity": 1.5}}], "compress.steps.0.prune.sparsity: got 1.5"],
                         [[{"squash": {}}], "compress.steps.0: unknown compression step 'squash'"]):
        path = write_recipe(tmp_path / "bad.yaml", _recipe(steps))
        assert main(["run", str(path), "--out", str(tmp_path / "never"), "--quiet"]) == 2
        assert words in capsys.readouterr().err
        assert not (tmp_path / "never").exists()


def test_honing_compress_needs_a_compress_section(tmp_path, capsys):
    recipe = _recipe(STEPS)
    recipe.pop("compress")
    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["compress", str(tmp_path / "run"), str(path)]) == 2
    assert "no compress section" in capsys.readouterr().err


def test_magnitude_pruning_then_finetune_keeps_the_zeros(tmp_path):
    steps = [{"prune": {"method": "magnitude", "sparsity": 0.6}}, {"finetune": {"epochs": 2}}]
    out = honing.train_once(_recipe(steps), out=tmp_path, progress=False).results["compress"]
    pruned, tuned = out["stages"][1], out["stages"][2]
    per_layer = {r["layer"]: r for r in pruned["layers"]}
    assert set(per_layer) == {"blocks.0.linear", "blocks.1.linear", "head"}
    assert sum(r["zeros"] for r in per_layer.values()) == round(0.6 * sum(r["parameters"] for r in per_layer.values()))
    weights = 4 * 16 + 16 * 8 + 8 * 3  # global scope: all three weight matrices together
    assert f"weight sparsity {100 * round(0.6 * weights) / weights:.1f}% over 3 layers" == pruned["notes"]
    assert tuned["nonzero_parameters"] == pruned["nonzero_parameters"] < 0.6 * pruned["parameters"]
    state = honing.load_model(tmp_path / "compress" / "02-finetune").model.state_dict()
    weights = [v for k, v in state.items() if k.endswith("weight")]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.6 * sum(w.numel() for w in weights))
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    assert isinstance(weights[0], torch.Tensor)


def test_the_other_methods_run_through_the_recipe(tmp_path):
    """ADMM and iterative pruning, distillation with the feature loss, QAT, int8 ONNX, fp16."""
    steps = [
        {"distill": {"model": {"name": "mlp", "hidden": [8]}, "epochs": 2, "feature_weight": 0.5}},
        {"prune": {"method": "admm", "sparsity": 0.5, "admm_epochs": 2, "finetune_epochs": 1}},
        {"prune": {"method": "magnitude", "sparsity": 0.75, "steps": 2, "finetune_epochs": 1, "scope": "layer"}},
        {"quantize": {"mode": "qat", "epochs": 1, "calibration_batches": 2}},
        {"quantize": {"mode": "fp16"}},
        {"quantize": {"mode": "dynamic", "runtime": "onnx"}},
        {"export": {"format": "onnx-int8", "calibration_batches": 2}},
    ]
    out = honing.train_once(_recipe(steps), out=tmp_path, progress=False).results["compress"]
    assert out["failed"] == []
    by = {row["stage"]: row for row in out["stages"]}
    student = by["distill"]["parameters"]
    assert student == 4 * 8 + 8 + 8 * 3 + 3
    assert by["prune admm 0.5"]["nonzero_parameters"] <= student - round(0.5 * (4 * 8 + 8 * 3)) + 1
    layer = by["prune magnitude 0.75"]
    assert layer["notes"].startswith("weight sparsity 7")  # 75% of each layer (rounded per layer)
    assert layer["nonzero_parameters"] < by["prune admm 0.5"]["nonzero_parameters"]
    for stage in ("quantize qat", "quantize dynamic", "export onnx-int8"):
        assert by[stage]["runtime"] == "onnxruntime" and by[stage]["parameters"] == student
    assert by["quantize fp16"]["size_bytes"] < by["prune magnitude 0.75"]["size_bytes"]
    for row in out["stages"][1:]:
        assert row["metrics"]["accuracy"] > 0.5, row["stage"]  # iris: chance is 1/3
    # the int8 settings, and the CPU that chose them, are recorded in the model folder
    int8_folders = sorted((tmp_path / "compress").glob("*int8*")) + sorted((tmp_path / "compress").glob("*dynamic*"))
    assert len(int8_folders) == 2
    for folder in int8_folders:
        int8 = json.loads((folder / "meta.json").read_text())["compression"]["int8"]
        assert int8["reduce_range"] is True and "7-bit" in int8["why"], folder.name
        assert {"avx2", "vnni"} <= set(int8["quantized_on"]) and int8["quantized_on"]["model"], folder.name
