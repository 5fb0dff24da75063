"""Command: serve (BentoML REST service over onnxruntime, SPEC §8; several models, §11)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from microstrain.conventions import DEFAULT_PORT, MODEL_ENV_VAR
from microstrain.errors import MicrostrainError

SERVICE_IMPORT = "serving.service:MicrostrainService"


def serve(
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port to listen on.")] = (
        DEFAULT_PORT
    ),
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="DIR",
            help="Model directory (model.onnx + card.json); repeat it to serve several. "
            f"Default: ${MODEL_ENV_VAR} if set, else every model under models/.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the surrogates over HTTP: the web page at /, /predict, /predict_npy, /predict_image,
    /verify, /models, /model, /breakeven (settings: docs/serving.md)."""
    from serving.registry import MODELS_ENV_VAR, load_models, model_directories
    from serving.settings import WORKERS_ENV_VAR, api_token, check_all, intra_op_threads

    if not 0 < port < 65536:
        raise MicrostrainError(f"--port {port} is not a TCP port (1-65535)")
    if model:
        directories = [d.resolve() for d in model]
    else:
        saved = os.environ.pop(MODELS_ENV_VAR, None)  # only --model or the default select
        try:
            directories = [d.resolve() for d in model_directories()]
        finally:
            if saved is not None:
                os.environ[MODELS_ENV_VAR] = saved
    # load once here so a missing, broken or tampered model (its sha256 is checked against the
    # card) and a bad setting are one clear line, not a worker traceback; a refused model is
    # one line and the others are still served
    served = load_models(directories, threads=1, small_threads=())
    for line in served.refused:
        print(f"warning: {line}", file=sys.stderr, flush=True)
    check_all()
    accepted = [m.large.directory for m in served]
    env = dict(
        os.environ,
        **{MODELS_ENV_VAR: os.pathsep.join(map(str, accepted)), WORKERS_ENV_VAR: str(workers)},
    )
    env.pop(MODEL_ENV_VAR, None)
    shown_host = "localhost" if host in ("127.0.0.1", "::1") else host
    token_note = "\nrequests need 'Authorization: Bearer <MICROSTRAIN_API_TOKEN>'"
    listed = "\n".join(
        f"  {m.name}{' (default)' if m.name == served.default_name else ''}: {m.mode}, "
        f"plane {m.plane}, version {m.large.version} ({m.large.directory})"
        for m in served
    )
    print(
        f"microstrain serve: {len(accepted)} model(s), {workers} worker(s) x "
        f"{intra_op_threads(workers)} onnxruntime thread(s)\n{listed}\n"
        f"listening on http://{shown_host}:{port}  (web page /, POST /predict, "
        f"/predict_npy, GET /models, API docs /docs; Ctrl-C stops)"
        + (token_note if api_token() else ""),
        flush=True,
    )
    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE_IMPORT]
    cmd += ["--port", str(port), "--host", host]
    # replace this process: signals (Ctrl-C, SIGTERM from docker) go straight to BentoML
    os.execve(sys.executable, cmd, env)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
