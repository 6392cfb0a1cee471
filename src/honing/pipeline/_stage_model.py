"""The model stages: the final model of a search (``final_fit``), the one training of ``honing
train`` (``fit``), and the one evaluation on the held-out test rows (``test``).

``final_fit`` and ``test`` keep their output in the run folder, keyed on what made it: a re-run
with the same chosen trial loads the final weights and the test scores instead of training
and testing again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from honing._core import EnergyMeter, RunFailedError, atomic_save_file, atomic_write_text, set_threads
from honing.data import Dataset, Split
from honing.pipeline._build import build_model, build_trainer
from honing.pipeline._context import RunContext, digest
from honing.pipeline._stage_search import RESULTS, check_same_study
from honing.train import has_checkpoint, resolve_mode

FINAL_WEIGHTS = "final_fit.safetensors"


class FinalFitStage:
    """The final model: retrained on train+validation, or the chosen trial's own weights."""

    name = "final_fit"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rec, sel, data = ctx.recipe, ctx.selected, ctx.data
        final = rec.with_params(sel["params"])
        ctx.final_recipe = final
        set_threads(ctx.options.threads or rec.training.threads)
        if rec.tune.final == "best_trial":
            plan = build_model(final, data, seed=rec.seed + sel["number"], memo=ctx.memo)
            weights = ctx.out_dir / "trials" / f"{sel['number']}.safetensors"
            if not weights.is_file():  # the trial ran in a `honing worker` with a folder of its own
                where = sel["user_attrs"].get("worker", "another worker").rpartition(":")[0] or "another machine"
                raise RunFailedError(f"trial {sel['number']} (the best) kept its weights on {where}, not in {weights}: "
                                     f"copy that worker's trials/{sel['number']}.safetensors there and re-run (it "
                                     "resumes), or use tune.final: retrain")
            plan.model.load_state_dict(load_file(str(weights)))
            ctx.model, ctx.history = plan.model, []
            ctx.final_how = f"weights of trial {sel['number']}"
            ctx.model_key = digest(["best_trial", sel["number"], sel["params"]])
            return {"how": ctx.final_how}
        epochs = retrain_epochs(sel["user_attrs"].get("curve") or [], resolve_mode(rec.search_metric(data.task), "auto"),
                                default=int(sel["user_attrs"].get("best_epoch") or final.training.epochs))
        # the budget, ensemble, compression and output sections do not change the final model
        recipe = {k: v for k, v in final.to_dict().items() if k not in ("tune", "ensemble", "compress", "output")}
        key = {"trial": sel["number"], "params": sel["params"], "epochs": epochs, "recipe": recipe}
        ctx.model_key = digest(key)
        ctx.final_how = f"retrained on train+validation for {epochs} epochs"
        weights = ctx.stage_file(FINAL_WEIGHTS)
        stored = ctx.resume(key)
        if stored is not None and weights.is_file():
            plan = build_model(final, data, seed=final.seed, memo=ctx.memo)
            plan.model.load_state_dict(load_file(str(weights)))
            ctx.model, ctx.history = plan.model, stored.get("history") or []
            if stored.get("energy"):
                energy(ctx)["final_training"] = stored["energy"]
            ctx.say(f"final model: loaded from {weights} (trained by an earlier run of this folder)")
            return {"how": ctx.final_how}
        with metered(ctx, "final_training"):
            ctx.model, ctx.history = _retrain(ctx, final, data, epochs=epochs)
        state = {k: v.detach().contiguous().cpu() for k, v in ctx.model.state_dict().items()}
        atomic_save_file(weights, lambda tmp: save_file(state, tmp))
        ctx.keep(key, {"history": ctx.history, "energy": energy(ctx)["final_training"]})
        return {"how": ctx.final_how}


class FitStage:
    """One training of the recipe (``honing train``): validation, early stopping, best epoch;
    it resumes from its checkpoint."""

    name = "fit"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rec, data, out = ctx.recipe, ctx.data, ctx.out_dir
        out.mkdir(parents=True, exist_ok=True)
        check_same_study(out, rec.to_dict(), bound=(out / "checkpoint").is_dir() or (out / RESULTS).is_file())
        set_threads(ctx.options.threads or rec.training.threads)
        plan = build_model(rec, data, seed=rec.seed, memo=ctx.memo)
        if plan.trains and _processes(rec) > 1:
            with metered(ctx, "final_training"):  # the ranks are this process's children: their CPU time counts
                result = _fit_distributed(ctx, rec, plan, data.train, data.val, "train",
                                          checkpoint_dir=out / "checkpoint", seed=rec.seed, num_train=len(data.train),
                                          threads=ctx.options.threads)
            history, how = result.history, (f"trained once on {_processes(rec)} data-parallel processes: "
                                            f"{result.stop_reason}; best epoch {result.best_epoch}")
        else:
            trainer = build_trainer(rec, plan, data, seed=rec.seed, num_train=len(data.train),
                                    threads=ctx.options.threads)
            for note in trainer.notes:
                ctx.say(f"train: {note}")
            if not plan.trains:
                logs = {"epoch": 1.0, **(trainer.evaluate(data.val, prefix="val_") if data.val is not None else {})}
                history = [logs]
                how = f"few-shot prototypes of {rec.transfer.shots} training examples per class"
            else:
                if ctx.options.progress:
                    from honing.pipeline._summary import EpochProgress

                    trainer.callbacks.append(EpochProgress("train"))
                reused = _reuse_training(ctx, out / "checkpoint")
                with metered(ctx, "final_training"):
                    result = trainer.fit(data.train, data.val, checkpoint_dir=out / "checkpoint", resume=True)
                history, how = result.history, f"trained once: {result.stop_reason}; best epoch {result.best_epoch}"
                if reused is not None:
                    how += f" (the training nas.promote gave candidate {reused}, not repeated)"
        ctx.final_recipe, ctx.model, ctx.history, ctx.final_how = rec, plan.model, history, how
        ctx.model_key = digest(["fit", rec.to_dict()])
        return {"how": how}


class TestStage:
    """The one evaluation on the held-out test rows (confusion matrix or residuals), and the
    final model's score on the validation rows beside the chosen trial's."""

    name = "test"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        key = [ctx.model_key, "test", ctx.final_recipe.evaluate.metrics]
        stored = ctx.resume(key)
        if stored is None:
            with EnergyMeter() as meter:
                metrics, extra = _test(ctx.model, ctx.final_recipe, ctx.data)
            extra = {**extra, "energy": meter.reading.to_dict()}
            final_val = _final_validation(ctx.model, ctx.final_recipe, ctx.data, ctx.final_how, ctx.metric)
            stored = {"metrics": metrics, "extra": extra, "final_validation": final_val}
            ctx.keep(key, stored)
        ctx.test_metrics, ctx.test_extra = stored["metrics"], dict(stored["extra"])
        if "energy" in ctx.test_extra:  # the inference on the test rows
            energy(ctx)["test_inference"] = ctx.test_extra.pop("energy")
        ctx.results["final_validation"] = stored["final_validation"]
        return {"rows": len(ctx.data.test) if ctx.data.test is not None else 0}


# --- helpers -------------------------------------------------------------------------------------


PROMOTED_MARK = "promoted.json"  # in a fit's checkpoint folder: it is the training nas.promote gave a candidate


def _reuse_training(ctx: RunContext, checkpoint: Path) -> int | None:
    """Start the fit from the training ``nas.promote`` already did of this very recipe (its
    finished checkpoint copied to ``checkpoint``), so the fit resumes at its end instead of
    training the same network again. Only for the same recipe (a digest of it), a folder whose fit
    has not started, and a checkpoint that is still there. Returns the candidate's index when the
    fit's checkpoint is that training (copied now, or by an earlier run of this folder: a mark in
    the checkpoint folder says so), else None."""
    mark = checkpoint / PROMOTED_MARK
    if checkpoint.exists():
        try:
            return int(json.loads(mark.read_text(encoding="utf-8"))["index"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    trained = ctx.trained
    if (trained is None or trained["recipe"] != digest(ctx.recipe.to_dict())
            or not has_checkpoint(trained["checkpoint"])):
        return None
    shutil.copytree(trained["checkpoint"], checkpoint)
    atomic_write_text(mark, json.dumps({"index": trained["index"], "from": str(trained["checkpoint"])}))
    ctx.say(f"fit: candidate {trained['index']} was trained as this recipe trains it when nas.promote chose it: its "
            f"training is the final model's (from {trained['checkpoint']}), not repeated")
    return int(trained["index"])


def retrain_epochs(curve: list[float], mode: str, *, default: int) -> int:
    """How many epochs the final model trains on train+validation: the epoch whose 3-epoch
    moving average (itself and its neighbours) of the chosen trial's validation curve is best,
    the earliest on ties; ``default`` (the trial's best epoch) without a curve. One lucky epoch
    on a small validation set then does not decide it: a curve at 0.93, 0.98, 0.96 and then
    0.97 for ten epochs retrains for the plateau, not for 2 epochs."""
    if len(curve) < 3:
        return default
    windows = [curve[max(0, i - 1):i + 2] for i in range(len(curve))]
    smooth = [sum(w) / len(w) for w in windows]
    best = max(smooth) if mode == "max" else min(smooth)
    return 1 + smooth.index(best)


def _retrain(ctx: RunContext, recipe: Any, data: Dataset, *, epochs: int) -> tuple[Any, list]:
    """Train the chosen configuration on train+validation for the best trial's number of epochs."""
    train = data.train if data.val is None else Split(torch.cat([data.train.x, data.val.x]),
                                                      torch.cat([data.train.y, data.val.y]))
    plan = build_model(recipe, data, seed=recipe.seed, memo=ctx.memo)
    if not plan.trains:
        return plan.model, []
    if _processes(recipe) > 1:
        result = _fit_distributed(ctx, recipe, plan, train, None, "final model", seed=recipe.seed, num_train=len(train),
                                  epochs=epochs, with_val=False, threads=ctx.options.threads)
        return plan.model, result.history
    trainer = build_trainer(recipe, plan, data, seed=recipe.seed, num_train=len(train), epochs=epochs,
                            with_val=False, threads=ctx.options.threads)
    for note in trainer.notes:
        ctx.say(f"final model: {note}")
    if ctx.options.progress:
        from honing.pipeline._summary import EpochProgress

        trainer.callbacks.append(EpochProgress("final model"))
    result = trainer.fit(train)
    return plan.model, result.history


def energy(ctx: RunContext) -> dict[str, Any]:
    """results.json's ``energy``: joules and the method, per part of the run."""
    return ctx.results.setdefault("energy", {})


@contextlib.contextmanager
def metered(ctx: RunContext, part: str) -> Iterator[None]:
    """Measure the block's energy into results.json's ``energy[part]``."""
    with EnergyMeter() as meter:
        yield
    energy(ctx)[part] = meter.reading.to_dict()


def _processes(recipe: Any) -> int:
    d = recipe.training.distributed
    return d.processes if d is not None else 1


class RankTrainer:
    """One data-parallel rank's Trainer, built from the recipe in that rank's process (picklable:
    the recipe as a dict, the data set, ``build_trainer``'s arguments); progress on rank 0."""

    def __init__(self, recipe: dict[str, Any], data: Dataset, label: str | None, kwargs: dict[str, Any]) -> None:
        self.recipe, self.data, self.label, self.kwargs = recipe, data, label, kwargs

    def __call__(self, rank: int) -> Any:
        from honing.recipe import parse_recipe

        recipe = parse_recipe(self.recipe)
        plan = build_model(recipe, self.data, seed=self.kwargs["seed"])
        trainer = build_trainer(recipe, plan, self.data, **self.kwargs)
        if self.label is not None and rank == 0:
            from honing.pipeline._summary import EpochProgress

            trainer.callbacks.append(EpochProgress(self.label))
        return trainer


def _fit_distributed(ctx: RunContext, recipe: Any, plan: Any, train: Any, val: Any, label: str, *,
                     checkpoint_dir: Any = None, **kwargs: Any) -> Any:
    """Train ``plan.model`` with ``training.distributed.processes`` DDP ranks; the weights rank 0
    ends with are loaded into it. Returns rank 0's FitResult."""
    from honing.train import fit_distributed

    d = recipe.training.distributed
    ctx.say(f"{label}: data-parallel training on {d.processes} processes ({d.backend} backend; each takes "
            f"1/{d.processes} of every batch of {recipe.training.batch_size or 'all'} rows)")
    make = RankTrainer(recipe.to_dict(), ctx.data, label if ctx.options.progress else None, kwargs)
    fitted = fit_distributed(make, train, val, processes=d.processes, backend=d.backend, timeout_s=d.timeout,
                             checkpoint_dir=checkpoint_dir, resume=checkpoint_dir is not None,
                             threads=kwargs.get("threads") or recipe.training.threads or 1)
    plan.model.load_state_dict(fitted.state)
    return fitted.result


def _evaluator(model: Any, recipe: Any, data: Dataset) -> Any:
    return build_trainer(recipe, model, data, seed=recipe.seed, num_train=len(data.train), with_val=False,
                         for_training=False)


def _test(model: Any, recipe: Any, data: Dataset) -> tuple[dict[str, float], dict[str, Any]]:
    """The one evaluation on the held-out test set, with a confusion matrix or residuals."""
    if data.test is None:
        return {}, {}
    trainer = _evaluator(model, recipe, data)
    metrics = trainer.evaluate(data.test)
    pred = trainer.predict(data.test.x)
    if data.task == "classification":
        k = data.num_outputs
        idx = data.test.y * k + pred.argmax(1)
        cm = torch.bincount(idx, minlength=k * k).reshape(k, k)
        return metrics, {"confusion_matrix": cm.tolist()}
    inverse = data.preprocessor.inverse_transform_target  # in the target's own units
    y_true, y_pred = inverse(data.test.y), inverse(pred)
    return metrics, {"residuals": {"y_true": y_true[:, 0].tolist(), "y_pred": y_pred[:, 0].tolist()}}


def _final_validation(model: Any, recipe: Any, data: Dataset, final_how: str, metric: str) -> dict[str, Any] | None:
    """The final model's score on the validation rows, beside the chosen trial's best validation
    value, and whether it trained on them (retrained on train+validation)."""
    if data.val is None or not metric.startswith("val_"):
        return None
    values = _evaluator(model, recipe, data).evaluate(data.val, prefix="val_")
    seen = final_how.startswith("retrained")
    note = ("the final model was retrained on train+validation: it has seen these rows (optimistic)" if seen
            else "the final model did not train on these rows")
    return {"value": values.get(metric), "metric": metric, "metrics": values, "trained_on_them": seen, "note": note}
