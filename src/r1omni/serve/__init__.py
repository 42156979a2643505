"""HTTP API and web page for a trained model: upload a clip, get the emotion and the reasoning.

``create_app(policy_or_model_dir, ServeConfig(...))`` builds the FastAPI application (see
:mod:`r1omni.serve.app` for the endpoints and error codes); :func:`run` serves a model folder with
uvicorn until interrupted. One worker thread runs the model and batches concurrent requests
(:mod:`r1omni.serve.worker`). Not here: authentication, TLS, multi-GPU replicas — put the server
behind a reverse proxy for those.
"""

from __future__ import annotations

import os

from r1omni.serve.app import create_app
from r1omni.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "run"]


def run(model_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, media_root: str | None = None,
        **limits) -> None:
    """Serve ``model_dir`` on ``host:port`` until interrupted.

    ``media_root`` allows ``{"path": ...}`` requests below that folder; ``limits`` are other
    :class:`ServeConfig` fields (``max_upload_bytes``, ``max_duration_seconds``,
    ``request_timeout_seconds``, ``max_queue``, ``max_batch_size``, ``label_set`` ...).
    """
    import uvicorn

    app = create_app(model_dir, ServeConfig(media_root=media_root, **limits))
    # One process: the model lives in this process's worker thread, so no uvicorn workers/reload.
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=30)
