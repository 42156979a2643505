"""Figures for result files, drawn without pyplot.

Library code must not choose a backend for its caller (switching to Agg with ``matplotlib.use``
changed a notebook user's backend for the whole session) nor leave figures in pyplot's global
list. A :class:`matplotlib.figure.Figure` made directly belongs to no backend and to no list:
``savefig`` renders it with the file format's own canvas (PNG: Agg), and it is freed like any object.

Not here: what a plot shows (each results module draws its own).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from r1omni.atomic import atomic_write_bytes

__all__ = ["figure", "png_bytes", "save_png"]


def figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, **subplot_kw: Any):
    """``(Figure, axes)`` as ``pyplot.subplots`` returns them, without pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **subplot_kw)


def png_bytes(fig, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (for files written atomically by the caller, or an HTTP answer)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write the figure to ``path`` as PNG, atomically (the file appears whole or not at all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png_bytes(fig, dpi))
    return path
