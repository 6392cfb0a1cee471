"""Stages: a run is a list of named stages over one run context.

A stage is a small object with a ``name`` and one method, ``run(ctx)``; it reads what earlier
stages left on the context and adds its own. It may return a short JSON-able summary (kept in
results.json's stage record) or None. ``STAGES`` maps names to stages; ``STAGE_LISTS`` names
the stages of ``run`` (a search) and ``train`` (one configuration), in order.

A new capability adds its stage with ``register_stage(stage, lists=("run",), after="test")``;
nothing else in the pipeline changes.

Resuming: a stage whose work is worth keeping (the final fit, the test, the baselines,
compression) calls ``ctx.resume(key)`` with a digest of its inputs; when a finished record with
the same key is stored in the run folder (``stages.json``) it restores from it instead of doing
the work again, and ``ctx.keep(key, output)`` stores the record when it finishes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from honing._core import ConfigError, Registry

if TYPE_CHECKING:
    from honing.pipeline._context import RunContext


@runtime_checkable
class Stage(Protocol):
    """One step of a run: ``run(ctx)`` does it (and may return a summary for its record)."""

    name: str

    def run(self, ctx: RunContext) -> dict[str, Any] | None: ...


STAGES: Registry[Stage] = Registry("stage")
STAGE_LISTS: dict[str, list[str]] = {"run": [], "train": []}


def register_stage(stage: Stage, *, lists: tuple[str, ...] = (), after: str | None = None,
                   before: str | None = None, description: str = "") -> Stage:
    """Register ``stage`` under ``stage.name`` and insert it into each of ``lists`` (``"run"``,
    ``"train"``) after the stage ``after`` (or before ``before``; at the end without either)."""
    if not isinstance(stage, Stage) or not isinstance(getattr(stage, "name", None), str):
        raise ConfigError(f"invalid stage: got {stage!r}; allowed: an object with a name and run(ctx)")
    anchor = after or before
    for kind in lists:
        if kind not in STAGE_LISTS:
            raise ConfigError(f"invalid stage list: got {kind!r}; allowed: {', '.join(STAGE_LISTS)}")
        if anchor is not None and anchor not in STAGE_LISTS[kind]:
            raise ConfigError(f"invalid anchor for stage {stage.name!r}: no stage {anchor!r} in the {kind!r} list; "
                              f"allowed: {', '.join(STAGE_LISTS[kind])}")
    STAGES.register(stage.name, lambda: stage, description=description or (stage.__doc__ or "").strip().split("\n")[0])
    for kind in lists:
        names = STAGE_LISTS[kind]
        names.insert(len(names) if anchor is None else names.index(anchor) + (1 if after else 0), stage.name)
    return stage


def list_stages(kind: str | None = None) -> list[str]:
    """Every registered stage (sorted), or the stages of ``kind`` ("run", "train") in order."""
    if kind is None:
        return STAGES.names()
    if kind not in STAGE_LISTS:
        raise ConfigError(f"invalid stage list: got {kind!r}; allowed: {', '.join(STAGE_LISTS)}")
    return list(STAGE_LISTS[kind])


def run_stages(ctx: RunContext, kind: str) -> None:
    """Run the stages of ``kind`` in order; each one's timing and outcome go to ``ctx.records``."""
    for name in STAGE_LISTS[kind]:
        stage = STAGES.create(name)
        ctx.begin(name)
        t0 = time.perf_counter()
        try:
            summary = stage.run(ctx)
        except BaseException as err:
            ctx.end(name, time.perf_counter() - t0, "failed", {"error": f"{type(err).__name__}: {err}"[:300]})
            raise
        ctx.end(name, time.perf_counter() - t0, None, summary)
