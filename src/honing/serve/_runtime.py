"""What the server runs: rows in, prepared tensors, micro-batched forward passes, answers out,
and the bounded log of what it saw (the drift monitor's window)."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from honing._core import DataError
from honing.artifacts import LoadedModel
from honing.data._profile import EMBED_ROWS

LOG_FILE = "inputs.jsonl"


class RequestError(DataError):
    """A request whose rows cannot be used; the server answers 422 with this message."""


def decode_rows(model: LoadedModel, rows: list[Any]) -> tuple[np.ndarray | list[str], torch.Tensor]:
    """(raw rows in the model's order, prepared tensor). Tables: objects by column name, or arrays
    in the training column order; images and sequences: nested arrays of the input shape; text:
    strings. Every problem raises RequestError naming the row and what was expected."""
    try:
        return _decode(model, rows)
    except RequestError:
        raise
    except (DataError, ValueError, TypeError, KeyError, IndexError) as err:
        raise RequestError(str(err)) from None


def _decode(model: LoadedModel, rows: list[Any]) -> tuple[np.ndarray | list[str], torch.Tensor]:
    kind = getattr(model.preprocessor, "kind", "")
    if kind == "text":
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, str)), None)
        if bad is not None:
            raise RequestError(f"rows[{bad}]: got {type(rows[bad]).__name__}; allowed: a string (this model reads text)")
        raw: Any = np.asarray(rows, dtype=object)
    elif model.columns is not None:
        if all(isinstance(r, dict) for r in rows):
            raw = model.rows(rows, where="the request")
        elif all(isinstance(r, list) for r in rows):
            width = len(model.columns)
            bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
            if bad is not None:
                raise RequestError(f"rows[{bad}]: got {len(rows[bad])} values; allowed: {width} values in the order "
                                   f"{', '.join(model.columns)} (or an object by column name)")
            raw = np.asarray(rows, dtype=object)
        else:
            raise RequestError("rows: allowed: a list of objects by column name, or a list of arrays in the order "
                               f"{', '.join(model.columns)}")
    else:
        try:
            raw = np.asarray(rows, dtype=np.float32)
        except (ValueError, TypeError):
            raise RequestError(f"rows: got rows that are not numeric arrays of shape {list(model.input_shape)}; "
                               "allowed: nested lists of numbers") from None
        shape = tuple(raw.shape[1:])
        expected = tuple(getattr(model.preprocessor, "sample_shape", None) or model.input_shape)
        if shape != expected and int(np.prod(shape)) == int(np.prod(expected)):
            raw = raw.reshape(len(raw), *expected)
        elif shape != expected:
            raise RequestError(f"rows: got rows of shape {list(shape)}; allowed: {list(expected)} (the model's input)")
    return raw, model.prepare(raw)


def answer(model: LoadedModel, outputs: torch.Tensor) -> dict[str, Any]:
    """The JSON answer for a batch's outputs: predictions (class names or target values) and,
    for classification, the probabilities in ``classes`` order."""
    if model.task == "regression":
        values = np.asarray(model.preprocessor.inverse_transform_target(outputs.numpy()), dtype=np.float64)
        values = values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
        return {"predictions": values.tolist()}
    probs = torch.softmax(outputs.float(), dim=1)
    top = probs.argmax(1).tolist()
    names = model.class_names or [str(i) for i in range(model.num_outputs)]
    return {"predictions": [names[i] for i in top], "classes": list(names),
            "probabilities": [[round(p, 6) for p in row] for row in probs.tolist()]}


class MicroBatcher:
    """Gathers concurrent requests into one forward pass run on one worker thread; each caller
    gets its rows. Adaptive: a request that finds the model idle runs at once; requests that
    arrive while a forward pass runs form the next batch (up to ``max_batch`` rows). With
    ``max_wait_ms > 0`` a batch also waits that long for company (higher throughput at a
    fixed latency cost; 0, the default, adds no latency to a lone request)."""

    def __init__(self, forward: Any, *, max_batch: int, max_wait_ms: float, on_batch: Any = None) -> None:
        self.forward, self.max_batch, self.max_wait = forward, max_batch, max_wait_ms / 1e3
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[torch.Tensor, asyncio.Future[torch.Tensor]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="honing-forward")

    async def submit(self, x: torch.Tensor) -> torch.Tensor:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[torch.Tensor] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((x, future))
        return await future

    async def _gather(self) -> list[tuple[torch.Tensor, asyncio.Future[torch.Tensor]]]:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        items = [await self._queue.get()]
        rows = len(items[0][0])
        deadline = loop.time() + self.max_wait
        while rows < self.max_batch:
            if not self._queue.empty():
                item = self._queue.get_nowait()
            elif self.max_wait > 0 and loop.time() < deadline:
                try:
                    item = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
            else:
                break
            items.append(item)
            rows += len(item[0])
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            live = [(x, f) for x, f in items if not f.done()]  # a caller that timed out is skipped
            if not live:
                continue
            batch = torch.cat([x for x, _ in live]) if len(live) > 1 else live[0][0]
            try:
                out = await loop.run_in_executor(self._pool, self.forward, batch)
            except Exception as err:  # the model failed: every caller of this batch gets the error
                for _, f in live:
                    if not f.done():
                        f.set_exception(err)
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            start = 0
            for x, f in live:
                if not f.done():
                    f.set_result(out[start:start + len(x)])
                start += len(x)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


class InputLog:
    """The rows a server saw: the latest ``window`` in memory (the drift monitor's window: raw
    rows of a table, the model's outputs for every kind, and for images and text the latest
    ``EMBED_ROWS`` prepared inputs, from which a check computes the model's embeddings) and a sampled JSON-lines file in
    ``folder`` rotated past ``max_rows`` (one old file kept), so neither grows without bound.

    ``add`` only queues; a writer thread encodes and appends every ``flush_s`` seconds, so a
    request never waits on the disk. Array rows (images, sequences) are written as base64 of
    their float32 bytes with their shape (JSON numbers cost ~0.5 ms per 28x28 image)."""

    def __init__(self, folder: Path | None, *, window: int, sample: float, max_rows: int, tabular: bool = True,
                 seed: int = 0, flush_s: float = 0.5, name: str = LOG_FILE) -> None:
        self.folder, self.sample, self.max_rows, self.tabular = folder, sample, max_rows, tabular
        self.name = name
        self.rows: collections.deque[Any] = collections.deque(maxlen=window)
        self.outputs: collections.deque[list[float]] = collections.deque(maxlen=window)
        # images, text: the latest prepared inputs, for the model's embeddings at a drift check
        self.inputs: collections.deque[torch.Tensor] = collections.deque(maxlen=0 if tabular else min(window, EMBED_ROWS))
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._pending: list[tuple[float, Any, list[Any]]] = []
        self._written = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            self._written = sum(1 for _ in path.open(encoding="utf-8")) if path.is_file() else 0
            self._thread = threading.Thread(target=self._writer, args=(flush_s,), name="honing-input-log", daemon=True)
            self._thread.start()

    def add(self, raw: Any, outputs: torch.Tensor, predictions: list[Any], x: torch.Tensor | None = None) -> None:
        with self._lock:
            if self.sample < 1 and self._random.random() >= self.sample:
                return
            self.outputs.extend(outputs.float().tolist())
            if self.tabular:
                self.rows.extend(raw.tolist() if hasattr(raw, "tolist") else list(raw))
            elif x is not None and self.inputs.maxlen:
                self.inputs.extend(row.clone() for row in x[-self.inputs.maxlen:])
            if self.folder is not None:
                self._pending.append((round(time.time(), 3), raw, predictions))

    def window(self) -> tuple[list[Any], np.ndarray]:
        with self._lock:
            return list(self.rows), np.asarray(list(self.outputs), dtype=np.float64)

    def recent_inputs(self) -> torch.Tensor | None:
        """The latest prepared inputs (images, text; at most ``EMBED_ROWS``), stacked, or None."""
        with self._lock:
            return torch.stack(list(self.inputs)) if self.inputs else None

    def flush(self) -> None:
        """Write what is queued (the writer thread does this every ``flush_s`` seconds)."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending or self.folder is None:
            return
        lines = [json.dumps({"t": t, "row": _encode_row(r), "prediction": _plain(p)}, separators=(",", ":"))
                 for t, raw, preds in pending for r, p in zip(raw, preds)]
        path = self.folder / self.name
        if self._written + len(lines) > self.max_rows and self._written:
            path.replace(self.folder / (self.name + ".1"))
            self._written = 0
        with path.open("a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self._written += len(lines)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _writer(self, flush_s: float) -> None:
        while not self._stop.wait(flush_s):
            try:
                self.flush()
            except OSError as err:  # a full disk must not take the server down: say it, keep serving
                print(f"[honing.serve] input log not written: {err}", flush=True)


def _encode_row(row: Any) -> Any:
    if isinstance(row, np.ndarray) and row.dtype != object:
        data = np.ascontiguousarray(row, dtype=np.float32)
        return {"float32_b64": base64.b64encode(data.tobytes()).decode("ascii"), "shape": list(data.shape)}
    if isinstance(row, np.ndarray):
        return [_plain(v) for v in row.tolist()]
    return _plain(row)


def decode_row(row: Any) -> Any:
    """The inverse of ``_encode_row``: a logged array row back to its float32 array."""
    if isinstance(row, dict) and "float32_b64" in row:
        return np.frombuffer(base64.b64decode(row["float32_b64"]), dtype=np.float32).reshape(row["shape"])
    return row


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class WorkerSlot:
    """A worker process's number among ``--workers N`` (uvicorn gives none): the first of
    ``state/worker-K.lock`` it can hold an exclusive lock on, held for the process's life. A
    restarted worker takes a freed number, so per-worker files (``inputs-K.jsonl``) stay bounded."""

    def __init__(self, folder: Path, workers: int) -> None:
        import fcntl

        folder.mkdir(parents=True, exist_ok=True)
        self._file: Any = None
        self.number = 0
        for k in range(4 * workers):
            f = (folder / f"worker-{k}.lock").open("a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            self._file, self.number = f, k
            return
        raise DataError(f"no free worker slot in {str(folder)!r} (another server on the same state folder?)")

    @property
    def log_name(self) -> str:
        return LOG_FILE if self.number == 0 else LOG_FILE.replace(".jsonl", f"-{self.number}.jsonl")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
