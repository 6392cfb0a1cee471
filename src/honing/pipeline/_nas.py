"""The ``nas`` stage: search the model's architecture (``mobilenet`` blocks or a ``cellnet``
cell) before anything else trains; the chosen one replaces the recipe's model for the rest of
the run (docs/nas.md).

Each candidate trains on the training rows for ``nas.epochs`` epochs (the recipe's optimizer,
schedule, batch size, augmentation) and scores its best validation value; with
``early_stop`` a candidate below the median of the earlier candidates at an epoch stops there
(after 5 candidates), as the median rule stops weak trials. Parameters and CPU latency (1 row,
fresh weights) are measured when they are objectives. The recipe's own architecture is trained
the same way first: the baseline every candidate is shown beside. Every evaluation goes to
``nas.jsonl`` in the run folder; a re-run replays it and continues.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from honing._core import ConfigError, atomic_write_text, set_threads
from honing.models import count_parameters
from honing.pipeline._build import build_model, build_trainer
from honing.pipeline._context import RunContext, digest
from honing.pipeline._objective import measure_latency_ms, measure_latency_ratio, served_forward
from honing.train import resolve_mode

JOURNAL, BASELINE, PROMOTED = "nas.jsonl", "nas_baseline.json", "nas_promoted.json"
PROMOTED_DIR = "nas_promoted"  # the best promoted training's checkpoint: the final model when the run trains that recipe
MAX_PROMOTED = 20  # nas.promote: auto promotes at most this many (the field's own upper bound)
MIN_FOR_MEDIAN = 5
NEAR_LIMIT = 0.1  # a latency within 10% of its limit is timed again, longer (_Candidates._latency)


class NasStage:
    """Search the model's architecture (the recipe's ``nas:`` section)."""

    name = "nas"

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        section = ctx.recipe.nas
        if section is None:
            return None
        from honing import nas

        data = ctx.data
        if data.val is None:
            raise ConfigError("invalid data for nas: no validation rows (data.val_size 0); allowed: a val_size > 0 "
                              "(each candidate is scored on the validation rows)")
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        rec = ctx.recipe
        metric = section.objectives[0]
        mode = resolve_mode(metric, "auto")
        directions = ["maximize" if mode == "max" else "minimize"] + ["minimize"] * (len(section.objectives) - 1)
        space, to_model = _space(section)
        set_threads(ctx.options.threads or rec.training.threads)
        journal = ctx.out_dir / JOURNAL
        # what the candidates' scores depend on (a larger budget continues the same journal; limits
        # reject architectures before they train, so other limits are another search)
        spec = {"nas": {k: v for k, v in section.model_dump(mode="json").items()
                        if k not in ("budget", "select", "timeout", "promote")},
                "recipe": {k: v for k, v in rec.to_dict().items()
                           if k not in ("nas", "tune", "ensemble", "compress", "output")}}
        _fresh_journal(ctx.out_dir, digest(spec))
        curves = [r.get("info", {}).get("curve") or [] for r in _records(journal)]
        train = _Candidates(ctx, section, metric, mode, curves)
        baseline = _baseline(ctx, train, spec)
        timed = {"latency_ms", "latency_ratio"} & set(section.objectives)
        where = f" (latency in {section.latency_runtime})" if timed else ""
        size = space.distinct or space.size  # networks, not decision combinations
        ctx.say(f"nas: {section.strategy} over {size:,} architectures, {section.budget} "
                f"candidates of {train.epochs} epochs; objectives {', '.join(section.objectives)}{where}")

        def objective(arch: dict[str, Any]) -> dict[str, Any]:
            scores, info = train(to_model(arch))
            ctx.say(f"nas: candidate {len(curves)}: " + ", ".join(f"{o} {v:.4g}" for o, v in zip(section.objectives,
                                                                                                  scores))
                    + (f" ({info['stopped']})" if info.get("stopped") else ""))
            return {"scores": scores, "info": info}

        constraint = (lambda arch: train.over_limits(to_model(arch))) if section.limits else None
        started = time.perf_counter()
        result = nas.search(space, objective, strategy=section.strategy, budget=section.budget, seed=rec.seed,
                            directions=directions, journal=journal, timeout=section.timeout, constraint=constraint,
                            count_repeats=False)  # nas.budget: architectures trained
        # the search's time: its wall time, or on a resumed run (replayed in moments) what its journal records
        search_s = max(time.perf_counter() - started, sum(h["seconds"] for h in result.history))
        if result.stopped == "idle":
            from honing.nas._search import MAX_IDLE

            ctx.say(f"nas: stopped after {MAX_IDLE} proposals in a row that were already trained"
                    + (" or over nas.limits" if section.limits else "") + ": nothing new was proposed")
        rejected = sum(1 for h in result.history if h.get("rejected"))
        if rejected:
            ctx.say(f"nas: {rejected} of {len(result.history)} proposals were over nas.limits {section.limits} before "
                    "training: not trained")
        if result.best is None and rejected:
            raise ConfigError(f"invalid nas.limits {section.limits}: no proposed architecture is within them (all "
                              f"{rejected} proposals were over them; the lowest measured: {train.lowest()}; the "
                              "journal keeps what each exceeded); allowed: looser limits, or a space of fewer or "
                              "smaller layers")
        if result.best is None:
            raise ConfigError("nas: every candidate failed; see the errors in " + str(journal))
        front = [{"number": h["index"], "values": h["scores"], "record": h} for h in result.pareto] \
            if len(directions) > 1 else []
        if len(directions) > 1 and not section.limits:
            from honing.tune import select_from_pareto

            chosen = select_from_pareto(front, directions, rule=section.select)["record"]
        else:  # with limits, every candidate trained was within them: the most accurate
            chosen = result.best
        promoted: list[dict[str, Any]] = []
        if section.promote:
            promoted, chosen, ctx.trained = _promote(ctx, section, result, to_model, metric, mode, digest(spec),
                                                     train, chosen, search_s)
        if promoted:
            best = promoted[0]
            ctx.say(f"nas: after training as the final model will, candidate {best['index']} is the best: {metric} "
                    + ", ".join(f"{p['full']:.4g} (candidate {p['index']}; proxy {p['proxy']:.4g})" for p in promoted))
        params = to_model(chosen["arch"])
        ctx.recipe = rec.with_params(params)
        _check_folder_model(ctx.out_dir, ctx.recipe.to_dict()["model"], chosen["index"])
        out = {
            "space": section.space, "strategy": section.strategy, "size": size, "budget": section.budget,
            "evaluated": sum(1 for h in result.history if not h["cached"] and not h.get("rejected")),
            "proposed": len(result.history), "rejected": rejected, "stopped": result.stopped,
            "train_rows": len(train.train),
            "failed": sum(1 for h in result.history if h["error"] and not h.get("rejected")),
            "objectives": list(section.objectives),
            "directions": directions, "epochs": train.epochs, "limits": section.limits,
            **({"latency_runtime": section.latency_runtime} if timed else {}),
            **({"reference": section.reference.model_dump(mode="json")} if section.reference is not None else {}),
            "select": "the most accurate within the limits" if section.limits else (
                section.select if len(directions) > 1 else "best"),
            **({"promoted": promoted} if promoted else {}),
            "baseline": baseline,
            "chosen": {"index": chosen["index"], "model": params, "scores": chosen["scores"]},
            "front": [{"index": f["record"]["index"], "model": to_model(f["record"]["arch"]),
                       "scores": f["record"]["scores"]} for f in front],
            "candidates": [[h["index"], *h["scores"]] for h in result.history if not h["cached"] and not h["error"]],
            "best_so_far": [round(v, 6) for v in result.best_so_far()],
            "seconds": round(sum(h["seconds"] for h in result.history), 2),
            "note": (f"candidates trained {train.epochs} epochs on the training rows and scored on the validation "
                     "rows; the chosen architecture is then trained as the recipe says"),
        }
        ctx.results["nas"] = out
        ctx.say(f"nas: chose candidate {chosen['index']}: " + ", ".join(
            f"{o} {v:.4g} (recipe's own: {b:.4g})" for o, v, b in zip(section.objectives, chosen["scores"],
                                                                     baseline["scores"])))
        return {"candidates": len(result.history), "chosen": chosen["index"]}


def _promote(ctx: RunContext, section: Any, result: Any, to_model: Any, metric: str, mode: str,
             key: str, proxy: _Candidates, chosen: dict[str, Any],
             search_s: float) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any] | None]:
    """The best ``nas.promote`` candidates on the proxy, trained again as the final model will be
    (all the training rows, training.epochs, no median stop), best first on that training's
    validation value; the search's record of the best; and the best one's training for the
    ``fit`` stage to reuse (its checkpoint and recipe; None when there is none).

    Each result is kept in ``nas_promoted.json``: a re-run does not train it again. Each training
    checkpoints to its own folder under ``nas_promoted/`` (an interrupted one resumes there), and
    only the best one's folder is kept. ``promote: auto``: as many as fit in what the search
    (``search_s``) left of ``nas.timeout`` (the first full training estimated from the proxy's time
    per epoch and row, the next from the longest one so far), none when fewer than 2 fit
    (``chosen``, the proxy's choice, stays)."""
    sign = 1.0 if mode == "max" else -1.0
    trained = [h for h in result.history if not h["cached"] and not h.get("rejected") and not h["error"]]
    auto = section.promote == "auto"
    top = sorted(trained, key=lambda h: -sign * h["scores"][0])[: MAX_PROMOTED if auto else section.promote]
    path = ctx.out_dir / PROMOTED
    try:
        stored = json.loads(path.read_text())
        runs = stored["runs"] if stored.get("key") == key else {}
    except (OSError, ValueError, KeyError):
        runs = {}
    full = _Candidates(ctx, section.model_copy(update={"epochs": None, "fraction": 1.0, "early_stop": False,
                                                       "objectives": [metric]}), metric, mode, [])
    left, guess = None, 0.0
    if auto:
        left = section.timeout - search_s
        first = top[0]
        epochs = max(1, len(first.get("info", {}).get("curve") or []) or proxy.epochs)
        guess = first["seconds"] / epochs * full.epochs * len(full.train) / max(1, len(proxy.train))
        fit = int(max(0.0, left) // guess) if guess > 0 else len(top)
        ctx.say(f"nas: promote: auto: {max(0.0, left):.0f} s of nas.timeout ({section.timeout:g} s) left after the "
                f"search; a full training takes about {guess:.0f} s (from the proxy's), so about {fit} fit")
        if fit < 2:
            ctx.say("nas: promote: auto: fewer than 2 full trainings fit; the proxy's choice stays (set nas.promote "
                    "to a number to promote regardless of time)")
            return [], chosen, None
    out, spent, folders = [], [], []
    best: tuple[float, Path] | None = None  # the best training so far with its checkpoint
    for rank, h in enumerate(top, 1):
        if auto and spent and left - sum(spent) < max(spent):
            ctx.say(f"nas: promote: auto: {len(spent)} promoted; {max(0.0, left - sum(spent)):.0f} s of nas.timeout "
                    f"left, less than one more full training ({max(spent):.0f} s)")
            break
        params = to_model(h["arch"])
        k = json.dumps(params, sort_keys=True, default=str)
        folder = ctx.out_dir / PROMOTED_DIR / digest([key, k])[:16]
        folders.append(folder)
        if k not in runs:
            where = f"{rank} of {len(top)}" if not auto else f"{rank}; {left - sum(spent):.0f} s of nas.timeout left"
            ctx.say(f"nas: promoting candidate {h['index']} ({where}, proxy {metric} "
                    f"{h['scores'][0]:.4g}): {full.epochs} epochs on all {len(full.train):,} training rows")
            t0 = time.perf_counter()
            scores, info = full(params, record=False, checkpoint_dir=folder)
            runs[k] = {"score": scores[0], "epochs": info["epochs"], "seconds": round(time.perf_counter() - t0, 2)}
            atomic_write_text(path, json.dumps({"key": key, "runs": runs}))
        if folder.is_dir():  # keep the best training's checkpoint only
            if best is None or sign * runs[k]["score"] > sign * best[0]:
                if best is not None:
                    shutil.rmtree(best[1], ignore_errors=True)
                best = (runs[k]["score"], folder)
            else:
                shutil.rmtree(folder, ignore_errors=True)
        spent.append(runs[k].get("seconds", guess))  # a run kept by an earlier version: the estimate
        out.append({"index": h["index"], "model": params, "proxy": h["scores"][0], "full": runs[k]["score"],
                    "epochs": runs[k]["epochs"], **({"seconds": runs[k]["seconds"]} if "seconds" in runs[k] else {})})
    order = sorted(range(len(out)), key=lambda i: -sign * out[i]["full"])
    winner, folder = top[order[0]], folders[order[0]]
    trained = None
    if folder.is_dir():  # its checkpoint is kept (not a run of an earlier folder)
        recipe = ctx.recipe.with_params({**out[order[0]]["model"], "training.epochs": full.epochs})
        trained = {"checkpoint": folder, "recipe": digest(recipe.to_dict()), "index": winner["index"]}
    return [out[i] for i in order], winner, trained


def _space(section: Any) -> tuple[Any, Any]:
    """The architecture space and the map from an architecture to the model's parameters."""
    from honing import nas

    if section.space == "cell":
        space = nas.cell_space(ops=section.ops or ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3"))
        return space, lambda arch: {"model.cell": nas.cell_ops(arch)}
    from honing.nas import MOBILE_STRIDES

    layers = section.strides if section.strides is not None else MOBILE_STRIDES
    strides = {i: 2 for i in layers if i < section.blocks}
    heads = list(dict.fromkeys(section.heads))
    hidden = list(dict.fromkeys(section.hidden or ()))
    space = nas.mobile_space(blocks=section.blocks, ops=section.ops or ("ir", "dsconv", "conv"),
                             kernels=section.kernels, expand=section.expand, widths=section.widths, se=section.se,
                             strides=strides, heads=heads if len(heads) > 1 else (),
                             hidden=hidden if len(hidden) > 1 else ())

    def to_model(arch: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {"model.blocks": nas.mobile_blocks(arch, strides=strides)}
        head = arch.get("head", heads[0])
        if len(heads) > 1 or head == "flatten":
            params["model.global_pool"] = None if head == "flatten" else "avg"
        if hidden:  # one width given: every candidate's head has it
            params["model.head_hidden"] = arch.get("hidden", hidden[0])
        return params

    return space, to_model


class _Candidates:
    """Train one candidate: its scores (the validation metric, then params / latency_ms) and info."""

    def __init__(self, ctx: RunContext, section: Any, metric: str, mode: str, curves: list[list[float]]) -> None:
        self.ctx, self.section, self.metric, self.mode, self.curves = ctx, section, metric, mode, curves
        self.epochs = section.epochs or ctx.recipe.training.epochs
        self._costs: dict[str, dict[str, float]] = {}
        self._reference: Any = None
        self.train = ctx.data.train
        if section.fraction < 1:  # the same seeded rows for every candidate
            import torch

            from honing.data import Split

            g = torch.Generator().manual_seed(ctx.recipe.seed)
            keep = torch.randperm(len(self.train), generator=g)[: max(1, int(section.fraction * len(self.train)))]
            self.train = Split(self.train.x[keep], self.train.y[keep])

    def costs(self, params: dict[str, Any], names: Any = None) -> list[float]:
        """The objectives after the first (params, flops, latency_ms; or ``names``) of the
        architecture, on fresh weights: known before it trains. Each is measured once per
        architecture, so a limit checked before training and the candidate's scores see the same figure."""
        k = json.dumps(params, sort_keys=True, default=str)
        known = self._costs.setdefault(k, {})
        names = list(names) if names is not None else self.section.objectives[1:]
        missing = [n for n in names if n not in known]
        if missing:
            recipe = self.ctx.recipe.with_params(params)
            fresh = build_model(recipe, self.ctx.data, seed=recipe.seed, memo=self.ctx.memo).model  # on the CPU
            shape = self.ctx.data.input_shape
            for name in missing:
                known[name] = (float(count_parameters(fresh)) if name == "params"
                               else float(count_flops(fresh, shape)) if name == "flops"
                               else self._latency(fresh, name))
        return [known[n] for n in names]

    def _latency(self, model: Any, name: str) -> float:
        """``latency_ms`` or ``latency_ratio`` of ``model``: a quick timing, and a longer one (about
        7x: 20 rounds of 50 passes, or the median of 5 timings of 50) when the quick one is within
        NEAR_LIMIT of the limit on it, where its noise would decide whether the candidate is rejected.
        On Fashion-MNIST one network's quick ratio had a standard deviation of 0.008 over 16
        processes, the longer one 0.006 (bench/nas_latency_spread.py): it narrows the noise, it does
        not remove it, so a limit still needs a margin."""
        shape, runtime = self.ctx.data.input_shape, self.section.latency_runtime

        def timed(precise: bool) -> float:
            if name == "latency_ratio":
                more = {"rounds": 20, "repeats": 50} if precise else {}
                return measure_latency_ratio(model, self.reference_forward(), shape, runtime=runtime, **more)
            if precise:
                return statistics.median(measure_latency_ms(model, shape, repeats=50, runtime=runtime)
                                         for _ in range(5))
            return measure_latency_ms(model, shape, repeats=30, runtime=runtime)

        value = timed(False)
        limit = (self.section.limits or {}).get(name)
        if limit is not None and abs(value - limit) <= NEAR_LIMIT * limit:
            value = timed(True)
        return value

    def reference_forward(self) -> Any:
        """``nas.reference`` built for this data (fresh weights), prepared as it is served: once."""
        if self._reference is None:
            recipe = self.ctx.recipe.with_params({"nas": None, "model": self.section.reference.model_dump(mode="json")})
            model = build_model(recipe, self.ctx.data, seed=recipe.seed, memo=self.ctx.memo).model
            self._reference = served_forward(model, self.ctx.data.input_shape, 1, self.section.latency_runtime)[0]
        return self._reference

    def lowest(self) -> dict[str, float]:
        """The lowest value measured of each limited cost, over every architecture proposed."""
        names = self.section.limits or {}
        return {n: round(min(c[n] for c in self._costs.values() if n in c), 4)
                for n in names if any(n in c for c in self._costs.values())}

    def over_limits(self, params: dict[str, Any]) -> str | None:
        """None when the architecture is within ``nas.limits``, else the first limit it exceeds
        (the cheapest checked first: a latency is not measured for an architecture with too many parameters)."""
        for name in sorted(self.section.limits or {}, key=("params", "flops", "latency_ms", "latency_ratio").index):
            limit = self.section.limits[name]
            value = self.costs(params, [name])[0]
            if value > limit:
                return f"over nas.limits: {name} {value:.4g} > {limit:.4g}"
        return None

    def __call__(self, params: dict[str, Any], *, record: bool = True,
                 checkpoint_dir: Path | None = None) -> tuple[list[float], dict[str, Any]]:
        """Train the architecture ``params``; ``checkpoint_dir``: checkpoint there and resume from
        it (a promoted training, which the ``fit`` stage may reuse)."""
        ctx, data = self.ctx, self.ctx.data
        recipe = ctx.recipe.with_params({**params, "training.epochs": self.epochs})
        seed = recipe.seed
        plan = build_model(recipe, data, seed=seed, memo=ctx.memo)
        reporter = _MedianStop(self.curves if self.section.early_stop else [], self.mode, seed=seed, last=self.epochs)
        trainer = build_trainer(recipe, plan, data, seed=seed, num_train=len(self.train),
                                threads=ctx.options.threads, reporter=reporter, report=self.metric)
        result = trainer.fit(self.train, data.val, checkpoint_dir=checkpoint_dir, resume=checkpoint_dir is not None)
        curve = [float(logs[self.metric]) for logs in result.history]  # a resumed one's earlier epochs too
        if record:
            self.curves.append(curve)
        best = max(curve) if self.mode == "max" else min(curve)
        scores = [best, *self.costs(params)]
        info = {"curve": [round(v, 6) for v in curve], "epochs": len(curve)}
        if result.pruned:
            info["stopped"] = result.stop_reason
        return scores, info


class _MedianStop:
    """The Trainer's reporter for one candidate: stop at an epoch where its value is worse than
    the median of the earlier candidates' values at that epoch (once 5 of them reached it)."""

    def __init__(self, curves: list[list[float]], mode: str, *, seed: int, last: int | None = None) -> None:
        self.curves, self.mode, self.seed, self.number = curves, mode, seed, len(curves)
        self.last = last  # the candidates' last epoch: nothing left to save there
        self.value: float | None = None
        self.step = 0

    def report(self, value: float, step: int) -> None:
        self.value, self.step = value, step

    def should_prune(self) -> bool:
        if self.value is None or not math.isfinite(self.value) or (self.last is not None and self.step >= self.last):
            return False
        earlier = [c[self.step - 1] for c in self.curves if len(c) >= self.step]
        if len(earlier) < MIN_FOR_MEDIAN:
            return False
        median = statistics.median(earlier)
        return self.value < median if self.mode == "max" else self.value > median

    def set(self, key: str, value: Any) -> None:
        pass


def count_flops(model: Any, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one forward pass on one row (torch's FlopCounterMode: a
    multiply-add counts 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops())


def _baseline(ctx: RunContext, train: _Candidates, spec: dict[str, Any]) -> dict[str, Any]:
    """The recipe's own architecture trained as a candidate (kept in the run folder)."""
    path = ctx.out_dir / BASELINE
    key = digest(spec)
    try:
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["baseline"]
    except (OSError, ValueError):
        pass
    model = ctx.recipe.model.model_dump(mode="json")
    params = {"model.cell": model["cell"]} if "cell" in model else (
        {"model.blocks": model["blocks"]} if "blocks" in model else {})
    scores, info = train(params, record=False)
    baseline = {"model": params or "the model's default architecture", "scores": scores, "curve": info["curve"]}
    atomic_write_text(path, json.dumps({"key": key, "baseline": baseline}))
    return baseline


def _check_folder_model(folder: Path, model: dict[str, Any], index: int) -> None:
    """A folder whose run trained another architecture (a larger budget chose a new one) is refused
    with a message that says so, before anything trains."""
    from honing.pipeline._stage_search import RECIPE_LOCK

    try:
        before = json.loads((folder / RECIPE_LOCK).read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return
    if before is not None and before != model and ((folder / "checkpoint").is_dir() or (folder / "results.json").is_file()):
        raise ConfigError(f"invalid output folder {str(folder)!r}: the architecture search now chooses candidate "
                          f"{index}, another architecture than the one this folder's run trained; allowed: another "
                          "--out to train it (the search's journal there starts from this one's: copy nas.jsonl and "
                          "nas.key), or the earlier nas budget")


def _records(journal: Path) -> list[dict[str, Any]]:
    from honing.nas import read_journal

    return [r for r in read_journal(journal) if not r.get("cached") and not r.get("rejected")]


def _fresh_journal(folder: Path, key: str) -> None:
    """A journal of another nas section or recipe is set aside (renamed), not replayed."""
    stamp = folder / "nas.key"
    journal = folder / JOURNAL
    if journal.is_file() and (not stamp.is_file() or stamp.read_text() != key):
        n = 1
        while (folder / f"nas.jsonl.old-{n}").exists():
            n += 1
        journal.rename(folder / f"nas.jsonl.old-{n}")
    atomic_write_text(stamp, key)
