"""Running the app: uvicorn in this process (or N worker processes), and the offline drift check."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from honing.serve._config import MULTIPROCESS_ENV, ServeConfig, load_or_create_token, resolve_variant
from honing.serve._drift import DEFAULT_ALPHA, DriftReport, detect_drift

CONFIG_ENV = "HONING_SERVE_CONFIG"


def serve(config: ServeConfig, *, log_level: str = "warning") -> None:
    """Serve until interrupted. The token is printed once, when the token file is created."""
    import uvicorn

    token, created = load_or_create_token(config)
    folder, what = resolve_variant(config.model_dir, config.variant)
    say = lambda m: print(f"[honing.serve] {m}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"serving {folder} ({what}) on http://{config.host}:{config.port} with {config.workers} worker(s) x "
        f"{config.threads_per_worker()} thread(s)")
    if token is None:
        say("auth is off (--no-auth): anyone who can reach this loopback address can call it")
    elif created:
        token_path = config.token_file or str(config.state_path / "token")
        say(f"a new token was written to {token_path} (0600); it is shown this once:")
        print(token, flush=True)
    else:
        say(f"bearer token: the one in {config.token_file or config.state_path / 'token'}")
    if config.workers == 1:
        from honing.serve._app import create_app

        app = create_app(config, token=token)
        uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, timeout_graceful_shutdown=5)
        return
    os.environ[CONFIG_ENV] = config.to_json()
    # the workers' Prometheus values meet in files here (emptied: a new server counts from zero)
    shared = config.state_path / "prometheus"
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(shared)
    uvicorn.run("honing.serve._server:app_from_environment", factory=True, host=config.host, port=config.port,
                workers=config.workers, log_level=log_level, timeout_graceful_shutdown=5)


def app_from_environment() -> Any:
    """The app of one uvicorn worker process (``--workers N``): the config from the environment,
    the token from the token file the parent created."""
    from honing.serve._app import create_app

    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


def drift_of_source(model_dir: str | os.PathLike[str], source: str, *, variant: str | None = None,
                    reference: str | os.PathLike[str] | None = None, alpha: float = DEFAULT_ALPHA,
                    method: str = "auto", embedding_test: str = "mmd", max_rows: int | None = None) -> DriftReport:
    """The drift report of every row of ``source`` against the model's reference (offline)."""
    import torch

    from honing.artifacts import find_reference, load_model, read_reference
    from honing.data import embed

    folder, _ = resolve_variant(model_dir, variant)
    model = load_model(folder)
    ref_path = Path(reference) if reference is not None else find_reference(folder)
    ref = read_reference(ref_path if ref_path is not None else folder)
    ref_folder = ref_path.parent if ref_path is not None else folder
    raw = model.read_rows(source)
    if max_rows is not None and len(raw) > max_rows:
        raw = raw[:max_rows]
    x = model.prepare(raw)
    with torch.no_grad():
        out = model.forward_prepared(x).float().numpy()
    table = np.asarray(raw, dtype=object) if ref.get("features") and model.columns is not None else None
    embeddings = None
    if ref.get("embeddings"):  # the float model that made the reference gives the window's embeddings
        same = ref_folder == folder and isinstance(model.model, torch.nn.Module)
        emb = embed(model.model if same else load_model(ref_folder).model, x)
        embeddings = None if emb is None else emb.numpy()
    return detect_drift(ref, table, outputs=out, embeddings=embeddings, class_names=model.class_names, alpha=alpha,
                        method=method, embedding_test=embedding_test)
