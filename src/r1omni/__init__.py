"""r1omni: omni-multimodal emotion recognition with verifiable-reward RL (R1-Omni, reimplemented).

``import r1omni`` stays light (no torch, no transformers): :func:`load` imports the model code when it is
called, and HumanOmni joins transformers' Auto classes when those load (:mod:`r1omni.hf_auto`).

>>> model = r1omni.load("runs/grpo/final")                       # doctest: +SKIP
>>> [p.reply.label for p in model.predict(["clip.mp4"])]          # doctest: +SKIP
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from r1omni import hf_auto

__all__ = ["__version__", "load"]


def _version() -> str:
    """The installed distribution's version; from a source tree that was never installed, pyproject's
    (Python 3.11+ reads it), else ``0+unknown``: one version, stated in pyproject.toml only."""
    try:
        return metadata.version("r1omni")
    except metadata.PackageNotFoundError:
        pass
    try:
        import tomllib

        with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as handle:
            return tomllib.load(handle)["project"]["version"]
    except (ImportError, OSError, KeyError, ValueError):
        return "0+unknown"


__version__ = _version()
hf_auto.install()


def load(folder: str | os.PathLike, *, device: str | None = None, **options):
    """A saved model folder, ready to answer: ``load(folder).predict(paths)`` gives one
    :class:`r1omni.inference.Prediction` per file (see :class:`r1omni.inference.Model`; ``options`` are
    :func:`r1omni.inference.predict_files`' keywords, e.g. ``label_set``, ``batch_size``, ``modalities``)."""
    from r1omni.inference import load_model

    return load_model(folder, device=device, **options)
