"""What a re-run of the demo may keep: a finished stage is reused only if everything it was made from is
unchanged, its own settings, those of the stages it starts from, and those every stage shares (the
benchmark, the model, the seed); a pulled recipe change must not be scored with models trained under the
old one, and tuning one stage should not retrain the stages before it.

The settings of the last run are recorded in ``OUTPUT_DIR/demo_settings.json``. A setting that no stage
below names is shared: a new field of :class:`r1omni.demo.config.DemoConfig` rebuilds everything until it
is placed here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from r1omni.atomic import atomic_write_text
from r1omni.demo.config import DemoConfig

__all__ = ["forget_stale_results", "SETTINGS_FILE", "MEASUREMENT_ONLY", "STAGES"]

SETTINGS_FILE = "demo_settings.json"
# Where the run writes and how many threads it uses: the same models either way, so not recorded.
_UNRECORDED = ("output_dir", "threads")
MEASUREMENT_ONLY = ("eval_splits", "eval_batch_size", "attribution_clips", "attribution_method")
"""Settings that decide only what is measured: changing them measures again (``eval``) and trains nothing."""
_GRPO = ("grpo", "grpo_epochs", "grpo_clips_per_step", "grpo_generations", "grpo_beta", "grpo_temperature",
         "grpo_masked_modality", "max_new_tokens")
STAGES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "towers": (("towers",), None),
    "language": (("language",), "towers"),
    "perception": (("perception",), "language"),
    "base": (("pretrain",), "perception"),
    "cold_start_sft": (("cold_start",), "base"),
    "label_sft": (("label_sft", "label_sft_epochs", "label_modality_dropout"), "base"),
    "rlvr": (_GRPO, "cold_start_sft"),
    "rlvr_grounding": (_GRPO + ("grounding_weight",), "cold_start_sft"),
}
"""Each training stage (its folder under ``runs``): the settings of its own and the stage it starts from (a
phase that is off still passes its settings on: turning it on retrains what comes after it)."""


def forget_stale_results(out: Path, config: DemoConfig, bench: Path, say) -> None:
    """Delete what a run in ``out`` made under other settings than ``config``'s (and ``bench``'s), keep the
    rest, and record the new settings. Any change measures again; a change to a stage's settings retrains that
    stage and those after it; a shared change, or a missing or unreadable record, rebuilds everything."""
    text = _settings_text(config, bench)
    settings, record = json.loads(text), out / SETTINGS_FILE
    made = [name for name in ("models", "runs", "eval") if (out / name).exists()]
    previous = _read(record)
    if made and previous != settings:
        if previous is None or _shared(previous) != _shared(settings):
            say(f"   settings differ from the last run in {out}: its models and results are rebuilt")
            stale = [out / name for name in made]
        else:
            changed = [stage for stage in STAGES if _key(previous, stage) != _key(settings, stage)]
            say(f"   settings differ from the last run in {out}: " + (
                f"{', '.join(changed)} retrained, the other stages kept" if changed else
                "only what is measured changed, its models are kept") + "; its results measured again")
            stale = [out / "eval", *(out / "runs" / stage for stage in changed)]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
    atomic_write_text(record, text)


def _settings_text(config: DemoConfig, bench: Path) -> str:
    demo = {key: value for key, value in asdict(config).items() if key not in _UNRECORDED}
    settings = {"demo": demo, "benchmark": json.loads((bench / "synth_config.json").read_text())}
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def _read(record: Path) -> dict | None:
    """The recorded settings, or None where there are none to trust (missing, unreadable, not a record)."""
    try:
        previous = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return previous if isinstance(previous, dict) and isinstance(previous.get("demo"), dict) else None


def _shared(settings: dict) -> dict:
    """What every stage is made from: the benchmark and every setting no stage names as its own."""
    own = {name for fields, _ in STAGES.values() for name in fields} | set(MEASUREMENT_ONLY)
    return {"benchmark": settings.get("benchmark"),
            "demo": {key: value for key, value in settings["demo"].items() if key not in own}}


def _key(settings: dict, stage: str | None) -> list:
    """A stage's own settings and, recursively, those of the stages it starts from."""
    if stage is None:
        return []
    fields, parent = STAGES[stage]
    return [{name: settings["demo"].get(name) for name in fields}, *_key(settings, parent)]
