"""Data-parallel training of one model: torch.distributed DDP over N local processes.

``fit_distributed(make_trainer, train, val, processes=N)`` spawns N ranks. Each builds its own
Trainer (``make_trainer(rank)``, a picklable callable) and trains the same model on its shard of
every batch:

* every rank draws the same permutation of the training rows each epoch (the Trainer's seeded
  generator), so batch ``i`` is the same ``batch_size`` rows on every rank, as in one process;
  rank ``r`` takes the ``r``-th contiguous slice of it (a ``DistributedSampler`` over honing's
  batches, with no row dropped or repeated);
* ``DistributedDataParallel`` averages the gradients; each rank's loss is weighted by its
  slice's share of the batch, so the averaged gradient is the one-process batch gradient
  even when the last batch does not split evenly. N processes x batch B/N then give the
  weights of one process x batch B (checked by a test to 1e-5) when nothing else draws random
  numbers per row (dropout and augmentation draw per rank; batch norm normalises each slice
  with its own statistics, as in any DDP training without SyncBatchNorm);
* the logged loss is the batch's loss over all ranks; every rank validates on every validation
  row, and at each epoch's end the ranks agree to stop when any of them stops (early stopping,
  a callback), so they leave the loop together;
* only rank 0 writes checkpoints and reports progress; on resume every rank reads rank 0's.

Backend: ``gloo`` on CPU, ``nccl`` on CUDA (one GPU per rank, ``cuda:rank``). Collectives time
out after ``timeout_s`` (120 s by default; torch's own default, 30 minutes, turns one crashed
rank into a long hang). The parent watches the ranks: when one exits with an error the others
are stopped at once and ``DistributedError`` names the failed rank and its error.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from honing._core import ConfigError, HoningError, check_int, check_number, child_threads, stop_processes
from honing.train._callbacks import Callback
from honing.train._config import FitResult
from honing.train._steps import StandardStep

if TYPE_CHECKING:
    from honing.train._trainer import Trainer

__all__ = ["DistributedError", "DistributedFit", "DistributedStep", "SyncStop", "fit_distributed"]

DEFAULT_TIMEOUT_S = 120.0
BACKENDS = ("auto", "gloo", "nccl")
_POLL_S = 0.1
_STOP_GRACE_S = 5.0


class DistributedError(HoningError):
    """A rank of a data-parallel training failed (its number and error are in the message)."""


class DistributedStep:
    """The step policy of one rank: the rank's slice of the batch through DDP, its loss weighted
    by the slice's share of the batch (the gradient DDP averages is the whole batch's), the
    loss logged as the batch's over all ranks."""

    def __init__(self, rank: int, world: int, *, accumulate: int = 1) -> None:
        self.rank, self.world = rank, world
        self.inner = StandardStep(accumulate)
        self.ddp: Any = None

    def _wrap(self, trainer: Trainer) -> Any:
        if self.ddp is None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [trainer.device.index or 0] if trainer.device.type == "cuda" else None
            # the wrapper shares the Trainer's module: evaluation and state_dict see the same weights
            self.ddp = DistributedDataParallel(trainer.model, device_ids=ids)
        return self.ddp

    def loss(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        ddp, n = self._wrap(trainer), xb.shape[0]
        per = -(-n // self.world)  # ceil: slices of the batch in rank order
        lo, hi = min(n, self.rank * per), min(n, (self.rank + 1) * per)
        with trainer.autocast:
            if hi > lo:
                local = trainer.loss_fn(ddp(xb[lo:hi]), yb[lo:hi]) * ((hi - lo) * self.world / n)
            else:  # a batch smaller than the ranks: this rank adds a zero gradient
                local = ddp(xb[:1]).sum() * 0.0
        total = local.detach().clone()
        dist.all_reduce(total)
        return local + (total / self.world - local).detach()  # the value: the batch's loss; the gradient: this slice's

    def backward(self, trainer: Trainer, loss: torch.Tensor, index: int, count: int) -> None:
        self.inner.backward(trainer, loss, index, count)


class SyncStop(Callback):
    """At each epoch's end the ranks agree to stop when any of them stops."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        import torch.distributed as dist

        flag = torch.tensor([1.0 if trainer._stop_reason is not None else 0.0], device=_collective_device(trainer))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0:
            trainer.request_stop("stopped on another rank")


def _collective_device(trainer: Trainer) -> torch.device:
    return trainer.device if trainer.device.type == "cuda" else torch.device("cpu")


class DistributedFit:
    """What rank 0 trained: ``result`` (its FitResult) and ``state`` (the model's weights)."""

    def __init__(self, result: FitResult, state: dict[str, torch.Tensor], seconds: float, processes: int) -> None:
        self.result, self.state, self.seconds, self.processes = result, state, seconds, processes


def fit_distributed(
    make_trainer: Callable[[int], Trainer],
    train: Any,
    val: Any = None,
    *,
    processes: int,
    backend: str = "auto",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    threads: int = 1,
) -> DistributedFit:
    """Train with ``processes`` data-parallel ranks (see the module docstring); returns rank 0's
    result and weights. ``make_trainer(rank)`` builds one rank's Trainer (same model, seed and
    config on every rank; its ``step`` is replaced). ``threads``: torch threads per rank."""
    check_int("processes", processes, low=1)
    check_number("timeout_s", timeout_s, low=0, low_inclusive=False)
    if backend not in BACKENDS:
        raise ConfigError(f"invalid backend: got {backend!r}; allowed: {', '.join(BACKENDS)}")
    if not callable(make_trainer):
        raise ConfigError(f"invalid make_trainer: got {make_trainer!r}; allowed: a picklable callable rank -> Trainer")
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="honing-ddp-") as tmp:
        procs = []
        with child_threads(threads):
            for rank in range(processes):
                args = (rank, processes, port, backend, float(timeout_s), make_trainer, train, val,
                        None if checkpoint_dir is None else str(checkpoint_dir), resume, threads, tmp)
                p = ctx.Process(target=_rank_main, args=args, name=f"honing-ddp-{rank}")
                p.start()
                procs.append(p)
        try:
            _watch(procs, Path(tmp))
        except BaseException:
            stop_processes(procs, _STOP_GRACE_S)
            raise
        out = Path(tmp)
        result = FitResult(**json.loads((out / "result.json").read_text()))
        from safetensors.torch import load_file

        state = load_file(str(out / "weights.safetensors"))
    return DistributedFit(result, state, time.perf_counter() - start, processes)


def _watch(procs: list[Any], out: Path) -> None:
    """Wait for every rank; the first to fail stops the others and is named in the error."""
    while True:
        # a rank that wrote its error counts as failed at once, even while it is still exiting
        failed = [(rank, p) for rank, p in enumerate(procs)
                  if p.exitcode not in (None, 0) or (out / f"error-{rank}.json").is_file()]
        if failed:
            alive = [rank for rank, p in enumerate(procs) if p.exitcode is None and rank not in dict(failed)]
            stop_processes(procs, _STOP_GRACE_S)
            # the rank that failed first: one that died with no error of its own (a crash, a
            # signal), else the earliest error (the others failed waiting for it)
            errors = {rank: _error_of(out, rank) for rank, _ in failed}
            rank = min(errors, key=lambda r: (errors[r] is not None, errors[r][0] if errors[r] else 0.0, r))
            p, error = procs[rank], errors[rank]
            how = (error[1] if error is not None else
                   f"killed by signal {-p.exitcode}" if (p.exitcode or 0) < 0 else f"exited with code {p.exitcode}")
            if alive and "timed out" in how.lower():
                how += (f"; rank{'s' if len(alive) > 1 else ''} {', '.join(map(str, alive))} never joined it "
                        "(hung, or far slower)")
            raise DistributedError(f"data-parallel training failed: rank {rank} of {len(procs)}: {how}")
        if all(p.exitcode == 0 or (out / f"done-{rank}").is_file() for rank, p in enumerate(procs)):
            stop_processes(procs, _STOP_GRACE_S)  # a finished rank still exiting is not waited for
            return
        time.sleep(_POLL_S)


def _error_of(out: Path, rank: int) -> tuple[float, str] | None:
    path = out / f"error-{rank}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record["time"], record["error"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, world: int, port: int, backend: str, timeout_s: float, make_trainer: Any, train: Any,
               val: Any, checkpoint_dir: str | None, resume: bool, threads: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(threads)
    try:
        trainer = make_trainer(rank)
        chosen = ("nccl" if trainer.device.type == "cuda" else "gloo") if backend == "auto" else backend
        if trainer.device.type == "cuda":
            trainer.device = torch.device("cuda", rank % max(1, torch.cuda.device_count()))
            trainer.model.to(trainer.device)
            torch.cuda.set_device(trainer.device)
        dist.init_process_group(chosen, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
        if not isinstance(trainer.step, StandardStep):
            raise ConfigError(f"data-parallel training takes plain optimizer steps; got {type(trainer.step).__name__} "
                              "(an optimizer with a closure, such as LBFGS, or float16 loss scaling)")
        trainer.step = DistributedStep(rank, world, accumulate=trainer.step.accumulate)
        trainer.callbacks.append(SyncStop())
        trainer.writes_checkpoints = rank == 0
        if rank != 0:
            trainer.config = dataclasses.replace(trainer.config, progress=False)
            trainer.callbacks = [c for c in trainer.callbacks if not getattr(c, "rank0_only", False)]
        result = trainer.fit(train, val, checkpoint_dir=checkpoint_dir, resume=resume)
        if rank == 0:
            from safetensors.torch import save_file

            state = {k: v.detach().contiguous().cpu() for k, v in trainer.model.state_dict().items()}
            save_file(state, str(Path(out) / "weights.safetensors"))
            (Path(out) / "result.json").write_text(json.dumps(asdict(result)))
        dist.barrier()
        # done: the parent reads this and stops the rank. No destroy_process_group(): with torch
        # 2.13's gloo it can deadlock (its destructor joins a worker thread that waits for the
        # GIL the joining thread holds), leaving a finished rank that never exits
        _mark(Path(out) / f"done-{rank}", {"time": time.time()})
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which names this rank
        message = f"{type(err).__name__}: {' '.join(str(err).split())[:600]}"
        if not isinstance(err, (HoningError, KeyboardInterrupt)):
            message += f" (at {traceback.extract_tb(err.__traceback__)[-1].name})" if err.__traceback__ else ""
        _mark(Path(out) / f"error-{rank}.json", {"time": time.time(), "error": message})
        _exit(1)
    _exit(0)


def _mark(path: Path, record: dict[str, Any]) -> None:
    """A file the parent polls for: whole, or not there."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def _exit(code: int) -> None:
    """Leave at once: no process-group teardown (with a peer gone or hung, or with gloo's
    destructor, it can block); exiting frees it all."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
