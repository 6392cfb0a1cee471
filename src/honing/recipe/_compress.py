"""The recipe's ``compress`` section: steps run in order on the final model.

::

    compress:
      steps:
        - distill: {model: {name: mlp, hidden: [64]}, temperature: 2, alpha: 0.9}
        - prune: {method: structured, amount: 0.5}     # magnitude | structured | admm
        - finetune: {epochs: 3}
        - quantize: {mode: dynamic}                    # dynamic | static | qat | fp16 | bf16
        - export: {format: onnx}                       # onnx | onnx-int8 | torch-export
      latency: {batch_sizes: [1, 256], repeats: 20, threads: 1}

``compress: [...]`` (a bare list) is the same as ``compress: {steps: [...]}``. A step is a
one-key mapping (name -> options) or a bare name (``- finetune``) for the defaults.

The *model-changing* steps (``distill``, ``prune``, ``finetune``) come first, each working on
the output of the one before. Then any number of ``quantize`` / ``export`` steps, each a
separate deployable variant of that last trained model (dynamic int8, bf16, int8 ONNX, ...),
so one table compares them side by side.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from honing.recipe._convert import translate
from honing.recipe._errors import Invalid, show, unknown_name
from honing.recipe._sections import Fraction, ModelSection, NonNegativeFloat, PositiveFloat, PositiveInt, Section

NonNegativeInt = Annotated[int, Field(ge=0)]
OpenFraction = Annotated[float, Field(gt=0, lt=1)]


class DistillStep(Section):
    """Train a smaller student (``model``, same keys as the recipe's model section) from the current model."""

    model: ModelSection
    """the student architecture (same keys as model:)"""
    # defaults measured on Fashion-MNIST students of a twentieth of the teacher (bench/README.md):
    # T 4 and 8 did worse than 2; a small student learns best from soft targets that stay sharp
    temperature: PositiveFloat = 2.0
    """softmax temperature of the teacher's soft targets"""
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.9
    """weight of the soft-target loss (1 - alpha: the labels)"""
    feature_weight: NonNegativeFloat = 0.0
    """weight of a loss matching the student's features to the teacher's"""
    epochs: PositiveInt | None = None  # null: training.epochs
    """training epochs of the student; null: training.epochs"""
    lr: PositiveFloat | None = None  # null: training.optimizer.lr
    """learning rate; null: training.optimizer.lr"""


class PruneStep(Section):
    method: Literal["magnitude", "structured", "admm"] = "magnitude"
    """magnitude (zero the smallest weights), structured (remove neurons/channels), admm"""
    sparsity: Fraction | None = None  # magnitude, admm: fraction of weights set to zero (default 0.5)
    """magnitude, admm: fraction of weights set to zero (default 0.5)"""
    amount: OpenFraction | None = None  # structured: fraction of neurons/channels removed (default 0.5)
    """structured: fraction of neurons/channels removed (default 0.5)"""
    scope: Literal["layer", "global"] = "global"  # magnitude
    """magnitude: rank weights per layer or globally"""
    steps: PositiveInt = 1  # rounds of prune-then-fine-tune, sparsity rising to the target
    """rounds of prune-then-fine-tune, sparsity rising to the target"""
    schedule: Literal["cubic", "linear"] = "cubic"
    """how sparsity rises over the rounds: cubic or linear"""
    finetune_epochs: NonNegativeInt = 0  # after each round (pruned weights stay zero)
    """fine-tuning epochs after each round (pruned weights stay zero)"""
    admm_epochs: PositiveInt = 5  # admm: epochs trained under the sparsity constraint
    """admm: epochs trained under the sparsity constraint"""
    rho: PositiveFloat = 1e-3  # admm: penalty weight
    """admm: penalty weight"""
    lr: PositiveFloat | None = None
    """learning rate; null: training.optimizer.lr"""

    @model_validator(mode="after")
    def _target(self) -> PruneStep:
        if self.method == "structured" and self.sparsity is not None:
            raise Invalid([(("sparsity",), f"got sparsity {self.sparsity} with method structured; allowed: null "
                                           "(structured pruning takes amount, the fraction of neurons and "
                                           "channels removed)")])
        if self.method != "structured" and self.amount is not None:
            raise Invalid([(("amount",), f"got amount {self.amount} with method {self.method!r}; allowed: null "
                                         "(this method takes sparsity, the fraction of weights set to zero)")])
        return self

    @property
    def target(self) -> float:
        value = self.amount if self.method == "structured" else self.sparsity
        return 0.5 if value is None else value


class FinetuneStep(Section):
    epochs: PositiveInt = 3
    """fine-tuning epochs on the training rows"""
    lr: PositiveFloat | None = None
    """learning rate; null: training.optimizer.lr"""


class QuantizeStep(Section):
    mode: Literal["dynamic", "static", "qat", "fp16", "bf16"] = "dynamic"
    """dynamic, static (calibrated), qat (quantization-aware training), fp16, bf16"""
    runtime: Literal["torch", "onnx"] | None = None  # null: torch for dynamic/fp16/bf16, onnx for static/qat
    """torch or onnx; null: torch for dynamic/fp16/bf16, onnx for static/qat"""
    calibration_batches: PositiveInt = 8  # static, qat: training batches of 64 rows
    """static, qat: training batches of 64 rows for the activation ranges"""
    epochs: PositiveInt = 2  # qat: fine-tuning epochs with int8-simulated weights
    """qat: fine-tuning epochs with int8-simulated weights"""
    lr: PositiveFloat | None = None
    """qat: learning rate; null: training.optimizer.lr"""

    @model_validator(mode="after")
    def _runtime(self) -> QuantizeStep:
        if self.mode in ("static", "qat") and self.runtime == "torch":
            raise Invalid([(("runtime",), f"got 'torch' with mode {self.mode!r}; allowed: onnx or null (static "
                                          "int8 runs in ONNX Runtime: PyTorch's eager static quantization is "
                                          "deprecated and its replacement needs torch.compile)")])
        if self.mode in ("fp16", "bf16") and self.runtime == "onnx":
            raise Invalid([(("runtime",), f"got 'onnx' with mode {self.mode!r}; allowed: torch or null")])
        return self

    @property
    def resolved_runtime(self) -> str:
        if self.runtime is not None:
            return self.runtime
        return "onnx" if self.mode in ("static", "qat") else "torch"


class ExportStep(Section):
    format: Literal["onnx", "onnx-int8", "torch-export"] = "onnx"
    """onnx, onnx-int8 or torch-export"""
    quantization: Literal["static", "dynamic"] = "static"  # onnx-int8
    """onnx-int8: static (calibrated) or dynamic"""
    tolerance: PositiveFloat = 1e-4  # onnx: largest allowed |ONNX Runtime - PyTorch| on test rows, times the output scale (largest |output|, at least 1)
    """onnx: largest allowed |ONNX Runtime - PyTorch| on test rows, times the output scale (largest |output|, at least 1)"""
    calibration_batches: PositiveInt = 8
    """onnx-int8 static: training batches for the activation ranges"""


# name -> the options model of a compression step, and whether the step trains (changes the
# model the later steps work on) or makes a deployable variant of it
STEPS: dict[str, type[Section]] = {}
_TRAINS: dict[str, bool] = {}


def register_step_options(name: str, options: type[Section], *, trains: bool) -> None:
    """Make ``name`` a compression step of the recipe, its options checked by ``options`` (a
    Section subclass). ``honing.pipeline.register_compress_step`` calls this with the step."""
    from honing._core import ConfigError

    if name in STEPS:
        raise ConfigError(f"compression step {name!r} is already registered")
    STEPS[name] = options
    _TRAINS[name] = trains


def compress_step_options(name: str, options: Any) -> Section:
    """A step's options (as the resolved recipe stores them) as its typed section."""
    return STEPS[name].model_validate(options or {})


def training_steps() -> list[str]:
    """The steps that change the model (they come before any variant)."""
    return [n for n, t in _TRAINS.items() if t]


for _name, _options, _trains in (("distill", DistillStep, True), ("prune", PruneStep, True),
                                 ("finetune", FinetuneStep, True), ("quantize", QuantizeStep, False),
                                 ("export", ExportStep, False)):
    register_step_options(_name, _options, trains=_trains)


class LatencySection(Section):
    """How stages are timed: ``rounds`` passes over all stages in turn (so drift of the machine
    hits every stage alike), each timing ``repeats`` forward passes per batch size; a stage's
    latency is the median over rounds of its median."""

    batch_sizes: list[PositiveInt] = [1, 256]
    """batch sizes timed per stage"""
    repeats: PositiveInt = 20
    """forward passes timed per round"""
    rounds: PositiveInt = 3
    """passes over all stages, in turn"""
    threads: PositiveInt = 1
    """torch threads while timing"""


class CompressSection(Section):
    steps: list[Any]
    """the steps, in order: distill, prune, finetune, quantize, export (each {step: {options}})"""
    latency: LatencySection = Field(default_factory=LatencySection)
    """how the stages are timed"""

    @model_validator(mode="before")
    @classmethod
    def _list(cls, data: Any) -> Any:
        return {"steps": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _steps(self) -> CompressSection:
        if not self.steps:
            raise Invalid([(("steps",), f"got []; allowed: a list of steps ({', '.join(STEPS)})")])
        problems: list[tuple[tuple[str | int, ...], str]] = []
        parsed: list[dict[str, Any]] = []
        for i, item in enumerate(self.steps):
            name, options = _split(item, problems, i)
            if name is None:
                continue
            try:
                step = STEPS[name].model_validate(options or {})
            except ValidationError as err:
                problems.extend((("steps", i, name, *loc), msg) for loc, msg in translate(err, STEPS[name]))
                continue
            parsed.append({name: step.model_dump(mode="json")})
        names = [next(iter(p)) for p in parsed]
        trains = training_steps()
        final = [j for j, n in enumerate(names) if n not in trains]
        if final and not problems:
            late = [j for j in range(final[0], len(names)) if names[j] in trains]
            for j in late:
                problems.append((("steps", j), f"got {names[j]!r} after {names[final[0]]!r} (step {final[0]}); "
                                               f"allowed: {', '.join(trains)} before any "
                                               f"{', '.join(n for n in STEPS if n not in trains)} (a quantized or "
                                               "exported model is not trained further)"))
        if problems:
            raise Invalid(problems)
        object.__setattr__(self, "steps", parsed)
        return self


def _split(item: Any, problems: list[tuple[tuple[str | int, ...], str]], i: int) -> tuple[str | None, Any]:
    allowed = list(STEPS)
    if isinstance(item, str):
        name, options = item, None
    elif isinstance(item, dict) and len(item) == 1:
        name, options = next(iter(item.items()))
    else:
        problems.append((("steps", i), f"got {show(item)}; allowed: a step name or a one-key mapping "
                                       "{name: options}, e.g. {prune: {method: structured, amount: 0.5}}"))
        return None, None
    if name not in STEPS:
        problems.append((("steps", i), unknown_name(name, allowed, kind="compression step")))
        return None, None
    if options is not None and not isinstance(options, dict):
        problems.append((("steps", i, name), f"got {show(options)}; allowed: a mapping of options or null"))
        return None, None
    return name, options

