"""HumanOmni in transformers' Auto classes (``r1omni.hf_auto``): after ``import r1omni`` a saved tiny
HumanOmni loads through ``AutoConfig`` / ``AutoModelForCausalLM`` with the weights r1omni saved, while
``import r1omni`` itself still imports neither transformers nor torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def humanomni_folder(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    from r1omni.models import init_preset

    policy = init_preset("humanomni-tiny", seed=0)
    folder = tmp_path_factory.mktemp("auto") / "model"
    policy.save(folder)
    return folder, {key: value.clone() for key, value in policy.module.state_dict().items()}


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_auto_model_for_causal_lm_loads_a_saved_humanomni_after_import_r1omni(humanomni_folder, tmp_path):
    """In a fresh interpreter (the registration waits for transformers' Auto classes to load): the model
    class, the config class and every weight are r1omni's."""
    folder, weights = humanomni_folder
    saved = tmp_path / "weights.pt"
    code = f"""
import json, sys
import r1omni
light = [name for name in ("torch", "transformers") if name in sys.modules]
import torch
from transformers import AutoConfig, AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained({str(folder)!r})
config = AutoConfig.from_pretrained({str(folder)!r})
torch.save(model.state_dict(), {str(saved)!r})
print(json.dumps({{"light": light, "model": type(model).__name__, "config": type(config).__name__,
                  "model_type": config.model_type}}))
"""
    shown = json.loads(run_python(code).strip().splitlines()[-1])
    assert shown == {"light": [], "model": "HumanOmniForCausalLM", "config": "HumanOmniConfig",
                     "model_type": "HumanOmni_qwen2"}
    loaded = torch.load(saved)
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[key], weights[key]) for key in weights)


def test_the_auto_path_takes_a_dtype_and_refuses_what_it_does_not_know(humanomni_folder):
    import r1omni  # noqa: F401  (registers, as a user's import would)
    from transformers import AutoModelForCausalLM

    folder, _ = humanomni_folder
    assert AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(TypeError, match=r"unexpected arguments \['device_map'\]"):
        AutoModelForCausalLM.from_pretrained(folder, device_map="cpu")
