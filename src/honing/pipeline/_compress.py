"""The ``compress`` stage: the recipe's compression steps on the final model, each result saved,
read back from disk, tested on the same test rows and timed against the uncompressed model.

Steps come from a registry (``COMPRESS_STEPS``; ``register_compress_step`` adds one). A step
that *trains* (``distill``, ``prune``, ``finetune``) changes the trunk (the latest trained float
model), in order; any other step (``quantize``, ``export``) turns the trunk into one deployable
variant. Every stage is a model folder under ``<run>/compress/NN-<step>/`` that
``honing.load_model`` reads; what the table reports is measured on what was read back, so a
format that loses something on the way to disk shows it.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from honing._core import ConfigError, Registry, atomic_write_text, set_threads
from honing.artifacts import ONNX_FILE, PT2_FILE, WEIGHTS, load_model, save_model, write_state
from honing.data import Dataset
from honing.models import count_parameters
from honing.pipeline._build import build_model, build_trainer
from honing.pipeline._compress_table import Lazy, compare, main_metric, measure, summary, time_all
from honing.pipeline._summary import EpochProgress

COMPRESS_DIR, COMPRESS_RESULTS = "compress", "compress.json"
_CALIBRATION_ROWS = 64


@dataclass
class CompressWork:
    """What the steps share: the trunk (the latest trained float model), the recipe that builds
    and trains it, the data, and what happened to it so far."""

    trunk: nn.Module
    recipe: Any
    data: Dataset
    structured: bool = False
    history: list[str] = field(default_factory=list)
    progress: str | None = None  # the label of the epoch lines of fit (None: none)

    def fit(self, model: nn.Module, *, epochs: int | None, lr: float | None, optimizer: Any = None,
            wrap_loss: Callable[[Any], Any] | None = None, recipe: Any = None) -> None:
        """Train ``model`` with the recipe's training section (``lr`` replacing its learning rate)
        on the training rows, keeping the best validation epoch."""
        recipe = recipe or self.recipe
        data = self.data
        trainer = build_trainer(recipe, model, data, seed=recipe.seed, num_train=len(data.train), epochs=epochs,
                                with_val=data.val is not None, optimizer=optimizer, wrap_loss=wrap_loss, lr=lr)
        if self.progress:
            trainer.callbacks.append(EpochProgress(self.progress))
        trainer.fit(data.train, data.val)
        model.cpu().eval()

    @property
    def lr(self) -> float:
        return float(self.recipe.training.optimizer.lr or 1e-3)

    def example(self) -> torch.Tensor:
        data = self.data
        rows = data.test if data.test is not None else (data.val if data.val is not None else data.train)
        return rows.x[:8]

    def calibration(self, batches: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(self.data.train), generator=g)[: batches * _CALIBRATION_ROWS]
        return list(self.data.train.x[idx].split(_CALIBRATION_ROWS))

    def info(self, plain: nn.Module) -> dict[str, Any]:
        """``meta.json["compression"]`` of a folder holding ``plain`` (the trunk without masks)."""
        info: dict[str, Any] = {
            "format": "torch",
            "steps": list(self.history),
            "parameters": count_parameters(plain, trainable_only=False),
            "nonzero_parameters": int(sum(int(torch.count_nonzero(p)) for p in plain.parameters())),
            "structured": self.structured,
        }
        if self.structured:
            info["shapes"] = {k: list(v.shape) for k, v in plain.state_dict().items()}
        return info


@dataclass
class StepOutput:
    """What a step hands back. A training step: ``notes`` (and per-layer ``layers``); it set
    ``work.trunk``. A variant: also ``info`` (meta.json["compression"]) and ``writer`` (writes
    the weights into a folder)."""

    notes: Any = ""
    layers: list[dict[str, Any]] | None = None
    info: dict[str, Any] | None = None
    writer: Callable[[Path], None] | None = None


class CompressStep(Protocol):
    """A compression step: ``trains`` says whether it changes the trunk or makes a variant."""

    trains: bool

    def label(self, options: Any) -> str: ...

    def run(self, work: CompressWork, options: Any) -> StepOutput: ...


COMPRESS_STEPS: Registry[CompressStep] = Registry("compression step")


def register_compress_step(name: str, step: CompressStep, *, options: type) -> CompressStep:
    """Add a compression step: ``step`` (``trains``, ``label(options)``, ``run(work, options)``)
    and ``options``, the recipe section (a ``honing.recipe`` Section subclass) that checks its
    options in ``compress: [{name: {...}}]``."""
    from honing.recipe import register_step_options

    register_step_options(name, options, trains=bool(step.trains))
    COMPRESS_STEPS.register(name, lambda: step)
    return step


def list_compress_steps() -> list[str]:
    return COMPRESS_STEPS.names()


def compress(out_dir: Path, recipe: Any, section: Any, data: Dataset, model: nn.Module, *, baseline: Path,
             progress: bool = True) -> dict[str, Any]:
    """Run the compression ``section``'s steps on ``model`` (whose saved folder is ``baseline``;
    ``recipe``: the typed recipe that built it); returns the results entry:
    ``{"stages": [...rows...], "failed": [...], "metric": ..., "latency": ...}``."""
    from honing.recipe import compress_step_options

    folder = Path(out_dir) / COMPRESS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    metric = main_metric(recipe, data)
    say = _Say(progress)

    row, runnable = measure("uncompressed", baseline, data, recipe, extra={"step": 0})
    rows, models = [row], [runnable]
    work = CompressWork(copy.deepcopy(model).cpu().eval(), recipe, data)
    failed: list[dict[str, Any]] = []
    steps = [(name, compress_step_options(name, opts)) for spec in section.steps for name, opts in spec.items()]
    for i, (name, opts) in enumerate(steps, 1):
        step = COMPRESS_STEPS.create(name)
        label = step.label(opts)
        stage_dir = folder / f"{i:02d}-{label.replace(' ', '-')}"
        say(f"compress {i}/{len(steps)}: {label} ...")
        work.progress = f"compress {i}/{len(steps)}: {label}" if progress else None
        t0 = time.perf_counter()
        try:
            out = step.run(work, opts)
            plain = _permanent(work.trunk).eval()  # one copy without masks: described, written and saved
            if step.trains:
                work.history.append(label)
                info, writer = work.info(plain), write_state(plain.state_dict())
            else:
                info, writer = out.info or work.info(plain), out.writer or write_state(plain.state_dict())
            _save(stage_dir, plain, work.recipe, data, info, writer)
            row, runnable = measure(label, stage_dir, data, work.recipe,
                                     extra={"step": i, "seconds": round(time.perf_counter() - t0, 2),
                                            "notes": out.notes})
            if out.layers is not None:
                row["layers"] = out.layers
        except Exception as err:  # the run's model and earlier stages stay; later variants still run
            message = f"{type(err).__name__}: {err}" if not isinstance(err, ConfigError) else str(err)
            failed.append({"step": i, "stage": label, "error": message})
            say(f"compress {i}/{len(steps)}: {label} failed: {message}")
            if not isinstance(err, ConfigError):
                say(traceback.format_exc(limit=4))
            if step.trains:  # the steps after it would work on the wrong model
                failed.extend({"step": j, "stage": COMPRESS_STEPS.create(n).label(o), "error": "skipped: an earlier "
                               "training step failed"} for j, (n, o) in enumerate(steps[i:], i + 1))
                break
            continue
        rows.append(row)
        models.append(runnable)
        say(f"compress {i}/{len(steps)}: {label}: " + (f"{metric} {row['metrics'][metric]:.4f}"
                                                        if metric in row["metrics"] else "done"))
    say(f"compress: timing {len(rows)} stages side by side ...")
    time_all(rows, models, data, section.latency)
    for row in rows[1:]:
        compare(row, rows[0], metric)
        say(f"  {row['stage']}: {summary(row, metric)}")
    out = {"metric": metric, "latency": section.latency.model_dump(mode="json"), "stages": rows, "failed": failed}
    atomic_write_text(folder / COMPRESS_RESULTS, json.dumps(out, indent=2))
    return out


# --- the built-in steps --------------------------------------------------------------------------


class FinetuneStep:
    """Train the trunk a few epochs more (weights pruned earlier stay zero)."""

    trains = True

    def label(self, options: Any) -> str:
        return "finetune"

    def run(self, work: CompressWork, options: Any) -> StepOutput:
        from honing import compress as hc

        hc.keep_sparsity(work.trunk)
        work.fit(work.trunk, epochs=options.epochs, lr=options.lr)
        return StepOutput()


class DistillStep:
    """A smaller student (its own model section) trained on the trunk's soft targets."""

    trains = True

    def label(self, options: Any) -> str:
        return "distill"

    def run(self, work: CompressWork, options: Any) -> StepOutput:
        from honing import compress as hc

        student_recipe = work.recipe.model_copy(update={"model": options.model, "transfer": None})
        student = build_model(student_recipe, work.data, seed=work.recipe.seed).model
        distiller = hc.Distiller(student, _permanent(work.trunk).eval(), temperature=options.temperature,
                                 alpha=options.alpha, feature_weight=options.feature_weight,
                                 example_inputs=work.data.train.x[:2], task=work.data.task)
        work.fit(distiller, epochs=options.epochs, lr=options.lr, wrap_loss=distiller.loss, recipe=student_recipe)
        work.trunk, work.recipe, work.structured = distiller.student.eval(), student_recipe, False
        return StepOutput()


class PruneStep:
    """Magnitude (zeros), structured (narrower layers) or ADMM pruning, in one or more rounds."""

    trains = True

    def label(self, options: Any) -> str:
        return f"prune {options.method} {options.target:g}"

    def run(self, work: CompressWork, options: Any) -> StepOutput:
        from honing import compress as hc

        widths = hc.layer_widths(work.trunk)
        getattr(self, f"_{options.method}")(work, options, options.target)
        if options.method == "structured":
            layers = hc.width_changes(widths, work.trunk)
            changed = [f"{r['layer']} {r['out_before']}->{r['out_after']}" for r in layers
                       if r["out_before"] != r["out_after"]]
            return StepOutput("narrowed: " + ", ".join(changed) if changed else "no layer narrowed", layers)
        report = hc.sparsity_report(work.trunk)
        layers = [{k: r[k] for k in ("layer", "parameters", "zeros", "sparsity")} for r in report]
        return StepOutput(f"weight sparsity {hc.total_sparsity(report):.1%} over {len(report)} layers", layers)

    @staticmethod
    def _finetune(work: CompressWork, options: Any) -> Callable[[nn.Module], None] | None:
        if not options.finetune_epochs:
            return None
        return lambda m: work.fit(m, epochs=options.finetune_epochs, lr=options.lr)

    def _admm(self, work: CompressWork, options: Any, target: float) -> None:
        from honing import compress as hc

        def fit(m: nn.Module, optimizer: Any) -> None:
            work.fit(m, epochs=options.admm_epochs, lr=options.lr, optimizer=optimizer)

        work.trunk = hc.admm_prune(_permanent(work.trunk), target, fit=fit, rho=options.rho, lr=options.lr or work.lr)
        if (finetune := self._finetune(work, options)) is not None:
            finetune(work.trunk)

    def _structured(self, work: CompressWork, options: Any, target: float) -> None:
        from honing import compress as hc

        finetune = self._finetune(work, options)
        trunk, example = _permanent(work.trunk), work.data.train.x[:2]
        if options.steps == 1:
            trunk = hc.structured_prune(trunk, target, example_inputs=example)
            if finetune is not None:
                finetune(trunk)
        else:
            trunk = hc.iterative_prune(trunk, target=target, steps=options.steps, finetune=finetune or (lambda m: None),
                                       method="structured", kind=options.schedule, example_inputs=example)
        work.trunk, work.structured = trunk, True

    def _magnitude(self, work: CompressWork, options: Any, target: float) -> None:
        from honing import compress as hc

        finetune = self._finetune(work, options)
        if options.steps == 1:
            hc.magnitude_prune(work.trunk, target, scope=options.scope)
            if finetune is not None:
                finetune(work.trunk)
        else:
            work.trunk = hc.iterative_prune(work.trunk, target=target, steps=options.steps,
                                            finetune=finetune or (lambda m: None), method="magnitude",
                                            scope=options.scope, kind=options.schedule)


class QuantizeStep:
    """int8 (dynamic, static, quantization-aware) in PyTorch or ONNX Runtime, or fp16/bf16."""

    trains = False

    def label(self, options: Any) -> str:
        return f"quantize {options.mode}"

    def run(self, work: CompressWork, options: Any) -> StepOutput:
        from honing import compress as hc
        from honing import export as hx

        plain = _permanent(work.trunk).eval()
        info = work.info(plain)
        mode, runtime = options.mode, options.resolved_runtime
        info["quantization"] = mode
        if mode == "dynamic" and runtime == "torch":
            q = hc.quantize_dynamic(plain)
            info.update(format="dynamic-int8", layers=["linear", "lstm", "gru"])
            return StepOutput("PyTorch dynamic int8 (weights int8, activations at run time)", None, info,
                              write_state(hc.quantized_state_dict(q)))
        if mode in ("fp16", "bf16"):
            info["format"] = mode
            return StepOutput(f"weights and arithmetic in {mode}", None, info,
                              write_state(hc.to_half(plain, mode).state_dict()))
        source = plain
        if mode == "qat":
            source = hc.prepare_qat(copy.deepcopy(plain))
            work.fit(source, epochs=options.epochs, lr=options.lr)
            source = hc.finish_qat(source).eval()
        int8 = "dynamic" if mode == "dynamic" else "static"
        calib = work.calibration(options.calibration_batches) if mode in ("static", "qat") else None
        info.update(format="onnx", runtime="onnxruntime", int8=hx.int8_settings(int8))
        notes = "ONNX Runtime int8 (" + ("dynamic" if mode == "dynamic" else "static, calibrated on training rows") + ")"
        return StepOutput(notes, None, info, _onnx_writer(source, work.example(), int8=int8, calibration=calib))


class ExportStep:
    """An ONNX graph (float or int8) or a torch.export program."""

    trains = False

    def label(self, options: Any) -> str:
        return f"export {options.format}"

    def run(self, work: CompressWork, options: Any) -> StepOutput:
        from honing import export as hx

        plain = _permanent(work.trunk).eval()
        info, example = work.info(plain), work.example()
        if options.format == "torch-export":
            info["format"] = "torch-export"
            return StepOutput("torch.export program", None, info,
                              lambda folder: hx.to_torch_export(plain, folder / PT2_FILE, example))
        info.update(format="onnx", runtime="onnxruntime")
        if options.format == "onnx":
            checked: dict[str, float] = {}

            def write_onnx(folder: Path) -> None:
                result = hx.to_onnx(plain, folder / ONNX_FILE, example, atol=options.tolerance, rtol=0.0)
                checked["diff"] = result.max_abs_diff

            notes = Lazy(lambda: f"max |ONNX Runtime - PyTorch| {checked.get('diff', float('nan')):.2g}")
            return StepOutput(notes, None, info, write_onnx)
        calib = work.calibration(options.calibration_batches) if options.quantization == "static" else None
        info["int8"] = hx.int8_settings(options.quantization)
        return StepOutput(f"ONNX Runtime int8 ({options.quantization})", None, info,
                          _onnx_writer(plain, example, int8=options.quantization, calibration=calib))


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


for _name, _step in (("distill", DistillStep()), ("prune", PruneStep()), ("finetune", FinetuneStep()),
                     ("quantize", QuantizeStep()), ("export", ExportStep())):
    COMPRESS_STEPS.register(_name, lambda s=_step: s)  # their options: honing.recipe's built-in step sections


# --- helpers -------------------------------------------------------------------------------------


def _permanent(model: nn.Module) -> nn.Module:
    """A copy without pruning masks (the zeros kept)."""
    from honing import compress as hc

    if not hc.has_masks(model):
        return model
    return hc.make_permanent(hc.clone(model))


def _save(folder: Path, plain: nn.Module, recipe: Any, data: Dataset, info: dict[str, Any], writer: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (folder / "meta.json", folder / ONNX_FILE, folder / PT2_FILE, folder / WEIGHTS):
        stale.unlink(missing_ok=True)  # meta.json last written marks a complete folder
    save_model(folder, plain, recipe=recipe.to_dict(), preprocessor=data.preprocessor, task=data.task,
               input_shape=data.input_shape, num_outputs=data.num_outputs, class_names=data.class_names,
               extra={"compression": info}, weights=writer, data=data)


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
    from honing._core import load_plugins
    from honing.pipeline._build import as_recipe
    from honing.recipe import parse_recipe

    load_plugins()
    rec = as_recipe(recipe)
    if rec.compress is None:
        raise ConfigError("invalid recipe for honing compress: it has no compress section; allowed: a recipe with "
                          "compress: {steps: [...]} (e.g. - quantize: {mode: dynamic})")
    loaded = load_model(model_dir)
    folder = Path(model_dir)
    if not (folder / "meta.json").is_file():
        folder = folder / "model"
    kind = (loaded.meta.get("compression") or {}).get("format", "torch")
    if not isinstance(loaded.model, nn.Module) or kind not in ("torch", "ensemble"):
        raise ConfigError(f"invalid model folder {str(model_dir)!r}: it holds a "
                          f"{loaded.meta['compression']['format']} model; allowed: a trained float model "
                          "(compress the folder it came from)")
    first = next(iter(rec.compress.steps[0]))
    if kind == "ensemble" and first != "distill":
        raise ConfigError(f"invalid compress steps for the ensemble {str(model_dir)!r}: got {first!r} first; allowed: "
                          "distill first (one student learns from the ensemble; the later steps compress the student)")
    args = rec.load_args()
    args.pop("preprocessor", None)
    data = load(rec.data.source, **args, preprocessor=loaded.preprocessor)
    if data.input_shape != tuple(loaded.input_shape) or data.num_outputs != loaded.num_outputs:
        raise ConfigError(f"invalid data for model {str(model_dir)!r}: the recipe's data give inputs "
                          f"{tuple(data.input_shape)} and {data.num_outputs} outputs, the model takes "
                          f"{tuple(loaded.input_shape)} and {loaded.num_outputs}")
    r = rec.to_dict()
    trunk_recipe = parse_recipe({**{k: v for k, v in loaded.recipe.items() if k not in ("tune", "compress", "ensemble")},
                                 "seed": r["seed"], "data": r["data"], "training": r["training"],
                                 "evaluate": r["evaluate"]})
    # default: compress/ beside the model folder (an ensemble's: inside it, apart from the run's own)
    out_dir = Path(out) if out is not None else folder if kind == "ensemble" else folder.parent
    set_threads(threads or rec.training.threads)
    return compress(out_dir, trunk_recipe, rec.compress, data, loaded.model, baseline=folder, progress=progress)
