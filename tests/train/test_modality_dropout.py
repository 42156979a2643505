"""Modality dropout in SFT (``SFTConfig.modality_dropout``, issue #26): the named stream is removed from
about the given share of training clips, the draw depends only on (seed, micro step), and a dropout of 1
trains exactly as if every clip had been stripped of that stream beforehand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r1omni.models.policy import ClipInput
from r1omni.models import load_policy
from r1omni.train.setup import OptimConfig
from r1omni.train.sft import SFTConfig, drop_modalities, train_sft


def clip(seed: int) -> ClipInput:
    rng = np.random.default_rng(seed)
    return ClipInput(question="q", frames=rng.integers(1, 255, (2, 8, 8, 3), dtype=np.uint8),
                     waveform=rng.standard_normal(1600).astype(np.float32) + 1.0)


def silent(c: ClipInput) -> bool:
    return not np.any(c.waveform)


def grey(c: ClipInput, first: ClipInput) -> bool:
    return not np.array_equal(c.frames, first.frames)


def test_the_share_and_the_stream_dropped_are_the_ones_asked_for():
    clips = [clip(i) for i in range(200)]
    drawn = [drop_modalities(clips, {"audio": 0.3}, seed=0, micro_step=step) for step in range(20)]
    share = sum(silent(c) for dropped in drawn for c in dropped) / (20 * len(clips))
    assert 0.28 < share < 0.32, share                                      # 4,000 draws: SE 0.007
    dropped = drawn[0]
    assert not any(grey(d, c) for d, c in zip(dropped, clips))          # the video stays whole
    assert all(np.any(c.waveform) for c in clips)                         # the inputs are not changed in place
    both = drop_modalities(clips, {"audio": 1.0, "video": 1.0}, seed=0, micro_step=5)
    assert all(silent(d) and grey(d, c) for d, c in zip(both, clips))


def test_the_draw_depends_on_seed_and_micro_step_only():
    clips = [clip(i) for i in range(64)]
    pattern = lambda seed, step: [silent(c) for c in drop_modalities(clips, {"audio": 0.5}, seed, step)]  # noqa: E731
    assert pattern(0, 3) == pattern(0, 3)
    assert pattern(0, 3) != pattern(0, 4)
    assert pattern(0, 3) != pattern(1, 3)
    assert drop_modalities(clips, {}, 0, 3) is clips


@pytest.mark.parametrize("shares", [{"voice": 0.5}, {"audio": 1.5}, {"video": -0.1}])
def test_bad_dropout_is_refused(shares, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="modality_dropout"):
        SFTConfig(model="preset:qwen2.5-omni-tiny", data=str(tiny_dataset), output_dir=str(tmp_path),
                  modality_dropout=shares)


def test_dropping_the_audio_of_every_clip_trains_as_silent_clips_would(tiny_dataset, tmp_path, monkeypatch):
    """A dropout of 1 gives the same weights as training on clips whose audio was silenced at decoding:
    the dropout reaches the batches the model trains on, and changes nothing else."""
    from r1omni import clips as clips_module

    settings = dict(model="preset:qwen2.5-omni-tiny", data=str(tiny_dataset), max_steps=2, clips_per_step=2,
                    seed=0, num_threads=1, target="label",
                    optim=OptimConfig(lr=3e-3, schedule="constant", warmup_ratio=0.0))
    dropped = train_sft(SFTConfig(output_dir=str(tmp_path / "dropped"), modality_dropout={"audio": 1.0}, **settings))
    plain = train_sft(SFTConfig(output_dir=str(tmp_path / "plain"), **settings))
    original = clips_module.ClipLoader.load_many

    def load_silenced(self, samples):
        loaded = original(self, samples)
        loaded.clips[:] = [clips_module.remove_modalities(c, video=False, audio=True) for c in loaded.clips]
        return loaded

    monkeypatch.setattr(clips_module.ClipLoader, "load_many", load_silenced)
    silenced = train_sft(SFTConfig(output_dir=str(tmp_path / "silenced"), **settings))
    weights = [dict(load_policy(r.final_model).thinker.named_parameters()) for r in (dropped, plain, silenced)]
    assert all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
