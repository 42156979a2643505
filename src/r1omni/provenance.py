"""What a run folder says about how it was made: ``config.yaml`` and ``environment.json``, written when the
run starts (training, ``eval``, ``explain``, the demo and its study), so a folder left by a crash, or one
whose checkpoints were never saved, still says which settings and which installation produced it.

``config.yaml`` is the *resolved* config: every field, defaults included, after overrides and
``__post_init__`` filled in what depends on others. For a recipe it is a YAML file the recipe reads back
(``r1omni train sft OUT/config.yaml`` trains the same run), and ``r1omni train ... --print-config``
prints :func:`config_yaml` of the same config, byte for byte what the file would hold.
``environment.json`` is :func:`r1omni.environment.describe_environment` (versions, threads, processor).

Both are written atomically (``r1omni.atomic``): a reader never sees half of one. Not here: checkpoints'
own copy of the config (``r1omni.train.checkpoint``), or deciding whether two runs are the same one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import yaml

from r1omni.atomic import atomic_write_text

__all__ = ["config_yaml", "write_run_record", "CONFIG_FILE", "ENVIRONMENT_FILE"]

CONFIG_FILE = "config.yaml"
ENVIRONMENT_FILE = "environment.json"


def config_yaml(config: Any) -> str:
    """The YAML text of a config dataclass (or a plain mapping), fields in declaration order; tuples as
    lists and any other non-JSON value as its text, so that ``yaml.safe_load`` reads it back."""
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    plain = json.loads(json.dumps(values, default=str))
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=120)


def write_run_record(folder: str | os.PathLike, config: Any) -> Path:
    """Write ``config.yaml`` and ``environment.json`` into ``folder`` (created if needed); returns the
    config's path. Call it once per run, at its start, in one process."""
    from r1omni.environment import describe_environment

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / CONFIG_FILE, config_yaml(config))
    atomic_write_text(folder / ENVIRONMENT_FILE, json.dumps(describe_environment(), indent=2) + "\n")
    return folder / CONFIG_FILE
