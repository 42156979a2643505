"""The server's settings: limits, batching, the label vocabulary, where media may be read from.

Every field is documented once here; ``r1omni.serve.run(**limits)`` and the CLI only set fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from r1omni.clips import MODALITIES
from r1omni.labels import DEFAULT_LABEL_SET, LABEL_SETS

__all__ = ["ServeConfig", "MIB"]

MIB = 1024 * 1024


@dataclass
class ServeConfig:
    """Settings of one server. Defaults suit a single GPU serving a released checkpoint."""

    model_name: str | None = None
    """Shown by ``GET /v1/model``; None = the model folder's name (or the policy family)."""
    label_set: str = DEFAULT_LABEL_SET
    """Label vocabulary of the model (a name in ``r1omni.labels.LABEL_SETS``): answers are mapped
    to these canonical labels. "r1omni" for released R1-Omni checkpoints, "synth" (or "dfew") for
    models trained on the generated benchmark."""
    media_root: str | None = None
    """Folder that ``{"path": ...}`` requests, and paths and ``file://`` URLs in chat content parts, may
    read below (symlinks and ``..`` resolved first); None refuses every path request with 403."""
    upload_dir: str | None = None
    """Where uploads are written while they are processed (removed afterwards); None = the system
    temporary folder."""
    max_upload_bytes: int = 200 * MIB
    """Largest accepted upload; a larger one is refused with 413 as soon as its Content-Length (or,
    streamed without one, its byte count) shows it, without reading the rest."""
    max_duration_seconds: float = 600.0
    """Longest accepted clip (from its headers, before decoding); longer ones get 413."""
    max_recording_seconds: float = 4 * 3600.0
    """Longest recording the timeline endpoint accepts (it is read window by window, so memory does
    not grow with the length; time does)."""
    max_timeline_windows: int = 3600
    """Most windows one timeline request may ask for (4 h in 4 s windows): what bounds its work, since
    a short window or a large overlap multiplies the model calls. More gets 413 before any work."""
    upload_idle_timeout_seconds: float = 30.0
    """Longest pause while a request body arrives; a client silent for longer gets 408 and its partial
    upload is removed. Uploads in progress hold no in-flight place (``r1omni.serve.admission``)."""
    request_timeout_seconds: float = 300.0
    """Longest wait for the model (queue + inference) before the request fails with 504."""
    max_queue: int = 32
    """Clips that may wait for the model; when that many wait, new requests get 503."""
    max_batch_size: int = 8
    """Most clips run through one generate call."""
    batch_window_seconds: float = 0.02
    """How long the worker waits after a clip arrives for more to batch with it."""
    max_new_tokens: int = 512
    """Generation length limit per answer (greedy decoding)."""
    modalities: str = "video_audio"
    """What the model is shown of a clip: "video_audio", "video" or "audio"."""
    prompt: str = "inference"
    """Named prompt of ``r1omni.template`` (or literal question text)."""
    explain_method: str = "blank"
    """How attribution removes a modality (see ``r1omni.explain.attribution``): "blank" or "omit"."""
    device: str | None = None
    """Where a model loaded from a folder runs ("cpu", "cuda", "cuda:1"); None = CUDA when available."""

    def __post_init__(self) -> None:
        if self.label_set.lower() not in LABEL_SETS:
            raise ValueError(f"label_set {self.label_set!r} is unknown; use one of {sorted(LABEL_SETS)}")
        if self.modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {MODALITIES}, got {self.modalities!r}")
        if self.explain_method not in ("blank", "omit"):
            raise ValueError(f"explain_method must be 'blank' or 'omit', got {self.explain_method!r}")
        for name in ("max_upload_bytes", "max_queue", "max_batch_size", "max_new_tokens", "max_timeline_windows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_duration_seconds", "max_recording_seconds", "request_timeout_seconds",
                     "upload_idle_timeout_seconds"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        if self.batch_window_seconds < 0:
            raise ValueError(f"batch_window_seconds must be >= 0, got {self.batch_window_seconds}")
