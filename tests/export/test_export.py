"""ONNX export checked against PyTorch, onnxruntime models, int8 ONNX, torch.export programs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from honing._core import ConfigError
from honing.export import (
    ExportMismatch,
    OnnxModel,
    check_onnx,
    load_torch_export,
    quantize_onnx,
    to_onnx,
    to_torch_export,
)
from honing.models import count_parameters, create_model


SHAPES = {"mlp": (20,), "cnn": (1, 12, 12)}


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "mlp":
        return create_model("mlp", input_shape=(20,), num_outputs=3, hidden=[32])
    return create_model("cnn", input_shape=(1, 12, 12), num_outputs=4, channels=[8, 16], batch_norm=True)


def _x(name: str, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *SHAPES[name], generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def exported(request, tmp_path_factory):
    """(name, model with non-trivial batch-norm statistics, export result, folder)."""
    name = request.param
    model = _model(name)
    if name == "cnn":  # move the running statistics off their initial values
        with torch.no_grad():
            model.train()(_x(name, 64, seed=7) * 2 + 1)
    model.train()
    folder = tmp_path_factory.mktemp(name)
    example = _x(name, 1 if name == "mlp" else 5)  # batch 1: the exporter must still leave batch dynamic
    result = to_onnx(model, folder / f"{name}.onnx", example)
    return name, model, result, folder


def test_onnx_matches_pytorch_at_any_batch_size(exported) -> None:
    name, model, result, folder = exported
    assert model.training  # restored after the export
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert sorted(p.name for p in folder.iterdir()) == [f"{name}.onnx"]  # one file: no .data, no temp
    assert result.size_bytes == result.path.stat().st_size > 0
    onnx_model = OnnxModel(result.path)
    assert onnx_model.eval() is onnx_model and onnx_model.size_bytes == result.size_bytes
    x = _x(name, 17, seed=1)
    out = onnx_model(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape[0] == 17
    with torch.no_grad():
        torch.testing.assert_close(out, model.eval()(x), atol=1e-4, rtol=1e-3)
    model.train()
    assert onnx_model(x.numpy()).shape == out.shape  # numpy input too
    if name == "mlp":
        assert onnx_model.num_parameters == count_parameters(model)
    else:  # the exporter folds each batch norm into its convolution
        assert 0 < onnx_model.num_parameters <= count_parameters(model)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_quantized_onnx_is_smaller_and_agrees(exported, mode: str) -> None:
    name, model, result, folder = exported
    calibration = [_x(name, 64, seed=s) for s in (10, 11)] if mode == "static" else None
    dst = quantize_onnx(result.path, folder / "int8" / f"{mode}.onnx", mode=mode, calibration=calibration)
    assert dst.is_file() and dst.stat().st_size < result.size_bytes
    int8 = OnnxModel(dst)
    assert int8.num_parameters == OnnxModel(result.path).num_parameters  # int8 weights are counted
    x = _x(name, 200, seed=2)
    with torch.no_grad():
        ref = model.eval()(x)
    model.train()
    out = int8(x)
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.9
    assert 0 < (out - ref).abs().max() < 0.1 * ref.abs().max()


def test_quantize_onnx_arguments(exported, tmp_path) -> None:
    _, _, result, _ = exported
    with pytest.raises(ConfigError, match="invalid calibration: got None"):
        quantize_onnx(result.path, tmp_path / "q.onnx")
    with pytest.raises(ConfigError, match="invalid calibration: got no batch"):
        quantize_onnx(result.path, tmp_path / "q.onnx", calibration=[])
    with pytest.raises(ConfigError, match=r"invalid mode: got 'int4'; allowed: 'dynamic', 'static'"):
        quantize_onnx(result.path, tmp_path / "q.onnx", mode="int4")
    assert not list(tmp_path.iterdir())


def test_check_onnx_reports_a_different_model(exported) -> None:
    name, model, result, _ = exported
    other = _model(name)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1)
    with pytest.raises(ExportMismatch, match=r"differ from the model's by up to [0-9.e-]+"):
        check_onnx(result.path, other, _x(name, 8))
    assert check_onnx(result.path, model, _x(name, 8)) <= 1e-4


def test_mismatch_raises_and_writes_nothing(tmp_path, monkeypatch) -> None:
    import honing.export._onnx as onnx_mod

    real_call = onnx_mod.OnnxModel.__call__
    monkeypatch.setattr(onnx_mod.OnnxModel, "__call__", lambda self, x: real_call(self, x) + 1e-3)
    with pytest.raises(ExportMismatch, match="0.001"):
        to_onnx(_model("mlp"), tmp_path / "m.onnx", _x("mlp", 4))
    assert not list(tmp_path.iterdir())
    unchecked = to_onnx(_model("mlp"), tmp_path / "m.onnx", _x("mlp", 4), check=False)
    assert unchecked.max_abs_diff is None and unchecked.path.is_file()


def test_large_outputs_are_held_to_a_relative_tolerance(tmp_path) -> None:
    """A price model (outputs near 1e5): float32 rounding alone differs by ~1e-3 there, which an
    absolute 1e-4 refused; the check scales with the output, and still catches a real error."""
    import honing.export._onnx as onnx_mod

    torch.manual_seed(0)
    model = create_model("mlp", input_shape=(20,), num_outputs=1, hidden=[64])
    with torch.no_grad():
        model.head.weight.mul_(3000.0)
        model.head.bias.fill_(150_000.0)
    x = _x("mlp", 256) * 3  # measured here: ONNX Runtime and PyTorch differ by 1/64 (one float32 step)
    assert model(x).abs().min() > 1e4
    result = to_onnx(model, tmp_path / "price.onnx", x, rtol=0.0)  # rtol=0: as the compress step calls it
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4 * 2e5
    real_call = onnx_mod.OnnxModel.__call__
    off = lambda self, t: real_call(self, t) + 100.0  # noqa: E731  (0.07% of the scale: a real error)
    onnx_mod.OnnxModel.__call__ = off
    try:
        with pytest.raises(ExportMismatch, match="output scale"):
            check_onnx(result.path, model, x, rtol=0.0)
    finally:
        onnx_mod.OnnxModel.__call__ = real_call


class _ValueDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else -x


def test_untraceable_model_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="could not be traced by torch.export .*data-dependent"):
        to_onnx(_ValueDependent(), tmp_path / "m.onnx", torch.randn(3, 4))
    with pytest.raises(ConfigError, match="invalid example"):
        to_onnx(_model("mlp"), tmp_path / "m.onnx", torch.randn(0, 20))
    assert not list(tmp_path.iterdir())


def test_torch_export_round_trip(tmp_path) -> None:
    model = _model("cnn")
    with torch.no_grad():
        model.train()(_x("cnn", 32, seed=3) + 1)  # running statistics away from 0 / 1
    model.train()
    model.blocks[0].eval()  # a frozen block keeps its own flag
    path = to_torch_export(model, tmp_path / "cnn.pt2", _x("cnn", 1))
    assert path.is_file() and model.training and not model.blocks[0].training and model.blocks[1].training
    loaded = load_torch_export(path)
    assert loaded.eval() is loaded  # eval() works on the loaded program
    x = _x("cnn", 7, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), atol=1e-6, rtol=1e-5)
    fixed = load_torch_export(to_torch_export(model, tmp_path / "fixed.pt2", x, dynamic_batch=False))
    with torch.no_grad():
        torch.testing.assert_close(fixed(x), model(x), atol=1e-6, rtol=1e-5)
    with pytest.raises(ConfigError, match="not a file"):
        load_torch_export(tmp_path / "missing.pt2")


def test_import_honing_does_not_import_onnx_or_torch_pruning() -> None:
    code = ("import sys, honing, honing.export, honing.compress, honing.pipeline; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'onnxscript', 'torch_pruning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent)
    assert out.stdout.strip() == "[]"


def test_a_pt2_with_a_pickled_weight_is_refused_before_torch_loads_it(tmp_path):
    import json
    import zipfile

    from honing.export import load_torch_export

    model = create_model("mlp", input_shape=(20,), num_outputs=3, hidden=[32]).eval()
    good = to_torch_export(model, tmp_path / "m.pt2", torch.randn(4, 20))
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"]))
                config["config"][first]["use_pickle"] = True
                data = json.dumps(config).encode()
            zout.writestr(info, data)
    with pytest.raises(ConfigError, match="stored pickled"):
        load_torch_export(bad)
    x = torch.randn(5, 20)
    assert torch.equal(load_torch_export(good)(x), model(x))
