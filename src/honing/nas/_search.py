"""``search``: a strategy against any objective that maps an architecture to a score (or scores).

The objective may train a network, look an architecture up in a published tabular benchmark,
or compute anything else. Each evaluation goes to a JSON-lines journal when one is given; a
search started again on the same journal replays the recorded scores (the strategies are
deterministic given their seed and scores) and continues where it stopped. An objective that
raises is recorded as failed (its scores the worst possible) and the search goes on. An
architecture proposed again, or one that builds the same network (``ArchSpace.canonical``), is
not evaluated again: its recorded scores are reused (it still counts against the budget). A
``constraint`` (e.g. a latency budget, measured before anything trains) rejects an architecture
untrained: the rejection is recorded, the strategy learns it as a failure, and it does not count
against the budget.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from honing._core import ConfigError, check_int
from honing.nas._space import Arch, ArchSpace, key
from honing.nas._strategies import create_strategy, pareto_ranks

MAX_IDLE = 500  # proposals in a row that evaluate nothing new (rejected; or repeats, when they do not count): stop


@dataclass
class NasResult:
    """Every evaluation in order (``history``: arch, scores as the objective returned them,
    seconds, cached, error) and the directions; ``best`` (one objective) or ``pareto``."""

    directions: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "budget"  # or "timeout", or "idle" (MAX_IDLE proposals in a row evaluated nothing new)

    def _signed(self, scores: Sequence[float | None]) -> tuple[float, ...]:
        return tuple(-math.inf if s is None or not math.isfinite(s) else (s if d == "maximize" else -s)
                     for s, d in zip(scores, self.directions))

    @property
    def best(self) -> dict[str, Any] | None:
        ok = [h for h in self.history if h["error"] is None]
        return max(ok, key=lambda h: (self._signed(h["scores"])[0], -h["index"])) if ok else None

    @property
    def pareto(self) -> list[dict[str, Any]]:
        """The non-dominated evaluations (distinct architectures), in the order they were found."""
        seen, ok = set(), []
        for h in self.history:
            if h["error"] is None and not h["cached"] and key(h["arch"]) not in seen:
                seen.add(key(h["arch"]))
                ok.append(h)
        ranks = pareto_ranks([self._signed(h["scores"]) for h in ok])
        return [h for h, r in zip(ok, ranks) if r == 0]

    def best_so_far(self) -> list[float]:
        """The best first score after each evaluation (in the objective's own sign)."""
        out, best = [], -math.inf
        sign = 1.0 if self.directions[0] == "maximize" else -1.0
        for h in self.history:
            best = max(best, self._signed(h["scores"])[0])
            out.append(sign * best)
        return out


def search(space: ArchSpace, objective: Callable[[Arch], float | Sequence[float]], *, strategy: str = "evolution",
           budget: int = 100, seed: int = 0, directions: Sequence[str] = ("maximize",),
           journal: str | Path | None = None, timeout: float | None = None, progress: bool = False,
           constraint: Callable[[Arch], str | None] | None = None, count_repeats: bool = True,
           **options: Any) -> NasResult:
    """Run ``strategy`` for ``budget`` proposals of architectures of ``space`` against
    ``objective`` (a score, a list of scores, or ``{"scores": ..., "info": {...}}`` whose info
    is kept in the record); ``directions`` says for each score whether higher (``maximize``) or lower
    (``minimize``) is better; ``options`` go to the strategy (``population``, ``sample``, ``lr``,
    ...). With ``journal`` every evaluation is appended there and a later call resumes it.
    ``timeout``: seconds after which no new architecture is proposed (the one being evaluated
    finishes). ``constraint(arch)``: None to evaluate it, or the reason it is rejected untrained
    (recorded with ``rejected``; not counted against ``budget``). ``count_repeats``: whether an
    architecture proposed again (or one that builds a network already evaluated) counts against
    ``budget``; with False the budget is of networks evaluated. The search stops after ``MAX_IDLE``
    proposals in a row that evaluated nothing new (``result.stopped``: budget, timeout or idle)."""
    if not isinstance(space, ArchSpace):
        raise ConfigError(f"invalid space: got {type(space).__name__}; allowed: a honing.nas.ArchSpace")
    budget = check_int("budget", budget, low=1)
    directions = list(directions)
    if not directions or any(d not in ("maximize", "minimize") for d in directions):
        raise ConfigError(f"invalid directions: got {directions!r}; allowed: a list of 'maximize' / 'minimize'")
    plan = create_strategy(strategy, space, seed=seed, objectives=len(directions), **options)
    result = NasResult(directions)
    done = read_journal(journal) if journal is not None else []
    cache: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    index = counted = idle = 0
    while counted < budget:
        if idle >= MAX_IDLE:
            result.stopped = "idle"
            break
        if timeout is not None and index >= len(done) and time.perf_counter() - start > timeout:
            result.stopped = "timeout"
            break
        arch = space.check(plan.ask())
        k = space.network_key(arch)  # architectures that build the same network share an evaluation
        if index < len(done):
            record = done[index]
            # a repeat is journaled with its network's first architecture, which may differ from
            # this proposal in idle decisions only: there the same network is the same replay
            same = (space.network_key(record["arch"]) == k if record.get("cached")
                    else key(record["arch"]) == key(arch))
            if not same:
                raise ConfigError(f"invalid journal {str(journal)!r}: evaluation {index} was {record['arch']!r}, this "
                                  f"search proposes {arch!r}; allowed: the journal of the same space, strategy, "
                                  "options and seed (or a new journal)")
        elif k in cache:
            record = {**cache[k], "index": index, "cached": True, "seconds": 0.0}
            _append(journal, record)
        else:
            t0 = time.perf_counter()
            reason = constraint(dict(arch)) if constraint is not None else None
            record = _evaluate(objective, arch, index, len(directions)) if reason is None else {
                "index": index, "arch": dict(arch), "scores": [None] * len(directions),
                "seconds": round(time.perf_counter() - t0, 4), "cached": False, "error": f"rejected: {reason}",
                "rejected": True}
            _append(journal, record)
        cache.setdefault(k, record)
        result.history.append(record)
        plan.tell(arch, result._signed(record["scores"]))
        index += 1
        rejected = bool(record.get("rejected"))
        new = not rejected and (count_repeats or not record["cached"])
        counted += new
        idle = 0 if new else idle + 1
        if progress:
            best = result.best_so_far()[-1]
            print(f"honing: nas {strategy}: {counted}/{budget}: {record['scores']}"
                  + (f" ({record['error']})" if rejected else "") + f" (best {best:.6g})",
                  file=sys.stderr, flush=True)
    return result


def _evaluate(objective: Callable[[Arch], Any], arch: Arch, index: int, n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    error = None
    try:
        out = objective(dict(arch))
        info = None
        if isinstance(out, dict):  # {"scores": ..., "info": {...}}: the info is kept in the record
            out, info = out.get("scores"), out.get("info")
        scores = [float(v) for v in (out if isinstance(out, Sequence) else [out])]
        if len(scores) != n:
            raise ConfigError(f"the objective returned {len(scores)} score(s); the search has {n} direction(s)")
    except Exception as err:  # a failed candidate is recorded; the search goes on
        scores, error, info = [None] * n, f"{type(err).__name__}: {err}"[:300], None
    record = {"index": index, "arch": dict(arch), "scores": scores, "seconds": round(time.perf_counter() - t0, 4),
              "cached": False, "error": error}
    if info is not None:
        record["info"] = info
    return record


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """The records of a search's journal, in order (a last line cut short is dropped from the file)."""
    p = Path(path)
    if not p.is_file():
        return []
    out, kept = [], []
    for line in p.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash: dropped, and that candidate evaluated again
            p.write_text("".join(k + "\n" for k in kept))
            break
        out.append(record)
        kept.append(line)
    return out


def _append(path: str | Path | None, record: dict[str, Any]) -> None:
    if path is None:
        return
    with Path(path).open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
