"""What a run folder says about how it was made (``r1omni.provenance``): ``config.yaml`` and
``environment.json`` are written when the run starts, ``config.yaml`` reads back as the same config, and
``r1omni train ... --print-config`` prints what the run then writes, byte for byte."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from huggingface_hub import ModelCard

from r1omni.cli import main
from r1omni.provenance import config_yaml
from r1omni.train import setup
from r1omni.train.grpo import GRPOConfig
from r1omni.train.sft import SFTConfig
from r1omni.yamlconfig import load_config

PRESET = "qwen2.5-omni-tiny"


def test_print_config_prints_what_the_run_writes_to_config_yaml(tiny_dataset, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model": f"preset:{PRESET}", "data": str(tiny_dataset), "target": "label",
                                      "clips_per_step": 2, "optim": {"lr": 1e-3, "warmup_ratio": 0.5}}))
    arguments = ["train", "sft", str(recipe), f"output_dir={tmp_path / 'run'}", "max_steps=1", "num_threads=1",
                 "report_to=[]"]
    assert main([*arguments, "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert not (tmp_path / "run").exists()          # printing trains nothing and writes nothing
    assert main(arguments) == 0
    written = (tmp_path / "run" / "config.yaml").read_text()
    assert printed == written
    values = yaml.safe_load(written)
    # Resolved: defaults filled in (prompt from the target), overrides applied, nested sections whole.
    assert (values["prompt"], values["max_steps"], values["optim"]["lr"], values["optim"]["schedule"]) == \
        ("train", 1, 1e-3, "cosine")
    environment = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert {"python", "torch", "transformers", "torch_threads", "installed_digest"} <= set(environment)
    # The final model's card says where it came from and on which data.
    card = ModelCard.load(tmp_path / "run" / "final" / "README.md")
    assert "`sft/label`" in card.text and f"`preset:{PRESET}`" in card.text
    assert hashlib.sha256(tiny_dataset.read_bytes()).hexdigest() in card.text


@pytest.mark.parametrize("config", [
    SFTConfig(model="preset:x", data="d.jsonl", output_dir="o", target="description", snapshot_steps=[2, 4],
              modality_dropout={"audio": 0.5}, trainable=["llm"]),
    GRPOConfig(model="preset:x", data="d.jsonl", output_dir="o", max_steps=3, report_to=["tensorboard"]),
], ids=["sft", "grpo"])
def test_config_yaml_reads_back_as_the_same_config(config, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml(config))
    assert load_config(type(config), path) == config


def test_the_record_is_written_before_the_model_opens(tiny_dataset, tmp_path, monkeypatch):
    """A run that dies in its set-up still says what it was."""
    def broken(*args, **kwargs):
        raise RuntimeError("the model could not be opened")

    monkeypatch.setattr(setup, "open_policy", broken)
    config = SFTConfig(model=f"preset:{PRESET}", data=str(tiny_dataset), output_dir=str(tmp_path), max_steps=1,
                       report_to=[])
    with pytest.raises(RuntimeError, match="could not be opened"):
        setup.prepare_run(config)
    assert load_config(SFTConfig, tmp_path / "config.yaml") == config
    assert (tmp_path / "environment.json").is_file()
