"""What the server runs: rows in, prepared tensors, micro-batched forward passes, answers out,
and the bounded log of what it saw (the drift monitor's window)."""

from __future__ import annotations

import asyncio
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
    """Gathers concurrent requests into one forward pass (up to ``max_batch`` rows, waiting at
    most ``max_wait_ms`` after the first) run on one worker thread; each caller gets its rows."""

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
        await self._queue.put((x, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            rows = len(items[0][0])
            deadline = loop.time() + self.max_wait
            while rows < self.max_batch:
                try:
                    item = self._queue.get_nowait() if self.max_wait == 0 else await asyncio.wait_for(
                        self._queue.get(), max(0.0, deadline - loop.time()))
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                items.append(item)
                rows += len(item[0])
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
    """The rows a server saw: the latest ``window`` in memory (the drift monitor's window) and a
    sampled JSON-lines file in ``folder`` rotated past ``max_rows`` (one old file kept), so
    neither grows without bound."""

    def __init__(self, folder: Path | None, *, window: int, sample: float, max_rows: int, seed: int = 0) -> None:
        self.folder, self.sample, self.max_rows = folder, sample, max_rows
        self.rows: collections.deque[Any] = collections.deque(maxlen=window)
        self.outputs: collections.deque[list[float]] = collections.deque(maxlen=window)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._written = 0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / LOG_FILE
            self._written = sum(1 for _ in path.open(encoding="utf-8")) if path.is_file() else 0

    def add(self, raw: Any, outputs: torch.Tensor, predictions: list[Any]) -> None:
        with self._lock:
            if self.sample < 1 and self._random.random() >= self.sample:
                return
            raw_list = raw.tolist() if hasattr(raw, "tolist") else list(raw)
            out_list = outputs.float().tolist()
            self.rows.extend(raw_list)
            self.outputs.extend(out_list)
            if self.folder is None:
                return
            now = round(time.time(), 3)
            lines = [json.dumps({"t": now, "row": _plain(r), "prediction": _plain(p)}) for r, p in
                     zip(raw_list, predictions)]
            path = self.folder / LOG_FILE
            if self._written + len(lines) > self.max_rows and self._written:
                path.replace(self.folder / (LOG_FILE + ".1"))
                self._written = 0
            with path.open("a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            self._written += len(lines)

    def window(self) -> tuple[list[Any], np.ndarray]:
        with self._lock:
            return list(self.rows), np.asarray(list(self.outputs), dtype=np.float64)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
