"""The ``compress`` stage: the recipe's compression steps on the final model, each result saved,
read back from disk, tested on the same test rows and timed against the uncompressed model.

``distill``, ``prune`` and ``finetune`` change the *trunk* (the latest trained float model), in
order; each ``quantize`` / ``export`` step turns the trunk into one deployable variant. Every
stage is a model folder under ``<run>/compress/NN-<step>/`` that ``honing.load_model`` reads;
what the table reports is measured on what was read back, so a format that loses something on
the way to disk shows it.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError, atomic_write_text, set_threads
from honing.data import Dataset
from honing.models import count_parameters
from honing.pipeline._artifacts import load_model, save_model
from honing.pipeline._build import build_model, build_trainer
from honing.pipeline._compress_io import ONNX_FILE, PT2_FILE, write_state
from honing.pipeline._compress_table import Lazy, compare, main_metric, measure, summary, time_all

COMPRESS_DIR, COMPRESS_RESULTS = "compress", "compress.json"
TRAINING_STEPS = ("distill", "prune", "finetune")
_CALIBRATION_ROWS = 64


def compress(out_dir: Path, recipe: dict[str, Any], data: Dataset, model: nn.Module, *, baseline: Path,
             progress: bool = True) -> dict[str, Any]:
    """Run ``recipe["compress"]`` on ``model`` (whose saved folder is ``baseline``); returns the
    results entry: ``{"stages": [...rows...], "failed": [...], "metric": ..., "latency": ...}``."""
    section = recipe["compress"]
    latency = section["latency"]
    folder = Path(out_dir) / COMPRESS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    metric = main_metric(recipe, data)
    say = _Say(progress)

    row, runnable = measure("uncompressed", baseline, data, recipe, extra={"step": 0})
    rows, models = [row], [runnable]
    trunk = copy.deepcopy(model).cpu().eval()
    trunk_recipe, structured, failed = recipe, False, []
    history: list[str] = []
    steps = section["steps"]
    for i, step in enumerate(steps, 1):
        (name, opts), = step.items()
        label = _label(name, opts)
        stage_dir = folder / f"{i:02d}-{label.replace(' ', '-')}"
        say(f"compress {i}/{len(steps)}: {label} ...")
        t0 = time.perf_counter()
        try:
            layers: list[dict[str, Any]] | None = None
            if name in TRAINING_STEPS:
                widths = _widths(trunk) if name == "prune" else {}
                trunk, trunk_recipe, structured = _train_step(name, opts, trunk, trunk_recipe, data, structured)
                history.append(label)
                plain = _permanent(trunk)  # one copy without masks: described, written and saved
                info = _trunk_info(plain, structured, history)
                writer = write_state(plain.state_dict())
                notes = ""
                if name == "prune":  # per layer: the widths structured pruning changed, else the sparsity
                    layers = _layer_report(trunk, widths, opts["method"])
                    notes = _width_note(layers) if opts["method"] == "structured" else _sparsity_note(trunk)
            else:
                plain = _permanent(trunk).eval()
                info, writer, notes = _variant(name, opts, plain, trunk_recipe, data, structured, history)
            _save(stage_dir, plain, trunk_recipe, data, info, writer)
            row, runnable = measure(label, stage_dir, data, trunk_recipe,
                                     extra={"step": i, "seconds": round(time.perf_counter() - t0, 2), "notes": notes})
            if layers is not None:
                row["layers"] = layers
        except Exception as err:  # the run's model and earlier stages stay; later variants still run
            message = f"{type(err).__name__}: {err}" if not isinstance(err, ConfigError) else str(err)
            failed.append({"step": i, "stage": label, "error": message})
            say(f"compress {i}/{len(steps)}: {label} failed: {message}")
            if not isinstance(err, ConfigError):
                say(traceback.format_exc(limit=4))
            if name in TRAINING_STEPS:  # the steps after it would work on the wrong model
                failed.extend({"step": j, "stage": _label(*next(iter(s.items()))), "error": "skipped: an earlier "
                               "training step failed"} for j, s in enumerate(steps[i:], i + 1))
                break
            continue
        rows.append(row)
        models.append(runnable)
        say(f"compress {i}/{len(steps)}: {label}: " + (f"{metric} {row['metrics'][metric]:.4f}"
                                                        if metric in row["metrics"] else "done"))
    say(f"compress: timing {len(rows)} stages side by side ...")
    time_all(rows, models, data, latency)
    for row in rows[1:]:
        compare(row, rows[0], metric)
        say(f"  {row['stage']}: {summary(row, metric)}")
    out = {"metric": metric, "latency": latency, "stages": rows, "failed": failed}
    atomic_write_text(folder / COMPRESS_RESULTS, json.dumps(out, indent=2))
    return out


# --- the steps ---------------------------------------------------------------------------------


def _label(name: str, opts: dict[str, Any]) -> str:
    if name == "prune":
        target = opts["amount"] if opts["method"] == "structured" else opts["sparsity"]
        return f"prune {opts['method']} {0.5 if target is None else target:g}"
    if name == "quantize":
        return f"quantize {opts['mode']}"
    if name == "export":
        return f"export {opts['format']}"
    return name


def _train_step(name: str, opts: dict[str, Any], trunk: nn.Module, recipe: dict[str, Any], data: Dataset,
                structured: bool) -> tuple[nn.Module, dict[str, Any], bool]:
    from honing import compress as hc

    if name == "finetune":
        hc.keep_sparsity(trunk)  # weights pruned earlier stay zero
        _fit(trunk, recipe, data, epochs=opts["epochs"], lr=opts["lr"])
        return trunk, recipe, structured
    if name == "distill":
        student_recipe = {**recipe, "model": opts["model"], "transfer": None}
        student = build_model(student_recipe, data, seed=recipe["seed"])
        distiller = hc.Distiller(student, _permanent(trunk).eval(), temperature=opts["temperature"],
                                 alpha=opts["alpha"], feature_weight=opts["feature_weight"],
                                 example_inputs=data.train.x[:2], task=data.task)
        _fit(distiller, student_recipe, data, epochs=opts["epochs"], lr=opts["lr"], wrap=distiller.loss)
        return distiller.student.eval(), student_recipe, False
    # prune
    method, target = opts["method"], opts["amount"] if opts["method"] == "structured" else opts["sparsity"]
    target = 0.5 if target is None else target
    finetune = (lambda m: _fit(m, recipe, data, epochs=opts["finetune_epochs"], lr=opts["lr"])
                if opts["finetune_epochs"] else None)
    if method == "admm":
        def fit(m: nn.Module, optimizer: Any) -> None:
            _fit(m, recipe, data, epochs=opts["admm_epochs"], lr=opts["lr"], optimizer=optimizer)

        trunk = hc.admm_prune(_permanent(trunk), target, fit=fit, rho=opts["rho"], lr=opts["lr"] or _lr(recipe))
        if finetune is not None:
            finetune(trunk)
        return trunk, recipe, structured
    if method == "structured":
        trunk = _permanent(trunk)
        example = data.train.x[:2]
        if opts["steps"] == 1:
            trunk = hc.structured_prune(trunk, target, example_inputs=example)
            if finetune is not None:
                finetune(trunk)
        else:
            trunk = hc.iterative_prune(trunk, target=target, steps=opts["steps"], finetune=finetune or (lambda m: None),
                                       method="structured", kind=opts["schedule"], example_inputs=example)
        return trunk, recipe, True
    if opts["steps"] == 1:
        hc.magnitude_prune(trunk, target, scope=opts["scope"])
        if finetune is not None:
            finetune(trunk)
    else:
        trunk = hc.iterative_prune(trunk, target=target, steps=opts["steps"], finetune=finetune or (lambda m: None),
                                   method="magnitude", scope=opts["scope"], kind=opts["schedule"])
    return trunk, recipe, structured


def _variant(name: str, opts: dict[str, Any], plain: nn.Module, recipe: dict[str, Any], data: Dataset,
             structured: bool, history: list[str]) -> tuple[dict[str, Any], Any, str]:
    """A deployable form of the trunk (``plain``: without pruning masks, in eval mode):
    (meta["compression"], weights writer, notes)."""
    from honing import compress as hc
    from honing import export as hx

    info = _trunk_info(plain, structured, history)
    example = _example(data)
    if name == "quantize":
        mode, runtime = opts["mode"], opts["runtime"] or ("onnx" if opts["mode"] in ("static", "qat") else "torch")
        info["quantization"] = mode
        if mode == "dynamic" and runtime == "torch":
            q = hc.quantize_dynamic(plain)
            info.update(format="dynamic-int8", layers=["linear", "lstm", "gru"])
            return info, write_state(hc.quantized_state_dict(q)), "PyTorch dynamic int8 (weights int8, activations at run time)"
        if mode in ("fp16", "bf16"):
            info["format"] = mode
            return info, write_state(hc.to_half(plain, mode).state_dict()), f"weights and arithmetic in {mode}"
        source = plain
        if mode == "qat":
            source = hc.prepare_qat(copy.deepcopy(plain))
            _fit(source, recipe, data, epochs=opts["epochs"], lr=opts["lr"])
            source = hc.finish_qat(source).eval()
        calib = _calibration(data, opts["calibration_batches"]) if mode in ("static", "qat") else None
        info.update(format="onnx", runtime="onnxruntime",
                    int8=hx.int8_settings("dynamic" if mode == "dynamic" else "static"))
        return info, _onnx_writer(source, example, int8="dynamic" if mode == "dynamic" else "static",
                                  calibration=calib), "ONNX Runtime int8 (" + (
            "dynamic" if mode == "dynamic" else "static, calibrated on training rows") + ")"
    fmt = opts["format"]
    if fmt == "torch-export":
        info["format"] = "torch-export"

        def write_pt2(folder: Path) -> None:
            hx.to_torch_export(plain, folder / PT2_FILE, example)

        return info, write_pt2, "torch.export program"
    info.update(format="onnx", runtime="onnxruntime")
    if fmt == "onnx":
        checked: dict[str, float] = {}

        def write_onnx(folder: Path) -> None:
            result = hx.to_onnx(plain, folder / ONNX_FILE, example, atol=opts["tolerance"], rtol=0.0)
            checked["diff"] = result.max_abs_diff

        return info, write_onnx, Lazy(lambda: f"max |ONNX Runtime - PyTorch| {checked.get('diff', float('nan')):.2g}")
    calib = _calibration(data, opts["calibration_batches"]) if opts["quantization"] == "static" else None
    info["int8"] = hx.int8_settings(opts["quantization"])
    return info, _onnx_writer(plain, example, int8=opts["quantization"], calibration=calib), \
        f"ONNX Runtime int8 ({opts['quantization']})"


def _onnx_writer(model: nn.Module, example: torch.Tensor, *, int8: str | None, calibration: Any) -> Any:
    from honing import export as hx

    def write(folder: Path) -> None:
        tmp = folder / "float.onnx.tmp"
        try:
            hx.to_onnx(model, tmp, example)
            hx.quantize_onnx(tmp, folder / ONNX_FILE, mode=int8, calibration=calibration)
        finally:
            tmp.unlink(missing_ok=True)

    return write


def _fit(model: nn.Module, recipe: dict[str, Any], data: Dataset, *, epochs: int | None, lr: float | None,
         optimizer: Any = None, wrap: Any = None) -> None:
    """Train ``model`` with the recipe's training section (its lr replaced by ``lr``) on the
    training rows, keeping the best validation epoch."""
    if lr is not None:
        training = copy.deepcopy(recipe["training"])
        opt = training["optimizer"]
        training["optimizer"] = {**opt, "lr": lr} if isinstance(opt, dict) else {"name": opt, "lr": lr}
        recipe = {**recipe, "training": training}
    trainer = build_trainer(recipe, model, data, seed=recipe["seed"], num_train=len(data.train), epochs=epochs,
                            with_val=data.val is not None, optimizer=optimizer)
    if wrap is not None:
        trainer.loss_fn = wrap(trainer.loss_fn)
    trainer.fit(data.train, data.val)
    model.cpu().eval()


def _lr(recipe: dict[str, Any]) -> float:
    opt = recipe["training"]["optimizer"]
    return float(opt.get("lr") or 1e-3) if isinstance(opt, dict) else 1e-3


# --- helpers -----------------------------------------------------------------------------------


def _permanent(model: nn.Module) -> nn.Module:
    """A copy without pruning masks (the zeros kept)."""
    from honing import compress as hc

    if not hc.has_masks(model):
        return model
    return hc.make_permanent(hc.clone(model))


def _trunk_info(plain: nn.Module, structured: bool, history: list[str]) -> dict[str, Any]:
    weights = [p for p in plain.parameters()]
    info: dict[str, Any] = {
        "format": "torch",
        "steps": list(history),
        "parameters": count_parameters(plain, trainable_only=False),
        "nonzero_parameters": int(sum(int(torch.count_nonzero(p)) for p in weights)),
        "structured": structured,
    }
    if structured:
        info["shapes"] = {k: list(v.shape) for k, v in plain.state_dict().items()}
    return info


def _widths(model: nn.Module) -> dict[str, tuple[int, int]]:
    from honing import compress as hc

    return hc.layer_widths(model)


def _layer_report(model: nn.Module, widths: dict[str, tuple[int, int]], method: str) -> list[dict[str, Any]]:
    from honing import compress as hc

    if method == "structured":
        return hc.width_changes(widths, model)
    return [{k: r[k] for k in ("layer", "parameters", "zeros", "sparsity")} for r in hc.sparsity_report(model)]


def _width_note(rows: list[dict[str, Any]]) -> str:
    changed = [f"{r['layer']} {r['out_before']}->{r['out_after']}" for r in rows if r["out_before"] != r["out_after"]]
    return "narrowed: " + ", ".join(changed) if changed else "no layer narrowed"


def _sparsity_note(model: nn.Module) -> str:
    from honing import compress as hc

    report = hc.sparsity_report(model)
    return f"weight sparsity {hc.total_sparsity(report):.1%} over {len(report)} layers"


def _save(folder: Path, plain: nn.Module, recipe: dict[str, Any], data: Dataset, info: dict[str, Any],
          writer: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (folder / "meta.json", folder / ONNX_FILE, folder / PT2_FILE, folder / "model.safetensors"):
        stale.unlink(missing_ok=True)  # meta.json last written marks a complete folder
    save_model(folder, plain, recipe=recipe, preprocessor=data.preprocessor, task=data.task,
               input_shape=data.input_shape, num_outputs=data.num_outputs, class_names=data.class_names,
               extra={"compression": info}, weights=writer, data=data)


def _example(data: Dataset) -> torch.Tensor:
    rows = data.test if data.test is not None else (data.val if data.val is not None else data.train)
    return rows.x[:8]


def _calibration(data: Dataset, batches: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.train), generator=g)[: batches * _CALIBRATION_ROWS]
    return list(data.train.x[idx].split(_CALIBRATION_ROWS))


class _Say:
    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, text: str) -> None:
        if self.on:
            print(text, file=sys.stderr, flush=True)


def compress_folder(model_dir: str | Path, recipe: Any, *, out: str | Path | None = None,
                    threads: int | None = None, progress: bool = True) -> dict[str, Any]:
    """``honing compress MODEL_DIR RECIPE``: the recipe's compression steps on a saved model.

    The data come from the recipe's data section, prepared with the model folder's own fitted
    preprocessing (never refit, so the test rows are the ones the model was tested on when the
    recipe is the one that trained it); ``training`` and ``evaluate`` come from the recipe, the
    architecture from the folder. Writes ``<out>/compress.json`` (default ``out``: ``compress/``
    beside the model folder).
    """
    from honing.data import load
    from honing.pipeline._build import load_args
    from honing.pipeline._run import _as_recipe

    rec = _as_recipe(recipe)
    r = rec.to_dict()
    if not r.get("compress"):
        raise ConfigError("invalid recipe for honing compress: it has no compress section; allowed: a recipe with "
                          "compress: {steps: [...]} (e.g. - quantize: {mode: dynamic})")
    loaded = load_model(model_dir)
    folder = Path(model_dir)
    if not (folder / "meta.json").is_file():
        folder = folder / "model"
    if not isinstance(loaded.model, nn.Module) or (loaded.meta.get("compression") or {}).get("format", "torch") != "torch":
        raise ConfigError(f"invalid model folder {str(model_dir)!r}: it holds a "
                          f"{loaded.meta['compression']['format']} model; allowed: a trained float model "
                          "(compress the folder it came from)")
    args = load_args(r)
    args.pop("preprocessor", None)
    data = load(r["data"]["source"], **args, preprocessor=loaded.preprocessor)
    if data.input_shape != tuple(loaded.input_shape) or data.num_outputs != loaded.num_outputs:
        raise ConfigError(f"invalid data for model {str(model_dir)!r}: the recipe's data give inputs "
                          f"{tuple(data.input_shape)} and {data.num_outputs} outputs, the model takes "
                          f"{tuple(loaded.input_shape)} and {loaded.num_outputs}")
    trunk_recipe = {**loaded.recipe, "seed": r["seed"], "data": r["data"], "training": r["training"],
                    "evaluate": r["evaluate"], "compress": r["compress"]}
    out_dir = Path(out) if out is not None else folder.parent
    set_threads(threads or r["training"].get("threads"))
    return compress(out_dir, trunk_recipe, data, loaded.model, baseline=folder, progress=progress)
