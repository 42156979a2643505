"""Text-only language pre-training (``r1omni.train.language``, issue #26): it lowers the loss of its
exercises, trains the LLM only, and saves a folder that loads to the trained weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r1omni.models import init_preset, load_policy
from r1omni.synth.text import corpus
from r1omni.train.language import LanguageConfig, exercise_loss, train_language
from r1omni.train.setup import OptimConfig

PAIR = ('The subtitle of the video reads: "See you soon."\nWhat does the subtitle say?',
        'The subtitle reads: "See you soon."')


def test_language_pretraining_learns_its_exercise_and_trains_only_the_llm(tmp_path):
    policy = init_preset("qwen2.5-omni-tiny", seed=0, corpus=corpus())
    before = {name: p.detach().clone() for name, p in policy.module.named_parameters()}
    with torch.no_grad():
        start = exercise_loss(policy, [PAIR]).item()
    config = LanguageConfig(steps=30, batch_size=2, optim=OptimConfig(lr=3e-3, schedule="constant", warmup_ratio=0),
                            log_every=10)
    result = train_language(policy, lambda rng: PAIR, config, tmp_path / "run")
    with torch.no_grad():
        end = exercise_loss(policy, [PAIR]).item()
    assert end < 0.5 * start, (start, end)
    changed = {name for name, p in policy.module.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all("audio_tower" not in n and "visual" not in n for n in changed), sorted(changed)[:5]
    assert any("layers" in n for n in changed)
    assert result.steps == 30 and result.clip_views == 0 and (tmp_path / "run" / "metrics.jsonl").is_file()
    assert {"config.yaml", "environment.json"} <= {p.name for p in (tmp_path / "run").iterdir()}
    assert "**recipe**: `language`" in (result.final_model / "README.md").read_text()
    reloaded = load_policy(result.final_model)
    with torch.no_grad():
        assert exercise_loss(reloaded, [PAIR]).item() == pytest.approx(end, rel=1e-5)


def test_language_config_refuses_an_empty_run():
    with pytest.raises(ValueError, match="steps and batch_size"):
        LanguageConfig(steps=0)


def test_the_exercises_are_drawn_from_the_seeded_generator(tmp_path):
    seen: list[float] = []

    def exercise(rng: np.random.Generator):
        seen.append(float(rng.random()))
        return PAIR

    policy = init_preset("qwen2.5-omni-tiny", seed=0, corpus=corpus())
    train_language(policy, exercise, LanguageConfig(steps=2, batch_size=3, seed=7), tmp_path / "run")
    assert seen == list(np.random.default_rng(7).random(6))
