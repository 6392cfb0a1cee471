"""A real `honing serve` process for the tests: a small model trained once per session, the
server started on a free 127.0.0.1 port, stopped at the end."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECIPE = {
    "name": "iris-serve",
    "seed": 0,
    "data": {"source": "sklearn:iris", "val_size": 0.2, "test_size": 0.2},
    "model": {"name": "mlp", "hidden": [16]},
    "training": {"epochs": 30, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.02}},
    "output": {"report": False},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_model(out: Path) -> Path:
    from honing.pipeline import train_once

    train_once(RECIPE, out=out, progress=False)
    return out


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    token: str | None
    first_output: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                auth: bool = True, raw: bytes | None = None, chunked: bool = False, timeout: float = 30) -> tuple[int, Any, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {**(self.auth if auth else {}), **(headers or {})}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            if chunked:  # no Content-Length: the body in 64 KiB chunks
                assert data is not None
                chunks = (data[i:i + 65536] for i in range(0, len(data), 65536))
                conn.request(method, path, body=chunks, headers=h, encode_chunked=True)
            else:
                conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            payload = resp.read()
            try:
                parsed: Any = json.loads(payload)
            except ValueError:
                parsed = payload.decode(errors="replace")
            return resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(model_dir: Path, *args: str, wait: float = 60) -> Server:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "honing.cli", "serve", str(model_dir), "--port", str(port), "--threads", "1", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + wait
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"honing serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("honing serve did not start listening within the wait")
    state = Path(args[args.index("--state-dir") + 1]) if "--state-dir" in args else Path(model_dir) / "serving"
    token_file = state / "token"
    token = token_file.read_text().strip() if "--no-auth" not in args else None
    return Server(proc, port, token, first_output="")
