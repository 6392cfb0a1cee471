"""The recipe's ``ensemble`` section: combine the models the search already trained.

::

    ensemble:
      method: greedy        # greedy (Caruana, with replacement) | stacking | average
      candidates: 10        # the best finished trials considered
      rounds: 25            # greedy: additions (with replacement)
      calibrate: true       # temperature scaling on the validation rows (classification)

Every finished trial keeps its weights and its predictions on the validation rows (out-of-fold
predictions under ``tune.cv: k``, where a trial's member is its k fold models); the ensemble
stage combines them with no further training and saves ``ensemble/``, a model folder.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from honing.recipe._sections import Section


class EnsembleSection(Section):
    """Combine the search's finished trials into one model (docs/ensemble.md)."""

    method: Literal["greedy", "stacking", "average"] = "greedy"
    """greedy: Caruana's selection with replacement; stacking: a linear head on the members'
    predictions; average: the candidates with equal weights"""
    candidates: Annotated[int, Field(ge=2, le=64)] = 10
    """the best finished trials (by their validation value) the ensemble may use"""
    rounds: Annotated[int, Field(ge=1, le=1000)] = 25
    """greedy: members added, with replacement (weights are multiples of 1/rounds)"""
    init: Annotated[int, Field(ge=1, le=64)] = 1
    """greedy: the best trials that enter once each before the greedy additions (sorted initialisation)"""
    bags: Annotated[int, Field(ge=1, le=100)] = 1
    """greedy: selections averaged, each among a random half of the candidates (bagged selection)"""
    calibrate: bool = True
    """classification: fit a temperature on the validation rows"""
