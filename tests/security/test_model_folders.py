"""A model folder is untrusted input: loading it never runs foreign code, and every damaged or
inconsistent file ends in a DataError naming the folder and the file (exit 2 from the CLI),
never a traceback, a silent NaN or a pickle load."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file

import honing
from honing._core import ConfigError, DataError
from honing.cli import main
from honing.export import load_torch_export, to_onnx, to_torch_export

from _evil import evil_pickle, legacy_pt2, rewrite_zip  # noqa: E402


def _evaluate(folder: Path, capsys) -> tuple[int, str]:
    code = main(["evaluate", str(folder), "--data", "sklearn:iris"])
    return code, capsys.readouterr().err


def _pt2_program(tmp_path: Path) -> bytes:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    return to_torch_export(model, tmp_path / "ok.pt2", torch.randn(2, 4)).read_bytes()


# --- torch.export archives --------------------------------------------------------------------


def test_an_archive_in_the_older_layout_is_refused_before_anything_is_unpickled(tmp_path, canary):
    import zipfile
    import io

    program = zipfile.ZipFile(io.BytesIO(_pt2_program(tmp_path))).read("archive/models/model.json")
    path = tmp_path / "legacy.pt2"
    path.write_bytes(legacy_pt2(canary, program))
    with pytest.raises(ConfigError, match="older torch 2.7 layout is refused"):
        load_torch_export(path)
    assert not canary.exists()


def test_a_model_folder_with_an_old_layout_archive_exits_2_and_runs_nothing(folder_copy, tmp_path, canary, capsys):
    import zipfile
    import io

    program = zipfile.ZipFile(io.BytesIO(_pt2_program(tmp_path))).read("archive/models/model.json")
    (folder_copy / "model.pt2").write_bytes(legacy_pt2(canary, program))
    meta = json.loads((folder_copy / "meta.json").read_text())
    (folder_copy / "meta.json").write_text(json.dumps({**meta, "compression": {"format": "torch-export"}}))
    with pytest.raises(DataError, match="invalid model folder .*model.pt2"):
        honing.load_model(folder_copy)
    code, err = _evaluate(folder_copy, capsys)
    assert code == 2 and "Traceback" not in err and "model.pt2" in err
    assert not canary.exists()


def _with_pickled_weight(name: str, data: bytes, canary: Path):
    if name.endswith("model_weights_config.json"):
        config = json.loads(data)
        first = next(iter(config["config"]))
        config["config"][first]["use_pickle"] = True
        return name, json.dumps(config).encode()
    if name.endswith("/weight_0"):
        return name, evil_pickle(canary)
    return name, data


ARCHIVE_TAMPERING: dict[str, Callable[[str, bytes, Path], tuple[str, bytes] | None]] = {
    "a pickled weight": _with_pickled_weight,
    "an AOTInductor library": lambda n, d, c: (n, d) if not n.endswith("archive_format") else None,
    "a custom object constant": lambda n, d, c: (
        (n, json.dumps({"config": {"obj": {"path_name": "custom_obj_0", "use_pickle": False}}}).encode())
        if n.endswith("model_constants_config.json") else (n, d)),
    "a legacy weights file": lambda n, d, c: (n.replace("weight_0", "model.pt"), evil_pickle(c))
    if n.endswith("/weight_0") else (n, d),
    "a second archive root": lambda n, d, c: (n.replace("archive/", "other/") if n.endswith("byteorder") else n, d),
    "pickled sample inputs": lambda n, d, c: (n, evil_pickle(c)) if "sample_inputs" in n else (n, d),
}


@pytest.mark.parametrize("case", sorted(ARCHIVE_TAMPERING))
def test_every_unpickling_path_of_the_newer_layout_is_refused(tmp_path, canary, case):
    data = rewrite_zip(_pt2_program(tmp_path), lambda n, d: ARCHIVE_TAMPERING[case](n, d, canary))
    if case == "an AOTInductor library":  # a member torch would hand to its compiled-model loader
        data = rewrite_zip(data, lambda n, d: (n, d))
        import io
        import zipfile

        buffer = io.BytesIO(data)
        with zipfile.ZipFile(buffer, "a") as z:
            z.writestr("archive/archive_format", "pt2")
            z.writestr("archive/data/aotinductor/model/model.so", b"\x7fELF")
        data = buffer.getvalue()
    path = tmp_path / "tampered.pt2"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="invalid .pt2 file"):
        load_torch_export(path)
    assert not canary.exists()


def test_an_untampered_archive_still_loads(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).eval()
    path = to_torch_export(model, tmp_path / "m.pt2", torch.randn(2, 4))
    x = torch.randn(5, 4)
    torch.testing.assert_close(load_torch_export(path)(x), model(x))


# --- ONNX ------------------------------------------------------------------------------------


def test_an_onnx_file_with_external_data_is_refused(tmp_path, folder_copy, capsys):
    import onnx

    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    path = to_onnx(model, tmp_path / "m.onnx", torch.randn(2, 4)).path
    proto = onnx.load(str(path))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 48)
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../" * 8 + str(secret).lstrip("/")
    onnx.save(proto, str(folder_copy / "model.onnx"))
    meta = json.loads((folder_copy / "meta.json").read_text())
    (folder_copy / "meta.json").write_text(json.dumps({**meta, "compression": {"format": "onnx"}}))
    with pytest.raises(DataError, match="refers to external data"):
        honing.load_model(folder_copy)
    code, err = _evaluate(folder_copy, capsys)
    assert code == 2 and "Traceback" not in err


# --- every file of the folder: a fuzz suite over tampered folders ------------------------------


def _json_edit(name: str, edit: Callable[[dict], object]) -> Callable[[Path, random.Random, Path], None]:
    def apply(folder: Path, rng: random.Random, canary: Path) -> None:
        data = json.loads((folder / name).read_text())
        result = edit(data)
        (folder / name).write_text(json.dumps(data if result is None else result))
    return apply


def _truncate(name: str) -> Callable[[Path, random.Random, Path], None]:
    def apply(folder: Path, rng: random.Random, canary: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: rng.randrange(0, len(data) - 1)])
    return apply


def _garbage(name: str) -> Callable[[Path, random.Random, Path], None]:
    def apply(folder: Path, rng: random.Random, canary: Path) -> None:
        (folder / name).write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
    return apply


def _remove(name: str) -> Callable[[Path, random.Random, Path], None]:
    return lambda folder, rng, canary: (folder / name).unlink()


def _weights(tensors: Callable[[dict], dict]) -> Callable[[Path, random.Random, Path], None]:
    def apply(folder: Path, rng: random.Random, canary: Path) -> None:
        from safetensors.torch import load_file

        save_file(tensors(load_file(str(folder / "model.safetensors"))), str(folder / "model.safetensors"))
    return apply


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda d: d.__setitem__(key, value)


def _zero_std(state: dict) -> None:
    state["stats"]["std"][1] = 0.0


def _nan_std(state: dict) -> None:
    state["stats"]["std"][0] = float("nan")


TAMPERED: dict[str, Callable[[Path, random.Random, Path], None]] = {
    **{f"meta.json truncated #{i}": _truncate("meta.json") for i in range(3)},
    **{f"recipe.json truncated #{i}": _truncate("recipe.json") for i in range(2)},
    **{f"preprocessor.json truncated #{i}": _truncate("preprocessor.json") for i in range(2)},
    **{f"model.safetensors truncated #{i}": _truncate("model.safetensors") for i in range(3)},
    **{f"{name} garbage": _garbage(name) for name in ("meta.json", "recipe.json", "preprocessor.json",
                                                      "model.safetensors")},
    **{f"{name} missing": _remove(name) for name in ("recipe.json", "preprocessor.json", "model.safetensors")},
    "meta.json a list": _json_edit("meta.json", lambda d: [d]),
    "meta.json no task": _json_edit("meta.json", lambda d: d.pop("task")),
    "meta.json unknown task": _json_edit("meta.json", _set("task", "ranking")),
    "meta.json negative input shape": _json_edit("meta.json", _set("input_shape", [-4])),
    "meta.json input shape a string": _json_edit("meta.json", _set("input_shape", "4")),
    "meta.json wrong input width": _json_edit("meta.json", _set("input_shape", [5])),
    "meta.json zero outputs": _json_edit("meta.json", _set("num_outputs", 0)),
    "meta.json huge outputs": _json_edit("meta.json", _set("num_outputs", 10**12)),
    "meta.json class names of another length": _json_edit("meta.json", _set("class_names", ["a", "b"])),
    "meta.json newer format": _json_edit("meta.json", _set("format", 99)),
    "meta.json unknown compression": _json_edit("meta.json", _set("compression", {"format": "pickle"})),
    "meta.json onnx without its file": _json_edit("meta.json", _set("compression", {"format": "onnx"})),
    "meta.json encoder outside the folder": _json_edit("meta.json", _set("transfer", {"from": "minilm",
                                                                                      "encoder": "../../../etc"})),
    "recipe.json no model": _json_edit("recipe.json", lambda d: d.pop("model")),
    "recipe.json model name a number": _json_edit("recipe.json", lambda d: d["model"].__setitem__("name", 5)),
    "recipe.json unknown model": _json_edit("recipe.json", lambda d: d["model"].__setitem__("name", "nosuch")),
    "recipe.json a model of 10^14 parameters": _json_edit(
        "recipe.json", lambda d: d["model"].__setitem__("hidden", [10**7, 10**7])),
    "recipe.json other widths": _json_edit("recipe.json", lambda d: d["model"].__setitem__("hidden", [16])),
    "preprocessor.json unknown kind": _json_edit("preprocessor.json", _set("kind", "pickle")),
    "preprocessor.json zero standard deviation": _json_edit("preprocessor.json", _zero_std),
    "preprocessor.json NaN standard deviation": _json_edit("preprocessor.json", _nan_std),
    "preprocessor.json no statistics": _json_edit("preprocessor.json", lambda d: d.__setitem__("stats", {})),
    "weights of the wrong shape": _weights(lambda t: {**t, next(iter(t)): torch.zeros(3, 3)}),
    "a weight missing": _weights(lambda t: dict(list(t.items())[1:])),
    "an extra weight": _weights(lambda t: {**t, "extra": torch.zeros(1)}),
    "a pickle named model.safetensors": lambda folder, rng, canary: (folder / "model.safetensors").write_bytes(
        evil_pickle(canary)),
}


def test_the_fuzz_suite_has_at_least_30_tampered_folders():
    assert len(TAMPERED) >= 30


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_model_folder_exits_2_with_a_message(folder_copy, canary, capsys, case):
    TAMPERED[case](folder_copy, random.Random(f"{case}"), canary)
    listing = sorted(p.name for p in folder_copy.iterdir())
    with pytest.raises(DataError, match="invalid model folder|not a honing model folder"):
        honing.load_model(folder_copy)
    code, err = _evaluate(folder_copy, capsys)
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("honing: error:")
    assert not canary.exists()
    assert sorted(p.name for p in folder_copy.iterdir()) == listing  # nothing written into the folder


def test_the_untampered_folder_loads_and_predicts_finite_values(model_folder, capsys):
    loaded = honing.load_model(model_folder)
    assert torch.isfinite(loaded.forward_prepared(loaded.prepare([[5.1, 3.5, 1.4, 0.2]]))).all()
    assert _evaluate(model_folder, capsys)[0] == 0
