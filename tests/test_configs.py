"""Every shipped YAML parses: recipes into their config dataclasses, launcher configs as YAML."""

from pathlib import Path

import pytest
import yaml

from r1omni.train.grpo import GRPOConfig
from r1omni.train.sft import SFTConfig
from r1omni.yamlconfig import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted((CONFIGS / "recipes").glob("*.yaml"))


def _config_class(path: Path):
    return GRPOConfig if "grpo" in path.stem else SFTConfig


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_parses_into_its_config(path):
    config = load_config(_config_class(path), path)
    assert config.output_dir and config.model


def test_the_paper_grpo_recipe_has_the_paper_settings():
    config = load_config(GRPOConfig, CONFIGS / "recipes" / "grpo_r1omni.yaml")
    assert (config.num_generations, config.beta, config.optim.lr, config.sampling.temperature) == (8, 0.04, 1e-6, 1.0)
    assert config.loss.aggregation == "grpo" and config.loss.num_iterations == 1


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.stem)
def test_accelerate_configs_are_valid_yaml(path):
    data = yaml.safe_load(path.read_text())
    assert data["distributed_type"] in ("MULTI_GPU", "DEEPSPEED") and data["num_processes"] == 8


def test_overrides_and_errors():
    path = CONFIGS / "recipes" / "grpo_r1omni.yaml"
    config = load_config(GRPOConfig, path, ["beta=0", "sampling.temperature=0.7", "rewards={accuracy: 2.0}"])
    assert config.beta == 0 and config.sampling.temperature == 0.7 and config.rewards == {"accuracy": 2.0}
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(GRPOConfig, path, ["num_generation=4"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(GRPOConfig, path, ["num_generations=many"])
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        load_config(GRPOConfig, path, ["num_generations=1"])


def test_config_keys_are_every_settable_key_with_the_default_a_run_starts_from():
    """`train grpo --help` lists these: each key's default is what a config built without it holds (GRPO's
    own optim.lr, not OptimConfig's), each key can be set as an override, and the docstrings are the fields'."""
    import dataclasses
    import functools

    from r1omni.yamlconfig import config_keys, field_docs

    required = {"model": "m", "data": "d.jsonl", "output_dir": "out"}
    built = GRPOConfig(**required)
    keys = config_keys(GRPOConfig)
    assert {k.key for k in keys if k.default is dataclasses.MISSING} == set(required)
    for key in keys:
        if key.default is not dataclasses.MISSING:
            assert functools.reduce(getattr, key.key.split("."), built) == key.default, key.key
    assert "optim.lr" in {k.key for k in keys} and "optim" not in {k.key for k in keys}
    by_key = {k.key: k for k in keys}
    assert by_key["beta"].doc == field_docs(GRPOConfig)["beta"] and by_key["seed"].doc   # inherited field too
    assert by_key["reference"].type == "str | None"
    overridden = load_config(GRPOConfig, overrides=[f"{k}={v}" for k, v in required.items()] + ["optim.lr=0.5"])
    assert overridden.optim.lr == 0.5
