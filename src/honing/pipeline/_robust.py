"""The ``robust`` stage: the final model attacked on the test rows (the recipe's ``robust:``
section; docs/robust.md). A trial's ``robustness`` objective is in ``_objective``.

The attacks work in the data's own units (``honing.robust.InputSpace`` of the run's
preprocessor): [0, 1] pixel units for images, the numeric columns' scaled units for tables.
"""

from __future__ import annotations

from typing import Any

from honing.pipeline._context import RunContext
from honing.pipeline._objective import attacked_rows
from honing.pipeline._stage_model import metered


class RobustStage:
    """Clean against robust accuracy of the final model over the section's epsilons."""

    name = "robust"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        section = ctx.recipe.robust
        data = ctx.data
        if section is None or ctx.model is None or data is None or data.test is None:
            return None
        if data.task != "classification":
            ctx.note(f"robust: skipped: attacks measure a classifier's accuracy; this is a {data.task} task")
            ctx.results["robustness"] = {"skipped": f"a {data.task} task (attacks measure a classifier's accuracy)"}
            return None
        key = [ctx.model_key, section.model_dump(mode="json")]
        stored = ctx.resume(key)
        if stored is None:
            from honing.robust import CORRUPTIONS, InputSpace, evaluate_robustness

            space = InputSpace.from_preprocessor(data.preprocessor, data.train.x)
            x, y = attacked_rows(data.test.x, data.test.y, section.rows, ctx.model)
            corruptions = section.corruptions if section.corruptions is not None else (
                list(CORRUPTIONS) if x.dim() == 4 else [])
            ctx.say(f"robust: {', '.join(section.attacks)} on {len(x)} test rows at epsilon "
                    f"{', '.join(f'{e:g}' for e in section.epsilons)} ({section.norm}; {space.units})")
            with metered(ctx, "robustness"):
                stored = evaluate_robustness(
                    ctx.model, x, y, epsilons=section.epsilons, space=space, attacks=section.attacks,
                    norm=section.norm, steps=section.steps, restarts=section.restarts, queries=section.queries,
                    corruptions=corruptions, batch_size=ctx.recipe.training.eval_batch_size, seed=ctx.recipe.seed)
            ctx.keep(key, stored)
        ctx.results["robustness"] = stored
        robust = stored["robust_accuracy"]
        ctx.say("robust: accuracy clean " + f"{stored['clean_accuracy']:.4f}, under attack "
                + ", ".join(f"{robust[e]:.4f} at {e}" for e in robust))
        for check in stored["checks"]:
            if not check["passed"]:
                ctx.note(f"robust: check failed: {check['check']}: {check['detail']}")
        return {"rows": stored["rows"], "robust_accuracy": robust}
