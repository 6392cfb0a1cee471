"""(serve) Requests per second and latency: honing serve against a plain FastAPI + torch app and
LitServe, on the same model folder, side by side in one run.

Each server runs as its own process with 1 torch thread; the load comes from one asyncio client
process (keep-alive connections, one request in flight per connection, one row per request):
6 s at each concurrency (1, 8, 32) after a 1 s warm-up, two rounds with the servers in
opposite order; a figure is the median of the two rounds. The three apps answer the same JSON
(predictions and probabilities) from the same ``honing.artifacts.load_model``.

    bench/run_serve.sh            # a venv beside .venv with LitServe (see bench/README.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import check_env, machine, median, save

HERE = Path(__file__).resolve().parent
APPS = HERE / "serve_apps"
MODELS = {
    "digits MLP": {"name": "serve-digits", "seed": 0, "data": {"source": "sklearn:digits"},
                   "model": {"name": "mlp", "hidden": [128, 64]},
                   "training": {"epochs": 10, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.003}},
                   "output": {"report": False}},
    "Fashion-MNIST CNN": {"name": "serve-fashion", "seed": 0, "data": {"source": "fashion-mnist", "limit": 6000},
                          "model": {"name": "cnn", "channels": [16, 32], "batch_norm": True, "head_hidden": 128,
                                    "global_pool": None},
                          "training": {"epochs": 2, "batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.002}},
                          "output": {"report": False}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(name: str, recipe: dict[str, Any], out: Path) -> Path:
    from honing.pipeline import train_once

    folder = out / recipe["name"]
    if not (folder / "model" / "meta.json").is_file():
        train_once(recipe, out=folder, progress=False)
    return folder


def start(kind: str, run_dir: Path, port: int) -> tuple[subprocess.Popen, dict[str, str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    model_dir = str(run_dir / "model")
    if kind == "honing":
        state = run_dir / "bench-serving"
        cmd = [sys.executable, "-m", "honing.cli", "serve", model_dir, "--port", str(port), "--threads", "1",
               "--state-dir", str(state)]
    elif kind == "plain FastAPI":
        cmd = [sys.executable, str(APPS / "plain_fastapi.py"), model_dir, str(port)]
    else:
        cmd = [sys.executable, str(APPS / "litserve_app.py"), model_dir, str(port)]
    # a session of its own: LitServe spawns worker processes that must end with it (killpg below)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited: {proc.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.3)
    time.sleep(1.0 if kind != "LitServe" else 4.0)  # LitServe's inference workers start after the socket
    headers = {}
    if kind == "honing":
        headers["Authorization"] = "Bearer " + (run_dir / "bench-serving" / "token").read_text().strip()
    return proc, headers


def stop(proc: subprocess.Popen) -> None:
    """End the server and every process it started (LitServe's workers outlive a plain terminate)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    time.sleep(1.0)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # any worker still there
    except ProcessLookupError:
        pass


async def _client(port: int, request: bytes, stop_at: float, lat: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is None:
                raise RuntimeError(f"no content-length in {head[:200]!r}")
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


def load(port: int, body: bytes, headers: dict[str, str], *, concurrency: int, seconds: float) -> dict[str, float]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body
    lat: list[float] = []
    errors: list[int] = []

    async def main() -> float:
        stop_at = time.perf_counter() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(_client(port, request, stop_at, lat, errors) for _ in range(concurrency)))
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    ms = np.asarray(lat) * 1e3
    return {"rps": len(lat) / elapsed, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "requests": len(lat), "errors": len(errors)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="2 s per point, one round")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.rounds = 2.0, 1
    check_env()
    from honing.artifacts import load_model
    from honing.data import read_source

    out_dir = HERE / "out" / "serve-models"
    servers = ["honing", "plain FastAPI", "LitServe"]
    results: dict[str, Any] = {"machine": machine(), "seconds": args.seconds, "rounds": args.rounds, "models": {}}
    for model_name, recipe in MODELS.items():
        run_dir = train(model_name, recipe, out_dir)
        model = load_model(run_dir / "model")
        raw = read_source(recipe["data"]["source"])
        row = raw.x[0].astype(float).tolist() if model.columns is not None else np.asarray(
            raw.x[0], dtype=float).reshape(model.input_shape).tolist()
        body = json.dumps({"rows": [row]}).encode()
        per: dict[str, dict[int, list[dict[str, float]]]] = {s: {c: [] for c in (1, 8, 32)} for s in servers}
        for r in range(args.rounds):
            order = servers if r % 2 == 0 else servers[::-1]
            for kind in order:
                port = free_port()
                proc, headers = start(kind, run_dir, port)
                try:
                    load(port, body, headers, concurrency=8, seconds=1.0)  # warm-up
                    for c in (1, 8, 32):
                        got = load(port, body, headers, concurrency=c, seconds=args.seconds)
                        per[kind][c].append(got)
                        print(f"{model_name:<18} round {r + 1} {kind:<14} c={c:<3} {got['rps']:8.0f} req/s  "
                              f"p50 {got['p50_ms']:6.2f} ms  p99 {got['p99_ms']:7.2f} ms  errors {got['errors']}",
                              flush=True)
                finally:
                    stop(proc)
        summary = {kind: {str(c): {k: median([g[k] for g in runs]) for k in ("rps", "p50_ms", "p99_ms")} |
                          {"errors": sum(g["errors"] for g in runs)} for c, runs in by_c.items()}
                   for kind, by_c in per.items()}
        h32 = summary["honing"]["32"]["rps"]
        summary["ratios_at_32"] = {"honing / plain FastAPI": h32 / summary["plain FastAPI"]["32"]["rps"],
                                   "honing / LitServe": h32 / summary["LitServe"]["32"]["rps"]}
        print(f"{model_name}: at concurrency 32 honing/plain {summary['ratios_at_32']['honing / plain FastAPI']:.2f}x,"
              f" honing/LitServe {summary['ratios_at_32']['honing / LitServe']:.2f}x", flush=True)
        results["models"][model_name] = summary
    print(f"wrote {save('serve_throughput', results)}")


if __name__ == "__main__":
    main()
