"""Recipe sections ``data``, ``model`` and ``training``, and what every section shares.

Unknown keys are errors everywhere except in the argument bags (``model``,
``training.optimizer``, ``training.schedule``, ``training.loss``, ``data.augment``), whose keys
are checked against the registry entry they name (see ``_bags.py``). Validators raise
:class:`Invalid` with problems at their own sub-paths, so pydantic reports each at its field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from honing.data import list_sources
from honing.recipe import _bags
from honing.recipe._errors import Invalid, show, unknown_name
from honing.train import list_metrics

PositiveInt = Annotated[int, Field(ge=1)]
MAX_EPOCHS = 100_000  # sane upper bounds: a typo such as 1e30 is an error, not a run without end
MAX_BATCH = 1 << 24
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]

EXTRA_OBJECTIVES = ("params", "latency_ms", "energy_j", "robustness")  # measured per trial beside its validation metric
TEXT_SOURCES = ("text-csv", "rotten-tomatoes")
_FILE_SOURCES = {"csv": "file", "npz": "file", "idx": "folder", "text-csv": "file"}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        """``training:`` with nothing under it (YAML null) is the default section."""
        if not isinstance(data, dict):
            return data
        empty = [k for k, v in data.items() if v is None and k in cls.model_fields
                 and isinstance(cls.model_fields[k].default_factory, type)
                 and issubclass(cls.model_fields[k].default_factory, BaseModel)]
        return {k: v for k, v in data.items() if k not in empty} if empty else data


class Bag(BaseModel):
    """A section whose other keys are the keyword arguments of the object it names."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, allow_inf_nan=False,
                              use_attribute_docstrings=True)


def _check_name(kind: str, name: str) -> str:
    """A field validator's check of a bag's registry name (aliases allowed)."""
    names = _bags.registry_names(kind)
    if name.lower() not in names:
        try:
            _bags.allowed_keys(kind, name)
        except KeyError:
            raise Invalid([((), unknown_name(name, names, kind=kind))]) from None
    return name


def _base_dir(info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def _resolve(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def metric_names() -> list[str]:
    """Validation log keys a monitor or search metric may name."""
    return ["val_loss", *(f"val_{m}" for m in list_metrics())]


def check_log_key(name: str, *, allow_train: bool = True, extra: tuple[str, ...] = ()) -> str | None:
    """None if ``name`` is a key the Trainer logs (``loss``, ``val_loss``, ``val_<metric>``)."""
    from honing.train import METRICS

    if name in extra or (allow_train and name == "loss") or name == "val_loss":
        return None
    if name.startswith("val_") and name[4:] in METRICS:
        return None
    allowed = (["loss"] if allow_train else []) + metric_names() + list(extra)
    return unknown_name(name, allowed, kind="metric")


def direction_for(metric: str) -> str:
    from honing.train import resolve_mode

    if metric == "robustness":  # robust accuracy
        return "maximize"
    if metric in EXTRA_OBJECTIVES:
        return "minimize"
    return "maximize" if resolve_mode(metric, "auto") == "max" else "minimize"


# ------------------------------------------------------------------------------------- data

class DataSection(Section):
    source: str = Field(description=f"a data source: {', '.join(list_sources())}")
    """the data: sklearn:<digits|iris|wine|breast_cancer|diabetes>, fashion-mnist, idx:<folder>, csv:<path>, npz:<path>, text-csv:<path>, rotten-tomatoes"""
    val_size: Fraction = 0.15
    """fraction of the rows kept for validation (of the training rows when the source has a fixed test set)"""
    test_size: Fraction = 0.15
    """fraction of the rows held out for the one final test (ignored with a fixed test set or data.test; 0: no test rows, no test score)"""
    scale: Literal["standard", "minmax"] | None = "standard"
    """feature scaling fitted on the training rows: standard (mean 0, std 1), minmax, or null"""
    categorical: Literal["onehot", "index"] = "onehot"
    """encoding of categorical CSV columns: onehot (unknown category: all zeros) or index (1..K, 0 unknown)"""
    impute: Literal["mean", "median", "most_frequent"] | None = None
    """missing numeric values filled with the training mean (null), median or most_frequent; categorical ones with the most frequent category"""
    drop_duplicates: bool = True
    """drop rows whose features and target repeat an earlier row, before splitting (counted in the output)"""
    check_labels: Literal["report", "drop"] | None = None
    """classification: find train+validation rows whose label looks wrong (confident learning); report lists them, drop also leaves the suspect training rows out; null: no check"""
    stratify: bool = True
    """keep class proportions in every split (classification)"""
    task: Literal["classification", "regression"] | None = None
    """classification or regression; null infers it (text or few integer values: classification) and states it"""
    target: Any = None
    """csv: the target column (a list: multi-output regression); text-csv: the label column; null: the one column named target, label, class or y"""
    image: bool | None = None
    """sklearn:digits as 1x8x8 images (true); idx sets as flat vectors (false); null: the source's default"""
    folder: str | None = None
    """fashion-mnist: a folder with its four IDX files instead of the Debian package's"""
    limit: Annotated[int, Field(ge=2)] | None = None
    """keep at most this many rows (a seeded, stratified sample), e.g. for a quick look"""
    drop_columns: list[str] = []
    """csv: columns that are not features (ids, leaks)"""
    delimiter: str | None = None
    """csv: the field separator; null: comma, or tab for .tsv/.tab"""
    scale_target: bool | None = None
    """regression: standardize the targets for training; metrics and predictions stay in the target's units (null: on for regression)"""
    text_column: str | None = None
    """text-csv: the column holding the text (default text)"""
    max_length: Annotated[int, Field(ge=2, le=4096)] | None = None
    """text: tokens kept per row (2..4096; default 128)"""
    classes: list[Any] | None = None  # class labels (integers) or names (strings); see _classes
    """classification: keep only these classes (labels or names), re-indexed in this order"""
    train_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    """keep this fraction of the training rows (seeded, stratified) to simulate few labels"""
    test: str | None = None
    """an external test file of the source's form (csv:/npz:/text-csv:), matched by column name; replaces test_size"""
    augment: Any = None
    """training-time augmentation, e.g. {rotation: 10, translate: [0.1, 0.1], mixup: 0.2} (images)"""

    @property
    def is_text(self) -> bool:
        """Rows are texts (tokenized by the transfer section's text encoder)."""
        return self.source.lower().partition(":")[0] in TEXT_SOURCES

    @field_validator("source")
    @classmethod
    def _source(cls, value: str, info: ValidationInfo) -> str:
        forms = list_sources()
        prefix, sep, rest = value.strip().partition(":")
        prefix = prefix.lower()
        known = {f.partition(":")[0].lower(): f for f in forms}
        malformed = prefix in known and (bool(sep) != (":" in known[prefix]) or (sep and not rest.strip()))
        if prefix not in known or malformed:
            hint = ""
            suffix = Path(value.strip()).suffix.lower()
            if not sep and suffix in (".csv", ".tsv", ".tab", ".npz"):  # a bare file name: say the form it needs
                hint = f" (a file is named with its form: {'npz' if suffix == '.npz' else 'csv'}:{value.strip()})"
            raise Invalid([((), f"got {show(value)}; allowed: {', '.join(forms)}{hint}")])
        form = known[prefix]
        if "|" in form:  # an enumeration such as sklearn:<digits|iris|...>
            names = form.partition("<")[2].rstrip(">").split("|")
            if rest.strip() not in names:
                problem = unknown_name(rest.strip(), names, kind=f"{prefix} data set")
                raise Invalid([((), f"got {show(value)}; {problem}")])
        if prefix not in _FILE_SOURCES:
            return value
        base = _base_dir(info)
        path = _resolve(rest.strip(), base)
        kind = _FILE_SOURCES[prefix]
        if not (path.is_dir() if kind == "folder" else path.is_file()):
            rel = "" if Path(rest.strip()).expanduser().is_absolute() else f", relative to the recipe's folder {base}"
            raise Invalid([((), f"got {show(value)}: no such {kind} {str(path)!r}{rel}; allowed: an existing {kind}")])
        return f"{prefix}:{path}"

    @field_validator("test")
    @classmethod
    def _test(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        prefix, sep, rest = value.strip().partition(":")
        if prefix.lower() not in ("csv", "npz", "text-csv") or not sep or not rest.strip():
            raise Invalid([((), f"got {show(value)}; allowed: null, or a file of the source's form: 'csv:<path>', "
                                 "'npz:<path>' (arrays x, y) or 'text-csv:<path>'")])
        base = _base_dir(info)
        path = _resolve(rest.strip(), base)
        if not path.is_file():
            rel = "" if Path(rest.strip()).expanduser().is_absolute() else f", relative to the recipe's folder {base}"
            raise Invalid([((), f"got {show(value)}: no such file {str(path)!r}{rel}; allowed: an existing file")])
        return f"{prefix.lower()}:{path}"

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = _resolve(value, _base_dir(info))
        if not path.is_dir():
            raise Invalid([((), f"got {show(value)}: no such folder {str(path)!r}; allowed: an existing folder")])
        return str(path)

    @field_validator("target")
    @classmethod
    def _target(cls, value: Any) -> Any:
        ok = value is None or (isinstance(value, str) and value) or (
            isinstance(value, list) and value and all(isinstance(v, str) and v for v in value))
        if not ok:
            raise Invalid([((), f"got {show(value)}; allowed: null (the one column named target, label, class or y), a column name, "
                                 "or a list of column names")])
        return value

    @field_validator("classes", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> Any:
        allowed = "allowed: null, or a non-empty list of unique class labels (integers) or class names (strings)"
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise Invalid([((), f"got {show(value)}; {allowed}")])
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, item in enumerate(value):
            label = isinstance(item, int) and not isinstance(item, bool)
            if not label and not (isinstance(item, str) and item.strip()):
                problems.append(((i,), f"got {show(item)}; allowed: a class label (an integer) or a class name "
                                       "(a non-empty string)"))
            elif item in value[:i]:
                problems.append(((i,), f"got {show(item)} again; {allowed}"))
        if problems:
            raise Invalid(problems)
        return value

    @model_validator(mode="after")
    def _whole(self) -> DataSection:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.val_size + self.test_size >= 1:
            problems.append((("test_size",), f"val_size + test_size = {self.val_size} + {self.test_size}; "
                                             "allowed: a sum below 1"))
        text_csv = self.source.lower().startswith("text-csv:")
        if not self.source.lower().startswith("csv:"):
            for key in (() if text_csv else ("target",)) + ("drop_columns", "delimiter"):
                if getattr(self, key) not in (None, []):
                    problems.append(((key,), f"got {show(getattr(self, key))} with source {self.source!r}; "
                                             f"allowed: null ({key} applies to csv sources only)"))
        if self.text_column is not None and not text_csv:
            problems.append((("text_column",), f"got {show(self.text_column)} with source {self.source!r}; "
                                               "allowed: null (text_column applies to text-csv sources)"))
        if self.max_length is not None and not self.is_text:
            problems.append((("max_length",), f"got {self.max_length} with source {self.source!r}; "
                                              "allowed: null (max_length applies to text sources)"))
        if text_csv and isinstance(self.target, list):
            problems.append((("target",), f"got {show(self.target)}; allowed: one label column name"))
        if self.test is not None and self.test.partition(":")[0] != self.source.strip().partition(":")[0].lower():
            problems.append((("test",), f"got {show(self.test)} with source {self.source!r}; allowed: a test file of "
                                        "the same form as data.source (csv with csv, npz with npz, text-csv with "
                                        "text-csv)"))
        if self.scale_target and self.task == "classification":
            problems.append((("scale_target",), "got true for a classification task; allowed: false "
                                                "(it standardizes regression targets)"))
        multi_target = isinstance(self.target, list) and len(self.target) > 1 and not text_csv
        if self.classes is not None and (self.task == "regression" or multi_target):
            problems.append((("classes",), f"got {show(self.classes)} for a regression task; allowed: null "
                                           "(classes applies to classification only)"))
        if self.augment is not None:
            problems += [(("augment", *loc), msg) for loc, msg in _bags.check_augment(self.augment)]
        if problems:
            raise Invalid(problems)
        return self


# ------------------------------------------------------------------------------------ model

class ModelSection(Bag):
    name: str
    """the architecture: mlp, cnn, rnn, transformer, ...; other keys are its arguments (e.g. hidden, dropout)"""
    init: Any = "default"
    """weight initialization: default (the layer's own) or a registry name such as kaiming_normal, xavier_uniform, orthogonal"""
    gain: Any = None
    """initialization gain: null (the activation's), adaptive, or a number"""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name("model", value)

    @model_validator(mode="after")
    def _bag(self) -> ModelSection:
        problems = _bags.check_model(self.model_dump())
        if problems:
            raise Invalid(problems)
        return self


# --------------------------------------------------------------------------------- training

class OptimizerSection(Bag):
    name: str = "adam"
    """optimizer: sgd, adam, adamw, rmsprop, lbfgs, ...; other keys are its arguments (momentum, betas, ...)"""
    lr: PositiveFloat | None = None
    """learning rate; null: the optimizer's default"""
    weight_decay: NonNegativeFloat = 0.0
    """L2 / decoupled weight decay (not applied to biases and norms)"""
    layer_decay: Annotated[float, Field(gt=0, le=1)] | None = None
    """layer-wise learning-rate decay towards the input (0 < d <= 1)"""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name("optimizer", value)

    @model_validator(mode="after")
    def _bag(self) -> OptimizerSection:
        problems = _bags.check_optimizer(self.model_dump())
        if problems:
            raise Invalid(problems)
        return self


class ScheduleSection(Bag):
    name: str
    """learning-rate schedule: cosine, step, exponential, onecycle, plateau, ...; other keys are its arguments"""
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    """linear warm-up over this many optimizer steps (a training with too few steps for it warms up over a quarter of them, and says so)"""
    warmup_epochs: NonNegativeFloat | None = None
    """linear warm-up over this many epochs (instead of warmup_steps)"""
    warmup_start_factor: Annotated[float, Field(ge=0, le=1)] = 0.0
    """warm-up starts at this fraction of the learning rate"""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name("schedule", value)


class EarlyStoppingSection(Section):
    monitor: str = "val_loss"
    """the logged value watched: loss, val_loss or val_<metric>"""
    mode: Literal["auto", "min", "max"] = "auto"
    """min or max; auto: max for accuracy-like metrics, min for losses"""
    patience: PositiveInt = 10
    """epochs without improvement before training stops"""
    min_delta: NonNegativeFloat = 0.0
    """smallest change that counts as an improvement"""

    @field_validator("monitor")
    @classmethod
    def _monitor(cls, value: str) -> str:
        problem = check_log_key(value)
        if problem:
            raise Invalid([((), problem)])
        return value


class DistributedSection(Section):
    processes: Annotated[int, Field(ge=1, le=256)] = 1
    """data-parallel processes (torch.distributed DDP) for the final model and `honing train`; batch_size is split among them"""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """auto: gloo on CPU, nccl on CUDA"""
    timeout: Annotated[float, Field(gt=0, le=3600)] = 120.0
    """seconds a collective waits for the other processes before the run fails (torch's default is 30 minutes)"""


class AdversarialSection(Section):
    """Train on attacked batches (honing.robust.AdversarialStep; docs/robust.md)."""

    method: Literal["pgd", "trades", "fgsm"] = "pgd"
    """pgd: PGD-AT (the loss on PGD examples); trades: clean loss + beta x KL to the attacked prediction; fgsm: fast FGSM from a random start"""
    epsilon: Annotated[float, Field(ge=0, le=1e6)] = 0.1
    """the attack's L-inf radius, in the data's units ([0, 1] pixel units for images)"""
    steps: Annotated[int, Field(ge=1, le=100)] = 7
    """attack steps per batch (pgd, trades; fgsm takes one)"""
    step_size: Annotated[float, Field(gt=0)] | None = None
    """the attack's step; null: 2.5 x epsilon / steps (fgsm: 1.25 x epsilon)"""
    beta: Annotated[float, Field(ge=0, le=1000)] = 6.0
    """trades: the weight of the robustness term"""


class TrainingSection(Section):
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 20
    """most epochs per training (early stopping may end it sooner)"""
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH)] | None = 32
    """rows per optimizer step; null: the whole training set (full batch)"""
    eval_batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 256
    """rows per forward pass when evaluating"""
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    """the optimizer: a name or {name, lr, weight_decay, ...}"""
    schedule: ScheduleSection | None = None
    """the learning-rate schedule: a name or {name, ...}; null: constant"""
    loss: Any = None
    """a loss name or {name, ...}: cross_entropy, focal, mse, mae, huber, ...; null: cross_entropy or mse; {weight: balanced} weights classes"""
    class_weight: Literal["balanced"] | None = None
    """balanced: weight each class by n / (K * its training rows) in the loss (rare classes count more); null: equal"""
    early_stopping: EarlyStoppingSection | None = None
    """stop when a monitored value stops improving; null: train every epoch"""
    grad_clip_norm: PositiveFloat | None = None
    """clip the gradients' global norm to this value"""
    grad_clip_value: PositiveFloat | None = None
    """clip each gradient element to [-v, v]"""
    accumulate: PositiveInt = 1
    """optimizer step every this many batches (gradient accumulation)"""
    threads: PositiveInt | None = 1
    """torch threads per process (1 is safest on shared cores; workers use 1 each)"""
    keep_best: bool = True
    """restore the weights of the best monitored epoch at the end"""
    precision: Any = "32"
    """arithmetic: 32, bf16 or 16 (16 needs CUDA)"""
    device: str = "cpu"
    """cpu, cuda, cuda:N or mps"""
    monitor: str | None = None
    """the value that picks the best epoch; null: the search metric"""
    distributed: DistributedSection | None = None
    """data-parallel training of one model: {processes: N}; the search's trials train in one process each"""
    adversarial: AdversarialSection | None = None
    """adversarial training: {method: pgd | trades | fgsm, epsilon, steps, beta} (docs/robust.md); null: plain training"""

    def to_train_config(self, *, seed: int, monitor: str, epochs: int | None = None, with_val: bool = True,
                        threads: int | None = None) -> Any:
        """The Trainer's ``TrainConfig`` for this section (``with_val=False``: no validation rows,
        so the loss is monitored and no best epoch is kept)."""
        from honing.train import TrainConfig

        return TrainConfig(
            epochs=int(epochs or self.epochs),
            batch_size=self.batch_size,
            eval_batch_size=self.eval_batch_size,
            grad_clip_norm=self.grad_clip_norm,
            grad_clip_value=self.grad_clip_value,
            accumulate=self.accumulate,
            seed=seed,
            threads=threads if threads is not None else self.threads,
            progress=False,
            monitor=monitor if with_val else "loss",
            keep_best=self.keep_best and with_val,
            device=self.device,
            precision=self.precision,
        )

    @model_validator(mode="after")
    def _split_batches(self) -> TrainingSection:
        d = self.distributed
        if self.adversarial is not None and self.precision == "16":
            raise Invalid([(("adversarial",), "got adversarial training with precision 16 (float16 loss scaling); "
                            "allowed: precision 32 or bf16")])
        if d is not None and d.processes > 1 and self.adversarial is not None:
            raise Invalid([(("adversarial",), "got adversarial training with distributed.processes "
                            f"{d.processes}; allowed: one of them (data-parallel ranks take plain optimizer steps)")])
        if d is not None and d.processes > 1 and self.batch_size is not None and self.batch_size < d.processes:
            raise Invalid([(("distributed", "processes"), f"got {d.processes} processes for batch_size "
                            f"{self.batch_size}; allowed: at most batch_size (each process takes a slice of a batch)")])
        return self

    @field_validator("loss")
    @classmethod
    def _loss(cls, value: Any) -> Any:
        if value is None:
            return None
        from honing.train import list_losses

        if isinstance(value, str):
            _loss_name(value, ())
        elif isinstance(value, dict):
            if not isinstance(value.get("name"), str):
                got = show(value.get("name"))
                raise Invalid([(("name",), f"got {got}; allowed: one of {', '.join(list_losses())}")])
            _loss_name(value["name"], ("name",))
        else:
            raise Invalid([((), f"got {show(value)}; allowed: null (the task's default), a loss name "
                                 f"({', '.join(list_losses())}) or a mapping {{name: ..., **options}}")])
        problems = _bags.check_loss(value)
        if problems:
            raise Invalid(problems)
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, value: Any) -> str:
        from honing.train import PRECISIONS, resolve_precision

        value = resolve_precision(value)
        if value not in PRECISIONS:
            raise Invalid([((), f"got {show(value)}; allowed: {', '.join(map(repr, PRECISIONS))}")])
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        import torch

        try:
            torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            raise Invalid([((), f"got {show(value)}; allowed: 'cpu', 'cuda', 'cuda:N', 'mps'")]) from None
        return value

    @field_validator("monitor")
    @classmethod
    def _monitor(cls, value: str | None) -> str | None:
        problem = None if value is None else check_log_key(value)
        if problem:
            raise Invalid([((), problem)])
        return value

    @model_validator(mode="after")
    def _whole(self) -> TrainingSection:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.grad_clip_norm is not None and self.grad_clip_value is not None:
            problems.append((("grad_clip_value",), f"got {self.grad_clip_value} together with grad_clip_norm="
                                                   f"{self.grad_clip_norm}; allowed: one of them"))
        if self.schedule is not None:
            from honing.optim import get_optimizer_info

            lr = self.optimizer.lr or get_optimizer_info(self.optimizer.name).default_lr
            problems += [(("schedule", *loc), msg) for loc, msg in
                         _bags.check_schedule(self.schedule.model_dump(), epochs=self.epochs, lr=lr)]
        if problems:
            raise Invalid(problems)
        return self


def _loss_name(name: str, loc: tuple[str, ...]) -> None:
    from honing.train import LOSSES, list_losses

    if name not in LOSSES:
        raise Invalid([(loc, unknown_name(name, list_losses(), kind="loss"))])
