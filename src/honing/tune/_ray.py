"""The ``ray`` executor: a study's trials as Ray tasks, on a Ray cluster (``address``) or a local
Ray started for the run.

Each task is one worker of the study: it opens the study from its storage URL and claims trials
under the budget lock until the budget is spent, exactly like a local worker process, so the
budget stays exact however many tasks run or fail. A task asks Ray for ``cpus`` CPUs and
``gpus`` GPUs (a fraction shares a GPU among trials); torch in it uses ``cpus`` threads.

Failures: a Ray worker process or node lost mid-trial is retried by Ray (``max_retries``); the
trial it was running is failed and retried once by the study: by the driver, which watches for
RUNNING trials whose process on this machine is gone, or, in a database study, by any worker
when the trial's heartbeats stop (a journal file on a shared disk has no heartbeats: use
PostgreSQL for a multi-node cluster).

Trial files (``final: best_trial`` weights, the ensemble's predictions): a task on this machine
writes them into the run folder; a task on another node returns them and the driver writes
them there, so the run folder gathers every trial's files.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from honing._core import ConfigError, HoningError, check_int, check_number
from honing.tune._claim import budget_lock
from honing.tune._loop import WORKER_DIED, Job, owner_tag, recover, run_loop, say
from honing.tune._optimize import EXECUTORS, _Progress, _quiet_optuna, worker_study

__all__ = ["RayExecutor"]

_POLL_S = 1.0


class RayExecutor:
    """Run the trials as ``workers`` Ray tasks (see the module docstring). ``address``: a running
    cluster (``ray://host:10001``, ``host:6379``, ``auto``); None starts a local Ray for the run."""

    def __init__(self, address: str | None = None, *, cpus: float = 1, gpus: float = 0, max_retries: int = 2) -> None:
        check_number("cpus", cpus, low=0, low_inclusive=False)
        check_number("gpus", gpus, low=0)
        check_int("max_retries", max_retries, low=0)
        if gpus > 1 and gpus != int(gpus):
            raise ConfigError(f"invalid gpus: got {gpus}; allowed: a fraction below 1, or a whole number")
        self.address, self.cpus, self.gpus, self.max_retries = address, float(cpus), float(gpus), max_retries

    def run(self, study: Any, job: Job, workers: int, show: str | None) -> None:
        ray = _import_ray()
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": "ERROR", "include_dashboard": False}
            try:
                ray.init(address=self.address, **kwargs)
            except ConnectionError as err:
                raise HoningError(f"cannot reach the Ray cluster at {self.address!r}: {err}") from None
            started = True
        try:
            task = ray.remote(_ray_worker).options(num_cpus=self.cpus, num_gpus=self.gpus,
                                                  max_retries=self.max_retries, retry_exceptions=False)
            threads = max(1, int(self.cpus))
            pending = [task.remote(job, i, threads, socket.gethostname()) for i in range(workers)]
            lock = budget_lock(job.storage_url, job.study_name, job.run_dir)
            bar = _Progress(study, job, show)
            failures: list[str] = []
            try:
                while pending:
                    done, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL_S)
                    for ref in done:
                        try:
                            _write_files(Path(job.run_dir), ray.get(ref))
                        except ray.exceptions.RayError as err:  # retries spent: the others go on
                            failures.append(f"{type(err).__name__}: {' '.join(str(err).split())[:300]}")
                            say(f"a Ray task failed for good ({failures[-1]})")
                    with lock():  # a lost Ray worker's trial (its process on this machine is gone)
                        lost = recover(study, reason=WORKER_DIED)
                    if lost:
                        say(f"trial(s) {', '.join(map(str, lost))} lost their Ray worker: failed, retried once")
                    bar.refresh()
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
            finally:
                bar.close()
            if failures and len(failures) == workers:
                raise HoningError(f"all {workers} Ray tasks failed; the first: {failures[0]}")
        finally:
            if started:  # this run connected (or started a local Ray): it disconnects
                ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor 'ray' needs Ray: pip install 'honing[ray]'") from None
    return ray


def _ray_worker(job: Job, index: int, threads: int, driver_host: str) -> dict[str, bytes]:
    """One Ray task: the trial loop of a worker; the files of its trials when the driver is on
    another machine."""
    with _quiet_optuna():
        study = worker_study(job, index, threads=threads)
        run_loop(study, job)
        if socket.gethostname() == driver_host:
            return {}
        mine = [t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == owner_tag()]
    return trial_files(Path(job.run_dir), mine)


def trial_files(run_dir: Path, numbers: list[int]) -> dict[str, bytes]:
    """The files the trials ``numbers`` wrote under ``run_dir/trials``, by path relative to it."""
    out: dict[str, bytes] = {}
    folder = run_dir / "trials"
    for n in numbers:
        for path in folder.glob(f"{n}.*safetensors"):
            out[f"trials/{path.name}"] = path.read_bytes()
    return out


def _write_files(run_dir: Path, files: dict[str, bytes]) -> None:
    from honing._core import atomic_write_bytes

    for rel, data in (files or {}).items():
        target = (run_dir / rel).resolve()
        if run_dir.resolve() not in target.parents:  # only inside the run folder
            raise HoningError(f"a Ray task returned a file outside the run folder: {rel!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)


EXECUTORS.register("ray", RayExecutor, description="Ray tasks on a Ray cluster (address) or a local Ray "
                   "(pip install 'honing[ray]')")
