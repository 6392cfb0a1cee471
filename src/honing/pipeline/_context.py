"""The run context: the one object every stage of a run reads and writes."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from honing._core import atomic_write_text
from honing.data import Dataset
from honing.pipeline._transfer import DataMemo

STAGE_STATE = "stages.json"  # finished stages' keys and outputs: what a re-run does not redo


@dataclass(frozen=True)
class RunOptions:
    """How this run runs (the CLI's options), apart from what it computes (the recipe)."""

    workers: int = 1
    storage: str | None = None
    threads: int | None = None
    progress: bool = True
    source: Any = None  # the recipe as the caller passed it (a path names its lines in errors)
    executor: str | None = None  # where trials run: None (local processes), "processes" or "ray"
    address: str | None = None  # the Ray cluster (executor "ray"); None: a local Ray for the run
    trial_cpus: float = 1.0  # a Ray task's CPUs (torch threads in it)
    trial_gpus: float = 0.0  # a Ray task's GPUs (a fraction shares one)


@dataclass
class RunContext:
    """What the stages share. The recipe is typed (``honing.recipe.Recipe``) throughout.

    Filled in order: ``data`` (the data stage), ``metric``/``directions``/``study``/``selected``
    (search, select), ``final_recipe``/``model``/``history``/``final_how`` (final fit or fit),
    ``test_metrics``/``test_extra`` (test), then entries in ``results`` that later stages add
    (baselines, transfer, compress, anything a plugin stage adds), and results.json itself."""

    recipe: Any
    out_dir: Path
    options: RunOptions
    kind: str = "run"
    memo: DataMemo = field(default_factory=DataMemo)
    data: Dataset | None = None
    metric: str = ""
    directions: list[str] = field(default_factory=list)
    search: dict[str, Any] | None = None
    study: Any = None
    selected: dict[str, Any] | None = None
    final_recipe: Any = None
    model: Any = None
    history: list[dict[str, float]] = field(default_factory=list)
    final_how: str = ""
    model_key: str = ""  # a digest of what made the final model: later stages key their records on it
    trained: dict[str, Any] | None = None  # a finished training of the final recipe (nas.promote's best): fit reuses it
    test_metrics: dict[str, float] = field(default_factory=dict)
    test_extra: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    _current: str = ""
    _resumed: bool = False

    # --- messages --------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A progress line on stderr (silent with progress off)."""
        if self.options.progress:
            print(f"honing: {text}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """A note the user must see even with progress off (stderr)."""
        print(f"honing: note: {text}", file=sys.stderr, flush=True)

    # --- stage records and resuming ------------------------------------------------------------

    def begin(self, name: str) -> None:
        self._current, self._resumed = name, False

    def end(self, name: str, seconds: float, outcome: str | None, summary: dict[str, Any] | None) -> None:
        outcome = outcome or ("resumed" if self._resumed else "done")
        record: dict[str, Any] = {"stage": name, "outcome": outcome, "seconds": round(seconds, 3)}
        if summary:
            record.update(summary)
        self.records.append(record)
        self.timings[name] = self.timings.get(name, 0.0) + seconds

    def resume(self, key: Any) -> dict[str, Any] | None:
        """The output the current stage stored when it last finished with the same ``key`` (a
        JSON-able description of its inputs), or None: then the stage does its work."""
        stored = self._state().get(self._current)
        if stored is None or stored.get("key") != digest(key):
            return None
        self._resumed = True
        return stored.get("output") or {}

    def keep(self, key: Any, output: dict[str, Any] | None = None) -> None:
        """Store the current stage's finished record (``output``: JSON-able) for a re-run."""
        state = self._state()
        state[self._current] = {"key": digest(key), "output": output or {}}
        atomic_write_text(self.out_dir / STAGE_STATE, json.dumps(state, indent=1, default=str))

    def forget(self) -> None:
        """Drop every stored stage record (the folder's study was replaced)."""
        (self.out_dir / STAGE_STATE).unlink(missing_ok=True)

    def stage_file(self, name: str) -> Path:
        """A file of the current stage's own under ``<run>/stages/`` (e.g. the final weights)."""
        folder = self.out_dir / "stages"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def _state(self) -> dict[str, Any]:
        path = self.out_dir / STAGE_STATE
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}


def digest(value: Any) -> str:
    """A short digest of a JSON-able value (sorted keys)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
