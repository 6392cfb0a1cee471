"""The FastAPI app of ``honing serve``: routes, the guard in front of them, metrics.

Routes (all but the health routes need ``Authorization: Bearer <token>`` unless auth is off):

=====================================  ===================================================
``POST /predict``                      ``{"rows": [...]}`` -> predictions (+ probabilities)
``POST /v2/models/{name}/infer``       the Open Inference Protocol v2 (KServe clients)
``GET /v2/models/{name}``              its model metadata
``GET /health``, ``/ready``,            liveness and readiness (no auth)
``/v2/health/live``, ``/v2/health/ready``
``GET /metadata``                      the model card: task, inputs, classes, test metrics
``GET /metrics``                       Prometheus text: requests, errors, latency, batch
                                       sizes, drift statistics
``GET /drift``                         the drift report over the latest logged rows
=====================================  ===================================================

The guard (one ASGI middleware, before any route runs) checks the token, answers 415 to a
POST that is not JSON and 413 to a body over the limit (from Content-Length before a byte of
the body is read; a chunked body is counted as it arrives), and records each request's route,
status and latency. No route loads, replaces or unpickles anything a client sends.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import os
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from honing.artifacts import find_reference, load_model, read_reference
from honing.serve._config import MULTIPROCESS_ENV, ServeConfig, load_or_create_token, resolve_variant
from honing.serve._drift import detect_drift
from honing.serve._runtime import LOG_FILE, InputLog, MicroBatcher, RequestError, WorkerSlot, answer, decode_rows

INLINE_ROWS = 16  # requests with at most this many rows are decoded on the event loop
MIN_WINDOW = 30  # rows: fewer cannot show drift of any size
PUBLIC = frozenset({"/health", "/ready", "/v2/health/live", "/v2/health/ready"})
_ROUTES = [(re.compile(r"^/v2/models/[^/]+/infer$"), "/v2/models/{name}/infer"),
           (re.compile(r"^/v2/models/[^/]+$"), "/v2/models/{name}")]
_KNOWN = {"/predict", "/metadata", "/metrics", "/drift", "/openapi.json", "/docs", *PUBLIC}


class PredictRequest(BaseModel):
    """Rows to predict: objects by column name or arrays in column order (tables), nested arrays
    of the input shape (images, sequences), or strings (text)."""

    model_config = ConfigDict(extra="forbid")
    # each row is checked by the model's own decoding (422 naming the row), not element by element
    # here: pydantic walking a 28x28 image row cost more than the forward pass
    rows: list[Any] = Field(min_length=1, description="objects by column name or arrays in column order "
                            "(tables), nested arrays of the input shape (images, sequences), or strings (text)")


class InferTensor(BaseModel):
    name: str
    shape: list[int] = Field(min_length=1)
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[InferTensor] = Field(min_length=1)
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


def route_of(path: str) -> str:
    if path in _KNOWN:
        return path
    for pattern, name in _ROUTES:
        if pattern.match(path):
            return name
    return "other"


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (no global state).

    With several workers (``PROMETHEUS_MULTIPROC_DIR`` set by ``serve``), every worker writes its
    values to files in that folder and ``/metrics`` on any worker sums them (counters,
    histograms) or shows the latest check's (drift gauges): the figures of the whole server."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.shared = bool(os.environ.get(MULTIPROCESS_ENV))
        r = self.registry
        mode: Any = {"multiprocess_mode": "mostrecent"} if self.shared else {}
        self.requests = Counter("honing_requests", "requests by route and status", ["route", "code"], registry=r)
        self.errors = Counter("honing_request_errors", "requests answered 4xx/5xx", ["route", "code"], registry=r)
        self.latency = Histogram("honing_request_seconds", "request latency", ["route"], registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.batch = Histogram("honing_batch_rows", "rows per forward pass", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.rows = Counter("honing_rows", "rows predicted", registry=r)
        self.drift = Gauge("honing_drift_detected", "1 when the last drift check found drift", registry=r, **mode)
        self.drift_share = Gauge("honing_drift_share", "share of features drifted at the last check", registry=r,
                                 **mode)
        self.drift_rows = Gauge("honing_drift_window_rows", "rows in the last drift check", registry=r, **mode)
        self.drift_stat = Gauge("honing_drift_statistic", "each drift test's statistic at the last check",
                                ["feature", "test"], registry=r, **mode)

    def text(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if not self.shared:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker)
        return generate_latest(every_worker)


class Guard:
    """Auth, content type, body size and request metrics, in front of every route (pure ASGI)."""

    def __init__(self, app: Any, *, token: str | None, max_body: int, metrics: Metrics) -> None:
        self.app, self.token, self.max_body, self.metrics = app, token, max_body, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        route, start, status = route_of(path), time.perf_counter(), [500]

        async def send_counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            problem = self._check(scope, path, method)
            if problem is not None:
                await _reply(send_counted, *problem)
                return
            if method in ("POST", "PUT", "PATCH"):
                body = await self._read_body(receive)
                if body is None:
                    await _reply(send_counted, 413, f"request body over the limit of {self.max_body} bytes "
                                                    "(honing serve --max-body-bytes)")
                    return
                receive = _replay(body)
            await self.app(scope, receive, send_counted)
        finally:
            code = str(status[0])
            self.metrics.requests.labels(route, code).inc()
            if status[0] >= 400:
                self.metrics.errors.labels(route, code).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)

    def _check(self, scope: dict[str, Any], path: str, method: str) -> tuple[int, str, dict[str, str]] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token is not None and path not in PUBLIC:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return 401, "missing or wrong token: send 'Authorization: Bearer <token>' (the token is in the " \
                            "server's token file)", {"www-authenticate": "Bearer"}
        if method in ("POST", "PUT", "PATCH"):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return 415, f"unsupported content type {ctype or '(none)'!r}; allowed: application/json", {}
            length = headers.get("content-length")
            if length is not None:
                if not length.isdigit():
                    return 400, f"invalid Content-Length {length!r}", {}
                if int(length) > self.max_body:
                    return 413, (f"request body of {int(length)} bytes is over the limit of {self.max_body} bytes "
                                 "(honing serve --max-body-bytes)"), {}
        return None

    async def _read_body(self, receive: Any) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes) -> Any:
    sent = [False]

    async def receive() -> dict[str, Any]:
        if sent[0]:
            await asyncio.sleep(3600)  # the app asked past the end of the body: wait for the disconnect
            return {"type": "http.disconnect"}
        sent[0] = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _reply(send: Any, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Served:
    """The model a server answers with, its batcher, its drift reference and its input log."""

    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        folder, self.what = resolve_variant(config.model_dir, config.variant)
        self.version = self.what.removeprefix("version ") if self.what.startswith("version ") else None
        self.folder = folder
        self.model = load_model(folder)
        self.model.model.eval()
        ref_path = find_reference(folder)
        self.reference = read_reference(ref_path) if ref_path is not None else None
        self.reference_folder = ref_path.parent if ref_path is not None else None
        self._embedder: torch.nn.Module | None = None
        self.name = str(self.model.recipe.get("name") or folder.name)
        self.batcher = MicroBatcher(self._forward, max_batch=config.max_batch, max_wait_ms=config.max_wait_ms,
                                    on_batch=metrics.batch.observe)
        # several workers: each logs to a file of its own (one file, two writers, would race on rotation)
        slot = _worker_slot(config.state_path, config.workers) if config.workers > 1 else None
        self.log = InputLog(config.state_path, window=config.window, sample=config.log_sample,
                            max_rows=config.log_max_rows, tabular=self.model.columns is not None,
                            name=slot.log_name if slot else LOG_FILE)

    def close(self) -> None:
        self.batcher.close()
        self.log.close()

    @torch.no_grad()
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.inference_model()(x)
        return out.float() if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out), dtype=torch.float32)

    def embeddings(self, x: torch.Tensor) -> np.ndarray | None:
        """The penultimate features of the float model that made the reference (the served variant
        may be ONNX or quantized; the reference's embeddings came from the float model)."""
        from honing.data import embed

        if self.reference_folder is None or not (self.reference or {}).get("embeddings"):
            return None
        if self._embedder is None:  # the served folder is the float model itself, or a variant of it
            same = self.reference_folder == self.folder and isinstance(self.model.model, torch.nn.Module)
            self._embedder = self.model.model if same else load_model(self.reference_folder).model
        emb = embed(self._embedder, x)
        return None if emb is None else emb.numpy()

    def card(self) -> dict[str, Any]:
        m = self.model
        meta = m.meta
        results = _run_results(self.folder)
        return {"name": self.name, "task": m.task, "served": self.what, "version": self.version,
                "folder": str(self.folder),
                "runtime": (meta.get("compression") or {}).get("runtime", "pytorch"),
                "input": {"kind": getattr(m.preprocessor, "kind", ""), "columns": m.columns,
                          "shape": list(m.input_shape)},
                "classes": m.class_names, "num_outputs": m.num_outputs,
                "test_metrics": results.get("test_metrics"), "primary_metric": results.get("primary_metric"),
                "vs_baseline": results.get("vs_baseline"), "split": meta.get("split"),
                "versions": meta.get("versions"), "drift_reference": self.reference is not None}


def create_app(config: ServeConfig | str | Path, *, token: str | None = None) -> Any:
    """The FastAPI app serving ``config.model_dir`` (a ServeConfig, or a folder with the
    defaults). ``token``: the bearer token (None: the token file's, created on first start)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    if not isinstance(config, ServeConfig):
        config = ServeConfig(model_dir=str(config))
    torch.set_num_threads(config.threads_per_worker())
    if token is None:
        token, _ = load_or_create_token(config)
    metrics = Metrics()
    holder = Holder(Served(config, metrics))
    name = holder.served.name
    app = FastAPI(title=f"honing serve: {name}", version="1", description=(
        "Predictions from a honing model folder. Every route but the health routes needs "
        "'Authorization: Bearer <token>'."))
    app.state.holder, app.state.config, app.state.metrics = holder, config, metrics

    async def predict_rows(rows: list[Any]) -> tuple[Any, torch.Tensor, dict[str, Any]]:
        served = holder.served  # a request finishes on the version it started with
        if len(rows) > config.max_rows:
            raise RequestError(f"rows: got {len(rows)} rows; allowed: at most {config.max_rows} per request "
                               "(honing serve --max-rows)")
        if len(rows) <= INLINE_ROWS:  # tens of microseconds: cheaper than a hop to a thread
            raw, x = decode_rows(served.model, rows)
        else:
            raw, x = await asyncio.get_running_loop().run_in_executor(None, decode_rows, served.model, rows)
        try:
            out = await asyncio.wait_for(served.batcher.submit(x), config.timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the model did not answer within {config.timeout_s} s") from None
        result = answer(served.model, out)
        metrics.rows.inc(len(out))
        served.log.add(raw, out, result["predictions"], x)
        return raw, out, result

    @app.exception_handler(RequestError)
    async def _bad_rows(request: Any, err: RequestError) -> Any:
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.exception_handler(TimeoutError)
    async def _timeout(request: Any, err: TimeoutError) -> Any:
        return JSONResponse({"detail": str(err)}, status_code=504)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> dict[str, Any]:
        return {"ready": True, "model": holder.served.name, "version": holder.served.version}

    @app.get("/v2/health/live")
    async def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def v2_ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        return holder.served.card()

    @app.post("/predict", response_model=None, responses={413: {"description": "body or rows over the limit"},
                                     415: {"description": "not application/json"},
                                     422: {"description": "rows the model cannot take"}})
    async def predict(body: PredictRequest) -> Any:
        _, _, result = await predict_rows(body.rows)
        return _json({"model": name, **result})

    @app.get("/v2/models/{name}", response_model=None)
    async def v2_metadata(name: str) -> Any:
        served = holder.served
        if name != served.name:
            return JSONResponse({"error": f"unknown model {name!r}; this server serves {served.name!r}"}, 404)
        return JSONResponse({"name": served.name, "versions": [served.version or "1"], "platform": "honing",
                             "inputs": _v2_inputs(served.model), "outputs": [
                                 {"name": "predictions", "datatype": "BYTES" if served.model.task ==
                                  "classification" else "FP64", "shape": [-1]}]})

    @app.post("/v2/models/{name}/infer", response_model=None)
    async def v2_infer(name: str, body: InferRequest) -> Any:
        served = holder.served
        if name != served.name:
            return JSONResponse({"error": f"unknown model {name!r}; this server serves {served.name!r}"}, 404)
        try:
            rows = _v2_rows(served.model, body.inputs)
        except RequestError as err:
            return JSONResponse({"error": str(err)}, 422)
        _, _, result = await predict_rows(rows)
        preds = result["predictions"]
        n = len(preds)
        outputs = [{"name": "predictions", "shape": [n], "datatype": "BYTES" if served.model.task ==
                    "classification" else "FP64", "data": preds}]
        if "probabilities" in result:
            k = len(result["classes"])
            outputs.append({"name": "probabilities", "shape": [n, k], "datatype": "FP32",
                            "data": [p for row in result["probabilities"] for p in row]})
        return _json({"model_name": served.name, "model_version": served.version or "1", "id": body.id or "",
                      "outputs": outputs})

    @app.get("/metrics", response_model=None)
    async def prometheus() -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/drift")
    async def drift() -> dict[str, Any]:
        served = holder.served
        if served.reference is None:
            return {"rows": 0, "drifted": None, "detail": "this model folder has no drift reference (reference.json)"}
        rows, outputs = served.log.window()
        if max(len(rows), len(outputs)) < MIN_WINDOW:
            return {"rows": max(len(rows), len(outputs)), "drifted": None,
                    "detail": f"fewer than {MIN_WINDOW} logged rows: too few to test"}
        report = await asyncio.get_running_loop().run_in_executor(None, _check_drift, served, rows, outputs)
        metrics.drift.set(1.0 if report.drifted else 0.0)
        metrics.drift_share.set(report.share_drifted)
        metrics.drift_rows.set(report.rows)
        for t in report.tests:
            metrics.drift_stat.labels(t.name, t.test).set(t.statistic)
        return report.to_dict()

    app.add_middleware(Guard, token=token, max_body=config.max_body_bytes, metrics=metrics)
    if config.variant is None and config.reload_s > 0:
        app.router.on_startup.append(lambda: holder.watch(config, metrics))
    app.router.on_shutdown.append(holder.close)
    return app


@functools.lru_cache(maxsize=None)
def _worker_slot(folder: Path, workers: int) -> WorkerSlot:
    """This process's worker number, claimed once and held until it exits (versions swap, the
    number stays)."""
    return WorkerSlot(folder, workers)


class Holder:
    """The version a server answers with; ``watch`` swaps in a promoted (or rolled back) version
    when ``HOME/versions/CURRENT`` changes. The swap is one assignment: a request in flight
    finishes on the version it started with, the next one gets the new version, none fails."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self._task: asyncio.Task[None] | None = None

    def watch(self, config: ServeConfig, metrics: Metrics) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll(config, metrics))

    async def _poll(self, config: ServeConfig, metrics: Metrics) -> None:
        from honing.artifacts import current_version

        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(config.reload_s)
            try:
                current = current_version(config.model_dir)
            except Exception as err:  # a damaged pointer: keep serving what runs
                print(f"[honing.serve] cannot read the current version: {err}", flush=True)
                continue
            if current is None or current[0] == self.served.version:
                continue
            try:
                fresh = await loop.run_in_executor(None, Served, config, metrics)
            except Exception as err:
                print(f"[honing.serve] version {current[0]} could not be loaded, still serving "
                      f"{self.served.what}: {err}", flush=True)
                continue
            old, self.served = self.served, fresh
            print(f"[honing.serve] now serving {fresh.what} (was {old.what})", flush=True)
            loop.call_later(30.0, old.close)  # after the requests it holds have finished

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.served.close()


def _json(content: dict[str, Any]) -> Any:
    """A JSON response written by json.dumps directly (FastAPI's encoder walks every float)."""
    from starlette.responses import Response

    return Response(json.dumps(content, separators=(",", ":")), media_type="application/json")


def _run_results(folder: Path) -> dict[str, Any]:
    """The run's results.json beside a model folder (``RUN/model``, ``RUN/compress/NN-step``), or {}."""
    for path in (folder.parent / "results.json", folder.parent.parent / "results.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def _check_drift(served: Served, rows: list[Any], outputs: np.ndarray) -> Any:
    assert served.reference is not None
    has_features = bool(served.reference.get("features")) and served.model.columns is not None
    table = np.asarray(rows, dtype=object) if has_features and rows else None
    inputs = served.log.recent_inputs()
    embeddings = served.embeddings(inputs) if inputs is not None else None
    return detect_drift(served.reference, table, outputs=outputs if len(outputs) else None, embeddings=embeddings,
                        class_names=served.model.class_names)


def _v2_inputs(model: Any) -> list[dict[str, Any]]:
    if model.columns is not None:
        return [{"name": c, "datatype": "BYTES", "shape": [-1]} for c in model.columns]
    if getattr(model.preprocessor, "kind", "") == "text":
        return [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    return [{"name": "input", "datatype": "FP32", "shape": [-1, *model.input_shape]}]


def _v2_rows(model: Any, inputs: list[InferTensor]) -> list[Any]:
    """OIP input tensors -> rows: one tensor per column (tables), or one tensor ``[n, ...]``."""
    if model.columns is not None and len(inputs) > 1:
        n = {t.name: _count(t) for t in inputs}
        if len(set(n.values())) != 1:
            raise RequestError(f"inputs: columns of different lengths {n}")
        rows = [dict() for _ in range(next(iter(n.values())))]
        for t in inputs:
            for i, v in enumerate(t.data):
                rows[i][t.name] = v
        return rows
    if len(inputs) != 1:
        raise RequestError(f"inputs: got {len(inputs)} tensors; allowed: one tensor [n, ...], or (tables) one per column")
    t = inputs[0]
    n = _count(t)
    if getattr(model.preprocessor, "kind", "") == "text":
        return list(t.data)
    width = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
    if n * width != len(t.data):
        raise RequestError(f"inputs[0] {t.name!r}: shape {t.shape} holds {n * width} values; got {len(t.data)}")
    if model.columns is not None:
        return [list(t.data[i * width:(i + 1) * width]) for i in range(n)]
    return np.asarray(t.data, dtype=np.float32).reshape(t.shape).tolist()


def _count(t: InferTensor) -> int:
    if any(d < 0 for d in t.shape):
        raise RequestError(f"inputs {t.name!r}: shape {t.shape} has a negative size")
    return int(t.shape[0])

