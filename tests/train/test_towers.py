"""Tower pre-training (``r1omni.train.towers``, issue #26): the towers learn to read the clips' cue values
(the regression loss falls), only the towers, projectors and media norm change, the saved folder loads to
the trained weights, and a clip without cue values is an error naming it."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from r1omni.claims import FACE_CUES, VOICE_CUES
from r1omni.clips import ClipLoader
from r1omni.models import init_preset, load_policy
from r1omni.schema import read_samples
from r1omni.train.setup import OptimConfig
from r1omni.train.towers import TowerConfig, cue_targets, train_towers


def _with_cues(samples):
    """The tiny clips with cue values that differ from clip to clip (each clip's colour and tone differ)."""
    out = []
    for index, sample in enumerate(samples):
        face = {cue.name: round(0.1 * index * (1 if k % 2 else -1), 3) for k, cue in enumerate(FACE_CUES)}
        voice = {cue.name: round(0.05 * index, 3) for cue in VOICE_CUES}
        out.append(dataclasses.replace(sample, meta={**sample.meta, "cues": {"face": face, "voice": voice}}))
    return out


def test_tower_pretraining_learns_the_cues_and_trains_only_the_towers(tiny_dataset, tmp_path):
    samples = _with_cues(read_samples(tiny_dataset))
    policy = init_preset("qwen2.5-omni-tiny", seed=0, media_norm=True)
    before = {name: p.detach().clone() for name, p in policy.module.named_parameters()}
    config = TowerConfig(steps=40, clips_per_step=6, log_every=1,
                         optim=OptimConfig(lr=3e-3, schedule="constant", warmup_ratio=0))
    result = train_towers(policy, samples, ClipLoader.for_policy(policy, prompt="train"), config, tmp_path / "run")

    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for stream in ("video", "audio"):
        first, last = rows[0][f"loss/{stream}"], min(row[f"loss/{stream}"] for row in rows[-5:])
        assert last < 0.5 * first, (stream, first, last)
    changed = {name for name, p in policy.module.named_parameters() if not torch.equal(p, before[name])}
    assert any("visual" in n for n in changed) and any("audio_tower" in n for n in changed), sorted(changed)[:5]
    assert not any("language_model" in n or "lm_head" in n or "embed_tokens" in n for n in changed)
    assert result.steps == 40 and result.clip_views == 240 and result.skipped_clips == 0
    assert "**recipe**: `towers`" in (result.final_model / "README.md").read_text()
    reloaded = load_policy(result.final_model)
    batch = reloaded.prepare(ClipLoader.for_policy(reloaded, prompt="train").load_many(samples[:2]).clips)
    with torch.no_grad():
        again = reloaded.media_tokens(batch)["video"][0]
        trained = policy.media_tokens(policy.prepare(
            ClipLoader.for_policy(policy, prompt="train").load_many(samples[:2]).clips))["video"][0]
    assert torch.allclose(again, trained, atol=1e-5)


def test_media_tokens_are_what_the_prompt_embeddings_hold(tiny_dataset):
    policy = init_preset("qwen2.5-omni-tiny", seed=0)
    clips = ClipLoader.for_policy(policy, prompt="train").load_many(read_samples(tiny_dataset)[:3]).clips
    batch = policy.prepare(clips)
    tokens = policy.media_tokens(batch)
    states = policy.prompt_states(batch)
    for stream, mask in (("video", states.video_mask), ("audio", states.audio_mask)):
        assert [len(t) for t in tokens[stream]] == mask.sum(dim=1).tolist()
        assert torch.allclose(torch.cat(tokens[stream]).detach(), states.embeds[mask], atol=1e-6)
    assert tokens["video"][0].requires_grad


def test_a_clip_without_cue_values_is_named(tiny_dataset, tmp_path):
    samples = read_samples(tiny_dataset)
    with pytest.raises(ValueError, match="clip0: tower pre-training needs meta\\['cues'\\]\\['face'\\]"):
        cue_targets(samples, "video")
    policy = init_preset("qwen2.5-omni-tiny", seed=0)
    with pytest.raises(ValueError, match="clip0"):
        train_towers(policy, samples, ClipLoader.for_policy(policy), TowerConfig(steps=1), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_tower_config_refuses_an_empty_run_and_the_language_model():
    with pytest.raises(ValueError, match="steps and clips_per_step"):
        TowerConfig(steps=0)
    with pytest.raises(ValueError, match="leave 'llm' out"):
        TowerConfig(trainable=["llm", "vision_tower"])
