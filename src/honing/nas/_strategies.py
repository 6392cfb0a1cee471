"""Search strategies: each proposes architectures (``ask``) and learns from their scores (``tell``).

Scores arrive as tuples to maximise (``search`` negates minimised objectives). A strategy is
deterministic given its seed and the scores it was told, which is what makes a search
resumable: replaying the journal's scores reproduces every proposal.

- ``random``: independent uniform samples.
- ``evolution``: regularized (aging) evolution (Real et al., "Regularized evolution for image
  classifier architecture search", AAAI 2019): a population of the ``population`` most recent
  architectures; each step samples ``sample`` of them, mutates the best one (one decision
  changed) and the oldest member dies, whatever its score. With several objectives the
  tournament compares Pareto ranks inside the population.
- ``local``: local search (White et al., "Local search is state of the art for neural
  architecture search benchmarks", 2020): evaluate the neighbours of the best architecture so
  far in random order, move to the first better one; at a local optimum, restart from a
  random architecture.
- ``reinforce``: a controller of independent categorical distributions, one per decision,
  trained by REINFORCE with an exponential moving-average baseline (Williams 1992; the
  controller of Zoph & Le, ICLR 2017, without its RNN).
- ``tpe``: Optuna's TPE sampler over the decisions as categorical parameters (multi-objective
  with several objectives).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from honing._core import ConfigError, check_int
from honing.nas._space import Arch, ArchSpace, key

Scores = tuple[float, ...]


class Strategy(Protocol):
    def ask(self) -> Arch: ...

    def tell(self, arch: Arch, scores: Scores) -> None: ...


class RandomSearch:
    multi_objective = True

    def __init__(self, space: ArchSpace, *, seed: int = 0) -> None:
        self.space, self.rng = space, random.Random(seed)

    def ask(self) -> Arch:
        return self.space.sample(self.rng)

    def tell(self, arch: Arch, scores: Scores) -> None:
        pass


def pareto_ranks(points: Sequence[Scores]) -> list[int]:
    """For each point (objectives to maximise), how many others dominate it (0: on the front)."""
    def dominates(a: Scores, b: Scores) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return [sum(dominates(q, p) for q in points if q is not p) for p in points]


class RegularizedEvolution:
    """Aging evolution; ``population`` and ``sample`` as in Real et al. (their 100 / 25 for
    20,000 models; the defaults here suit budgets of a few hundred)."""

    multi_objective = True

    def __init__(self, space: ArchSpace, *, seed: int = 0, population: int = 20, sample: int = 5) -> None:
        self.space, self.rng = space, random.Random(seed)
        self.population_size = check_int("population", population, low=2)
        self.sample_size = check_int("sample", sample, low=1, high=population)
        self.population: deque[tuple[Arch, Scores]] = deque()  # oldest first
        self.born = 0  # architectures that joined the population

    def ask(self) -> Arch:
        if len(self.population) < self.population_size:
            return self.space.sample(self.rng)  # the random first generation
        members = self.rng.sample(range(len(self.population)), self.sample_size)
        pool = [self.population[i] for i in members]
        if len(pool[0][1]) == 1:
            parent = max(pool, key=lambda m: m[1][0])[0]
        else:
            ranks = pareto_ranks([s for _, s in self.population])
            parent = self.population[min(members, key=lambda i: (ranks[i], i))][0]
        return self.space.mutate(parent, self.rng)

    def tell(self, arch: Arch, scores: Scores) -> None:
        if not math.isfinite(scores[0]):
            return  # failed or rejected: never a parent
        self.population.append((arch, scores))
        self.born += 1
        if len(self.population) > self.population_size:
            self.population.popleft()  # the oldest dies, however good it was


class LocalSearch:
    """First-improvement local search with random restarts."""

    multi_objective = False

    def __init__(self, space: ArchSpace, *, seed: int = 0) -> None:
        self.space, self.rng = space, random.Random(seed)
        self.current: tuple[Arch, float] | None = None
        self.queue: list[Arch] = []
        self.restarts = 0

    def ask(self) -> Arch:
        if self.current is None:
            return self.space.sample(self.rng)
        if not self.queue:  # a local optimum: every neighbour was no better
            self.restarts += 1
            self.current = None
            return self.space.sample(self.rng)
        return self.queue.pop()

    def tell(self, arch: Arch, scores: Scores) -> None:
        value = scores[0]
        if self.current is None or value > self.current[1]:
            self.current = (arch, value)
            self.queue = self.space.neighbours(arch)
            self.rng.shuffle(self.queue)


class Reinforce:
    """A per-decision softmax policy; ``lr`` its step size; ``baseline`` the moving-average decay."""

    multi_objective = False

    def __init__(self, space: ArchSpace, *, seed: int = 0, lr: float = 0.1, baseline: float = 0.9,
                 entropy: float = 0.0) -> None:
        import torch

        if not lr > 0 or not 0 <= baseline < 1:
            raise ConfigError(f"invalid reinforce options: lr {lr}, baseline {baseline}; allowed: lr > 0, "
                              "0 <= baseline < 1")
        self.space = space
        self.gen = torch.Generator().manual_seed(seed)
        self.logits = {n: torch.zeros(len(c), requires_grad=True) for n, c in space.decisions.items()}
        self.opt = torch.optim.Adam(list(self.logits.values()), lr=lr)
        self.decay, self.entropy = baseline, entropy
        self.baseline: float | None = None
        self._index = {n: {key(v): i for i, v in enumerate(c)} for n, c in space.decisions.items()}

    def ask(self) -> Arch:
        import torch

        arch = {}
        with torch.no_grad():
            for name, logit in self.logits.items():
                i = int(torch.multinomial(logit.softmax(-1), 1, generator=self.gen))
                arch[name] = self.space.decisions[name][i]
        return arch

    def tell(self, arch: Arch, scores: Scores) -> None:
        reward = scores[0]
        if not math.isfinite(reward):
            return
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline = self.decay * self.baseline + (1 - self.decay) * reward
        logp = sum(lg.log_softmax(-1)[self._index[n][key(arch[n])]] for n, lg in self.logits.items())
        loss = -advantage * logp
        if self.entropy:
            loss = loss - self.entropy * sum(-(lg.softmax(-1) * lg.log_softmax(-1)).sum() for lg in self.logits.values())
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def probabilities(self) -> dict[str, list[float]]:
        return {n: [round(float(p), 4) for p in lg.softmax(-1)] for n, lg in self.logits.items()}


class TPE:
    """Optuna's TPE over the decisions (each a categorical parameter of choice indices)."""

    multi_objective = True

    def __init__(self, space: ArchSpace, *, seed: int = 0, objectives: int = 1, startup: int = 10) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)
        self.study = optuna.create_study(directions=["maximize"] * objectives, sampler=sampler)
        self.dists = {n: optuna.distributions.CategoricalDistribution(list(range(len(c))))
                      for n, c in space.decisions.items()}
        self._asked: dict[str, Any] = {}

    def ask(self) -> Arch:
        trial = self.study.ask(self.dists)
        arch = {n: self.space.decisions[n][trial.params[n]] for n in self.space.decisions}
        self._asked[key(arch)] = trial
        return arch

    def tell(self, arch: Arch, scores: Scores) -> None:
        trial = self._asked.pop(key(arch), None)
        if trial is None:
            return
        values = [v if math.isfinite(v) else -1e300 for v in scores]
        self.study.tell(trial, values if len(values) > 1 else values[0])


STRATEGIES = {"random": RandomSearch, "evolution": RegularizedEvolution, "local": LocalSearch,
              "reinforce": Reinforce, "tpe": TPE}


def create_strategy(name: str, space: ArchSpace, *, seed: int, objectives: int, **options: Any) -> Strategy:
    """A strategy by name (``STRATEGIES``) with its options; a ConfigError for an unknown name or option,
    or for several objectives with a single-objective strategy."""
    if name not in STRATEGIES:
        raise ConfigError(f"invalid strategy: got {name!r}; allowed: {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    if objectives > 1 and not cls.multi_objective:
        allowed = ", ".join(n for n, c in STRATEGIES.items() if c.multi_objective)
        raise ConfigError(f"invalid strategy for {objectives} objectives: got {name!r}; allowed: {allowed}")
    if name == "tpe":
        options = {"objectives": objectives, **options}
    try:
        return cls(space, seed=seed, **options)
    except TypeError as err:
        raise ConfigError(f"invalid options for strategy {name!r}: {err}") from None
