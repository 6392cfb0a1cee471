"""``honing.nas.search``: every strategy finds a known optimum, evolution ages its population,
a search resumes from its journal, failures are recorded, several objectives give a front."""

from __future__ import annotations

import json

import pytest
import torch

from honing import ConfigError, nas
from honing.models import create_model

SPACE = nas.ArchSpace({f"d{i}": [0, 1, 2, 3] for i in range(8)})  # 65,536 architectures
TARGET = {f"d{i}": (3 * i) % 4 for i in range(8)}


def matches(arch):
    return sum(arch[k] == TARGET[k] for k in arch)  # 8 at the one optimum


@pytest.mark.parametrize("strategy", ["evolution", "local", "reinforce", "tpe"])
def test_each_strategy_finds_the_optimum_of_a_toy_space_within_its_budget(strategy):
    result = nas.search(SPACE, matches, strategy=strategy, budget=200, seed=0)
    assert result.best["scores"] == [8.0] and result.best["arch"] == TARGET
    # random search on the same budget: 200 of 65,536 architectures; it does not get there
    assert nas.search(SPACE, matches, strategy="random", budget=200, seed=0).best["scores"][0] < 8


def test_random_search_finds_the_optimum_of_a_small_space():
    small = nas.ArchSpace({"a": [1, 2, 3], "b": ["x", "y"]})
    result = nas.search(small, lambda a: a["a"] * (2 if a["b"] == "y" else 1), strategy="random", budget=40, seed=0)
    assert result.best["arch"] == {"a": 3, "b": "y"}


def test_regularized_evolution_ages_out_even_its_best_member():
    evo = nas.RegularizedEvolution(SPACE, seed=0, population=5, sample=2)
    told = []
    for i in range(12):
        arch = evo.ask()
        evo.tell(arch, (100.0 if i == 0 else float(matches(arch)),))  # the first is by far the best
        told.append(arch)
    assert [a for a, _ in evo.population] == told[-5:]  # the 5 most recent, the best one gone
    assert evo.born == 12 and max(s[0] for _, s in evo.population) < 100


def test_a_search_resumes_from_its_journal_without_evaluating_again(tmp_path):
    calls = []

    def counted(arch):
        calls.append(arch)
        return matches(arch)

    journal = tmp_path / "nas.jsonl"
    nas.search(SPACE, counted, strategy="evolution", budget=30, seed=3, journal=journal)
    first = len(calls)
    resumed = nas.search(SPACE, counted, strategy="evolution", budget=50, seed=3, journal=journal)
    whole = nas.search(SPACE, matches, strategy="evolution", budget=50, seed=3)
    assert [h["arch"] for h in resumed.history] == [h["arch"] for h in whole.history]
    assert len(calls) - first == sum(not h["cached"] for h in whole.history[30:])  # only the new ones ran
    with pytest.raises(ConfigError, match="journal"):
        nas.search(SPACE, matches, strategy="evolution", budget=50, seed=4, journal=journal)


def test_a_search_whose_repeats_differ_in_idle_decisions_resumes_from_its_journal(tmp_path):
    # "b" builds nothing when "a" is 0: a repeat of that network is journaled with its first
    # architecture, which may differ from the proposal in "b" (a resume refused it before)
    idle = nas.ArchSpace({"a": [0, 1, 2], "b": [0, 1, 2, 3], "c": [0, 1, 2]},
                         canonical=lambda arch: {**arch, "b": 0} if arch["a"] == 0 else arch)

    def score(arch):
        return float(arch["a"] + arch["b"] * (arch["a"] > 0) + arch["c"])

    journal = tmp_path / "nas.jsonl"
    # seed 1: the second proposal builds the first's network with another "b"
    first = nas.search(idle, score, strategy="evolution", budget=8, seed=1, journal=journal,
                       count_repeats=False, population=4, sample=2)
    assert first.history[1]["cached"] and first.history[1]["arch"]["a"] == 0
    more = nas.search(idle, score, strategy="evolution", budget=12, seed=1, journal=journal, count_repeats=False,
                      population=4, sample=2)
    whole = nas.search(idle, score, strategy="evolution", budget=12, seed=1, count_repeats=False, population=4,
                       sample=2)
    assert [h["arch"] for h in more.history] == [h["arch"] for h in whole.history]
    assert more.history[: len(first.history)] == first.history


def test_a_failing_candidate_is_recorded_and_the_search_goes_on():
    def fragile(arch):
        if arch["d0"] == 0:
            raise RuntimeError("out of memory")
        return matches(arch)

    result = nas.search(SPACE, fragile, strategy="local", budget=60, seed=1)
    failed = [h for h in result.history if h["error"]]
    assert failed and all(h["error"] == "RuntimeError: out of memory" and h["scores"] == [None] for h in failed)
    assert len(result.history) == 60 and result.best["error"] is None


def test_two_objectives_give_a_pareto_front_and_single_objective_strategies_refuse():
    def two(arch):  # matches against size: the front trades one for the other
        return matches(arch), sum(arch.values())

    result = nas.search(SPACE, two, strategy="evolution", budget=120, seed=0, directions=["maximize", "minimize"])
    front = result.pareto
    assert len(front) >= 2
    for a in front:  # no evaluation dominates a point of the front
        for b in result.history:
            better = b["scores"][0] >= a["scores"][0] and b["scores"][1] <= a["scores"][1]
            assert not (better and b["scores"] != a["scores"])
    with pytest.raises(ConfigError, match="allowed: random, evolution, tpe"):
        nas.search(SPACE, two, strategy="local", budget=5, directions=["maximize", "minimize"])


def test_a_mobile_space_architecture_builds_a_mobilenet():
    space = nas.mobile_space(blocks=4)
    import random

    arch = space.sample(random.Random(0))
    arch.update(op_2="none", op_0="ir", se_0=True)
    blocks = nas.mobile_blocks(arch)
    assert len(blocks) == 3 and blocks[0]["se"] and blocks[1]["stride"] == 2 and "expand" in blocks[0]
    model = create_model("mobilenet", input_shape=(1, 16, 16), num_outputs=4, blocks=blocks)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 4)
    assert "none" not in space.decisions["op_1"]  # a layer that halves the image is never left out


def test_bad_spaces_and_options_are_named():
    with pytest.raises(ConfigError, match="decision 'a'"):
        nas.ArchSpace({"a": []})
    with pytest.raises(ConfigError, match="distinct"):
        nas.ArchSpace({"a": [1, 1]})
    with pytest.raises(ConfigError, match="strategy: got 'darts'"):
        nas.search(SPACE, matches, strategy="darts")
    with pytest.raises(ConfigError, match="options for strategy 'evolution'"):
        nas.search(SPACE, matches, strategy="evolution", mutation_rate=0.5)


def test_a_timeout_stops_proposing_and_keeps_what_was_found():
    import time

    def slow(arch):
        time.sleep(0.05)
        return matches(arch)

    result = nas.search(SPACE, slow, strategy="random", budget=1000, seed=0, timeout=0.12)
    assert 2 <= len(result.history) <= 5 and result.best is not None


@pytest.mark.parametrize("strategy", ["random", "evolution", "local", "reinforce", "tpe"])
def test_a_constraint_rejects_architectures_before_they_are_evaluated(strategy, tmp_path):
    evaluated = []

    def counted(arch):
        evaluated.append(arch)
        return matches(arch)

    def cheap(arch):  # the "cost" is known before any training: at most 12 of 24
        cost = sum(arch.values())
        return None if cost <= 12 else f"cost {cost} > 12"

    journal = tmp_path / "nas.jsonl"
    result = nas.search(SPACE, counted, strategy=strategy, budget=40, seed=1, journal=journal, constraint=cheap)
    rejected = [h for h in result.history if h.get("rejected")]
    kept = [h for h in result.history if not h.get("rejected")]
    assert rejected and len(kept) == 40  # rejections do not count against the budget
    assert all(sum(a.values()) <= 12 for a in evaluated)  # the objective never saw a rejected one
    assert all(h["error"].startswith("rejected: cost") and h["scores"] == [None] for h in rejected)
    assert sum(result.best["arch"].values()) <= 12
    again = nas.search(SPACE, lambda a: pytest.fail("replayed, not evaluated"), strategy=strategy, budget=40, seed=1,
                       journal=journal, constraint=lambda a: pytest.fail("replayed, not checked"))
    assert [h["arch"] for h in again.history] == [h["arch"] for h in result.history]


def test_evolution_keeps_failed_and_rejected_architectures_out_of_its_population():
    evo = nas.RegularizedEvolution(SPACE, seed=0, population=4, sample=2)
    for i in range(10):
        arch = evo.ask()
        evo.tell(arch, (float("-inf"),) if i % 2 else (float(matches(arch)),))
    assert len(evo.population) == 4 and all(s[0] > float("-inf") for _, s in evo.population)
    assert evo.born == 5


def test_a_constraint_nothing_meets_stops_the_search():
    calls = []
    result = nas.search(SPACE, lambda a: calls.append(a) or 0.0, strategy="random", budget=10, seed=0,
                        constraint=lambda a: "never")
    from honing.nas._search import MAX_IDLE

    assert not calls and len(result.history) == MAX_IDLE and result.best is None and result.stopped == "idle"


def test_a_budget_of_networks_evaluated_is_not_spent_on_repeats():
    small = nas.ArchSpace({"a": [0, 1, 2, 3], "b": [0, 1]})  # 8 networks
    calls = []
    by_proposals = nas.search(small, lambda a: calls.append(a) or a["a"], strategy="evolution", budget=20, seed=0,
                              population=4, sample=2)
    assert len(by_proposals.history) == 20 and by_proposals.stopped == "budget"
    calls.clear()
    by_networks = nas.search(small, lambda a: calls.append(a) or a["a"], strategy="evolution", budget=6, seed=0,
                             population=4, sample=2, count_repeats=False)
    assert len(calls) == 6 and by_networks.stopped == "budget"  # 6 networks evaluated, however many repeats
    calls.clear()
    whole = nas.search(small, lambda a: calls.append(a) or a["a"], strategy="random", budget=50, seed=0,
                       count_repeats=False)
    assert len(calls) == 8 and whole.stopped == "idle"  # the space is exhausted: the search stops


def test_architectures_that_build_the_same_network_are_one_network():
    import itertools
    import random

    space = nas.mobile_space(blocks=2, ops=("ir", "conv"), kernels=(3, 5), expand=(2, 4), widths=(8, 16),
                             se=(False, True), strides={}, hidden=(None, 8))
    a = {**space.sample(random.Random(0)), "op_0": "conv", "op_1": "none"}
    idle = {**a, "expand_0": 4 if a["expand_0"] == 2 else 2, "kernel_1": 5 if a["kernel_1"] == 3 else 3}
    assert nas.mobile_blocks(a) == nas.mobile_blocks(idle) and space.network_key(a) == space.network_key(idle)
    assert space.network_key({**a, "kernel_0": 5 if a["kernel_0"] == 3 else 3}) != space.network_key(a)
    # the count of distinct networks, against every architecture built
    built = {json.dumps([nas.mobile_blocks(dict(zip(space.names, c))), c[-1]])
             for c in itertools.product(*space.decisions.values())}
    assert space.distinct == len(built) < space.size
    rng = random.Random(1)
    for _ in range(50):  # a mutation changes the network, not only an idle decision
        assert space.network_key(space.mutate(a, rng)) != space.network_key(a)
    keys = [space.network_key(n) for n in space.neighbours(a)]
    assert len(keys) == len(set(keys)) and space.network_key(a) not in keys


def test_a_search_trains_a_network_once_however_its_idle_decisions_are_set():
    space = nas.mobile_space(blocks=3, ops=("conv",), kernels=(3,), expand=(2, 4, 6), widths=(8, 16),
                             se=(False,), strides={})
    networks = []

    def objective(arch):
        networks.append(json.dumps(nas.mobile_blocks(arch)))
        return float(sum(b["out"] for b in nas.mobile_blocks(arch)))

    result = nas.search(space, objective, strategy="random", budget=60, seed=0)
    assert len(networks) == len(set(networks)) <= space.distinct  # 2 ** 3 widths x (none or conv) of layers 1, 2
    assert sum(not h["cached"] for h in result.history) == len(networks)
    assert len({json.dumps(h["arch"]) for h in result.pareto}) == len(result.pareto)
