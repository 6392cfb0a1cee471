"""One process's trial loop: claim a trial under the budget lock, run the objective, tell.

Counting the study's trials and asking for a new one happen under the budget lock
(``honing.tune._claim``): an ``flock`` on ``run_dir/study.lock`` for a journal or SQLite
study, a PostgreSQL advisory lock for a study in PostgreSQL, so workers never overshoot
``n_trials``, on one machine or (PostgreSQL) on several.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import threading
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honing._core import ConfigError, HoningError
from honing.tune import _compat
from honing.tune._claim import budget_lock
from honing.tune._space import SearchSpace
from honing.tune._steer import PROPOSED_BY, current_space
from honing.tune._study import enqueue_retry

if TYPE_CHECKING:
    import optuna

INTERRUPTED_BY_USER = "interrupted by user"
LEFT_RUNNING = "interrupted: left running by an earlier run"
WORKER_DIED = "interrupted: its worker process died"
COMMAND_ENV = "HONING_COMMAND_ID"
STOPPED_BEATING = "interrupted: its worker stopped sending heartbeats"


class Pruned(HoningError):
    """Raised by an objective to end its trial early (early stopping of a weak trial)."""


_REPORT_HOOK: Callable[[int, int], None] | None = None


def set_report_hook(hook: Callable[[int, int], None] | None) -> None:
    """Call ``hook(trial_number, step)`` on every report of a trial run in this process (progress)."""
    global _REPORT_HOOK
    _REPORT_HOOK = hook


class Reporter:
    """What the objective sees of its trial: ``report(value, step)``, ``should_prune()``,
    ``set(key, value)``, ``number``, ``seed`` (base seed + trial number) and ``retry_of`` (the
    number of the interrupted trial this one redoes, else None: its checkpoint may be resumed).

    With several objectives Optuna cannot stop trials early: ``report`` only keeps the curve
    in memory (``intermediate``) and ``should_prune()`` is always False."""

    def __init__(self, trial: optuna.Trial, *, seed: int, multi_objective: bool) -> None:
        self._trial = trial
        self._multi = multi_objective
        self.number: int = trial.number
        self.seed: int = seed + trial.number
        self.intermediate: dict[int, float] = {}
        retry_of = trial.user_attrs.get("retry_of")
        self.retry_of: int | None = retry_of if isinstance(retry_of, int) else None  # the interrupted trial it redoes

    def report(self, value: float, step: int) -> None:
        value, step = float(value), int(step)
        self.intermediate[step] = value
        if not self._multi:
            self._trial.report(value, step)
        if _REPORT_HOOK is not None:  # progress of the running trial (this process)
            _REPORT_HOOK(self.number, step)

    def should_prune(self) -> bool:
        return False if self._multi else self._trial.should_prune()

    def set(self, key: str, value: Any) -> None:
        """Store a JSON-able user attribute on the trial (e.g. the learning curve)."""
        if not isinstance(key, str) or not key:
            raise ConfigError(f"invalid trial attribute name: got {key!r}; allowed: a non-empty string")
        try:
            value = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            raise ConfigError(f"invalid value for trial attribute {key!r}: got {value!r}; allowed: a JSON value") from None
        self._trial.set_user_attr(key, value)

    def __repr__(self) -> str:
        return f"Reporter(trial={self.number}, seed={self.seed})"


@dataclass(frozen=True)
class Job:
    """Everything a worker process needs; pickled to it."""

    objective: Callable[[dict[str, Any], Reporter], Any]
    study_name: str
    storage_url: str
    run_dir: str
    space: SearchSpace
    directions: tuple[str, ...]
    sampler: Any
    pruner: Any
    n_trials: int
    deadline: float | None
    seed: int
    base: Mapping[str, Any]
    grid_keys: frozenset[str] | None  # the grid sampler's points; the loop stops when all are claimed


def owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def say(message: str) -> None:
    print(f"[honing.tune] {message}", file=sys.stderr, flush=True)


def point_key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _set_attr(study: optuna.Study, trial: optuna.trial.FrozenTrial, key: str, value: Any) -> None:
    _compat.set_user_attr(study, trial, key, value)  # no public API by trial number


def fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> None:
    """Tell a RUNNING trial FAIL with ``reason`` and enqueue its parameters once for a retry."""
    from optuna.trial import TrialState

    with contextlib.suppress(Exception):
        _set_attr(study, trial, "error", reason)
    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    enqueue_retry(study, trial)


def _is_stale(owner: Any) -> bool:
    """A RUNNING trial's owner ``host:pid`` is gone (or is this very process, which runs none now).
    Owners on other hosts are left alone: RDB heartbeats find those."""
    if not isinstance(owner, str) or ":" not in owner:
        return True
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname():
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A process that died but was not reaped still answers ``kill(pid, 0)``: a worker killed with
    its parent (kill -9 of the process group) stays a zombie where PID 1 does not reap orphans
    (containers). Linux says so in /proc/<pid>/stat; elsewhere it counts as alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")


def recover(study: optuna.Study, *, reason: str, owners: set[str] | None = None) -> list[int]:
    """Fail-and-retry RUNNING trials: those of ``owners``, or (None) every stale one."""
    from optuna.trial import TrialState

    if owners is None:
        fail_silent(study)
    done = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get("worker")
        if (owner in owners) if owners is not None else _is_stale(owner):
            fail_and_retry(study, t, reason)
            done.append(t.number)
    return done


def fail_silent(study: optuna.Study) -> list[int]:
    """In a database study (heartbeats on), fail the RUNNING trials whose worker missed two
    heartbeats, on any machine, each with the reason and retried once; their numbers. Two
    workers may find the same trial: the database lets one of them end it, and only that one
    enqueues the retry."""
    import optuna
    from optuna.trial import TrialState

    if not _compat.heartbeat_enabled(study):
        return []
    storage, done = _compat.storage_of(study), []
    for trial_id in _compat.stale_trial_ids(study):
        try:
            storage.set_trial_user_attr(trial_id, "error", STOPPED_BEATING)
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker ended it first
        trial = storage.get_trial(trial_id)
        enqueue_retry(study, trial)
        done.append(trial.number)
    if done:
        say(f"trial(s) {', '.join(map(str, done))} failed: their worker stopped sending heartbeats; retried once")
    return done


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a trial is claimed: a trial is created and then tagged with its
    worker, and an interrupt in between would leave a RUNNING trial nobody can recover. A signal
    that arrives meanwhile is delivered on exit, once the trial is tagged.

    The Python-level handlers are swapped for one that only records the signal. (Blocking the
    signals with ``pthread_sigmask`` is not enough: it masks the main thread only, and the kernel
    hands a process-directed signal to any other thread, e.g. a runtime's thread pool, whose C
    handler then has the main thread raise inside the block.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    old: dict[int, Any] = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, lambda signum, frame: pending.append(signum))
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(pending):  # each held signal once, in arrival order
            handler = old[s]
            if callable(handler):
                handler(s, None)  # default_int_handler raises KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(s)


def _claim(study: optuna.Study, job: Job) -> tuple[optuna.Trial, dict[str, Any]] | None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if sum(t.state != TrialState.WAITING for t in trials) >= job.n_trials:
        return None
    if job.deadline is not None and time.time() >= job.deadline:
        return None
    if job.grid_keys is not None and not any(t.state == TrialState.WAITING for t in trials):
        if job.grid_keys <= {point_key(job.space.decode(t.params)) for t in trials}:
            return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat-with-ask and experimental-feature warnings
        trial = study.ask()
    trial.set_user_attr("worker", owner_tag())
    if PROPOSED_BY not in trial.user_attrs:  # a queued trial says who queued it (honing suggest: the user)
        trial.set_user_attr(PROPOSED_BY, proposed_by(job.sampler, trial.number))
    if command := os.environ.get(COMMAND_ENV):  # which command's processes ran it (honing worker counts its own)
        trial.set_user_attr("command", command)
    try:  # the space as the study holds it now: honing space may have changed a range
        params = current_space(job.space, study.user_attrs).suggest(trial, job.base)
    except BaseException as e:
        trial.set_user_attr("error", _one_line(e))
        study.tell(trial, state=TrialState.FAIL)
        raise
    return trial, params


def proposed_by(sampler: Any, number: int) -> str:
    """Who proposed a trial's values: the AutoSampler says (recipe, warm start, portfolio, or its
    route); another sampler is named by its class."""
    own = getattr(sampler, "proposed_by", None)
    if callable(own):
        return str(own(number))
    return f"sampler: {type(sampler).__name__}"


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _values(result: Any, n: int) -> list[float] | str:
    """The objective's return as ``n`` finite floats, or the reason it is not."""
    items = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(items) != n:
        return f"objective returned {len(items)} value(s) for {n} objective(s): {result!r}"
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError):
        return f"objective returned a non-number: {result!r}"
    if any(math.isnan(v) for v in out):
        return f"objective returned NaN: {result!r}"
    return out


def run_trial(study: optuna.Study, trial: optuna.Trial, params: dict[str, Any], job: Job) -> str:
    """Run the objective on one claimed trial and tell the study; returns the state's name."""
    import optuna
    from optuna.trial import TrialState

    reporter = Reporter(trial, seed=job.seed, multi_objective=len(job.directions) > 1)
    try:
        with _compat.heartbeat(study, trial):
            result = job.objective(params, reporter)
    except (Pruned, optuna.TrialPruned):
        return _tell(study, trial, "pruned", state=TrialState.PRUNED)
    except KeyboardInterrupt:
        fail_and_retry(study, _compat.frozen(study, trial), INTERRUPTED_BY_USER)
        raise
    except Exception as e:
        return _fail(study, trial, _one_line(e))
    values = _values(result, len(job.directions))
    if isinstance(values, str):
        return _fail(study, trial, values)
    return _tell(study, trial, "complete", values[0] if len(values) == 1 else values)


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: str, *args: Any, **kwargs: Any) -> str:
    """Tell the result; a trial that another worker already failed as silent (its heartbeats came
    too late: a stalled machine) keeps that end, and its retry runs the same parameters."""
    ended = study.tell(trial, *args, skip_if_finished=True, **kwargs)  # the trial as stored
    if ended.user_attrs.get("error") == STOPPED_BEATING:
        say(f"trial {trial.number} finished here after another worker had failed it (its heartbeats were late); "
            "its retry runs the same parameters")
        return "fail"
    return outcome


def _fail(study: optuna.Study, trial: optuna.Trial, error: str) -> str:
    from optuna.trial import TrialState

    with contextlib.suppress(Exception):  # already failed elsewhere (late heartbeats): it keeps that reason
        trial.set_user_attr("error", error)
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    say(f"trial {trial.number} failed: {error}")
    return "fail"


def run_loop(study: optuna.Study, job: Job, *, on_trial: Callable[[str], None] | None = None) -> None:
    """Claim and run trials until the budget, the deadline or the grid is exhausted."""
    lock = budget_lock(job.storage_url, job.study_name, job.run_dir)
    while True:
        with _interrupts_deferred(), lock():
            # a dead worker (a process gone on this machine, or silent heartbeats from anywhere):
            # its trial is failed here and its retry claimed next; under the lock, so once
            recover(study, reason=WORKER_DIED)
            claimed = _claim(study, job)
        if claimed is None:
            return
        state = run_trial(study, *claimed, job)
        if on_trial is not None:
            on_trial(state)
