"""Warm start: a local store of finished studies whose best configurations seed a new one.

```python
from honing.tune import ExperienceStore

store = ExperienceStore("runs")                      # one JSON-lines file: runs/.experience.jsonl
family = {"model": "mlp", "task": "classification", "metric": "val_accuracy",
          "space": ["model.dropout", "training.optimizer.lr"]}
store.record("runs/digits", family, {"rows": 1257, "features": 64, "classes": 10}, result)
points = store.starts(family, {"rows": 900, "features": 30, "classes": 2}, exclude="runs/new")
```

A study is found again only by the same *family*: the same model, task kind, metric and
searched parameters (its record says which). Among those, the studies on the data most like the
new one (by ``|log(1 + a) - log(1 + b)|`` over the data features, rows, features and classes)
come first; their best configurations are the new study's first trials after the recipe's own
values. Each record also keeps the study's last ``KEEP_TRIALS`` finished trials: ``history``
gives the nearest study's, for ``AutoSampler(history=...)`` (an API option; a run does not use
them). The store lives in the folder that holds the run folders (``runs/`` by default), so it
is the user's own: nothing is read from or written to any other folder unless a caller names it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from honing._core import ConfigError, atomic_write_text

__all__ = ["ExperienceStore", "EXPERIENCE_FILE", "list_portfolios", "portfolio"]

EXPERIENCE_FILE = ".experience.jsonl"
KEEP_PER_STUDY = 3  # best configurations kept per finished study
KEEP_TRIALS = 200  # finished trials kept per study for the next study's model (the last ones)
MAX_RECORDS = 500  # the oldest records go past this many


class ExperienceStore:
    """Finished studies' best configurations in ``folder/.experience.jsonl`` (one JSON object a line)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / EXPERIENCE_FILE

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first (a damaged line is skipped, not fatal)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("best"), list) and isinstance(rec.get("family"), dict):
                out.append(rec)
        return out

    def record(self, source: str | os.PathLike[str], family: Mapping[str, Any], features: Mapping[str, float],
               trials: Sequence[Mapping[str, Any]], direction: str) -> int:
        """Keep the best ``KEEP_PER_STUDY`` complete trials (``{"params", "value"}``) of the study
        run in ``source``, replacing that source's earlier record. Returns how many were kept."""
        sign = 1.0 if direction == "minimize" else -1.0
        done = [t for t in trials if t.get("value") is not None and math.isfinite(float(t["value"]))]
        best = sorted(done, key=lambda t: sign * float(t["value"]))[:KEEP_PER_STUDY]
        if not best:
            return 0
        rec = {"source": str(Path(source).resolve()), "family": _canonical(family),
               "features": {k: float(v) for k, v in features.items()}, "direction": direction,
               "best": [{"params": dict(t["params"]), "value": float(t["value"])} for t in best],
               "trials": [{"params": dict(t["params"]), "value": float(t["value"])} for t in done[-KEEP_TRIALS:]]}
        kept = [r for r in self.records() if r.get("source") != rec["source"]][-(MAX_RECORDS - 1):]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in [*kept, rec]))
        return len(best)

    def starts(self, family: Mapping[str, Any], features: Mapping[str, float], *, k: int = KEEP_PER_STUDY,
               exclude: str | os.PathLike[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """Up to ``k`` configurations for a new study of ``family`` on data with ``features``:
        the best of the most similar earlier study first, then the best of the next, then the
        second bests, and so on (no configuration twice). Returns them and their sources."""
        key = _canonical(family)
        skip = None if exclude is None else str(Path(exclude).resolve())
        same = [r for r in self.records() if r["family"] == key and r.get("source") != skip]
        same.sort(key=lambda r: _distance(features, r.get("features") or {}))
        points: list[dict[str, Any]] = []
        sources: list[str] = []
        for rank in range(KEEP_PER_STUDY):
            for r in same:
                if len(points) >= k:
                    return points, sources
                if rank < len(r["best"]) and r["best"][rank]["params"] not in points:
                    points.append(r["best"][rank]["params"])
                    if r["source"] not in sources:
                        sources.append(r["source"])
        return points, sources

    def history(self, family: Mapping[str, Any], features: Mapping[str, float], *,
                exclude: str | os.PathLike[str] | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """The finished trials (``{"params", "value"}``) of the earlier study of ``family`` on the
        data most like ``features`` (``AutoSampler.set_history``: its model learns from them),
        and that study's folder; ``([], None)`` when there is none."""
        key = _canonical(family)
        skip = None if exclude is None else str(Path(exclude).resolve())
        same = [r for r in self.records() if r["family"] == key and r.get("source") != skip
                and isinstance(r.get("trials"), list) and r["trials"]]
        if not same:
            return [], None
        nearest = min(same, key=lambda r: _distance(features, r.get("features") or {}))
        return [dict(t) for t in nearest["trials"]], nearest["source"]


def _canonical(family: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: sorted(v) if isinstance(v, (list, tuple, set)) else v
                                  for k, v in family.items()}, sort_keys=True))


def _distance(a: Mapping[str, float], b: Mapping[str, Any]) -> float:
    keys = set(a) | set(b)
    return sum(abs(math.log1p(float(a.get(k, 0))) - math.log1p(float(b.get(k, 0)))) for k in keys)


def portfolio(name: str) -> list[dict[str, Any]]:
    """The start portfolio learned offline for a model family (``list_portfolios()``): a few
    configurations that did well across many tasks of that family, to try first on a new one
    (``AutoSampler(start=portfolio("rbv2_xgboost"))``). How each was made, on which tasks, and
    which were held out: ``portfolios.json`` beside this module, bench/learn_portfolio.py."""
    shipped = _portfolios()
    if name not in shipped:
        raise ConfigError(f"invalid portfolio: got {name!r}; allowed: {', '.join(sorted(shipped))}")
    return [dict(c) for c in shipped[name]["configurations"]]


def list_portfolios() -> list[str]:
    return sorted(_portfolios())


def _portfolios() -> dict[str, Any]:
    from importlib.resources import files

    return json.loads(files("honing.tune").joinpath("portfolios.json").read_text(encoding="utf-8"))["portfolios"]
