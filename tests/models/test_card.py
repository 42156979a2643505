"""Model cards (``r1omni.models.card``) and the processor configs of Qwen-Omni folders: every saved folder
holds a ``README.md`` that ``huggingface_hub.ModelCard.load`` reads, with the scores as ``model-index``;
a saved Qwen-Omni folder holds the configs transformers' processors read, with r1omni's settings."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest
from huggingface_hub import ModelCard

from r1omni.models import init_preset
from r1omni.models.card import CardInfo, EvalScore, file_digest, record_scores, write_model_card


def test_a_card_with_scores_loads_with_its_model_index(tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text('{"id": "a"}\n')
    info = CardInfo(base_model="StarJiaxing/R1-Omni-0.5B", recipe="grpo", data=str(manifest),
                    data_digest=file_digest(manifest), steps=12,
                    scores=[EvalScore("dfew", war=0.625, uar=0.5, split="test"), EvalScore("mafw", 0.25, 0.125)])
    card = ModelCard.load(write_model_card(tmp_path, "humanomni", info))
    assert card.data.base_model == "StarJiaxing/R1-Omni-0.5B"
    assert {"r1omni", "humanomni"} <= set(card.data.tags)
    found = {(r.dataset_name, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert found == {("dfew", "WAR"): 0.625, ("dfew", "UAR"): 0.5, ("mafw", "WAR"): 0.25, ("mafw", "UAR"): 0.125}
    assert [r.dataset_split for r in card.data.eval_results[:2]] == ["test", "test"]
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() in card.text and "`grpo`" in card.text


def test_recorded_scores_join_the_card_and_replace_their_own_dataset_and_split(tmp_path):
    info = CardInfo(recipe="grpo", steps=3, scores=[EvalScore("dfew", 0.5, 0.4, "test")])
    write_model_card(tmp_path, "humanomni", info)
    record_scores(tmp_path, [EvalScore("mafw", 0.25, 0.2, "test")])
    card = ModelCard.load(record_scores(tmp_path, [EvalScore("dfew", 0.75, 0.7, "test")]))
    found = {(r.dataset_name, r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert found == {("dfew", "test", "WAR"): 0.75, ("dfew", "test", "UAR"): 0.7, ("mafw", "test", "WAR"): 0.25,
                     ("mafw", "test", "UAR"): 0.2}
    assert card.text.count("## Evaluation") == 1 and "| dfew | test | 0.7500 | 0.7000 |" in card.text
    assert "0.5000" not in card.text and "`grpo`" in card.text and card.data.model_name == "r1omni-humanomni"


def test_a_folder_without_a_card_gets_one_with_its_scores(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_5_omni"}')
    card = ModelCard.load(record_scores(tmp_path, [EvalScore("synth", 0.5, 0.5, "test_id")]))
    assert "qwen2_5_omni" in card.data.tags and len(card.data.eval_results) == 2


def test_a_local_base_model_stays_out_of_the_hub_metadata(tmp_path):
    card = ModelCard.load(write_model_card(tmp_path, "qwen2_5_omni", CardInfo(base_model=str(tmp_path))))
    assert card.data.base_model is None and str(tmp_path) in card.text and card.data.eval_results is None


@pytest.mark.parametrize("preset", ["qwen2.5-omni-tiny", "humanomni-tiny"])
def test_every_saved_folder_has_a_card(preset, tmp_path):
    policy = init_preset(preset, seed=0)
    policy.save(tmp_path / "model", card=CardInfo(base_model=f"preset:{preset}", recipe="test"))
    card = ModelCard.load(tmp_path / "model" / "README.md")
    assert policy.family in card.data.tags and f"preset:{preset}" in card.text


def test_a_qwen_omni_folder_holds_the_processor_configs_transformers_reads(tmp_path):
    from transformers import AutoImageProcessor, WhisperFeatureExtractor

    policy = init_preset("qwen2.5-omni-tiny", seed=0)
    policy.save(tmp_path)
    settings = policy.settings
    audio = WhisperFeatureExtractor.from_pretrained(tmp_path)
    assert (audio.feature_size, audio.sampling_rate) == (settings.num_mel_bins, settings.sample_rate_hz)
    image = AutoImageProcessor.from_pretrained(tmp_path)
    assert (image.patch_size, image.temporal_patch_size, image.merge_size) == \
        (settings.patch_size, settings.temporal_patch_size, settings.merge_size)
    assert tuple(image.image_mean) == pytest.approx(settings.image_mean)
    assert image.size["longest_edge"] == settings.frame_height * settings.frame_width
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("transformers' video processor needs torchvision")
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(processor).__name__ == "Qwen2_5OmniProcessor"
