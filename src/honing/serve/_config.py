"""The server's settings, which model folder it serves, and its token."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from honing._core import ConfigError, check_int, check_number

LOOPBACK = ("127.0.0.1", "::1", "localhost")
TOKEN_FILE = "token"


# prometheus-client's own variable: where the workers of one server meet (set by ``serve``)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ServeConfig:
    """How ``honing serve`` serves a model folder.

    ``state_dir``: where the token and the input log live (default ``MODEL_DIR/serving``).
    ``auth``: bearer-token auth (off only on a loopback host). ``max_body_bytes``: requests
    with a larger body get 413 before it is read. ``max_rows``: rows per request.
    ``timeout_s``: a request's limit (504 past it). ``max_batch`` / ``max_wait_ms``: the
    micro-batcher runs a lone request at once and gathers the requests that arrive while a
    forward pass runs into the next one, up to ``max_batch`` rows; ``max_wait_ms > 0`` makes a
    batch also wait that long for company. ``log_sample``: the share of requests whose rows
    are logged (for the drift monitor); ``log_max_rows``: the log file is rotated past this
    many rows (one old file kept). ``window``: rows the drift monitor compares (the latest).
    ``reload_s``: how often the server checks ``MODEL_DIR/versions/CURRENT`` for a promoted or
    rolled-back version (0: never; only when no ``variant`` is pinned).
    """

    model_dir: str
    variant: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    auth: bool = True
    token_file: str | None = None
    state_dir: str | None = None
    max_body_bytes: int = 1 << 20
    max_rows: int = 1024
    timeout_s: float = 10.0
    max_batch: int = 64
    max_wait_ms: float = 0.0
    workers: int = 1
    threads: int | None = None
    log_sample: float = 1.0
    log_max_rows: int = 10_000
    window: int = 1000
    reload_s: float = 1.0

    def __post_init__(self) -> None:
        check_int("port", self.port, low=0, high=65535)
        check_int("max_body_bytes", self.max_body_bytes, low=1)
        check_int("max_rows", self.max_rows, low=1)
        check_number("timeout_s", self.timeout_s, low=0, low_inclusive=False)
        check_int("max_batch", self.max_batch, low=1)
        check_number("max_wait_ms", self.max_wait_ms, low=0)
        check_int("workers", self.workers, low=1)
        if self.threads is not None:
            check_int("threads", self.threads, low=1)
        check_number("log_sample", self.log_sample, low=0, high=1)
        check_int("log_max_rows", self.log_max_rows, low=1)
        check_int("window", self.window, low=1)
        check_number("reload_s", self.reload_s, low=0)
        if not self.auth and not is_loopback(self.host):
            raise ConfigError(f"invalid --no-auth with --host {self.host}: a server without a token binds only a "
                              f"loopback address; allowed: --host 127.0.0.1 (or ::1), or keep the token")

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir) if self.state_dir else Path(self.model_dir) / "serving"

    def threads_per_worker(self) -> int:
        """Torch/ONNX threads per worker so that workers x threads <= cores."""
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))


def is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_or_create_token(config: ServeConfig) -> tuple[str | None, bool]:
    """(token, created). The token file is created 0600 on first start; later starts read it."""
    if not config.auth:
        return None, False
    path = Path(config.token_file) if config.token_file else config.state_path / TOKEN_FILE
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise ConfigError(f"invalid token file {str(path)!r}: the token is shorter than 16 characters; "
                              "allowed: delete the file to have a new one generated")
        return token, False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token, True


def resolve_variant(path: str | os.PathLike[str], variant: str | None) -> tuple[Path, str]:
    """(the model folder to serve, what it is). ``path``: a run folder, its model/ folder, or a
    compression stage's folder. ``variant``: ``model``, a version (``v2``) or a compression stage
    (``03-export``, ``export``); None: the current version when ``path`` has versions (refits),
    else the run's float ONNX variant when it has one (ONNX Runtime ran fastest in every
    measurement), else the model folder."""
    from honing.artifacts import current_version, list_versions

    folder = Path(path)
    if variant in list_versions(folder):
        return folder / "versions" / variant, f"version {variant}"
    current = current_version(folder) if variant is None else None
    if current is not None:
        return current[1], f"version {current[0]}"
    run = folder if (folder / "model").is_dir() or (folder / "compress").is_dir() else None
    if run is None and folder.name == "model" and (folder.parent / "compress").is_dir():
        run = folder.parent
    stages = sorted(p for p in (run / "compress").iterdir() if (p / "meta.json").is_file()) if run and (
        run / "compress").is_dir() else []
    if variant is not None:
        if variant == "model" and run is not None and (run / "model" / "meta.json").is_file():
            return run / "model", "model"
        for stage in stages:
            if variant in (stage.name, stage.name.partition("-")[2]):
                return stage, f"compression stage {stage.name}"
        allowed = ["model"] + list_versions(folder) + [s.name for s in stages]
        raise ConfigError(f"invalid --variant {variant!r} for {str(folder)!r}; allowed: {', '.join(allowed)}")
    for stage in stages:
        meta = _meta(stage)
        comp = meta.get("compression") or {}
        if comp.get("format") == "onnx" and not comp.get("int8"):
            return stage, f"compression stage {stage.name} (ONNX Runtime)"
    if run is not None and (run / "model" / "meta.json").is_file():
        return run / "model", "model"
    if run is not None and stages:
        return stages[0], f"compression stage {stages[0].name}"
    return folder, "model"


def _meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}
