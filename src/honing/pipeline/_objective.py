"""The objective of a search: one trial = one recipe with the trial's parameters, trained and validated.

Holdout: one Trainer, its validation metric reported each epoch so a weak trial stops early.
k-fold: k Trainers run in lockstep (``Trainer.iter_fit``); the fold-averaged curve is what is
reported, so early stopping of trials works under cross-validation too, and early stopping
of training watches the averaged curve.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from honing._core import ConfigError, EnergyMeter, atomic_save_file
from honing.data import Dataset
from honing.models import count_parameters
from honing.pipeline._build import build_model, build_trainer, data_key, load_data
from honing.pipeline._transfer import DataMemo
from honing.train import Callback, EarlyStopping, has_checkpoint, read_index, report_epoch, resolve_mode

TRIAL_CHECKPOINT_S = 30.0  # a running trial saves its state this often (seconds of training), for a retry


def median_forward_ms(model: Any, x: torch.Tensor, *, repeats: int, warmup: int = 5) -> float:
    """Median wall time of ``model(x)`` in milliseconds, after ``warmup`` untimed calls
    (no autograd; ``model`` is anything callable: a module, an ONNX Runtime session, ...)."""
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


LATENCY_RUNTIMES = ("torch", "onnxruntime")


def measure_latency_ms(model: torch.nn.Module, input_shape: tuple[int, ...], *, batch: int = 1, repeats: int = 50,
                       runtime: str = "torch") -> float:
    """Median wall time of one forward pass on random inputs, in milliseconds, of the model as a
    model folder runs it: eval mode, batch norm folded into the layer before it.

    ``runtime``: "torch" (eager PyTorch, as ``honing predict`` and ``honing serve`` run a model
    folder) or "onnxruntime" (the model exported to ONNX and run by ONNX Runtime's CPU provider
    with torch's thread count, as a served ONNX variant runs). The two can rank networks
    differently: eager PyTorch pays a fixed cost per layer, which dominates small inputs at batch 1,
    while ONNX Runtime's cost follows the arithmetic more closely."""
    run, x = served_forward(model, input_shape, batch, runtime)
    return median_forward_ms(run, x, repeats=repeats)


def measure_latency_ratio(model: torch.nn.Module, reference: torch.nn.Module, input_shape: tuple[int, ...], *,
                          batch: int = 1, repeats: int = 20, rounds: int = 6, runtime: str = "torch") -> float:
    """``model``'s latency as a multiple of ``reference``'s, both run as ``measure_latency_ms``
    runs them and timed side by side: ``rounds`` alternating rounds of ``repeats`` passes each, the
    median of the rounds' ratios. A machine that is slower at one moment slows both, so the ratio
    holds still where an absolute time drifts (a CNN timed at 0.22-0.38 ms over five runs here).
    ``reference``: a module, or ``served_forward(reference, ...)[0]`` prepared once to time many
    models beside (in onnxruntime, that saves an export per model)."""
    run_m, x = served_forward(model, input_shape, batch, runtime)
    run_r = served_forward(reference, input_shape, batch, runtime)[0] \
        if isinstance(reference, torch.nn.Module) else reference
    ratios = []
    for r in range(rounds):
        pair = (run_m, run_r) if r % 2 == 0 else (run_r, run_m)
        a, b = (median_forward_ms(f, x, repeats=repeats) for f in pair)
        ratios.append(a / b if r % 2 == 0 else b / a)
    return statistics.median(ratios)


def served_forward(model: torch.nn.Module, input_shape: tuple[int, ...], batch: int,
                   runtime: str) -> tuple[Any, torch.Tensor]:
    """One forward pass of the model as it is served (a callable of a batch; in onnxruntime it
    runs a fixed random batch of that shape) and a random batch."""
    from honing.models import fold_batch_norm

    if runtime not in LATENCY_RUNTIMES:
        raise ConfigError(f"invalid runtime {runtime!r}; allowed: {', '.join(LATENCY_RUNTIMES)}")
    model.eval()
    folded, _ = fold_batch_norm(model)
    x = torch.randn(batch, *input_shape)
    if runtime == "torch":
        return folded, x
    import tempfile

    from honing.export import to_onnx
    from honing.export._onnx import require

    ort = require("onnxruntime", "latency in onnxruntime")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/model.onnx"
        to_onnx(folded, path, x, check=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return (lambda _: session.run(None, feed)), x


class RecipeObjective:
    """``objective(params, reporter)`` for ``honing.tune.optimize``; picklable (crosses to workers).

    ``recipe``: a ``Recipe`` (or its ``to_dict()``, parsed once here). Each trial is
    ``recipe.with_params(params)``, typed; the data set is loaded once per process (a worker
    loads its own; the run passes its data with ``data=`` so a one-process search loads none).
    ``label_issues``: the run's ``data.check_labels`` record, so a worker that loads the same data
    reuses the check instead of making it again."""

    def __init__(self, recipe: Any, run_dir: str, *, threads: int | None = 1, save_weights: bool = False,
                 keep_predictions: bool = False, data: Dataset | None = None,
                 checkpoint_every_s: float | None = TRIAL_CHECKPOINT_S,
                 label_issues: dict[str, Any] | None = None) -> None:
        from honing.recipe import Recipe, parse_recipe

        self.recipe = recipe if isinstance(recipe, Recipe) else parse_recipe(recipe)
        self.run_dir = str(run_dir)
        self.threads = threads
        self.save_weights = save_weights
        self.keep_predictions = keep_predictions  # each finished trial's weights and validation predictions
        self.checkpoint_every_s = checkpoint_every_s  # a running trial's checkpoint, for its retry (None: none)
        self.memo = DataMemo()
        if data is not None:
            self.memo.put(data_key(self.recipe), data)
        # the data key the label check was made for: a trial that changes a data option checks again
        self.label_check = (data_key(self.recipe), label_issues) if label_issues is not None else None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "memo": DataMemo()}  # a worker loads its own copy of the data

    def data(self, recipe: Any) -> Dataset:
        check = self.label_check
        reuse = check[1] if check is not None and check[0] == data_key(recipe) else None
        return load_data(recipe, self.memo, label_issues=reuse)

    def __call__(self, params: dict[str, Any], reporter: Any) -> float | list[float]:
        from honing.tune import Pruned

        recipe = self.recipe.with_params(params) if params else self.recipe
        data = self.data(recipe)
        metric = recipe.search_metric(data.task)
        seed = int(getattr(reporter, "seed", recipe.seed))
        run = self._cross_validate if isinstance(recipe.tune.cv, int) else self._holdout
        self._losses: list[float] = []  # validation loss per epoch (fold-averaged): breaks ties between trials
        self._kept: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None  # weights, predictions
        with EnergyMeter() as meter:
            curve, best_epoch, model, pruned, reason = run(recipe, data, metric, seed, reporter)
        reporter.set("energy", meter.reading.to_dict())  # joules and how they were measured
        reporter.set("curve", [round(v, 6) for v in curve])
        reporter.set("best_epoch", best_epoch)
        if len(self._losses) >= best_epoch and self._losses[best_epoch - 1] == self._losses[best_epoch - 1]:
            reporter.set("val_loss", self._losses[best_epoch - 1])
        reporter.set("epochs_run", len(curve))
        reporter.set("stop_reason", reason)
        reporter.set("parameters", count_parameters(model))
        if pruned:
            raise Pruned(reason)
        if self.save_weights:
            path = Path(self.run_dir) / "trials" / f"{int(reporter.number)}.safetensors"
            state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
            atomic_save_file(path, lambda tmp: save_file(state, tmp))
        if self.keep_predictions and self._kept is not None:
            self._keep(int(reporter.number), *self._kept)
            self._kept = None
        best = curve[best_epoch - 1]
        objectives = recipe.tune.objectives
        if not objectives:
            return best
        measures = {"params": lambda: float(count_parameters(model)), "energy_j": lambda: meter.reading.joules,
                    "latency_ms": lambda: measure_latency_ms(model, data.input_shape), metric: lambda: best,
                    "robustness": lambda: robustness_objective(model, recipe, data)}
        return [measures[obj.metric]() for obj in objectives]  # the recipe allows only these

    # --- holdout and k-fold --------------------------------------------------------------------

    def _holdout(self, recipe, data, metric, seed, reporter):
        plan = build_model(recipe, data, seed=seed, memo=self.memo)
        model = plan.model
        trainer = build_trainer(recipe, plan, data, seed=seed, num_train=len(data.train), threads=self.threads,
                                reporter=reporter, report=metric)  # the Trainer reports and prunes
        if not plan.trains:  # few-shot prototypes: nothing to train, one evaluation
            value = float(trainer.evaluate(data.val, prefix="val_")[metric])
            reporter.report(value, 1)
            return [value], 1, model, False, "few-shot prototypes (no training)"
        folder, resume = self._checkpoint(trainer, reporter)
        try:
            for _ in trainer.iter_fit(data.train, data.val, checkpoint_dir=folder, resume=resume):
                pass
        except KeyboardInterrupt:
            raise  # the trial is retried: its checkpoint stays for the retry
        except BaseException:
            self._drop(folder)
            raise
        self._drop(folder)
        # the whole curve, the epochs an interrupted trial ran before this retry resumed included
        curve = [float(logs[metric]) for logs in trainer.history]
        self._losses.extend(float(logs.get("val_loss", float("nan"))) for logs in trainer.history)
        result = trainer.result
        best_epoch = _best_epoch(curve, resolve_mode(metric, "auto"))
        if self.keep_predictions and not result.pruned and data.val is not None:
            self._kept = (_weights(model), trainer.predict(data.val.x))  # the best epoch's weights (keep_best)
        return curve, best_epoch, model, result.pruned, result.stop_reason

    def _cross_validate(self, recipe, data, metric, seed, reporter):
        k = int(recipe.tune.cv)
        folds = data.folds(k, seed=recipe.seed)
        trainers, runs = [], []
        for train, val in folds:
            plan = build_model(recipe, data, seed=seed, memo=self.memo)
            trainer = build_trainer(recipe, plan, data, seed=seed, num_train=len(train), threads=self.threads,
                                    early_stopping=False)
            trainers.append(trainer)
            runs.append(trainer.iter_fit(train, val))
        es = recipe.training.early_stopping
        stopper = EarlyStopping(**{**es.model_dump(), "monitor": metric}) if es is not None else None
        curve: list[float] = []
        pruned, reason = False, None
        for logs in zip(*runs):
            epoch = int(logs[0]["epoch"])
            curve.append(sum(float(entry[metric]) for entry in logs) / k)
            self._losses.append(sum(float(entry.get("val_loss", float("nan"))) for entry in logs) / k)
            reason = report_epoch(reporter, curve[-1], epoch)  # the Trainer's own pruning path
            pruned = reason is not None
            if not pruned and stopper is not None:
                stop, why = stopper.check(curve[-1], epoch)
                if stop:
                    reason = f"{why} (fold-averaged)"
            if reason is not None:
                for trainer in trainers:
                    trainer.request_stop(reason)
        for run in runs:  # let each fold finish its bookkeeping
            for _ in run:
                pass
        best_epoch = _best_epoch(curve, resolve_mode(metric, "auto"))
        if self.keep_predictions and not pruned:  # each fold predicts its own held-out rows: out-of-fold predictions
            rows = data.fold_indices(k, seed=recipe.seed)
            oof = None
            weights: dict[str, torch.Tensor] = {}
            for i, (trainer, (_, val), (_, va)) in enumerate(zip(trainers, folds, rows)):
                pred = trainer.predict(val.x)
                oof = pred.new_zeros((len(data.raw_train_val[1]), *pred.shape[1:])) if oof is None else oof
                oof[torch.as_tensor(va)] = pred
                weights.update({f"fold{i}.{name}": t for name, t in _weights(trainer.model).items()})
            self._kept = (weights, oof)
        return curve, best_epoch, trainers[0].model, pruned, reason or f"completed {len(curve)} epochs"

    def _checkpoint(self, trainer: Any, reporter: Any) -> tuple[Path | None, bool]:
        """The trial's checkpoint folder (``trials/ckpt-<n>``), written every ``checkpoint_every_s``
        seconds of training by a callback; a retry of an interrupted trial takes over that
        trial's checkpoint and resumes from its last epoch (when this machine sees the folder)."""
        number = getattr(reporter, "number", None)
        if self.checkpoint_every_s is None or number is None:
            return None, False
        folder = Path(self.run_dir) / "trials" / f"ckpt-{int(number)}"
        retry_of = getattr(reporter, "retry_of", None)
        earlier = Path(self.run_dir) / "trials" / f"ckpt-{retry_of}" if retry_of is not None else None
        resume = False
        if earlier is not None and has_checkpoint(earlier):
            shutil.rmtree(folder, ignore_errors=True)
            earlier.rename(folder)
            resume = True
            epoch = int(read_index(folder).get("epoch", 0))
            reporter.set("resumed", {"trial": int(retry_of), "epoch": epoch})
        trainer.writes_checkpoints = False  # the timed callback writes them, not every epoch
        trainer.callbacks.append(TimedCheckpoint(folder, self.checkpoint_every_s))
        return folder, resume

    @staticmethod
    def _drop(folder: Path | None) -> None:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _keep(self, number: int, weights: dict[str, torch.Tensor], pred: torch.Tensor) -> None:
        """``trials/<n>.members.safetensors`` (the weights: one model, or ``fold<i>.`` per fold) and
        ``trials/<n>.pred.safetensors`` (its outputs on the validation rows, or out-of-fold on
        the train+validation rows): what the ensemble stage combines without training again."""
        folder = Path(self.run_dir) / "trials"
        atomic_save_file(folder / f"{number}.members.safetensors", lambda tmp: save_file(weights, tmp))
        pred = pred.detach().float().contiguous().cpu()
        atomic_save_file(folder / f"{number}.pred.safetensors", lambda tmp: save_file({"pred": pred}, tmp))


class TimedCheckpoint(Callback):
    """Save the trainer's checkpoint at an epoch's end once ``every_s`` seconds have passed since
    the last one (0: every epoch): a killed trial's retry resumes from it at little cost."""

    def __init__(self, folder: Path, every_s: float) -> None:
        self.folder, self.every_s, self.last = folder, float(every_s), time.monotonic()

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        if time.monotonic() - self.last >= self.every_s and trainer._stop_reason is None:
            trainer.save_checkpoint(self.folder)
            self.last = time.monotonic()


def _weights(model: Any) -> dict[str, torch.Tensor]:
    return {name: t.detach().contiguous().cpu().clone() for name, t in model.state_dict().items()}


def _best_epoch(curve: list[float], mode: str) -> int:
    pick = max if mode == "max" else min
    return 1 + curve.index(pick(curve))


def attacked_rows(x: torch.Tensor, y: torch.Tensor, rows: int | None, model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(x) if rows is None else min(rows, len(x))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return x[:n].to(device), y[:n].to(device)


def robustness_objective(model: Any, recipe: Any, data: Dataset) -> float:
    """A trial's ``robustness``: PGD accuracy on the validation rows (at most ``robust.rows``) at
    the robust section's first epsilon, with its norm, steps and restarts."""
    from honing.robust import InputSpace, pgd

    section = recipe.robust
    if data.task != "classification":
        raise ConfigError(f"invalid tune.objectives: got 'robustness' for a {data.task} task; allowed: a "
                          "classification task (robustness is the accuracy under attack)")
    split = data.val if data.val is not None else data.train
    x, y = attacked_rows(split.x, split.y, section.rows, model)
    space = InputSpace.from_preprocessor(data.preprocessor, data.train.x)
    right, batch = 0, recipe.training.eval_batch_size
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        adv = pgd(model, xb, yb, section.epsilons[0], norm=section.norm, steps=section.steps,
                  restarts=section.restarts, seed=recipe.seed, space=space).x
        was = model.training
        model.eval()
        with torch.no_grad():
            right += int((model(adv).argmax(1) == yb).sum())
        model.train(was)
    return right / max(1, len(x))
