"""``ReportData``: everything the report shows, as plain data (no optuna or torch objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from honing._core import ConfigError

TASKS = ("classification", "regression")
DIRECTIONS = ("maximize", "minimize")
TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


@dataclass(kw_only=True)
class ReportData:
    """The content of one report; every field but ``title``, ``task`` and ``metric`` may stay empty.

    A section whose data is empty is left out of the page (no search -> no optimization
    sections; no test metrics -> no test table; ...).
    """

    title: str
    """Heading of the page and the HTML ``<title>`` (e.g. the recipe's ``name``)."""
    task: str
    """``"classification"`` or ``"regression"``: picks the confusion matrix or the residual plot."""
    metric: str
    """The validation metric the search optimizes, e.g. ``"val_accuracy"``; labels the charts."""
    directions: list[str] = field(default_factory=lambda: ["maximize"])
    """One ``"maximize"``/``"minimize"`` per objective; more than one means a multi-objective search."""
    objective_names: list[str] = field(default_factory=list)
    """Names of the objectives (multi-objective); default ``[metric]`` or ``objective 0, 1, ...``."""
    best_params: dict[str, Any] = field(default_factory=dict)
    """Parameters of the best (or selected) trial, by dotted recipe path."""
    best_value: float | None = None
    """Objective value of the best trial (single objective); None when there was no search."""
    counts: dict[str, int] = field(default_factory=dict)
    """Number of trials by state, e.g. ``{"COMPLETE": 24, "PRUNED": 5, "FAIL": 1}``."""
    trials: list[dict[str, Any]] = field(default_factory=list)
    """One dict per trial: ``number`` (int), ``state`` (COMPLETE/PRUNED/FAIL/RUNNING/WAITING),
    ``params`` (dict; values numbers, strings, None, bools or lists; a conditional parameter is
    absent when inactive), ``values`` (list of floats or None), ``intermediate`` (dict epoch ->
    validation metric: the learning curve; keys may be ints or digit strings), ``user_attrs``
    (dict; ``"error"`` holds a failed trial's error), ``duration_s`` (float or None)."""
    param_importances: dict[str, float] = field(default_factory=dict)
    """Importance of each parameter (any non-negative scale; bars are drawn relative to the max)."""
    log_params: set[str] = field(default_factory=set)
    """Parameters searched on a log scale: drawn on a log axis in the parallel coordinates."""
    pareto: list[int] = field(default_factory=list)
    """Trial numbers on the Pareto front (multi-objective)."""
    selected_trial: int | None = None
    """The trial picked for the final training (highlighted in the Pareto chart)."""
    final_history: list[dict[str, Any]] = field(default_factory=list)
    """Per-epoch logs of the final training: ``epoch``, ``loss``, ``val_loss``, ``val_<metric>``,
    ``<metric>``, ``lr`` (any may be missing)."""
    test_metrics: dict[str, float] = field(default_factory=dict)
    """Metrics of the final model on the held-out test set."""
    confusion_matrix: list[list[int]] | None = None
    """Test confusion matrix (rows: true class, columns: predicted class); classification."""
    class_names: list[str] | None = None
    """Names of the classes, in label order; default ``0, 1, ...``."""
    residuals: dict[str, list[Any]] | None = None
    """``{"y_true": [...], "y_pred": [...]}`` on the test set (regression); rows may be lists
    (several outputs). At most 3000 points are drawn (every k-th)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage, e.g. ``{"search": 120.5, "final": 30.1, "test": 0.4}``."""
    recipe: dict[str, Any] = field(default_factory=dict)
    """The resolved recipe, shown as YAML in a collapsible block."""
    versions: dict[str, str] = field(default_factory=dict)
    """Library versions, e.g. ``{"honing": "0.1.0", "torch": "2.13.0", "python": "3.11.7"}``."""
    seed: int | None = None
    """The run's seed."""
    data_summary: dict[str, Any] = field(default_factory=dict)
    """What the data preparation did (``Dataset.summary()``): ``source``, ``target``,
    ``target_from``, ``rows_read``, ``rows`` per split, ``test_rows_from``, ``dropped``,
    ``columns`` by kind, ``imputed``, ``classes`` (rows per class per split)."""
    baselines: dict[str, Any] = field(default_factory=dict)
    """Quick baselines on the same test rows: ``{name: {"metrics": {...}, "what": str, ...}}``."""
    vs_baseline: dict[str, Any] | None = None
    """The model against the best baseline: ``metric``, ``model``, ``best_baseline``, ``baseline``, ``better``."""
    primary_metric: str | None = None
    """The test metric to read first (macro F1 for imbalanced classes)."""
    final_validation: dict[str, Any] | None = None
    """The final model's validation score: ``metric``, ``value``, ``note`` (whether it trained on those rows)."""
    warnings: list[str] = field(default_factory=list)
    """What a reader must not miss (no better than a baseline, imbalance, ties), shown at the top."""
    tie_break: str | None = None
    """How the chosen trial was picked among trials tied at the best value."""
    extra_tables: list[dict[str, Any]] = field(default_factory=list)
    """Further tables, each ``{"title": str, "columns": [...], "rows": [[...], ...]}``
    (optionally ``"note": str``), rendered after the test results."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"invalid ReportData.task: got {self.task!r}; allowed: {', '.join(TASKS)}")
        if isinstance(self.directions, str):
            self.directions = [self.directions]
        for i, d in enumerate(self.directions):
            if d not in DIRECTIONS:
                raise ConfigError(f"invalid ReportData.directions[{i}]: got {d!r}; "
                                  f"allowed: {', '.join(DIRECTIONS)}")
        if not self.directions:
            self.directions = ["maximize"]
        # states and counts in any case ("complete" from honing.tune, "COMPLETE" from Optuna's names)
        self.trials = [{**t, "state": str(t.get("state", "")).upper()} for t in self.trials]
        self.counts = {str(k).upper(): v for k, v in self.counts.items()}
        for i, table in enumerate(self.extra_tables):
            if not isinstance(table, dict) or "columns" not in table or "rows" not in table:
                raise ConfigError(f"invalid ReportData.extra_tables[{i}]: got {table!r:.80}; "
                                  "allowed: a dict with 'title', 'columns' and 'rows'")

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    def objective_labels(self) -> list[str]:
        """One display name per objective."""
        names = list(self.objective_names)
        if len(names) == len(self.directions):
            return [str(n) for n in names]
        if len(self.directions) == 1:
            return [self.metric or "objective"]
        return [names[i] if i < len(names) else f"objective {i}" for i in range(len(self.directions))]
