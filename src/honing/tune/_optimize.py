"""optimize(): run a study to an exact trial budget, in this process or in N worker processes.

Start: open (or continue) the study, fail-and-retry trials an earlier run left RUNNING.
Then each process loops (honing.tune._loop): claim a trial under the study lock, run the
objective outside it, tell. Ctrl-C / SIGTERM: running trials are told FAIL ("interrupted by
user"), enqueued for a retry, and KeyboardInterrupt is raised again after the cleanup.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from honing._core import ConfigError, HoningError, Registry, check_int, check_number, child_threads, stop_processes
from honing.tune._claim import budget_lock
from honing.tune._loop import (
    INTERRUPTED_BY_USER,
    LEFT_RUNNING,
    WORKER_DIED,
    Job,
    Reporter,
    owner_tag,
    point_key,
    recover,
    run_loop,
    say,
    set_report_hook,
)
from honing.tune._steer import PROPOSED_BY
from honing.tune._result import SPACE_ATTR, StudyResult, result_from_study
from honing.tune._space import SearchSpace
from honing.tune import _compat
from honing.tune._study import StorageHandle, _directions, create_sampler, resolve_storage

if TYPE_CHECKING:
    import optuna

EXIT_INTERRUPTED = 130
_POLL_S = 0.5
_STOP_GRACE_S = 30.0
_WAIT_POLL_S = 1.0


def optimize(
    objective: Callable[[dict[str, Any], Reporter], float | Sequence[float]],
    *,
    study_name: str,
    storage: StorageHandle | str | os.PathLike[str] | None,
    space: SearchSpace,
    directions: str | Sequence[str] = ("maximize",),
    sampler: Any = None,
    pruner: Any = None,
    n_trials: int,
    timeout: float | None = None,
    workers: int = 1,
    seed: int = 0,
    base: Mapping[str, Any] | None = None,
    progress: bool = True,
    run_dir: str | os.PathLike[str],
    executor: str | Executor | None = None,
    warm_start: Sequence[Mapping[str, Any]] = (),
    history: Sequence[Mapping[str, Any]] = (),
    attrs: Mapping[str, Any] | None = None,
    join: bool = False,
) -> StudyResult:
    """Run ``objective(params, reporter)`` until the study holds ``n_trials`` trials (any state).

    ``storage``: None (a journal file ``run_dir/study.journal``), a URL / .journal path, or
    ``resolve_storage``'s handle. ``sampler``: an Optuna sampler, a name, or None (tpe / nsga2).
    ``pruner``: an Optuna pruner or None (none). ``base``: the configuration that ``when``
    conditions on fixed fields look up. With ``workers > 1`` the objective, sampler and pruner
    are pickled to spawned processes (the objective's class must be importable there).
    Re-running continues toward the same budget. The budget lock is held where the storage is:
    ``run_dir/study.lock`` for a journal or SQLite file, an advisory lock in the database for
    PostgreSQL, so processes on several machines sharing one PostgreSQL study stop at exactly
    ``n_trials`` (see ``honing.tune._claim``). ``executor``: where the
    trials run (``list_executors()``: ``inline`` in this process, ``processes`` in spawned local
    workers); None picks ``inline`` for one worker, ``processes`` for more. ``warm_start``:
    configurations (decoded, as ``StudyResult.trials`` holds them; e.g. ``ExperienceStore.starts``)
    that an ``AutoSampler`` tries right after the recipe's own values and any other sampler
    first (queued in a new study); values outside the space are left to the sampler. ``history``:
    a related earlier study's finished trials (``{"params": decoded, "value"}``; e.g.
    ``ExperienceStore.history``) that an ``AutoSampler``'s model learns from (others ignore it).
    ``attrs``: JSON-able study attributes to set (``honing run`` stores the recipe and budget there,
    for ``honing worker``). ``join``: this process joins a study that another command leads (a
    worker): it draws random numbers of its own, and it stops when the budget is claimed. Without
    ``join``, a study in a database (heartbeats on) is waited for at the end until the trials
    running in other workers finish, or are failed when their worker stops beating."""
    import optuna

    dirs = _directions(directions)
    check_int("n_trials", n_trials, low=1)
    check_int("workers", workers, low=1)
    check_int("seed", seed)
    check_number("timeout", timeout, low=0, low_inclusive=False, allow_none=True)
    if not isinstance(space, SearchSpace):
        raise ConfigError(f"invalid space: got {space!r}; allowed: a honing.tune.SearchSpace")
    if not isinstance(study_name, str) or not study_name:
        raise ConfigError(f"invalid study_name: got {study_name!r}; allowed: a non-empty string")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = resolve_storage(storage, run_dir)
    if sampler is None or isinstance(sampler, (str, Mapping)):
        sampler = create_sampler(sampler, seed=seed, space=space, directions=dirs, n_trials=n_trials)
    from honing.tune._auto import AutoSampler

    if isinstance(sampler, AutoSampler) and not sampler.start and (base or warm_start):
        centre = space.centre(base or {})  # the recipe's own values: the first trial
        if centre:
            sampler.add_start([centre], source="recipe")
        sampler.add_start([p for w in warm_start if (p := _encoded(space, w))], source="warm start")
    if isinstance(sampler, AutoSampler) and history and not sampler.history:
        sampler.set_history([{"params": p, "value": h["value"]} for h in history
                             if (p := _encoded(space, h.get("params") or {}))])
    if isinstance(sampler, AutoSampler) and space.priors() and not sampler.priors:
        sampler.set_priors(space.priors())  # the values marked prior: override the centre
    if pruner is None:
        pruner = optuna.pruners.NopPruner()
    if len(dirs) > 1 and not isinstance(pruner, optuna.pruners.NopPruner):
        warnings.warn(f"{type(pruner).__name__} not used: Optuna cannot stop trials early in a study with several "
                      "objectives", UserWarning, stacklevel=2)
        pruner = optuna.pruners.NopPruner()
    base = dict(base or {})

    start = time.time()
    with _quiet_optuna(), _sigterm_as_interrupt():
        study = _open_study(handle, study_name, dirs, sampler, pruner)
        study.set_user_attr(SPACE_ATTR, space.to_spec())
        for key, value in (attrs or {}).items():
            study.set_user_attr(key, value)
        # under the budget lock: a worker elsewhere creates a trial and tags it with its owner
        # while holding it, so an untagged RUNNING trial seen here is one nobody will finish
        with budget_lock(handle.url, study_name, str(run_dir))():
            retried = recover(study, reason=LEFT_RUNNING)
        if retried:
            say(f"trials {', '.join(map(str, retried))} were left running by an earlier run: failed, retried once")
        if _has_history(study) or join:
            sampler.reseed_rng()  # a continued study must not replay the first run's random draws
        elif warm_start and not join and not isinstance(sampler, AutoSampler):  # any other sampler: queued first
            for point in warm_start:
                if encoded := _encoded(space, point):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # enqueue_trial's user_attrs: an ExperimentalWarning
                        study.enqueue_trial(encoded, user_attrs={PROPOSED_BY: "warm start"}, skip_if_exists=True)
        job = Job(objective=objective, study_name=study_name, storage_url=handle.url, run_dir=str(run_dir),
                  space=space, directions=tuple(dirs), sampler=sampler, pruner=pruner, n_trials=n_trials,
                  deadline=None if timeout is None else start + float(timeout), seed=seed, base=base,
                  grid_keys=_grid_keys(sampler, space, base, n_trials))
        show = _progress_mode(progress)
        remaining = n_trials - _used(study)
        run_trials = _executor(executor, workers)
        if remaining > 0 or workers == 1:
            run_trials.run(study, job, min(workers, max(remaining, 1)), show)
        if not join and _compat.heartbeat_enabled(study):
            _wait_for_others(study, job, progress)
        _close_spent_retries(study, n_trials)
        return result_from_study(study, handle.url, elapsed_s=time.time() - start)


def _wait_for_others(study: optuna.Study, job: Job, progress: bool) -> None:
    """The budget is claimed; trials still RUNNING may belong to ``honing worker`` commands (on
    this or another machine; their trials carry a ``command`` attribute and send heartbeats).
    Wait until each finishes, or is failed when its worker stops sending heartbeats (its retry
    then finds no budget left and is closed). Trials of other runs sharing the study are not
    waited for (the run says they are still running)."""
    from optuna.trial import TrialState

    said, lock = 0, budget_lock(job.storage_url, job.study_name, job.run_dir)
    while True:
        with lock():  # the workers fail silent trials under it too: one of them retries each
            recover(study, reason=WORKER_DIED)  # silent workers anywhere, dead processes on this machine
        running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if "command" in t.user_attrs]
        if not running:
            return
        if progress and len(running) != said:
            said = len(running)
            say(f"waiting for {said} trial(s) running in other workers: {', '.join(map(str, running[:8]))}")
        time.sleep(_WAIT_POLL_S)


def _encoded(space: SearchSpace, point: Mapping[str, Any]) -> dict[str, Any]:
    """``point``'s values at the space's paths, encoded as Optuna stores them (others dropped)."""
    known = {p.path for p in space.params}
    try:
        return space.encode({k: v for k, v in point.items() if k in known})
    except (TypeError, ValueError):
        return {}


class Executor(Protocol):
    """Where a study's trials run: ``run(study, job, workers, show)`` returns when the budget is
    spent (or the deadline passed). ``job`` (picklable) is everything a worker needs; each
    worker claims trials under the study's budget and tells the study their results. The seam
    for remote workers (Ray, a cluster): register another executor."""

    def run(self, study: Any, job: Job, workers: int, show: str | None) -> None: ...


class _Inline:
    """The trials in this process, one after another."""

    def run(self, study: Any, job: Job, workers: int, show: str | None) -> None:
        _run_here(study, job, show)


class _LocalProcesses:
    """Spawned local worker processes (one torch thread each), watched for deaths and Ctrl-C."""

    def run(self, study: Any, job: Job, workers: int, show: str | None) -> None:
        _run_workers(study, job, workers, show)


EXECUTORS: Registry[Executor] = Registry("executor")
EXECUTORS.register("inline", _Inline, description="trials in this process, one after another")
EXECUTORS.register("processes", _LocalProcesses, description="spawned local worker processes")


def list_executors() -> list[str]:
    return EXECUTORS.names()


def _executor(executor: str | Executor | None, workers: int) -> Executor:
    if executor is None:
        return EXECUTORS.create("inline" if workers == 1 else "processes")
    if isinstance(executor, str):
        return EXECUTORS.create(executor)
    if not callable(getattr(executor, "run", None)):
        raise ConfigError(f"invalid executor: got {executor!r}; allowed: a name ({', '.join(list_executors())}) "
                          "or an object with run(study, job, workers, show)")
    return executor


def _open_study(handle: StorageHandle, name: str, dirs: list[str], sampler: Any, pruner: Any) -> optuna.Study:
    import optuna

    study = optuna.create_study(study_name=name, storage=handle.storage, sampler=sampler, pruner=pruner,
                                directions=dirs, load_if_exists=True)
    got = [d.name.lower() for d in study.directions]
    if got != dirs:
        raise ConfigError(f"study {name!r} in {handle.url} has directions {got}; got {dirs}; "
                          "allowed: the same directions, or a new study name")
    return study


def _used(study: optuna.Study) -> int:
    """Trials that count toward the budget: every state but WAITING (enqueued, not yet claimed)."""
    from optuna.trial import TrialState

    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))


def _close_spent_retries(study: optuna.Study, n_trials: int) -> None:
    """A retry enqueued for a killed trial that the spent budget will never run is marked FAIL with
    the reason, not left WAITING for ever."""
    from optuna.trial import TrialState

    if _used(study) < n_trials:
        return
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if "retry_of" in t.user_attrs:
            _compat.set_user_attr(study, t, "error", "not retried: the trial budget was spent")
            _compat.set_state(study, t, TrialState.FAIL)


def _has_history(study: optuna.Study) -> bool:
    return _used(study) > 0


def _grid_keys(sampler: Any, space: SearchSpace, base: Mapping[str, Any], n_trials: int) -> frozenset[str] | None:
    from honing.tune._grid_sampler import GridSearchSampler

    if not isinstance(sampler, GridSearchSampler):
        return None
    points = space.grid(base)
    if n_trials < len(points):
        say(f"the grid has {len(points)} points but n_trials is {n_trials}: only {n_trials} will be visited")
    return frozenset(point_key(p) for p in points)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, SIGTERM becomes KeyboardInterrupt (so batch-system stops clean up)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    try:  # installed inside the try: an interrupt between two calls still restores what was set
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _Progress:
    """Progress of a search on stderr. On a terminal: a tqdm bar that advances with every epoch of
    the running trial(s) (so its ETA means something during a long first trial), with the best
    value so far. In a log (not a terminal): one line per finished trial (number, state, value,
    best so far, elapsed). Nothing with ``mode=None`` (``--quiet``)."""

    def __init__(self, study: optuna.Study, job: Job, mode: str | None) -> None:
        self.study, self.job, self.bar, self.mode = study, job, None, mode
        self.start = time.time()
        self.seen: set[int] = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.epochs = int(((job.base or {}).get("training") or {}).get("epochs") or 0)
        self.running: dict[int, int] = {}  # trial number -> last epoch reported (this process)
        self.drawn = 0.0  # when the bar was last redrawn for an epoch
        if mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=job.n_trials, desc=job.study_name, unit="trial", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
            self.refresh()

    def epoch(self, number: int, step: int) -> None:
        """A trial of this process reported epoch ``step`` (the bar is redrawn at most 5 times a second)."""
        self.running[number] = step
        now = time.time()
        if self.bar is not None and now - self.drawn >= 0.2:
            self.drawn = now
            self.refresh()

    def refresh(self, *_: Any) -> None:
        if self.mode is None:
            return
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        best = None
        if complete and len(self.job.directions) == 1:
            pick = max if self.job.directions[0] == "maximize" else min
            best = pick(complete, key=lambda t: t.value)  # type: ignore[arg-type,return-value]
        if self.mode == "lines":
            for t in sorted((t for t in finished if t.number not in self.seen), key=lambda t: t.number):
                self.seen.add(t.number)
                self.running.pop(t.number, None)
                value = (f"{t.value:.6g}" if t.values and len(t.values) == 1 else
                         str([round(v, 6) for v in t.values]) if t.values else "-")
                best_txt = f"; best {best.value:.6g} (trial {best.number})" if best is not None else ""
                print(f"honing: trial {t.number} {t.state.name.lower()}: {value}{best_txt}; "
                      f"{min(len(finished), self.job.n_trials)}/{self.job.n_trials} trials; "
                      f"{time.time() - self.start:.1f}s", file=sys.stderr, flush=True)
            return
        if self.bar is None:
            return
        done = {t.number for t in finished}
        for number in list(self.running):
            if number in done:
                del self.running[number]
        steps = dict(self.running)
        for t in trials:  # trials of other processes: their last reported epoch, from the storage
            if t.state == TrialState.RUNNING and t.number not in steps and t.intermediate_values:
                steps[t.number] = max(t.intermediate_values)
        part = sum(min(1.0, s / self.epochs) for s in steps.values()) if self.epochs else 0.0
        self.bar.n = min(float(len(finished)) + part, float(self.job.n_trials))
        post = {}
        if best is not None:
            post["best"] = f"{best.value:.4g}"
        if steps and self.epochs:
            post["running"] = ", ".join(f"#{n} epoch {s}/{self.epochs}" for n, s in sorted(steps.items())[:3])
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_mode(progress: bool) -> str | None:
    """'bar' on a terminal, 'lines' in a log, None when quiet."""
    if not progress:
        return None
    return "bar" if sys.stderr.isatty() else "lines"


def _run_here(study: optuna.Study, job: Job, show: str | None) -> None:
    bar = _Progress(study, job, show)
    set_report_hook(bar.epoch if show == "bar" else None)
    try:
        run_loop(study, job, on_trial=bar.refresh)
    except KeyboardInterrupt:
        with _ignore_interrupts():
            recover(study, reason=INTERRUPTED_BY_USER, owners={owner_tag()})
        raise
    finally:
        set_report_hook(None)
        bar.close()


@contextlib.contextmanager
def _ignore_interrupts() -> Iterator[None]:
    """Let a cleanup finish: a second Ctrl-C while it runs is ignored (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    try:  # a KeyboardInterrupt raised between the two calls must not leave SIGINT ignored
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, signal.SIG_IGN)
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run_workers(study: optuna.Study, job: Job, workers: int, show: str | None) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = []
    with child_threads(1):
        for i in range(workers):
            p = ctx.Process(target=worker_main, args=(job, i), name=f"honing-tune-{i}")
            p.start()
            procs.append(p)
    bar = _Progress(study, job, show)
    handled: set[int] = set()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(_POLL_S)
            _handle_dead(study, job, procs, handled)  # so that live workers retry a dead one's trial
            bar.refresh()
    except KeyboardInterrupt:
        with _ignore_interrupts():
            _stop_workers(procs)
            recover(study, reason=INTERRUPTED_BY_USER, owners=_owners(procs))
        raise
    finally:
        bar.close()
    for p in procs:
        p.join()
    _handle_dead(study, job, procs, handled)
    if any(p.exitcode == EXIT_INTERRUPTED for p in procs):
        say("some workers were interrupted (SIGINT/SIGTERM): their trials were failed and enqueued for a retry")
    if all(p.exitcode not in (0, EXIT_INTERRUPTED) for p in procs):
        raise HoningError(f"all {len(procs)} tuning workers died (exit codes {[p.exitcode for p in procs]}); "
                          "see their messages above")


def _handle_dead(study: optuna.Study, job: Job, procs: list[Any], handled: set[int]) -> None:
    """Report each worker that ended abnormally, once; fail-and-retry the trial it was running."""
    for p in procs:
        if p.exitcode is None or p.exitcode in (0, EXIT_INTERRUPTED) or p.pid in handled:
            continue
        handled.add(p.pid)
        how = f"was killed by signal {-p.exitcode}" if p.exitcode < 0 else f"exited with code {p.exitcode}"
        say(f"worker {p.name} (pid {p.pid}) {how}; see its messages above")
        with budget_lock(job.storage_url, job.study_name, job.run_dir)():  # the workers recover under it too
            lost = recover(study, reason=WORKER_DIED, owners=_owners([p]))
        if lost:
            say(f"trial(s) {', '.join(map(str, lost))} of that worker failed and enqueued for a retry")


def _owners(procs: list[Any]) -> set[str]:
    import socket

    return {f"{socket.gethostname()}:{p.pid}" for p in procs}


def _stop_workers(procs: list[Any]) -> None:
    """Ask workers to stop (SIGTERM: they fail-and-retry their trial), then kill stragglers."""
    stop_processes(procs, _STOP_GRACE_S)


def _once_interrupt(signum: int, frame: Any) -> None:
    """A worker's SIGINT/SIGTERM: raise KeyboardInterrupt once, ignore repeats during cleanup."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def worker_study(job: Job, index: int, *, threads: int) -> optuna.Study:
    """In a worker process (local or a Ray task): torch's threads, and the study opened from its
    URL with the job's sampler (reseeded past the first worker: workers must not draw the same
    random numbers) and pruner."""
    import optuna

    os.environ["OMP_NUM_THREADS"] = str(threads)
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(threads)
    handle = resolve_storage(job.storage_url, job.run_dir)
    study = optuna.load_study(study_name=job.study_name, storage=handle.storage, sampler=job.sampler,
                              pruner=job.pruner)
    if index > 0:
        job.sampler.reseed_rng()
    return study


def worker_main(job: Job, index: int) -> None:
    """A spawned worker: one thread for torch, the study opened from its URL, the trial loop."""
    signal.signal(signal.SIGINT, _once_interrupt)
    signal.signal(signal.SIGTERM, _once_interrupt)
    with _quiet_optuna():
        study = worker_study(job, index, threads=1)
        try:
            run_loop(study, job)
        except KeyboardInterrupt:
            recover(study, reason=INTERRUPTED_BY_USER, owners={owner_tag()})
            sys.exit(EXIT_INTERRUPTED)
